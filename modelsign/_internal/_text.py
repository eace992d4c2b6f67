"""Words for people: counts with the right number."""

from __future__ import annotations


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 file``, ``2 files``; ``words`` when the plural is not ``word + "s"``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
