"""The inventory judges pickles by the formats rule's pickle setting, file by file, as verify does.

A ROOT of signed pickle models — a plain state dict, one that imports
``os.makedirs``, one signed before pickles were analysed — an unsigned state
dict, and signed safetensors with an unsigned state dict dropped beside them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelsign import KeySigner, Policy, sign
from modelsign._internal.signature import keys
from modelsign.inventory import InventoryEntry, scan
from tests.helpers.pickles import dangerous_checkpoint, rewritten_builder, safe_checkpoint
from tests.helpers.signing import SignedModel, shared_key

TRUSTED = shared_key()
NOT_ANALYSED = "not analysed as a safe state dict"


@dataclass(frozen=True)
class Pickles:
    root: Path
    marker: Path  # made if the dangerous checkpoint is ever unpickled


def _pickle_model(folder: Path, checkpoint: bytes, *, analysed: bool = True) -> None:
    folder.mkdir(parents=True)
    (folder / "pytorch_model.bin").write_bytes(checkpoint)
    (folder / "config.json").write_text('{"model_type": "llama"}\n')
    (folder / "LICENSE").write_text("MIT License\n")
    if analysed:
        sign(folder, signer=KeySigner(TRUSTED), env={})
    else:  # as a modelsign older than the pickle analyser signed it
        with rewritten_builder("unanalysed"):
            sign(folder, signer=KeySigner(TRUSTED), env={})


@pytest.fixture
def pickles(tmp_path: Path, signed_model: SignedModel) -> Pickles:
    root = tmp_path / "root"
    marker = tmp_path / "marker"
    _pickle_model(root / "safe-pt", safe_checkpoint())
    _pickle_model(root / "evil-pt", dangerous_checkpoint(marker))
    _pickle_model(root / "old-pt", safe_checkpoint(), analysed=False)
    unsigned = root / "unsigned-pt"
    unsigned.mkdir()
    (unsigned / "config.json").write_text("{}")
    (unsigned / "pytorch_model.bin").write_bytes(safe_checkpoint())
    beside = Path(shutil.copytree(signed_model(), root / "beside"))
    (beside / "extra.bin").write_bytes(safe_checkpoint())
    return Pickles(root, marker)


def _scan(
    p: Pickles, tmp_path: Path, pickle: str | None, mode: str = "enforce"
) -> dict[str, InventoryEntry]:
    (tmp_path / "t.pub").write_bytes(keys.public_key_pem(TRUSTED.public_key()))
    # None: the lists allow pickle, as before the setting
    rule = f"{{mode: {mode}, pickle: {pickle}}}" if pickle else f"{{mode: {mode}, deny: []}}"
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners:\n  keys: [{file: t.pub}]\n"
        f"formats: {rule}\ncoverage: {{unsigned_files: allow}}\n"
    )
    inv = scan([p.root], env={}, default_stores=False, policy=Policy.load(path), verify=True)
    assert not p.marker.exists()  # nothing was ever unpickled
    return {m.name: m for m in inv.models}


def test_safe_state_dicts_admits_a_verified_analysed_state_dict_only(
    pickles: Pickles, tmp_path: Path
) -> None:
    m = _scan(pickles, tmp_path, "safe-state-dicts")
    assert (m["safe-pt"].status, m["safe-pt"].blocked) == ("verified", False)
    assert m["safe-pt"].reason is None
    evil = m["evil-pt"]
    assert (evil.status, evil.blocked) == ("unsafe-format", True)
    assert evil.reason is not None
    assert evil.reason.startswith("pickle (loading it runs code): pytorch_model.bin")
    assert "dangerous global os.makedirs" in evil.reason  # the verify report's reason
    unsigned = m["unsigned-pt"]
    assert (unsigned.status, unsigned.blocked) == ("unsafe-format", True)
    assert unsigned.reason == "pickle (loading it runs code): pytorch_model.bin"
    beside = m["beside"]  # the unsigned pickle fails verify's formats rule
    assert (beside.status, beside.blocked) == ("unsafe-format", True)
    assert beside.reason == (
        "pickle (loading it runs code): extra.bin; "
        f"policy: formats: extra.bin (unsigned): {NOT_ANALYSED}"
    )
    old = m["old-pt"]
    assert (old.status, old.blocked) == ("unsafe-format", True)
    assert old.reason == (
        "pickle (loading it runs code): pytorch_model.bin; "
        f"policy: formats: pytorch_model.bin: {NOT_ANALYSED}"
    )


def test_deny_counts_every_pickle(pickles: Pickles, tmp_path: Path) -> None:
    m = _scan(pickles, tmp_path, "deny")
    for name in ("safe-pt", "evil-pt", "old-pt", "unsigned-pt", "beside"):
        assert (m[name].status, m[name].blocked) == ("unsafe-format", True), name
    assert (m["safe-pt"].reason or "").startswith(
        "pickle (loading it runs code): pytorch_model.bin; policy: formats"
    )


@pytest.mark.parametrize("pickle", ["allow", None], ids=["allow", "lists"])
def test_allow_admits_every_verified_pickle(
    pickles: Pickles, tmp_path: Path, pickle: str | None
) -> None:
    m = _scan(pickles, tmp_path, pickle)
    for name in ("safe-pt", "evil-pt", "old-pt", "beside"):
        assert (m[name].status, m[name].blocked) == ("verified", False), name
    # Not verified, a pickle is still a finding: no signature vouches for it.
    assert m["unsigned-pt"].status == "unsafe-format"


def test_a_warn_mode_rule_reports_each_pickle_it_does_not_admit(
    pickles: Pickles, tmp_path: Path
) -> None:
    """The model verifies (the rule only warns), and the inventory names each file and why."""
    m = _scan(pickles, tmp_path, "safe-state-dicts", mode="warn")
    assert (m["safe-pt"].status, m["safe-pt"].blocked) == ("verified", False)
    for name in ("evil-pt", "old-pt", "beside"):
        assert (m[name].status, m[name].blocked) == ("unsafe-format", False), name
    assert (m["beside"].reason or "").startswith(
        f"pickle (loading it runs code): extra.bin ({NOT_ANALYSED}); policy warns: formats"
    )
    evil = m["evil-pt"].reason or ""
    assert evil.startswith("pickle (loading it runs code): pytorch_model.bin (not a safe ")
    assert "dangerous global os.makedirs" in evil
