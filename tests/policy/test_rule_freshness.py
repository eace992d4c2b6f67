"""The freshness rule: a trusted signing time (Sigstore, or a TSA timestamp) no older than
allowed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.policy.helpers import (
    MODES,
    NO_TIME,
    assert_fails,
    assert_passes,
    judge,
    rule_of,
    rule_policy,
    sigstore_policy,
)
from tests.sigstore_standin import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreStandin


@pytest.mark.parametrize("mode", MODES)
def test_freshness_key_signature_has_no_time(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    policy = rule_policy(tmp_path, "freshness", mode, max_age="3650d")
    assert_fails(signed_st, policy, "freshness", mode, [NO_TIME], verifier=release_verifier)


@pytest.mark.parametrize("mode", MODES)
def test_freshness_sigstore_signature(
    tmp_path: Path, standin: SigstoreStandin, keyless: Path, mode: str
) -> None:
    policy = sigstore_policy(
        tmp_path,
        standin,
        {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER},
        freshness={"mode": mode, "max_age": "30d"},
    )
    first = assert_passes(keyless, policy, "freshness")  # now: just signed
    assert first.signer is not None and first.signer.signed_at is not None
    signed_at = datetime.fromisoformat(first.signer.signed_at)
    assert signed_at.tzinfo is not None
    assert_passes(keyless, policy, "freshness", now=signed_at + timedelta(days=29, hours=23))
    assert_passes(keyless, policy, "freshness", now=signed_at + timedelta(days=30))
    late = signed_at + timedelta(days=31)
    assert_fails(
        keyless,
        policy,
        "freshness",
        mode,
        [f"signed {signed_at.isoformat()}, 31 days ago: older than 30d"],
        now=late,
    )


def test_freshness_units(tmp_path: Path, standin: SigstoreStandin, keyless: Path) -> None:
    ident = {"identity": DEFAULT_IDENTITY, "issuer": DEFAULT_ISSUER}
    signed_at = None
    for max_age, inside, beyond in (
        ("12h", timedelta(hours=11), timedelta(hours=13)),
        ("2w", timedelta(days=13), timedelta(days=15)),
        ("90m", timedelta(minutes=89), timedelta(minutes=91)),
        ("45s", timedelta(seconds=44), timedelta(seconds=46)),
    ):
        policy = sigstore_policy(tmp_path, standin, ident, freshness={"max_age": max_age})
        if signed_at is None:
            result = assert_passes(keyless, policy, "freshness")
            assert result.signer is not None and result.signer.signed_at is not None
            signed_at = datetime.fromisoformat(result.signer.signed_at)
        assert_passes(keyless, policy, "freshness", now=signed_at + inside)
        result, err = judge(keyless, policy, now=signed_at + beyond)
        assert err is not None and rule_of(result, "freshness").status == "fail", max_age
