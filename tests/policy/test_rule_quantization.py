"""The quantization rule: allowed schemes, minimum bits per weight, unquantized weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.policy.helpers import MODES, assert_fails, assert_passes, rule_policy


@pytest.mark.parametrize("mode", MODES)
def test_quantization_allowed_schemes(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    ok = rule_policy(tmp_path, "quantization", mode, allowed_schemes=["MOSTLY_Q8_0"])
    assert_passes(signed_gguf, ok, "quantization", verifier=release_verifier)
    # An unquantized model is not judged by the scheme list.
    assert_passes(signed_st, ok, "quantization", verifier=release_verifier)
    other = rule_policy(tmp_path, "quantization", mode, allowed_schemes=["MOSTLY_Q4_K_M", "awq"])
    assert_fails(
        signed_gguf,
        other,
        "quantization",
        mode,
        ["quantization scheme MOSTLY_Q8_0 is not allowed"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_quantization_min_bits_per_weight(
    tmp_path: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    eight = rule_policy(tmp_path, "quantization", mode, min_bits_per_weight=8)
    assert_passes(signed_gguf, eight, "quantization", verifier=release_verifier)  # Q8_0: 8.5 bpw
    nine = rule_policy(tmp_path, "quantization", mode, min_bits_per_weight=9)
    assert_fails(
        signed_gguf,
        nine,
        "quantization",
        mode,
        ["8.5654 bits per weight is below the minimum 9.0"],
        verifier=release_verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_quantization_allow_unquantized(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    refused = rule_policy(tmp_path, "quantization", mode, allow_unquantized=False)
    assert_fails(
        signed_st,
        refused,
        "quantization",
        mode,
        ["the model is not quantized"],
        verifier=release_verifier,
    )
    assert_passes(signed_gguf, refused, "quantization", verifier=release_verifier)
    allowed = rule_policy(tmp_path, "quantization", mode, allow_unquantized=True)
    assert_passes(signed_st, allowed, "quantization", verifier=release_verifier)
