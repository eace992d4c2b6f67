"""JSON that refuses duplicate keys: parsers disagree on which one wins.

Everything modelsign reads from a file someone else wrote (headers, indexes,
manifests, signed statements) goes through this hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def unique_keys(
    on_duplicate: Callable[[str], Exception],
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` raising ``on_duplicate(key)`` for a repeated key."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise on_duplicate(key)
            out[key] = value
        return out

    return hook


def encodable(text: str) -> bool:
    """False for strings holding lone surrogates (``\\ud800`` escapes), which no UTF-8 can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
