"""Ignore patterns never hide weights from the formats rule.

A model signed with ``--ignore '*.bin'`` records the ignored ``pytorch_model.bin``
in the signed ``ignore_paths``; a pickle written there later is not part of the
signature, but it is in the folder a runtime loads from. The policy's formats
rule judges every file present — signed, ignored at signing, or excused by the
verifier's ``--ignore`` — and the inventory never calls such a model verified.
Only the default exclusions (top-level git paths, modelsign's own files) stay out.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelsign.errors import VerificationError
from modelsign.inventory import scan
from modelsign.load import load_safetensors
from modelsign.policy import Policy
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.signing import KeyPair

DENIED = "pytorch_model.bin (unsigned): format pickle is denied"


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buf)
    return buf.getvalue()


def policy(tmp_path: Path, keypair: KeyPair, **rules: Any) -> Policy:
    pem = keypair.pem
    doc = {"version": 1, "signers": {"keys": [{"pem": pem}]}, **rules}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return Policy.load(path)


@pytest.fixture
def strict(tmp_path: Path, keypair: KeyPair) -> Policy:
    """Pickle denied, unsigned files denied."""
    return policy(
        tmp_path, keypair, formats={"deny": ["pickle"]}, coverage={"unsigned_files": "deny"}
    )


@pytest.fixture
def swapped(tiny_model: Path, keypair: KeyPair, checkpoint: bytes) -> Path:
    """Signed with --ignore '*.bin' (a harmless .bin then), the .bin replaced by a pickle."""
    (tiny_model / "pytorch_model.bin").write_bytes(b"placeholder, not weights")
    result = sign(tiny_model, signer=keypair.signer, env={}, ignore=["*.bin"])
    ignored = json.loads(result.statement)["predicate"]["serialization"]["ignore_paths"]
    assert "pytorch_model.bin" in ignored  # recorded as a concrete signed path
    (tiny_model / "pytorch_model.bin").write_bytes(checkpoint)
    return tiny_model


def formats_reasons(exc: VerificationError) -> list[str]:
    assert exc.result is not None and exc.result.policy is not None
    (rule,) = [r for r in exc.result.policy.rules if r.rule == "formats"]
    assert rule.status == "fail"
    return list(rule.reasons)


def test_verify_judges_a_pickle_at_a_signed_ignored_path(swapped: Path, strict: Policy) -> None:
    with pytest.raises(VerificationError) as info:
        verify(swapped, policy=strict)
    assert formats_reasons(info.value) == [DENIED]


def test_verify_ignore_never_excuses_an_unsafe_format(
    tiny_model: Path, keypair: KeyPair, strict: Policy, checkpoint: bytes
) -> None:
    sign(tiny_model, signer=keypair.signer, env={})
    (tiny_model / "pytorch_model.bin").write_bytes(checkpoint)
    with pytest.raises(VerificationError) as info:
        verify(tiny_model, policy=strict, ignore=["*.bin"])
    assert formats_reasons(info.value) == [DENIED]


def test_load_safetensors_refuses_a_pickle_at_a_signed_ignored_path(
    swapped: Path, strict: Policy
) -> None:
    with pytest.raises(VerificationError) as info:
        load_safetensors(swapped, policy=strict)
    assert info.value.code == "POLICY_FAILED"
    assert any(DENIED in p.message for p in info.value.findings)


def test_inventory_does_not_call_it_verified(swapped: Path, strict: Policy) -> None:
    inv = scan([swapped], default_stores=False, policy=strict)
    (entry,) = inv.models
    assert entry.status == "unsafe-format" and entry.blocked
    assert entry.policy is not None and "fail" in {
        r.status for r in entry.policy if r.rule == "formats"
    }


def test_inventory_without_a_formats_rule_still_flags_the_pickle(
    swapped: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    signers_only = policy(tmp_path, keypair)
    (entry,) = scan([swapped], default_stores=False, policy=signers_only).models
    assert entry.status == "unsafe-format" and entry.blocked  # no formats rule: pickle denied


def test_default_exclusions_stay_out(
    tiny_model: Path, keypair: KeyPair, strict: Policy, checkpoint: bytes
) -> None:
    (tiny_model / ".git").mkdir()
    sign(tiny_model, signer=keypair.signer, env={})
    (tiny_model / ".git" / "objects.bin").write_bytes(checkpoint)  # git's business
    result = verify(tiny_model, policy=strict)
    assert result.verdict == "verified"
    assert load_safetensors(tiny_model, policy=strict).report.verified
