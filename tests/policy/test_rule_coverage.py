"""The coverage rule: tensor digests required, unsigned files denied, warned about or allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers.examples import build_example
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    MODES,
    NOT_COVERED,
    assert_fails,
    assert_passes,
    judge,
    key_sign,
    load,
    rule_of,
    rule_policy,
    statuses,
)


@pytest.mark.parametrize("mode", MODES)
def test_coverage_requires_tensor_digests(tmp_path: Path, release: KeyPair, mode: str) -> None:
    st, gg = build_example(tmp_path / "m")
    key_sign(st, release, tensor_hash=None)
    key_sign(gg, release, tensor_hash=None)
    verifier = release.verifier
    policy = rule_policy(tmp_path, "coverage", mode)
    assert_fails(
        st,
        policy,
        "coverage",
        mode,
        ["model.safetensors: the signature has no tensor digests for this weight file"],
        verifier=verifier,
    )
    assert_fails(
        gg,
        policy,
        "coverage",
        mode,
        ["tiny-model-Q8_0.gguf: the signature has no tensor digests for this weight file"],
        verifier=verifier,
    )
    lenient = rule_policy(tmp_path, "coverage", mode, require_tensor_digests=False)
    assert_passes(st, lenient, "coverage", verifier=verifier)


def test_coverage_passes_with_tensor_digests(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier
) -> None:
    policy = rule_policy(tmp_path, "coverage", "enforce")
    for model in (signed_st, signed_gguf):
        result = assert_passes(model, policy, "coverage", verifier=release_verifier)
        assert result.problems == []


@pytest.mark.parametrize("mode", MODES)
def test_coverage_unsigned_files_deny(
    tmp_path: Path, copy_signed: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    policy = rule_policy(tmp_path, "coverage", mode, unsigned_files="deny")
    result = assert_fails(
        copy_signed,
        policy,
        "coverage",
        mode,
        [f"notes.txt: {NOT_COVERED}"],
        verifier=release_verifier,
    )
    assert statuses(result)["signers"] == "pass"  # the extra file is coverage's business
    (extra,) = result.problems
    assert (extra.code, extra.file) == ("FILE_EXTRA", "notes.txt")
    assert extra.severity == ("error" if mode == "enforce" else "warning")


@pytest.mark.parametrize(
    ("unsigned_files", "status", "reasons", "severity"),
    [
        ("warn", "warn", [f"notes.txt: {NOT_COVERED}"], "warning"),
        ("allow", "pass", [], "info"),
    ],
)
def test_coverage_unsigned_files_warn_and_allow(
    tmp_path: Path,
    copy_signed: Path,
    release_verifier: KeyVerifier,
    unsigned_files: str,
    status: str,
    reasons: list[str],
    severity: str,
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    # The rule is enforced: "warn" still only warns.
    policy = rule_policy(tmp_path, "coverage", "enforce", unsigned_files=unsigned_files)
    result, err = judge(copy_signed, policy, verifier=release_verifier)
    assert err is None and result.verdict == "verified"
    coverage = rule_of(result, "coverage")
    assert (coverage.mode, coverage.status, coverage.reasons) == ("enforce", status, reasons)
    (extra,) = result.problems
    assert (extra.code, extra.file, extra.severity) == ("FILE_EXTRA", "notes.txt", severity)
    assert result.errors == []


def test_coverage_does_not_misreport_an_untrusted_signature(
    tmp_path: Path, signed_st: Path, stranger: KeyPair
) -> None:
    policy = load(
        tmp_path,
        {"mode": "warn", "signers": {"keys": [{"pem": stranger.pem}]}, "coverage": {}},
    )
    result, _ = judge(signed_st, policy)  # signed by release, with tensor digests
    assert rule_of(result, "signers").status == "warn"
    # Untrusted: coverage cannot be judged from a signature it cannot trust, so it is
    # skipped (not misreported as "no tensor digests").
    coverage = rule_of(result, "coverage")
    assert (coverage.status, coverage.reasons) == (
        "skip",
        ["no trusted signed manifest to judge coverage by"],
    )


def test_coverage_absent_leaves_extra_files_to_the_signature(
    tmp_path: Path, copy_signed: Path, release_verifier: KeyVerifier
) -> None:
    (copy_signed / "notes.txt").write_text("added after signing\n")
    result, err = judge(copy_signed, load(tmp_path, {"licences": {}}), verifier=release_verifier)
    assert err is not None and err.code == "FILE_EXTRA"
    assert rule_of(result, "signers").reasons == [f"FILE_EXTRA: notes.txt: {NOT_COVERED}"]
    assert result.problems[0].severity == "error"
