"""The policy's identity rule: rollback and substitution, judged on the signed manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from modelsign import KeySigner, Policy, VerificationError, sign, verify
from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature import keys
from modelsign.errors import InputError
from modelsign.load import load_safetensors
from tests.helpers.signing import shared_key

KEY = shared_key()
PEM = keys.public_key_pem(KEY.public_key()).decode()
REV = "a" * 40


def policy(tmp_path: Path, **identity: Any) -> Policy:
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps({"version": 1, "signers": {"keys": [{"pem": PEM}]}, "identity": identity})
    )
    return Policy.load(path)


def identity_rule(model: Path, p: Policy) -> tuple[str, list[str]]:
    try:
        r = verify(model, policy=p)
    except VerificationError as exc:
        assert exc.result is not None
        r = exc.result
    assert r.policy is not None
    rule = next(x for x in r.policy.rules if x.rule == "identity")
    return rule.status, rule.reasons


@pytest.fixture
def released(tiny_model: Path) -> Path:
    sign(
        tiny_model,
        signer=KeySigner(KEY),
        env={},
        source=parse_source(f"acme/tiny@{REV}"),
        release="v1.4",
    )
    return tiny_model


def test_every_pin_held(released: Path, tmp_path: Path) -> None:
    weights = verify(released, policy=policy(tmp_path)).weights_digest
    p = policy(
        tmp_path,
        name="tiny-model",
        source="acme/tiny",
        weights_digest=weights,
        min_release="1.4",
    )
    assert identity_rule(released, p) == ("pass", [])
    assert identity_rule(released, policy(tmp_path, source=f"acme/tiny@{REV}"))[0] == "pass"


@pytest.mark.parametrize(
    ("pins", "why"),
    [
        ({"name": "other-model"}, "for model 'tiny-model', not 'other-model'"),
        ({"source": "evil/tiny"}, "for source acme/tiny@"),
        ({"source": "acme/tiny@" + "b" * 40}, "for source acme/tiny@"),
        ({"weights_digest": "sha256:" + "0" * 64}, "the weights digest is"),
        ({"min_release": "v2.0"}, "release v1.4 is older than v2.0"),
        ({"signed_after": "2026-01-01T00:00:00Z"}, "no trusted signing time"),
    ],
)
def test_a_pin_that_does_not_hold_fails(
    released: Path, tmp_path: Path, pins: dict[str, str], why: str
) -> None:
    status, reasons = identity_rule(released, policy(tmp_path, **pins))
    assert status == "fail" and any(why in r for r in reasons), reasons


def test_a_signature_without_a_release_fails_a_minimum(tiny_model: Path, tmp_path: Path) -> None:
    sign(tiny_model, signer=KeySigner(KEY), env={})
    status, reasons = identity_rule(tiny_model, policy(tmp_path, min_release="1.0"))
    assert status == "fail" and "names no release" in reasons[0]


def test_substitution_is_refused_at_load_time(
    tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Another model signed by the same key, copied over the expected one."""
    model, other = tiny_models
    sign(other, signer=KeySigner(KEY), env={})
    shutil.rmtree(model)
    shutil.copytree(other, model)
    p = policy(tmp_path, name="tiny-model")
    with pytest.raises(VerificationError) as e:
        load_safetensors(model, policy=p)
    assert "identity" in str(e.value)


def test_a_bad_minimum_release_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        policy(tmp_path, min_release="not a version")
    assert e.value.code == "POLICY_INVALID" and "min_release" in e.value.message
