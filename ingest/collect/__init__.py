"""Runs on every server: the sampled stream into one file per minute, and its status."""
