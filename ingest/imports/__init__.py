"""Existing archives (twarc2 JSONL, plain or compressed) into minute files, as collectors write."""
