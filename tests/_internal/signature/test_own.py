"""own.py: which files are modelsign's own signatures and attestations (name and content)."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from modelsign import sign, verify
from modelsign._internal.signature.own import (
    is_own_signature_file,
    is_own_signature_name,
    model_tree,
)
from modelsign.errors import DiscoveryError, VerificationError
from modelsign.load import load_safetensors
from tests.helpers.signing import KeyPair, payload_of


@pytest.mark.parametrize(
    ("name", "own"),
    [
        ("model.sig", True),
        ("model.provenance.sig", True),
        ("sub/w.gguf.sig", True),
        ("claims.jsonl", True),
        ("w.gguf.claims.jsonl", True),
        ("model.safetensors", False),
        ("notes.jsonl", False),
        ("sig", False),
    ],
)
def test_names(name: str, own: bool) -> None:
    assert is_own_signature_name(name) is own


def test_content_decides(signed: Path, tmp_path: Path) -> None:
    assert is_own_signature_file(signed / "model.sig")
    assert is_own_signature_file(signed / "claims.jsonl")
    # A signature under another name that modelsign gives its files is one too.
    copy = tmp_path / "release.sig"
    shutil.copy(signed / "model.sig", copy)
    assert is_own_signature_file(copy)
    # ... but not under a name it never gives them, whatever it holds.
    shutil.copy(signed / "model.sig", tmp_path / "bundle.json")
    assert not is_own_signature_file(tmp_path / "bundle.json")
    # A link's blob is judged under the name given.
    assert is_own_signature_file(tmp_path / "bundle.json", name="model.sig")
    for name, data in [
        ("pickle.sig", pickle.dumps({"a": 1})),
        ("json.sig", b'{"mediaType": "application/json"}'),
        ("empty.sig", b""),
        ("claims.jsonl", b""),  # no line: nothing of ours
        ("x.claims.jsonl", (signed / "model.sig").read_bytes().strip() + b"\n{}\n"),
    ]:
        (tmp_path / name).write_bytes(data)
        assert not is_own_signature_file(tmp_path / name), name
    os.mkfifo(tmp_path / "fifo.sig")  # never opened for reading: no hang
    assert not is_own_signature_file(tmp_path / "fifo.sig")
    assert not is_own_signature_file(tmp_path / "missing.sig")


def test_model_tree_leaves_them_out_and_says_which(signed: Path) -> None:
    (signed / "sub").mkdir()
    shutil.copy(signed / "model.sig", signed / "sub" / "w.sig")
    tree, own = model_tree(signed)
    assert own == ["claims.jsonl", "model.sig", "sub/w.sig"]
    assert [f.path for f in tree.files] == [
        "LICENSE",
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert tree.ignored == ()
    # An ignore pattern that names them keeps them ignored, as asked.
    tree, _ = model_tree(signed, ignore=["*.sig"])
    assert set(tree.ignored) == {"model.sig", "sub/w.sig"}
    # Sidecars (what sign writes) are left out by name, whatever they hold.
    (signed / "model.provenance.sig").write_bytes(b"not yet a signature")
    tree, own = model_tree(signed, sidecars=["model.provenance.sig"])
    assert "model.provenance.sig" in own and tree.ignored == ()


def test_a_folder_of_signatures_only_is_empty(signed: Path, tmp_path: Path) -> None:
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(signed / "model.sig", only / "model.sig")
    with pytest.raises(DiscoveryError) as e:
        model_tree(only)
    assert e.value.code == "EMPTY_MODEL"


def test_sign_records_them_and_verify_and_loaders_leave_unsigned_ones_out(
    tiny_model: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    # A signature of one file of the folder, made before the folder is signed.
    weights = tiny_model / "model.safetensors"
    sign(weights, signer=keypair.signer, env={})
    res = sign(tiny_model, signer=keypair.signer, env={})
    assert "model.safetensors.sig" not in {f.path for f in res.manifest.files}
    ignore_paths = payload_of(Path(res.signature))["predicate"]["serialization"]["ignore_paths"]
    assert {"model.safetensors.sig", "model.safetensors.claims.jsonl"} <= set(ignore_paths)
    assert {"model.sig", "claims.jsonl", "model.provenance.sig"} <= set(ignore_paths)
    # One added after signing is not an extra file: it is not part of the model.
    (tiny_model / "sub").mkdir()
    shutil.copy(res.signature, tiny_model / "sub" / "copy.sig")
    assert verify(tiny_model, verifier=keypair.verifier).verdict == "verified"
    assert load_safetensors(tiny_model, verifier=keypair.verifier).report.verified
    # Anything else added is.
    (tiny_model / "sub" / "notes.sig").write_bytes(b"not a signature")
    with pytest.raises(VerificationError) as e:
        verify(tiny_model, verifier=keypair.verifier)
    assert {p.file for p in e.value.findings if p.code == "FILE_EXTRA"} == {"sub/notes.sig"}
