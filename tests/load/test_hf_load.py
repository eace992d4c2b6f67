"""transformers models built only from verified bytes; Hugging Face cache snapshots, offline.

A tiny Llama is built from a config (no download), signed, and loaded with
``load_transformers``: its outputs must equal the original's, and a changed
tensor byte, an unsigned or edited ``*.py`` (which would write a marker file
when imported) must be refused before anything is imported. The same model
placed in a realistic Hugging Face cache (blobs named by SHA-256, snapshot
symlinks, ``refs/main``) is found and verified by ref and by commit, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers

import modelsign
from modelsign.errors import DiscoveryError, InputError, VerificationError
from modelsign.load import ModelsignWarning
from modelsign.load.hf import (
    HF_NOT_CACHED,
    load_transformers,
    snapshot_path,
    verify_hf_snapshot,
)
from modelsign.policy import parse_policy
from tests.helpers.signing import KeyPair, flip_byte

COMMIT = "c0ffee" + "0" * 34
TENSOR = "model.layers.0.mlp.up_proj.weight"
INPUT = torch.tensor([[1, 5, 9, 42, 7, 3, 100, 0]])

CONFIG_PY = """\
import pathlib
pathlib.Path({marker!r}).write_text("remote code ran")
from transformers import LlamaConfig


class TinyConfig(LlamaConfig):
    model_type = "tiny_llama"
"""
MODELING_PY = """\
import pathlib
pathlib.Path({marker!r}).write_text("remote code ran")
from transformers import LlamaForCausalLM

from .configuration_tiny import TinyConfig


class TinyForCausalLM(LlamaForCausalLM):
    config_class = TinyConfig
"""


def build_tiny_llama(folder: Path) -> Any:
    """A two-layer Llama with fixed random weights, saved as safetensors; returns the model."""
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def logits(model: Any) -> torch.Tensor:
    with torch.no_grad():
        return model(INPUT).logits  # type: ignore[no-any-return]


def sign(folder: Path, keypair: KeyPair) -> None:
    modelsign.sign(folder, signer=keypair.signer, env={})


def make_remote_code(folder: Path, marker: Path, *, with_code: bool = True) -> None:
    """Turn a saved Llama into a remote-code model (its config names the *.py classes)."""
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="tiny_llama",
        architectures=["TinyForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    if with_code:
        write_code(folder, marker)


def write_code(folder: Path, marker: Path) -> None:
    (folder / "configuration_tiny.py").write_text(CONFIG_PY.format(marker=str(marker)))
    (folder / "modeling_tiny.py").write_text(MODELING_PY.format(marker=str(marker)))


def hf_cache(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT) -> Path:
    """The Hugging Face cache layout: blobs named by SHA-256, snapshot links, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snap / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return repo


@pytest.fixture
def tiny(tmp_path: Path, keypair: KeyPair) -> tuple[Path, Any]:
    folder = tmp_path / "tiny"
    model = build_tiny_llama(folder)
    sign(folder, keypair)
    return folder, model


@pytest.fixture
def modules_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Keep transformers' copies of remote code out of the home folder."""
    import transformers.dynamic_module_utils as dmu

    cache = tmp_path_factory.getbasetemp() / "hf-modules"
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(cache))
    return cache


@pytest.mark.slow
def test_load_matches_the_original(tiny: tuple[Path, Any], verifier: Any) -> None:
    folder, original = tiny
    model = load_transformers(folder, verifier=verifier)
    assert type(model) is transformers.LlamaForCausalLM and not model.training
    assert torch.equal(logits(model), logits(original))
    report = model.modelsign_report
    assert report.verified and report.signer is not None and report.signer.kind == "key"
    assert {"config.json", "generation_config.json", "model.safetensors"} <= set(report.files)
    assert TENSOR in report.tensors
    assert model.generation_config.to_dict() == original.generation_config.to_dict()


def test_mapped_weights(
    tiny: tuple[Path, Any], verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``memory="mapped"`` reaches the weight file only (config and code are copied)."""
    import modelsign.load._mapped as mapped

    folder, original = tiny
    if mapped.filesystem_of(os.stat(folder).st_dev) not in mapped.LEASE_SAFE_FILESYSTEMS:
        pytest.skip("the test folder is not on a local filesystem that supports leases")
    monkeypatch.setattr(mapped, "MIN_MAPPED", 1)  # the tiny model's weights are 230 KB
    model = load_transformers(folder, verifier=verifier, memory="mapped")
    assert model.modelsign_report.mapped == ["model.safetensors"]
    assert torch.equal(logits(model), logits(original))
    with pytest.raises(InputError) as info:  # refused before any file is read
        load_transformers(folder / "absent", verifier=verifier, memory="mmap")  # type: ignore[arg-type]
    assert info.value.code == "USAGE"


def test_auto_class_and_dtype(tiny: tuple[Path, Any], verifier: Any) -> None:
    folder, original = tiny
    model = load_transformers(
        folder,
        model_class=transformers.AutoModelForCausalLM,
        verifier=verifier,
        torch_dtype=torch.float32,
    )
    assert type(model) is transformers.LlamaForCausalLM
    assert torch.equal(logits(model), logits(original))


def test_policy_load(tiny: tuple[Path, Any], keypair: KeyPair) -> None:
    folder, original = tiny
    pem = keypair.pem
    policy = parse_policy(
        json.dumps({"version": 1, "signers": {"keys": [{"pem": pem}]}, "formats": {}}), "p.yaml"
    )
    model = load_transformers(folder, policy=policy)
    assert torch.equal(logits(model), logits(original))
    assert model.modelsign_report.policy is not None


def test_tampered_tensor_refused_naming_it(tiny: tuple[Path, Any], verifier: Any) -> None:
    folder, _ = tiny
    flip_byte(folder / "model.safetensors", 5, tensor=TENSOR)
    with pytest.raises(VerificationError) as e:
        load_transformers(folder, verifier=verifier)
    assert e.value.path == "model.safetensors" and e.value.tensor == TENSOR
    assert TENSOR in str(e.value) and "model.safetensors" in str(e.value)
    assert any(p.code == "TENSOR_MODIFIED" and p.tensor == TENSOR for p in e.value.findings)


def test_warn_mode_policy_warns_and_loads(tiny: tuple[Path, Any], keypair: KeyPair) -> None:
    folder, _ = tiny
    flip_byte(folder / "model.safetensors", tensor=TENSOR)
    pem = keypair.pem
    policy = parse_policy(
        json.dumps({"version": 1, "mode": "warn", "signers": {"keys": [{"pem": pem}]}}), "p.yaml"
    )
    with pytest.warns(ModelsignWarning, match=TENSOR):
        model = load_transformers(folder, policy=policy)
    assert not model.modelsign_report.verified


def test_edited_config_refused(tiny: tuple[Path, Any], verifier: Any) -> None:
    folder, _ = tiny
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VerificationError, match=r"config\.json"):
        load_transformers(folder, verifier=verifier)


def test_remote_code_runs_from_the_verified_copy(
    tmp_path: Path, keypair: KeyPair, verifier: Any, modules_cache: Path
) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    original = build_tiny_llama(folder)
    make_remote_code(folder, marker)
    sign(folder, keypair)
    model = load_transformers(folder, verifier=verifier, trust_remote_code=True)
    assert marker.exists()  # the verified code did run
    assert type(model).__name__ == "TinyForCausalLM"
    assert type(model.config).__name__ == "TinyConfig"
    assert torch.equal(logits(model), logits(original))
    assert {"configuration_tiny.py", "modeling_tiny.py"} <= set(model.modelsign_report.files)


def test_unsigned_code_refused_before_import(
    tmp_path: Path, keypair: KeyPair, verifier: Any, modules_cache: Path
) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    build_tiny_llama(folder)
    make_remote_code(folder, marker, with_code=False)
    sign(folder, keypair)
    write_code(folder, marker)  # added after signing
    with pytest.raises(VerificationError) as e:
        load_transformers(folder, verifier=verifier, trust_remote_code=True)
    assert "configuration_tiny.py" in str(e.value) and "modeling_tiny.py" in str(e.value)
    assert e.value.code == "FILE_EXTRA"
    assert not marker.exists()


def test_signed_code_changed_refused_before_import(
    tmp_path: Path, keypair: KeyPair, verifier: Any, modules_cache: Path
) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    build_tiny_llama(folder)
    make_remote_code(folder, tmp_path / "elsewhere")
    sign(folder, keypair)
    write_code(folder, marker)  # same code, now writing the marker we watch
    with pytest.raises(VerificationError) as e:
        load_transformers(folder, verifier=verifier, trust_remote_code=True)
    # (the new code is longer: refused by its size, unread)
    assert e.value.path == "configuration_tiny.py" and e.value.code == "FILE_SIZE_MISMATCH"
    assert not marker.exists() and not (tmp_path / "elsewhere").exists()


def test_code_denied_by_policy(tmp_path: Path, keypair: KeyPair, modules_cache: Path) -> None:
    folder = tmp_path / "remote"
    marker = tmp_path / "marker"
    build_tiny_llama(folder)
    make_remote_code(folder, marker)
    sign(folder, keypair)
    pem = keypair.pem
    policy = parse_policy(
        json.dumps({"version": 1, "signers": {"keys": [{"pem": pem}]}, "formats": {}}), "p.yaml"
    )
    with pytest.raises(VerificationError, match="formats") as e:
        load_transformers(folder, policy=policy, trust_remote_code=True)
    assert "modeling_tiny.py" in str(e.value)
    assert not marker.exists()


@pytest.fixture
def cached(tmp_path: Path, tiny: tuple[Path, Any]) -> Iterator[Path]:
    cache = tmp_path / "hub"
    hf_cache(cache, "acme/tiny", tiny[0])
    shutil.rmtree(tiny[0])  # only the cache remains
    yield cache


def test_snapshot_path_by_ref_and_commit(cached: Path) -> None:
    snap = str(cached / "models--acme--tiny" / "snapshots" / COMMIT)
    assert snapshot_path("acme/tiny", cache_dir=str(cached)) == snap
    assert snapshot_path("acme/tiny", "main", cache_dir=str(cached)) == snap
    assert snapshot_path("acme/tiny", COMMIT, cache_dir=str(cached)) == snap


def test_ref_leading_out_of_the_repo_refused(cached: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    other = hf_cache(cached, "evil/other", tmp_path / "other")
    (cached / "models--acme--tiny" / "refs" / "evil").write_text(
        f"../../{other.name}/snapshots/{COMMIT}"
    )
    with pytest.raises(DiscoveryError) as e:
        snapshot_path("acme/tiny", "evil", cache_dir=str(cached))
    assert e.value.code == "HF_CACHE_BAD_REF"


@pytest.mark.parametrize(
    ("repo_id", "revision"), [("acme/other", None), ("acme/tiny", "f" * 40), ("acme/tiny", "dev")]
)
def test_not_cached(cached: Path, repo_id: str, revision: str | None) -> None:
    with pytest.raises(InputError) as e:
        snapshot_path(repo_id, revision, cache_dir=str(cached))
    assert e.value.code == HF_NOT_CACHED and repo_id in str(e.value)


def test_verify_and_load_from_the_cache(
    cached: Path, verifier: Any, tiny: tuple[Path, Any]
) -> None:
    result = verify_hf_snapshot("acme/tiny", cache_dir=str(cached), verifier=verifier)
    assert result.verdict == "verified" and result.files_verified >= 3
    model = load_transformers("acme/tiny", cache_dir=str(cached), verifier=verifier)
    assert torch.equal(logits(model), logits(tiny[1]))
    repo_folder = cached / "models--acme--tiny"
    assert torch.equal(logits(load_transformers(repo_folder, verifier=verifier)), logits(model))


def test_tampered_blob_refused(cached: Path, verifier: Any) -> None:
    snap = cached / "models--acme--tiny" / "snapshots" / COMMIT
    blob = Path(os.path.realpath(snap / "model.safetensors"))
    flip_byte(blob, tensor=TENSOR)
    with pytest.raises(VerificationError):
        verify_hf_snapshot("acme/tiny", COMMIT, cache_dir=str(cached), verifier=verifier)
    with pytest.raises(VerificationError, match=TENSOR):
        load_transformers("acme/tiny", cache_dir=str(cached), verifier=verifier)
