"""JSON that refuses duplicate keys: parsers disagree on which one wins.

Everything modelsign reads from a file someone else wrote (headers, indexes,
manifests, signed statements) goes through this hook.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def unique_keys(
    on_duplicate: Callable[[str], Exception],
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` raising ``on_duplicate(key)`` for a repeated key."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)  # at C speed; only a short dict means a repeated key
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise on_duplicate(key)
                seen.add(key)
        return out

    return hook


def strict_loads(
    data: bytes,
    on_duplicate: Callable[[str], Exception],
    on_invalid: Callable[[str], Exception],
) -> Any:
    """Parse UTF-8 JSON someone else wrote, refusing what parsers disagree on.

    Duplicate keys raise ``on_duplicate(key)``. Bad UTF-8, bad JSON, NaN or
    Infinity (Python extensions, not JSON) and nesting too deep to parse
    raise ``on_invalid(reason)``.
    """

    def constant(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=unique_keys(on_duplicate),
            parse_constant=constant,
        )
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError, JSONDecodeError
        raise on_invalid(str(exc) or type(exc).__name__) from exc


def encodable(text: str) -> bool:
    """False for strings holding lone surrogates (``\\ud800`` escapes), which no UTF-8 can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
