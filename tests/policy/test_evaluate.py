"""``evaluate`` directly, and policy-wide versus per-rule modes."""

from __future__ import annotations

import json
from pathlib import Path

from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.policy import evaluate
from modelsign.verify import verify
from tests.policy.helpers import NO_TIME, judge, load


def test_policy_wide_warn_mode_with_an_enforced_rule(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "quantization": {"allow_unquantized": False},
            "freshness": {"max_age": "1d", "mode": "enforce"},
        },
    )
    result, err = judge(signed_st, policy, verifier=release_verifier)
    assert err is not None and err.code == "POLICY_FAILED"
    assert err.message == "verification failed: 0 problems; policy rule failed: freshness"
    assert [(r.rule, r.mode, r.status) for r in result.policy.rules] == [  # type: ignore[union-attr]
        ("signers", "enforce", "pass"),
        ("quantization", "warn", "warn"),
        ("freshness", "enforce", "fail"),
    ]


def test_evaluate_without_a_manifest(tmp_path: Path) -> None:
    policy = load(tmp_path, {"mode": "warn", "licences": {}, "formats": {"mode": "enforce"}})
    report = evaluate(
        policy, manifest=None, signer=None, signature_problems=["X: broken"], unsigned_files={}
    )
    why = "no manifest to judge (the signature carries none and the model could not be read)"
    # The caller's own trust (a verifier, as from --key) is judged and enforced even when the
    # policy lists no signers and warns by default.
    assert [(r.rule, r.mode, r.status, r.reasons) for r in report.rules] == [
        ("signers", "enforce", "fail", ["X: broken"]),
        ("licences", "warn", "warn", [why]),
        ("formats", "enforce", "fail", [why]),
    ]
    assert report.blocked
    no_trust = evaluate(
        policy,
        manifest=None,
        signer=None,
        signature_problems=["X: broken"],
        unsigned_files={},
        verifier_given=False,
    )
    assert [r.rule for r in no_trust.rules] == ["licences", "formats"]


def test_evaluate_reports_are_json_serialisable(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier
) -> None:
    policy = load(tmp_path, {"mode": "warn", "freshness": {"max_age": "1d"}})
    result = verify(signed_st, verifier=release_verifier, policy=policy)
    dumped = json.loads(result.model_dump_json())
    assert dumped["policy"] == {
        "rules": [
            {"rule": "signers", "mode": "enforce", "status": "pass", "reasons": []},
            {"rule": "freshness", "mode": "warn", "status": "warn", "reasons": [NO_TIME]},
        ]
    }
