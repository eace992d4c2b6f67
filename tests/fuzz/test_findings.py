"""Inputs the fuzzers found that once escaped as something other than a ModelsignError."""

from __future__ import annotations

import time

import pytest

from modelsign.errors import FormatError, InputError

from .targets import TARGETS

FOUND = {
    # yaml's reader refused a NUL before parsing began: a bare yaml ReaderError.
    "policy-nul": ("policy", b"version: 1\nmode: enforce\nfor]m\x00\x00erage: {}\n"),
    # A mapping used as a mapping key: TypeError (unhashable) in the duplicate-key check.
    "policy-mapping-key": ("policy", b'{"version": 1, "signers": ,{"keys": [{"file": "a"}]}}'),
    "policy-list-key": ("policy", b"version: 1\n[a, b]: 1\n"),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_input_is_a_clear_refusal(case: str) -> None:
    target, data = FOUND[case]
    with pytest.raises(InputError) as info:
        TARGETS[target](data)
    assert info.value.code == "POLICY_INVALID"


#: Inputs that once took seconds (libFuzzer timeouts).
SLOW = {
    # STACK_GLOBAL over lists that repeat each other: a global name of exponential size.
    "torch_state-stack-global": (
        "torch_state",
        b"\x80}}}}}}}}}}}}}}}}}}}}(\x88\x88\x88\x80(((((((((((((\x88ll\x88lll(((\x8f\x82\x82a2a\x8f\x8fl\x88llll\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93\x93lll\x88\x88ll._u(l.i\xdc\xff\xff\xff\xff",
    ),
}


@pytest.mark.parametrize("case", sorted(SLOW))
def test_slow_input_is_refused_quickly(case: str) -> None:
    target, data = SLOW[case]
    start = time.perf_counter()
    with pytest.raises(FormatError):
        TARGETS[target](data)
    assert time.perf_counter() - start < 0.5
