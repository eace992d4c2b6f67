"""JSON that refuses duplicate keys: parsers disagree on which one wins.

Everything modelsign reads from a file someone else wrote (headers, indexes,
manifests, signed statements) goes through this hook.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import rfc8785
from pydantic import Field


def added_field(default: Any = None) -> Any:
    """A model field added after 0.1: left out of the JSON while unset (None or empty).

    A document without what the field describes then serializes byte for byte
    as it did, so its canonical digest, and every signature over it, stays the same.
    """
    if default is None:
        return Field(default=None, exclude_if=lambda v: v is None)
    return Field(default_factory=default, exclude_if=lambda v: not v)


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a large document is turned into objects.

    Parsed JSON (and the models validated from it) holds no reference cycles,
    yet every few hundred new containers the collector walks the whole heap: for
    a 100,000-tensor manifest that is half of the parsing time.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
        with paused_gc():
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


#: The largest integer magnitude RFC 8785 encodes exactly (its numbers are IEEE doubles):
#: larger integers are refused, or kept as text by the readers of untrusted metadata.
SAFE_INT = 2**53 - 1


def _plain(value: object) -> bool:
    """Whether ``value`` holds only strings, safe integers, booleans, None, lists and
    dicts with ASCII keys: then Python's C encoder writes exactly RFC 8785."""
    stack: list[object] = [value]
    push, pop = stack.append, stack.pop
    while stack:
        x = pop()
        if type(x) is dict:
            if not "".join(x).isascii():
                return False  # RFC 8785 sorts keys by UTF-16 code units
            items: Iterable[object] = x.values()
        elif type(x) is list:
            items = x
        else:
            items = (x,)
        for v in items:
            kind = type(v)
            if kind is str or v is None or kind is bool:
                continue
            if kind is int:
                if v > SAFE_INT or v < -SAFE_INT:  # type: ignore[operator]
                    return False
            elif kind is list or kind is dict:
                push(v)
            else:
                return False  # floats (ES6 number formatting) and anything else
    return True


def _bad_number(x: object) -> str | None:
    kind = type(x)
    if kind is int and not -SAFE_INT <= x <= SAFE_INT:  # type: ignore[operator]
        return f"integer {x} is beyond ±(2**53 - 1)"
    if kind is float and not math.isfinite(x):  # type: ignore[arg-type]
        return f"number {x} is not finite"
    return None


def out_of_domain(value: object) -> str | None:
    """Where ``value`` holds a number RFC 8785 cannot encode, or None when it holds none.

    An integer beyond 2**53 - 1 in magnitude, or a float that is not finite
    (JSON ``1e400`` parses as infinity). Such a number in a parsed document
    would make the canonical encoder raise far from where the document was
    read; validators call this so nothing downstream ever sees one. The walk
    keeps no paths (a manifest has millions of values); only a hit is located.
    """
    stack: list[Any] = [value]
    pop, extend = stack.pop, stack.extend
    lo, hi = -SAFE_INT, SAFE_INT
    while stack:
        x = pop()
        kind = type(x)
        if kind is dict:
            extend(x.values())
        elif kind is list:
            extend(x)
        elif (kind is int and not lo <= x <= hi) or (kind is float and x - x != 0.0):
            return _locate(value)  # (x - x is NaN for an infinity or NaN)
    return None


def _locate(value: object) -> str:
    """The first bad number's message, with its path (``files.3.weights.tensors.0.offset``)."""
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        where, x = stack.pop()
        if type(x) is dict:
            stack += [(f"{where}.{k}".lstrip("."), v) for k, v in x.items()]
        elif type(x) is list:
            stack += [(f"{where}.{i}".lstrip("."), v) for i, v in enumerate(x)]
        elif (why := _bad_number(x)) is not None:
            return f"{why} (at {where or 'the top level'})"
    raise AssertionError("unreachable: out_of_domain found a bad number")


def _canonical(value: Any, out: list[str]) -> None:
    # Dicts are taken key by key (a manifest's few floats sit in small ones);
    # a list (a tensor table) is checked once and, when plain, encoded in C.
    if type(value) is list and _plain(value):
        out.append(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    elif type(value) is dict:
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            out.append(("," if i else "") + json.dumps(key, ensure_ascii=False) + ":")
            _canonical(value[key], out)
        out.append("}")
    elif type(value) is list:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    else:
        out.append(rfc8785.dumps(value).decode("utf-8"))


def canonical_dumps(value: Any) -> bytes:
    """RFC 8785 canonical JSON, as ``rfc8785.dumps`` writes it, but fast for large documents.

    The pure-Python canonicaliser takes seconds for a 100,000-tensor manifest;
    here every subtree made only of strings, safe integers and ASCII keys (the
    tensor tables) goes through Python's C JSON encoder, whose output is the
    same bytes, and only the rest (floats, other keys) through ``rfc8785``.
    """
    out: list[str] = []
    with paused_gc():
        _canonical(value, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        return rfc8785.dumps(value)  # a lone surrogate: refused as rfc8785 refuses it
