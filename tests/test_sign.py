"""Signing: where the signature goes, what is excluded, atomicity, determinism."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import modelsign
from modelsign._internal.discover import discover
from modelsign._internal.manifest import Manifest, manifest_for_tree
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.statement import PREDICATE_V1
from modelsign.errors import FormatError, InputError
from modelsign.sign import sign
from tests.helpers.signing import KeyPair, manifest_of, payload_of, shared_key


@pytest.fixture(scope="module")
def signer(keypair: KeyPair) -> KeySigner:
    return keypair.signer


def test_folder_signature_is_inside_and_excluded(tiny_model: Path, signer: KeySigner) -> None:
    res = sign(tiny_model, signer=signer, env={})
    sig = tiny_model / "model.sig"
    assert res.signature == str(sig) and sig.is_file()
    st = payload_of(sig)
    assert st["predicateType"] == PREDICATE_V1
    ser = st["predicate"]["serialization"]
    assert "model.sig" in ser["ignore_paths"] and ".git" in ser["ignore_paths"]
    assert "claims.jsonl" in ser["ignore_paths"] and (tiny_model / "claims.jsonl").is_file()
    assert ser["method"] == "files" and ser["hash_type"] == "sha256"
    names = [r["name"] for r in st["predicate"]["resources"]]
    assert names == ["LICENSE", "README.md", "config.json", "model.safetensors"]
    assert set(st["predicate"]) == {"resources", "serialization"}
    assert manifest_of(sig)["name"] == "tiny-model"
    assert st["subject"][0]["name"] == "tiny-model"


def test_single_file_signature_beside_it(tiny_models: tuple[Path, Path], signer: KeySigner) -> None:
    gguf_file = tiny_models[1] / "tiny-model-Q8_0.gguf"
    res = sign(gguf_file, signer=signer, env={})
    assert res.signature == str(gguf_file) + ".sig"
    st = payload_of(Path(res.signature))
    assert [r["name"] for r in st["predicate"]["resources"]] == ["."]  # as the OMS tool names it
    with pytest.raises(InputError) as e:
        sign(gguf_file, signer=signer, signature=gguf_file, force=True, env={})
    assert e.value.code == "USAGE"


def test_no_overwrite_without_force(tiny_model: Path, signer: KeySigner) -> None:
    sig = tiny_model / "model.sig"
    sig.write_text("precious")
    with pytest.raises(InputError) as e:
        sign(tiny_model, signer=signer, env={})
    assert e.value.code == "OUTPUT_EXISTS" and sig.read_text() == "precious"
    sign(tiny_model, signer=signer, env={}, force=True)
    assert payload_of(sig)["_type"] == "https://in-toto.io/Statement/v1"


def test_failure_leaves_nothing_behind(tiny_model: Path, signer: KeySigner) -> None:
    (tiny_model / "broken.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{}")
    with pytest.raises(FormatError):
        sign(tiny_model, signer=signer, env={})
    assert not (tiny_model / "model.sig").exists()
    assert not [p for p in os.listdir(tiny_model) if p.startswith(".modelsign-")]


def test_payload_is_deterministic(tiny_model: Path, signer: KeySigner, tmp_path: Path) -> None:
    a = sign(tiny_model, signer=signer, signature=tmp_path / "a.sig", env={})
    b = sign(tiny_model, signer=signer, signature=tmp_path / "b.sig", env={})
    assert a.statement == b.statement
    assert payload_of(tmp_path / "a.sig") == payload_of(tmp_path / "b.sig")


def test_user_ignores_recorded_as_paths(tiny_model: Path, signer: KeySigner) -> None:
    (tiny_model / "logs").mkdir()
    (tiny_model / "logs" / "train.txt").write_text("x")
    (tiny_model / "notes.tmp").write_text("x")
    sign(tiny_model, signer=signer, ignore=["logs", "*.tmp"], env={})
    st = payload_of(tiny_model / "model.sig")
    ignored = st["predicate"]["serialization"]["ignore_paths"]
    # concrete paths, which the OMS tool re-applies as paths; patterns ride in the manifest
    assert "logs" in ignored and "notes.tmp" in ignored and "*.tmp" not in ignored
    assert "*.tmp" in manifest_of(tiny_model / "model.sig")["ignored"]["patterns"]


def test_certificate_chain_in_bundle(tiny_model: Path, tmp_path: Path) -> None:
    from tests.helpers.pki import build_pki, write_pki

    files = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(
        str(files.leaf_key), cert=str(files.leaf), chain=[str(files.chain)]
    )
    res = sign(tiny_model, signer=signer, env={})
    import json

    vm = json.loads(Path(res.signature).read_bytes())["verificationMaterial"]
    assert len(vm["x509CertificateChain"]["certificates"]) == 2 and vm["tlogEntries"] == []
    other = write_pki(build_pki(), tmp_path / "other")
    with pytest.raises(InputError) as e:
        KeySigner.from_files(str(files.leaf_key), cert=str(other.leaf))
    assert e.value.code == "CERT_KEY_MISMATCH"


def _fresh(model: Path) -> Manifest:
    """The manifest a full, non-incremental signing of ``model`` would sign."""
    from modelsign._internal.manifest import manifest_for_tree
    from modelsign._internal.signature.own import model_tree

    sidecars = ["model.sig", "claims.jsonl", "model.provenance.sig"]
    return manifest_for_tree(model_tree(model, sidecars=sidecars)[0], env={})


def _age(folder: Path, seconds: int = 3600) -> None:
    """Make every file look untouched for a while (as a downloaded model is)."""
    import time

    old = time.time() - seconds
    for p in folder.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


def test_reuse_rehashes_only_changed_files(
    tiny_model: Path, signer: KeySigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsign._internal.manifest import build as manifest_module

    _age(tiny_model)
    first = sign(tiny_model, signer=signer, env={})
    (tiny_model / "README.md").write_text(
        (tiny_model / "README.md").read_text() + "\nA line added for the release notes.\n"
    )
    hashed: list[str] = []
    real_hash_files = manifest_module.hash_files

    def spy(files, **kw):  # type: ignore[no-untyped-def]
        hashed.extend(f.path for f in files)
        return real_hash_files(files, **kw)

    monkeypatch.setattr(manifest_module, "hash_files", spy)
    again = sign(tiny_model, signer=signer, env={}, force=True, reuse=first.signature)
    # The weights were not read again; the small metadata files always are.
    assert "model.safetensors" not in hashed and "README.md" in hashed
    monkeypatch.setattr(manifest_module, "hash_files", real_hash_files)
    # Reuse changes nothing but the time taken.
    assert again.manifest.canonical_bytes() == _fresh(tiny_model).canonical_bytes()


def test_reuse_notices_a_same_size_rewrite_with_mtime_reset(
    tiny_model: Path, signer: KeySigner, tmp_path: Path
) -> None:
    from tests.helpers.signing import flip_byte

    _age(tiny_model)
    first = sign(tiny_model, signer=signer, env={})
    weights = tiny_model / "model.safetensors"
    st = weights.stat()
    flip_byte(weights, tensor="lm_head.weight")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: ctime moved
    again = sign(tiny_model, signer=signer, env={}, force=True, reuse=first.signature)
    assert again.manifest.canonical_bytes() == _fresh(tiny_model).canonical_bytes()
    assert again.manifest.weights_digest != first.manifest.weights_digest


def test_reuse_of_a_replaced_or_foreign_signature_hashes_everything(
    tiny_model: Path, signer: KeySigner, tmp_path: Path
) -> None:
    _age(tiny_model)
    first = sign(tiny_model, signer=signer, env={})
    other = KeySigner(shared_key("other"))
    sign(tiny_model, signer=other, env={}, force=True)  # replaces model.sig: cache is stale
    from modelsign._internal import _statcache

    current = Path(first.signature).read_bytes()
    assert _statcache.load(current) != {}  # the new signing recorded its own
    assert _statcache.load(b"another signing") == {}
    with pytest.raises(InputError) as e:
        sign(tiny_model, signer=signer, env={}, force=True, reuse=tmp_path / "missing.sig")
    assert e.value.code == "SIGNATURE_NOT_FOUND"
    (tmp_path / "junk.sig").write_text("{}")
    with pytest.raises(InputError) as e:
        sign(tiny_model, signer=signer, env={}, force=True, reuse=tmp_path / "junk.sig")
    assert e.value.code == "REUSE_INVALID"


def test_reuse_finds_a_copy_of_the_signature_by_its_content(
    tiny_model: Path, signer: KeySigner, tmp_path: Path
) -> None:
    """The cache is keyed by what the signature says: a copy kept elsewhere reuses as well."""
    import shutil

    _age(tiny_model)
    first = sign(tiny_model, signer=signer, env={})
    assert (first.reused, first.read) == (0, 4)
    alone = tmp_path / "alone.sig"  # a copy without its claims: the model's are used
    shutil.copy(first.signature, alone)
    kept = tmp_path / "kept"  # a copy with its claims
    kept.mkdir()
    shutil.copy(first.signature, kept / "model.sig")
    shutil.copy(first.claims, kept / "claims.jsonl")
    (tiny_model / "README.md").write_text("changed\n")
    again = sign(tiny_model, signer=signer, env={}, force=True, reuse=alone)
    # The weights were reused; README.md changed, and the small metadata files are always read.
    assert (again.reused, again.read) == (1, 3)
    assert again.manifest.canonical_bytes() == _fresh(tiny_model).canonical_bytes()
    # The model's claims now hold the new attestation: the copy's own claims are read.
    third = sign(tiny_model, signer=signer, env={}, force=True, reuse=kept / "model.sig")
    assert (third.reused, third.read) == (1, 3)
    # With shards, a reused file is read for its shard digests alone.
    fourth = sign(
        tiny_model, signer=signer, env={}, force=True, reuse=third.signature, shard_size=1 << 16
    )
    assert (fourth.reused, fourth.read) == (1, 4)


def test_the_reuse_cache_keeps_the_newest_signings(
    tiny_model: Path, signer: KeySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsign._internal import _statcache

    monkeypatch.setattr(_statcache, "MAX_RECORDS", 2)
    _age(tiny_model)
    made = [sign(tiny_model, signer=signer, env={}, force=True) for _ in range(3)]
    records = sorted(os.listdir(_statcache.cache_dir()))
    assert len(records) == 2
    assert _statcache.load(Path(made[-1].signature).read_bytes()) != {}  # the newest is kept


def test_the_public_build_manifest_is_what_sign_signs(tiny_model: Path, signer: KeySigner) -> None:
    """modelsign.build_manifest, like `modelsign manifest`, leaves the signature out of a model."""
    before = modelsign.build_manifest(tiny_model)
    res = sign(tiny_model, signer=signer, env={})
    after = modelsign.build_manifest(tiny_model)
    assert "model.sig" not in {f.path for f in after.files}
    assert "claims.jsonl" not in {f.path for f in after.files}
    assert before.digest() == after.digest() == res.manifest.digest()
    raw = manifest_for_tree(discover(str(tiny_model)))  # every file discovery finds
    assert {"model.sig", "claims.jsonl"} <= {f.path for f in raw.files}
