"""Inputs the fuzzers found that once escaped as something other than a ModelsignError."""

from __future__ import annotations

import pytest

from modelsign.errors import InputError

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
