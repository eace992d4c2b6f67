"""One device built on disk for the inventory tests: every store kind, every status.

A Hugging Face cache (two repos, three revisions: one signed, one with a
tampered LFS blob, a half-downloaded blob), an Ollama store (manifests and
blobs: one blob altered in place, one grown, an interrupted pull), an LM Studio
folder (GGUF files, a dangling symlink, a FIFO, a link out of the store) and a
ROOT with a pickle checkpoint, signed models (trusted key, another key,
tampered, no licence) and a loose safetensors file. ``tests/inventory/conftest.py``
makes it the ``device`` fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner

from modelsign import KeySigner
from modelsign._internal.signature import keys
from modelsign.cli import cli
from modelsign.inventory import Inventory, InventoryEntry
from tests.helpers.gguf_files import quantized, write_gguf
from tests.helpers.safetensors_files import write_safetensors
from tests.helpers.signing import SignedModel, flip_byte, shared_key

TRUSTED = shared_key()  # the key ``signed_model`` signs with by default
OTHER = shared_key("other")
REV_SIGNED = "a" * 40
REV_TAMPERED = "b" * 40
REV_GGUF = "c" * 40
BIG = 300_000  # elements: files of 1.2 MB, above SMALL_FILE, so not hashed by a cheap scan
CARD = b"---\nlicense: apache-2.0\n---\n# tiny\n"

# --- building the stores -----------------------------------------------------------------


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safetensors_bytes(tmp: Path, n: int = 16, seed: int = 0) -> bytes:
    p = tmp / f"st-{n}-{seed}.safetensors"
    write_safetensors(p, {"w": np.random.default_rng(seed).standard_normal(n).astype(np.float32)})
    data = p.read_bytes()
    p.unlink()
    return data


def gguf_bytes(tmp: Path, n: int = 64, seed: int = 0, licence: str | None = "mit") -> bytes:
    p = tmp / f"g-{n}-{seed}.gguf"
    arr = np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32)
    write_gguf(p, tensors={"w": quantized(arr)}, license=licence, file_type=7)  # MOSTLY_Q8_0
    data = p.read_bytes()
    p.unlink()
    return data


def hf_repo(
    cache_dir: Path, repo_id: str, revisions: dict[str, dict[str, bytes]], refs: dict[str, str]
) -> Path:
    """The cache layout: LFS blobs named by SHA-256, small files by git SHA-1, snapshot links."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    for commit, files in revisions.items():
        snap = repo / "snapshots" / commit
        for name, data in files.items():
            lfs = name.endswith((".safetensors", ".gguf"))
            blob = repo / "blobs" / (sha256(data) if lfs else git_sha1(data))
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snap / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    for ref, commit in refs.items():
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return repo


def ollama_model(root: Path, parts: tuple[str, ...], layers: dict[str, bytes]) -> dict[str, Path]:
    """A manifest under manifests/<host>/<ns>/<model>/<tag>, its layers as blobs/sha256-<hex>."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    config = json.dumps({"model_format": "gguf", "file_type": "Q8_0"}).encode()
    entries: list[dict[str, Any]] = []
    paths: dict[str, Path] = {}
    for media, data in [("config", config), *layers.items()]:
        blob = blobs / f"sha256-{sha256(data)}"
        blob.write_bytes(data)
        paths[media] = blob
        entry = {"mediaType": media, "digest": f"sha256:{sha256(data)}", "size": len(data)}
        entries.append(entry)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {**entries[0], "mediaType": "application/vnd.docker.container.image.v1+json"},
        "layers": entries[1:],
    }
    path = root / "manifests" / "registry.ollama.ai" / Path(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return paths


def model_folder(folder: Path, tmp: Path, *, card: bool = True, seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "tiny"}')
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tmp, seed=seed))
    if card:
        (folder / "README.md").write_bytes(b"---\nlicense: mit\n---\n")
    return folder


MODEL = "application/vnd.ollama.image.model"


@dataclass
class Device:
    env: dict[str, str]
    root: Path
    policy: Path
    lmstudio: Path
    outside: Path


def build_device(tmp_path: Path, signed_model: SignedModel) -> Device:
    """Every store kind on one device, with every status (see the module docstring)."""
    tmp = tmp_path / "scratch"
    tmp.mkdir()
    home = tmp_path / "home"

    # Hugging Face: acme/tiny at a signed and a tampered revision; other/gguf half-downloaded.
    hub = home / ".cache" / "huggingface" / "hub"
    config = b'{"model_type": "tiny"}'
    good = safetensors_bytes(tmp, seed=1)
    big = safetensors_bytes(tmp, n=BIG, seed=2)
    hf_repo(
        hub,
        "acme/tiny",
        {
            REV_SIGNED: {"config.json": config, "README.md": CARD, "model.safetensors": good},
            REV_TAMPERED: {"config.json": config, "README.md": CARD, "model.safetensors": big},
        },
        {"main": REV_SIGNED, "refs/pr/1": REV_TAMPERED},
    )
    signed_model(hub / "models--acme--tiny" / "snapshots" / REV_SIGNED)
    blob = hub / "models--acme--tiny" / "blobs" / sha256(big)
    flip_byte(blob, -1)  # a weight byte: the header still parses, the name no longer matches
    gguf_repo = hf_repo(hub, "other/gguf", {REV_GGUF: {"m.gguf": gguf_bytes(tmp)}}, {})
    (gguf_repo / "blobs" / ("d" * 64 + ".incomplete")).write_bytes(b"partial")

    # Ollama: a good model, one altered in place (same size), one grown, an interrupted pull.
    ollama = home / ".ollama" / "models"
    ollama_model(
        ollama,
        ("library", "tinyllama", "latest"),
        {
            MODEL: gguf_bytes(tmp, seed=3),
            "application/vnd.ollama.image.license": b"MIT License\n\nPermission is hereby granted",
            "application/vnd.ollama.image.template": b"{{ .Prompt }}",
            "application/vnd.ollama.image.params": b'{"stop": ["</s>"]}',
        },
    )
    altered = ollama_model(ollama, ("acme", "altered", "v1"), {MODEL: gguf_bytes(tmp, 2 * BIG, 4)})
    flip_byte(altered[MODEL], -1)
    grown = ollama_model(ollama, ("library", "grown", "latest"), {MODEL: gguf_bytes(tmp, seed=5)})
    with open(grown[MODEL], "ab") as fh:
        fh.write(b"\0" * 32)
    (ollama / "blobs" / ("sha256-" + "e" * 64 + "-partial")).write_bytes(b"half")

    # LM Studio: two GGUF quantizations, a dangling link, a FIFO, a link out of the store.
    lmstudio = home / ".lmstudio" / "models"
    folder = lmstudio / "pub" / "tiny-GGUF"
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf").write_bytes(gguf_bytes(tmp, seed=6))
    (folder / "tiny-Q8_0-copy.gguf").write_bytes(gguf_bytes(tmp, seed=7, licence=None))
    os.symlink("nowhere.gguf", folder / "broken.gguf")
    os.mkfifo(folder / "fifo.gguf")
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(gguf_bytes(tmp, seed=8))
    os.symlink(outside, folder / "elsewhere.gguf")

    # A ROOT: a pickle checkpoint, signed folders, a loose file.
    root = tmp_path / "root"
    legacy = root / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "config.json").write_text("{}")
    (legacy / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    signed_model(model_folder(root / "signed-model", tmp, seed=10))
    signed_model(model_folder(root / "other-signer", tmp, seed=11), signer=KeySigner(OTHER))
    flip_byte(
        signed_model(model_folder(root / "tampered-signed", tmp, seed=12)) / "model.safetensors",
        tensor="w",
    )
    signed_model(model_folder(root / "no-licence", tmp, card=False, seed=13))
    (root / "loose").mkdir()
    (root / "loose" / "single.safetensors").write_bytes(safetensors_bytes(tmp, seed=14))

    policy = tmp_path / "policy.yaml"
    (tmp_path / "trusted.pub").write_bytes(keys.public_key_pem(TRUSTED.public_key()))
    policy.write_text(
        "version: 1\n"
        "signers:\n  keys: [{file: trusted.pub}]\n"
        "formats: {deny: [pickle]}\n"
        "licences: {require: true}\n"
    )
    return Device({"HOME": str(home)}, root, policy, lmstudio, outside)


def by_name(inv: Inventory) -> dict[str, InventoryEntry]:
    out = {m.name: m for m in inv.models}
    assert len(out) == len(inv.models), "model names are unique on this device"
    return out


def statuses(inv: Inventory) -> dict[str, str]:
    return {m.name: m.status for m in inv.models}


HF_SIGNED = f"acme/tiny@{REV_SIGNED}"
HF_TAMPERED = f"acme/tiny@{REV_TAMPERED}"
HF_GGUF = f"other/gguf@{REV_GGUF}"
HF_PARTIAL = "other/gguf (download incomplete)"
OLLAMA_PARTIAL = "sha256-eeeeeeeeeeee (download incomplete)"
LM = "pub/tiny-GGUF/"


def run(*args: str | Path, env: Mapping[str, str | None] | None = None) -> tuple[int, str, str]:
    """``modelsign inventory ARGS``: exit code, stdout, stderr (``env``: None unsets)."""
    r = CliRunner().invoke(cli, ["inventory", *map(str, args)], env=env)
    return r.exit_code, r.stdout, r.stderr
