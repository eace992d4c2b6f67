"""What the policy tests share: constants, writing and loading a policy, judging a model.

Models are the bundled example (safetensors with a card and LICENSE) and its Q8_0
GGUF derivative, signed with a local key, a certificate chain or keylessly
through the local Sigstore stand-in (fixtures in ``conftest.py``).

Every rule (``test_rule_<name>.py``, ``test_signers.py``) is exercised with a model that
passes it and one that fails it, under ``enforce`` (the rule fails and
:func:`modelsign.verify` raises: ``assert_fails``) and ``warn`` (the rule warns and the
verdict stays "verified").
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelsign._internal.signature.sigstore import SigstoreSigner
from modelsign.errors import VerificationError
from modelsign.policy import Policy, RuleResult
from modelsign.sign import sign
from modelsign.verify import VerificationResult, verify
from tests.helpers.safetensors_files import write_safetensors
from tests.helpers.signing import KeyPair
from tests.sigstore_standin import SigstoreStandin

MODES = ("enforce", "warn")
PINNED = "0123456789abcdef0123456789abcdef01234567"  # 40 hex digits
GH_REPO = "acme/models"
GH_REF = "refs/tags/v1.0"
GH_WORKFLOW = ".github/workflows/release.yml"
GH_IDENTITY = f"https://github.com/{GH_REPO}/{GH_WORKFLOW}@{GH_REF}"
NO_TIME = (
    "the signature carries no trusted signing time (a key or certificate signature has one "
    "only with a timestamp from a TSA the policy trusts: sign with --tsa-url, list "
    "signers.timestamp_authorities)"
)
NOT_COVERED = "file is not covered by the signature"


def key_sign(model: Path, kp: KeyPair, **kw: Any) -> Path:
    """Sign with a bare key (no CI builder unless ``env`` says so); the signature path."""
    kw.setdefault("env", {})
    return Path(sign(model, signer=kp.signer, **kw).signature)


def load(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> Policy:
    """Write ``doc`` (version 1 added) as YAML and load it like a user would."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"version": 1, **doc}, sort_keys=False), encoding="utf-8")
    return Policy.load(path)


def rule_policy(tmp_path: Path, rule: str, mode: str, **spec: Any) -> Policy:
    """A policy with one rule in ``mode`` (signers come from the verifier)."""
    return load(tmp_path, {rule: {"mode": mode, **spec}})


def judge(
    model: Path, policy: Policy, **kw: Any
) -> tuple[VerificationResult, VerificationError | None]:
    """Verify under ``policy``; the result whether or not verification raised."""
    try:
        return verify(model, policy=policy, **kw), None
    except VerificationError as exc:
        assert exc.result is not None
        return exc.result, exc


def rule_of(result: VerificationResult, name: str) -> RuleResult:
    assert result.policy is not None
    (found,) = [r for r in result.policy.rules if r.rule == name]
    return found


def statuses(result: VerificationResult) -> dict[str, str]:
    assert result.policy is not None
    return {r.rule: r.status for r in result.policy.rules}


def assert_passes(model: Path, policy: Policy, rule: str, **kw: Any) -> VerificationResult:
    result, err = judge(model, policy, **kw)
    assert err is None, err
    assert result.verdict == "verified"
    r = rule_of(result, rule)
    assert (r.status, r.reasons) == ("pass", [])
    return result


def assert_fails(
    model: Path, policy: Policy, rule: str, mode: str, reasons: list[str], **kw: Any
) -> VerificationResult:
    """Enforce: the rule fails and verify raises; warn: the rule warns, the model verifies."""
    result, err = judge(model, policy, **kw)
    r = rule_of(result, rule)
    assert r.mode == mode
    assert r.reasons == reasons
    if mode == "enforce":
        assert r.status == "fail"
        assert err is not None and result.verdict == "failed"
        assert re.search(rf"policy rules? failed: {rule}\b", err.message), err.message
    else:
        assert r.status == "warn"
        assert err is None and result.verdict == "verified"
    return result


def with_card(folder: Path, licence: str | None, *, licence_text: str | None = None) -> Path:
    """A one-tensor safetensors model with a card stating ``licence`` (and a LICENSE)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_safetensors(folder / "model.safetensors", {"w": np.ones((4, 4), np.float32)})
    card = "---\n" + (f"license: {licence}\n" if licence else "") + "---\n# m\n"
    (folder / "README.md").write_text(card)
    if licence_text is not None:
        (folder / "LICENSE").write_text(licence_text)
    return folder


def keyless_signer(standin: SigstoreStandin, token: str) -> SigstoreSigner:
    return SigstoreSigner.create(
        identity_token=token, trust_config=str(standin.trust_config_path), env={}
    )


def sigstore_policy(
    tmp_path: Path, standin: SigstoreStandin, *identities: dict[str, str], **doc: Any
) -> Policy:
    """A policy trusting ``identities`` under the stand-in's root (a path relative to it)."""
    root = tmp_path / "trust" / "root.json"
    root.parent.mkdir(exist_ok=True)
    shutil.copy(standin.trusted_root_path, root)
    signers = {"trusted_root": "trust/root.json", "sigstore": list(identities)}
    return load(tmp_path, {"signers": signers, **doc})
