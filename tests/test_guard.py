"""The guard: safetensors, torch.load and from_pretrained verified in a process that opted in.

Every test that installs the guard uninstalls it in a fixture finalizer, so the
rest of the suite (in this process) sees the original functions.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
import torch.serialization
import transformers
import transformers.integrations.accelerate  # binds safe_open by name, before any install

import modelsign
from modelsign import guard
from modelsign._internal.signature import keys
from modelsign.errors import InputError, VerificationError
from modelsign.guard import _checks, _replacements, _state
from modelsign.load import ModelsignWarning
from tests.helpers.paths import ROOT
from tests.helpers.signing import KeyPair, flip_byte
from tests.load.test_hf_load import (
    COMMIT,
    INPUT,
    TENSOR,
    build_tiny_llama,
    hf_cache,
    logits,
    make_remote_code,
    modules_cache,
    write_code,
)

__all__ = ["modules_cache"]  # a fixture, used by name

WEIGHTS = {
    "alpha": torch.arange(12, dtype=torch.float32).reshape(3, 4),
    "beta": torch.tensor([1, -2, 3], dtype=torch.int64),
}


def sign(folder: Path, keypair: KeyPair) -> None:
    modelsign.sign(folder, signer=keypair.signer, env={})


def write_policy(tmp_path: Path, keypair: KeyPair, *, mode: str = "enforce", **rules: Any) -> Path:
    (tmp_path / "release.pub").write_bytes(keys.public_key_pem(keypair.public))
    policy = {"version": 1, "mode": mode, "signers": {"keys": [{"file": "release.pub"}]}, **rules}
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps(policy))
    return path


@pytest.fixture
def weights(tmp_path: Path, keypair: KeyPair) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    safetensors.torch.save_file(WEIGHTS, str(folder / "w.safetensors"), metadata={"format": "pt"})
    sign(folder, keypair)
    return folder / "w.safetensors"


@pytest.fixture
def guarded(tmp_path: Path, keypair: KeyPair) -> Iterator[Path]:
    policy = write_policy(tmp_path, keypair)
    guard.install(policy=policy)
    yield policy
    guard.uninstall()


@pytest.fixture
def warn_guard(tmp_path: Path, keypair: KeyPair) -> Iterator[None]:
    guard.install(policy=write_policy(tmp_path, keypair, mode="warn"))
    yield
    guard.uninstall()


def test_load_file_and_safe_open_give_the_signed_tensors(weights: Path, guarded: Path) -> None:
    loaded = safetensors.torch.load_file(weights)
    assert loaded.keys() == WEIGHTS.keys()
    assert all(torch.equal(loaded[k], WEIGHTS[k]) for k in WEIGHTS)
    with safetensors.safe_open(str(weights), framework="pt", device="cpu") as f:
        assert f.keys() == ["alpha", "beta"] and f.metadata() == {"format": "pt"}
        assert torch.equal(f.get_tensor("beta"), WEIGHTS["beta"])
        part = f.get_slice("alpha")
        assert part.get_shape() == [3, 4] and part.get_dtype() == "F32"
        assert torch.equal(part[1:, :2], WEIGHTS["alpha"][1:, :2])
    arrays = safetensors.numpy.load_file(weights)
    assert np.array_equal(arrays["alpha"], WEIGHTS["alpha"].numpy())


def test_tampered_file_refused_naming_file_and_tensor(weights: Path, guarded: Path) -> None:
    flip_byte(weights, 4, tensor="alpha")
    calls = [
        lambda: safetensors.torch.load_file(weights),
        lambda: safetensors.safe_open(str(weights), framework="pt"),
        lambda: safetensors.numpy.load_file(weights),
    ]
    for call in calls:
        with pytest.raises(VerificationError) as e:
            call()
        assert e.value.path == "w.safetensors" and e.value.tensor == "alpha"
        assert "w.safetensors" in str(e.value) and "'alpha'" in str(e.value)


def test_unsigned_file_refused(tmp_path: Path, guarded: Path) -> None:
    path = tmp_path / "loose.safetensors"
    safetensors.torch.save_file(WEIGHTS, str(path))
    with pytest.raises(VerificationError, match="signers"):
        safetensors.torch.load_file(path)


def test_an_unsigned_readable_model_is_refused_as_not_signed(
    tmp_path: Path, keypair: KeyPair
) -> None:
    """Not "could not be read": the model is readable, it is not signed; the path looked at."""
    policy = write_policy(tmp_path, keypair, licences={"allow": ["MIT"]}, formats={})
    folder = tmp_path / "unsigned"
    folder.mkdir()
    safetensors.torch.save_file(WEIGHTS, str(folder / "w.safetensors"))
    guard.install(policy=policy)
    try:
        with pytest.raises(VerificationError) as e:
            safetensors.torch.load_file(folder / "w.safetensors")
    finally:
        guard.uninstall()
    message = str(e.value)
    assert "could not be read" not in message
    where = folder / "model.sig"
    assert f"SIGNATURE_NOT_FOUND: {where}: no signature file here" in message
    assert f"licences (not judged: the model is not signed (no signature at {where}))" in message
    assert f"formats (not judged: the model is not signed (no signature at {where}))" in message


def test_warn_mode_warns_and_loads(weights: Path, warn_guard: None) -> None:
    flip_byte(weights, tensor="alpha")
    with pytest.warns(ModelsignWarning, match="alpha"):
        loaded = safetensors.torch.load_file(weights)
    assert not torch.equal(loaded["alpha"], WEIGHTS["alpha"])


def test_torch_load_of_a_pickle_refused(weights: Path, guarded: Path) -> None:
    checkpoint = weights.parent / "pytorch_model.bin"
    torch.save(WEIGHTS, checkpoint)
    with pytest.raises(VerificationError, match="formats") as e:
        torch.load(checkpoint)
    assert "pytorch_model.bin" in str(e.value) and "pickle" in str(e.value)


@pytest.fixture
def checkpoint(tmp_path: Path, keypair: KeyPair) -> Path:
    """A signed folder holding one pickle checkpoint, pytorch_model.bin."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save(WEIGHTS, folder / "pytorch_model.bin")
    sign(folder, keypair)
    return folder


def test_torch_load_allowed_pickle_comes_from_the_signed_bytes(
    checkpoint: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    folder = checkpoint
    guard.install(policy=write_policy(tmp_path, keypair, formats={"deny": []}))
    try:
        loaded = torch.load(folder / "pytorch_model.bin", weights_only=True, mmap=True)
        assert torch.equal(loaded["alpha"], WEIGHTS["alpha"])
        checkpoint_file = folder / "pytorch_model.bin"
        flip_byte(checkpoint_file, checkpoint_file.stat().st_size // 2)
        with pytest.raises(VerificationError, match=r"pytorch_model\.bin"):
            torch.load(folder / "pytorch_model.bin", weights_only=True)
    finally:
        guard.uninstall()


@pytest.fixture
def tiny(tmp_path: Path, keypair: KeyPair) -> tuple[Path, Any]:
    folder = tmp_path / "tiny"
    model = build_tiny_llama(folder)
    sign(folder, keypair)
    return folder, model


def test_from_pretrained_of_a_signed_folder(
    tiny: tuple[Path, Any], guarded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, original = tiny
    opened: list[Any] = []
    served: list[str] = []
    real_open, real_verified = _state.ORIGINAL["safe_open"], _checks.verified
    monkeypatch.setitem(
        _state.ORIGINAL, "safe_open", lambda *a, **k: opened.append(a) or real_open(*a, **k)
    )
    monkeypatch.setattr(
        _checks,
        "verified",
        lambda g, p, w: served.append(os.path.basename(p)) or real_verified(g, p, w),
    )
    for cls in (transformers.LlamaForCausalLM, transformers.AutoModelForCausalLM):
        model = cls.from_pretrained(folder)
        assert torch.equal(logits(model), logits(original))
        report = model.modelsign_report
        assert report.verified and {"config.json", "model.safetensors"} <= set(report.files)
        assert report.files.count("model.safetensors") == 1  # checked once per load
        assert TENSOR in report.tensors
    assert opened == []  # the weights never came from safetensors' mmap of the path
    assert set(served) == {"model.safetensors"}  # but from the session's verified buffer


def test_from_pretrained_of_a_tampered_folder_refused(
    tiny: tuple[Path, Any], guarded: Path
) -> None:
    folder, _ = tiny
    flip_byte(folder / "model.safetensors", tensor=TENSOR)
    for cls in (transformers.LlamaForCausalLM, transformers.AutoModelForCausalLM):
        with pytest.raises(VerificationError) as e:
            cls.from_pretrained(folder)
        assert e.value.tensor == TENSOR and "model.safetensors" in str(e.value)
        assert "from_pretrained" in str(e.value)


def test_from_pretrained_edited_config_refused(tiny: tuple[Path, Any], guarded: Path) -> None:
    folder, _ = tiny
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    with pytest.raises(VerificationError, match=r"config\.json"):
        transformers.AutoModelForCausalLM.from_pretrained(folder)


def test_from_pretrained_from_the_cache_offline(
    tiny: tuple[Path, Any], guarded: Path, tmp_path: Path
) -> None:
    folder, original = tiny
    cache = tmp_path / "hub"
    hf_cache(cache, "acme/tiny", folder)
    model = transformers.LlamaForCausalLM.from_pretrained("acme/tiny", cache_dir=str(cache))
    assert torch.equal(logits(model), logits(original))
    assert model.modelsign_report.model.endswith(COMMIT)
    with pytest.raises(VerificationError) as e:
        transformers.LlamaForCausalLM.from_pretrained("acme/absent", cache_dir=str(cache))
    assert e.value.code == "HF_NOT_CACHED"


def test_from_pretrained_warn_mode(tiny: tuple[Path, Any], warn_guard: None) -> None:
    folder, _ = tiny
    flip_byte(folder / "model.safetensors", tensor=TENSOR)
    with pytest.warns(ModelsignWarning, match=TENSOR):
        model = transformers.LlamaForCausalLM.from_pretrained(folder)
    assert not model.modelsign_report.verified
    assert model(INPUT).logits.shape == (1, INPUT.shape[1], 128)


def test_from_pretrained_remote_code(
    tmp_path: Path, keypair: KeyPair, guarded: Path, modules_cache: Path
) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    original = build_tiny_llama(folder)
    make_remote_code(folder, marker)
    sign(folder, keypair)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "TinyForCausalLM" and marker.exists()
    assert torch.equal(logits(model), logits(original))
    assert "modeling_tiny.py" in model.modelsign_report.files


def test_changed_remote_code_refused_before_import(
    tmp_path: Path, keypair: KeyPair, guarded: Path, modules_cache: Path
) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    build_tiny_llama(folder)
    make_remote_code(folder, tmp_path / "elsewhere")
    sign(folder, keypair)
    write_code(folder, marker)
    for cls in (transformers.AutoConfig, transformers.AutoModelForCausalLM):
        with pytest.raises(VerificationError) as e:
            cls.from_pretrained(folder, trust_remote_code=True)
        # (the new code is longer: refused by its size, unread)
        assert e.value.path == "configuration_tiny.py" and e.value.code == "FILE_SIZE_MISMATCH"
    assert not marker.exists()


def _originals() -> dict[str, Any]:
    from transformers.modeling_utils import PreTrainedModel

    return {
        "safe_open": safetensors.safe_open,
        "torch.safe_open": safetensors.torch.safe_open,
        "torch.load_file": safetensors.torch.load_file,
        "numpy.load_file": safetensors.numpy.load_file,
        "torch.load": torch.load,
        "serialization.load": torch.serialization.load,
        "serialization._open_file_like": torch.serialization._open_file_like,
        "rust.safe_open": safetensors._safetensors_rust.safe_open,
        "accelerate.safe_open": transformers.integrations.accelerate.safe_open,
        "mu.safe_open": transformers.modeling_utils.safe_open,
        "PreTrainedModel": vars(PreTrainedModel)["from_pretrained"],
        "AutoModelForCausalLM": vars(transformers.AutoModelForCausalLM)["from_pretrained"],
        "AutoConfig": vars(transformers.AutoConfig)["from_pretrained"],
    }


def test_uninstall_restores_the_originals(guarded: Path, keypair: KeyPair) -> None:
    guard.uninstall()
    before = _originals()
    guard.install(policy=guarded)
    guard.install(policy=guarded)  # idempotent
    during = _originals()
    assert all(during[k] is not before[k] for k in before)
    assert guard.installed()
    guard.uninstall()
    after = _originals()
    assert all(after[k] is before[k] for k in before), [
        k for k in before if after[k] is not before[k]
    ]
    assert not guard.installed()
    guard.uninstall()  # a no-op


def test_install_from_env(guarded: Path) -> None:
    guard.uninstall()
    assert not guard.install_from_env({})
    assert not guard.installed()
    assert guard.install_from_env({guard.ENV_VAR: str(guarded)})
    assert guard.installed() and torch.load is _replacements.torch_load


def test_install_from_env_memory(guarded: Path) -> None:
    guard.uninstall()
    assert guard.install_from_env({guard.ENV_VAR: str(guarded), guard.MEMORY_ENV_VAR: "auto"})
    g = _state.current()
    assert g is not None and g.memory == "auto"
    guard.uninstall()
    with pytest.raises(InputError) as info:
        guard.install_from_env({guard.ENV_VAR: str(guarded), guard.MEMORY_ENV_VAR: "mmap"})
    assert info.value.code == "USAGE" and guard.MEMORY_ENV_VAR in info.value.message
    assert not guard.installed()


def test_mapped_guard_keeps_a_lease_on_what_load_file_returned(
    weights: Path, tmp_path: Path, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelsign.load._mapped as mapped

    if mapped.filesystem_of(os.stat(weights).st_dev) not in mapped.LEASE_SAFE_FILESYSTEMS:
        pytest.skip("the test folder is not on a local filesystem that supports leases")
    monkeypatch.setattr(mapped, "MIN_MAPPED", 1)  # the test weights are tiny
    guard.install(policy=write_policy(tmp_path, keypair), memory="mapped")
    try:
        loaded = safetensors.torch.load_file(weights)
    finally:
        guard.uninstall()
    assert all(torch.equal(loaded[k], WEIGHTS[k]) for k in WEIGHTS)
    with pytest.raises(BlockingIOError):  # a writer is held off (and the bytes copied out)
        os.open(weights, os.O_WRONLY | os.O_NONBLOCK)
    with open(weights, "r+b") as fh:
        fh.write(b"\xff" * 200)
    assert all(torch.equal(loaded[k], WEIGHTS[k]) for k in WEIGHTS)


@pytest.mark.slow
def test_sitecustomize_patches_modules_as_they_are_imported(
    weights: Path, guarded: Path, tmp_path: Path
) -> None:
    """A fresh interpreter: install imports nothing heavy; later imports are patched."""
    site = tmp_path / "site"
    site.mkdir()
    # The snippet the module docstring documents, verbatim.
    doc = guard.__doc__ or ""
    snippet = doc.split("site-packages)::\n", 1)[1].split("\nthen ", 1)[0]
    (site / "sitecustomize.py").write_text(textwrap.dedent(snippet))
    script = textwrap.dedent(
        f"""
        import sys
        from modelsign import guard
        from modelsign.guard import _replacements
        assert guard.installed() and "torch" not in sys.modules, sorted(sys.modules)
        from safetensors.torch import load_file
        import torch
        assert torch.load is _replacements.torch_load
        assert load_file is _replacements.torch_load_file
        assert torch.serialization.load is _replacements.torch_load
        assert load_file({str(weights)!r})["alpha"].sum().item() == 66
        import transformers
        assert "transformers.modeling_utils" not in sys.modules
        auto = transformers.AutoModelForCausalLM  # imports the model modules: patched now
        assert vars(auto)["from_pretrained"].__func__.__module__ == "modelsign.guard._replacements"
        assert transformers.modeling_utils.safe_open is _replacements.safe_open
        from modelsign.errors import VerificationError
        try:
            torch.load({str(weights)!r})
        except VerificationError as exc:
            print("refused:", exc.message)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        guard.ENV_VAR: str(guarded),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "refused: torch.load" in out.stdout and "formats" in out.stdout
    # A policy that cannot be read stops the interpreter rather than run unguarded.
    env[guard.ENV_VAR] = str(tmp_path / "missing.yaml")
    out = subprocess.run(
        [sys.executable, "-c", "print('started')"], env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "started" not in out.stdout
    assert "modelsign guard" in out.stderr and "POLICY_NOT_FOUND" in out.stderr


class _Payload:
    """A pickle that writes a marker file when it is unpickled: code execution, observable."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save({"x": _Payload(marker)}, path)
    return path, marker


def test_every_alias_of_torch_load_refuses_an_unsigned_pickle(
    payload: tuple[Path, Path], tmp_path: Path, keypair: KeyPair
) -> None:
    """torch.load is also torch.serialization.load, and can be bound before install."""
    from torch import load as bound_before  # a reference guard.install cannot rebind

    path, marker = payload
    guard.install(policy=write_policy(tmp_path, keypair))
    try:
        for call in (torch.load, torch.serialization.load, bound_before):
            with pytest.raises(VerificationError, match="pickle is denied") as e:
                call(path, weights_only=False)
            assert e.value.code == "POLICY_FAILED"
        assert not marker.exists()
    finally:
        guard.uninstall()
    assert torch.serialization.load is bound_before and torch.load is bound_before


def test_every_alias_of_safe_open_is_guarded(weights: Path, guarded: Path) -> None:
    """Found by identity: every framework module that bound safe_open gets the guarded one."""
    accelerate = transformers.integrations.accelerate
    assert accelerate.safe_open is _replacements.safe_open
    flip_byte(weights, tensor="alpha")
    with pytest.raises(VerificationError, match="alpha"):
        accelerate.safe_open(str(weights), framework="pt")


def test_torch_load_bound_before_install_reads_the_verified_bytes(
    checkpoint: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    from torch.serialization import load as bound_before

    folder = checkpoint
    guard.install(policy=write_policy(tmp_path, keypair, formats={"deny": []}))
    try:
        loaded = bound_before(folder / "pytorch_model.bin", weights_only=True)
        assert torch.equal(loaded["alpha"], WEIGHTS["alpha"])
        with pytest.raises(InputError, match="mmap") as e:  # would map the unchecked path
            bound_before(folder / "pytorch_model.bin", weights_only=True, mmap=True)
        assert e.value.code == "USAGE"
        checkpoint_file = folder / "pytorch_model.bin"
        flip_byte(checkpoint_file, checkpoint_file.stat().st_size // 2)
        with pytest.raises(VerificationError, match=r"pytorch_model\.bin"):
            bound_before(folder / "pytorch_model.bin", weights_only=True)
        buffer = io.BytesIO()  # a file object's bytes are the caller's: not judged
        torch.save(WEIGHTS, buffer)
        buffer.seek(0)
        assert torch.equal(bound_before(buffer)["beta"], WEIGHTS["beta"])
    finally:
        guard.uninstall()
