"""The strict JSON reader and the fast RFC 8785 writer (same bytes as ``rfc8785``)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from modelsign._internal._json import canonical_dumps, paused_gc, strict_loads
from modelsign.sign import build_manifest

CASES: list[Any] = [
    {"b": 1, "a": [1, 2, {"z": None, "y": True}], "c": "x"},
    {"é": 1, "e": 2, "\ue000": 3, "𝄞": 4, "z": [{"\u20ac": 1.5}]},  # UTF-16 key order
    [{"name": 'a\x00\x1f\x7f\u2028"\\é𝄞', "n": -(2**53 - 1)}, {"name": "", "n": 2**53 - 1}],
    [{"f": 0.1, "g": 1e21, "h": 1e-7, "i": -0.0, "j": 5.0}],  # ES6 number formatting
    {"tensors": [{"name": f"t{i}", "shape": [i, 3], "digest": "ab" * 32} for i in range(50)]},
    [],
    {},
    "plain",
    7,
    None,
]


@pytest.mark.parametrize("value", CASES)
def test_same_bytes_as_rfc8785(value: Any) -> None:
    assert canonical_dumps(value) == rfc8785.dumps(value)


def test_a_real_manifest(tiny_models: tuple[Path, Path]) -> None:
    for model in tiny_models:
        data = build_manifest(model, env={}).model_dump(mode="json")
        assert canonical_dumps(data) == rfc8785.dumps(data)


@pytest.mark.parametrize("value", [[{"n": 2**53}], {"a": [-(2**53)]}, [1, "\ud800"]])
def test_what_rfc8785_refuses_is_refused_alike(value: Any) -> None:
    with pytest.raises(Exception) as ours:
        canonical_dumps(value)
    with pytest.raises(Exception) as theirs:
        rfc8785.dumps(value)
    assert type(ours.value) is type(theirs.value)


def test_paused_gc_restores_the_collector() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        assert not gc.isenabled()
        raise ValueError
    assert gc.isenabled()


def test_strict_loads_refuses_duplicates_at_any_depth() -> None:
    def dup(k: str) -> Exception:
        return KeyError(k)

    def bad(why: str) -> Exception:
        return ValueError(why)

    assert strict_loads(b'{"a": [{"b": 1}, {"b": 2}]}', dup, bad) == {"a": [{"b": 1}, {"b": 2}]}
    with pytest.raises(KeyError):
        strict_loads(b'{"a": [{"b": 1, "c": 2, "b": 3}]}', dup, bad)
    with pytest.raises(ValueError):
        strict_loads(b'{"a": NaN}', dup, bad)
