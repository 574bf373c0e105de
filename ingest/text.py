"""Words the operator reads: counts with their noun in the right number."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """ "1 line", "2 lines", "1,024 lines" ("1 copy", "2 copies" with ``many``)."""
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"
