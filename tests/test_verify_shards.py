"""Verifying OMS shard signatures: model_signing's form and the spec's, on all cores.

Shard bundles are made in-process by ``model_signing``'s Python API (its CLI
cannot make them), or hand-built from :func:`shard_resources` and signed with
the test key.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import blake3
import pytest

from modelsign._internal import hashing
from modelsign._internal.discover import discover
from modelsign._internal.hashing import hash_shards
from modelsign._internal.hashing.shards import ShardFeeder
from modelsign._internal.signature.shards import shard_resources
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.statement import (
    PREDICATE_V1,
    STATEMENT_TYPE,
    Resource,
    root_digest,
)
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.errors import VerificationError
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.signing import KeyPair, flip_byte, payload_of, shared_key, sign_payload

KEY = shared_key()  # the key of the ``keypair`` fixture
VERIFIER = KeyVerifier(KEY.public_key())
# the module that reads the model for verify() (what it hashes is spied on)
verify_module = importlib.import_module("modelsign._observe")
SIZES = {"weights.bin": 10000, "sub/a:b.bin": 300, "small.txt": 7, "empty.txt": 0}


def _bytes(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 17 + (i >> 8)) % 251 for i in range(n))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    for i, (name, size) in enumerate(SIZES.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_bytes(size, i))
    return root


def ms_sign(model: Path, sig: Path, keypair: KeyPair, *, shard_size: int | None, alg: str) -> None:
    """Sign with model_signing's API (shards when ``shard_size``, else whole files)."""
    import model_signing

    h = model_signing.hashing.Config()
    if shard_size is None:
        h.use_file_serialization(hashing_algorithm=alg)
    else:
        h.use_shard_serialization(hashing_algorithm=alg, shard_size=shard_size)
    cfg = model_signing.signing.Config().use_elliptic_key_signer(private_key=str(keypair.key_path))
    cfg.set_hashing_config(h).sign(model, sig)


def failing(model: Path, sig: Path) -> VerificationError:
    with pytest.raises(VerificationError) as e:
        verify(model, verifier=VERIFIER, signature=sig)
    return e.value


def errors(exc: VerificationError) -> list[Any]:
    return [p for p in exc.findings if p.severity == "error"]


def sha256_range(path: Path, a: int, b: int) -> str:
    return hashlib.sha256(path.read_bytes()[a:b]).hexdigest()


# -- model_signing's form ---------------------------------------------------------


@pytest.mark.parametrize("shard_size", [4096, 3333, 10000, 1 << 20])
def test_model_signing_shard_folder_verifies(
    folder: Path, tmp_path: Path, keypair: KeyPair, shard_size: int
) -> None:
    sig = tmp_path / "m.sig"
    ms_sign(folder, sig, keypair, shard_size=shard_size, alg="sha256")
    st = payload_of(sig)
    ser = st["predicate"]["serialization"]
    assert isinstance(ser["shard_size"], float)  # the deviation this test is about
    assert st["predicate"]["resources"][0]["algorithm"] == f"sha256-sharded-{shard_size}"
    r = verify(folder, verifier=VERIFIER, signature=sig)
    assert r.verdict == "verified" and r.files_verified == 3
    assert r.bytes_verified == sum(SIZES.values())
    # the empty file has no resource (OMS §6.3.2), and is accounted for
    assert [(p.code, p.severity, p.file) for p in r.problems] == [
        ("FILE_EMPTY_UNLISTED", "info", "empty.txt")
    ]


def test_model_signing_shard_single_file(folder: Path, tmp_path: Path, keypair: KeyPair) -> None:
    model, sig = folder / "weights.bin", tmp_path / "w.sig"
    ms_sign(model, sig, keypair, shard_size=4096, alg="sha256")
    assert verify(model, verifier=VERIFIER, signature=sig).files_verified == 1
    flip_byte(model, 9999)  # the short last shard
    (p,) = errors(failing(model, sig))
    assert p.code == "FILE_MODIFIED" and "bytes 8192:10000" in p.message


def test_tampered_second_shard_names_range_and_digests(
    folder: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    sig = tmp_path / "m.sig"
    ms_sign(folder, sig, keypair, shard_size=4096, alg="sha256")
    w = folder / "weights.bin"
    before = sha256_range(w, 4096, 8192)
    flip_byte(w, 5000)
    exc = failing(folder, sig)
    (p,) = errors(exc)
    assert exc.code == "FILE_MODIFIED" and p.file == "weights.bin"
    assert "bytes 4096:8192" in p.message
    assert (p.expected, p.actual) == (before, sha256_range(w, 4096, 8192))


def test_several_changed_shards_are_counted(folder: Path, tmp_path: Path, keypair: KeyPair) -> None:
    sig = tmp_path / "m.sig"
    ms_sign(folder, sig, keypair, shard_size=1000, alg="sha256")
    for at in (2500, 4100, 9000):
        flip_byte(folder / "weights.bin", at)
    (p,) = errors(failing(folder, sig))
    assert "bytes 2000:3000" in p.message and "2 more shard" in p.message


@pytest.mark.parametrize(
    ("size", "says"), [(8192, "bytes 8192:10000 are missing"), (10001, "1 bytes past")]
)
def test_size_is_compared_before_anything_is_read(
    folder: Path,
    tmp_path: Path,
    keypair: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
    says: str,
) -> None:
    sig = tmp_path / "m.sig"
    ms_sign(folder, sig, keypair, shard_size=4096, alg="sha256")
    w = folder / "weights.bin"
    data = w.read_bytes()
    # truncated exactly at a shard boundary: every remaining shard still matches
    w.write_bytes(data[:size] if size < len(data) else data + b"\0")
    read: list[tuple[int, int]] = []
    real = verify_module.hash_ranges

    def spy(jobs: Any, **kw: Any) -> Any:
        read.extend((j.start, j.end) for j in jobs)
        return real(jobs, **kw)

    monkeypatch.setattr(verify_module, "hash_ranges", spy)
    (p,) = errors(failing(folder, sig))
    assert p.code == "FILE_SIZE_MISMATCH" and p.file == "weights.bin" and says in p.message
    assert (p.expected, p.actual) == ("10000", str(size))
    assert sorted(read) == [(0, 7), (0, 300)]  # only the other two files were hashed


def test_file_shrinking_while_hashed_fails(
    folder: Path, tmp_path: Path, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    sig = tmp_path / "m.sig"
    ms_sign(folder, sig, keypair, shard_size=4096, alg="sha256")

    real = hashing.hash_ranges

    def shrinking(jobs: Any, **kw: Any) -> Any:
        with open(folder / "weights.bin", "r+b") as fh:
            fh.truncate(5000)  # after the size check, before the bytes are read
        return real(jobs, **kw)

    monkeypatch.setattr(verify_module, "hash_ranges", shrinking)
    (p,) = errors(failing(folder, sig))
    assert (p.code, p.file) == ("FILE_CHANGED", "weights.bin")


def test_blake2b_shards_and_blake2b_files(folder: Path, tmp_path: Path, keypair: KeyPair) -> None:
    shards, files = tmp_path / "s.sig", tmp_path / "f.sig"
    ms_sign(folder, shards, keypair, shard_size=4096, alg="blake2")
    ms_sign(folder, files, keypair, shard_size=None, alg="blake2")
    assert payload_of(shards)["predicate"]["resources"][0]["algorithm"] == "blake2b-sharded-4096"
    assert verify(folder, verifier=VERIFIER, signature=shards).files_verified == 3
    assert verify(folder, verifier=VERIFIER, signature=files).files_verified == 4
    flip_byte(folder / "weights.bin", 4096)
    (p,) = errors(failing(folder, shards))
    assert p.code == "FILE_MODIFIED" and "bytes 4096:8192 changed (blake2b)" in p.message
    assert len(p.expected or "") == 128 and p.expected != p.actual
    (p,) = errors(failing(folder, files))
    assert p.code == "FILE_MODIFIED" and p.file == "weights.bin"


def test_empty_file_is_unsigned_under_files_but_accounted_for_under_shards(
    folder: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    shards = tmp_path / "s.sig"
    ms_sign(folder, shards, keypair, shard_size=4096, alg="sha256")
    (folder / "empty.txt").unlink()  # a shard signature cannot tell either way
    assert verify(folder, verifier=VERIFIER, signature=shards).problems == []
    (folder / "new-empty").write_bytes(b"")
    r = verify(folder, verifier=VERIFIER, signature=shards)
    assert [p.code for p in r.problems] == ["FILE_EMPTY_UNLISTED"]
    (folder / "new-empty").write_bytes(b"x")  # one byte is content: unsigned
    assert [p.code for p in errors(failing(folder, shards))] == ["FILE_EXTRA"]
    (folder / "new-empty").write_bytes(b"")
    sign(folder, signer=KeySigner(KEY), env={}, tensor_hash=None)
    (folder / "another-empty").write_bytes(b"")
    exc = failing(folder, folder / "model.sig")
    assert [(p.code, p.file) for p in errors(exc)] == [("FILE_EXTRA", "another-empty")]


# -- the spec form, hand-built ----------------------------------------------------


def spec_statement(
    model: Path, shard_size: int, resources: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    files = discover(model, exclude=["model.sig"]).files
    if resources is None:
        digests = hash_shards(files, shard_size)
        resources = shard_resources(digests, {f.path: f.size for f in files}, shard_size, "sha256")
    rs = [Resource(r["name"], r["algorithm"], r["digest"]) for r in resources]
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model.name, "digest": {"sha256": root_digest(rs)}}],
        "predicateType": PREDICATE_V1,
        "predicate": {
            "resources": resources,
            "serialization": {
                "method": "shards",
                "hash_type": "sha256",
                "shard_size": shard_size,
                "allow_symlinks": False,
                "ignore_paths": [],
            },
        },
    }


def sign_statement(st: dict[str, Any], sig: Path) -> Path:
    sig.write_bytes(sign_payload(KEY, json.dumps(st).encode()))
    return sig


def test_spec_form_from_shard_resources_verifies(folder: Path, tmp_path: Path) -> None:
    st = spec_statement(folder, 4096)
    names = [r["name"] for r in st["predicate"]["resources"]]
    assert names == sorted(names) and "sub/a:b.bin:0:300" in names
    assert {r["algorithm"] for r in st["predicate"]["resources"]} == {"sha256"}
    sig = sign_statement(st, tmp_path / "m.sig")
    assert verify(folder, verifier=VERIFIER, signature=sig).files_verified == 3
    flip_byte(folder / "sub/a:b.bin", 299)
    (p,) = errors(failing(folder, sig))
    assert (p.code, p.file) == ("FILE_MODIFIED", "sub/a:b.bin") and "bytes 0:300" in p.message


def _with(names: list[str]) -> list[dict[str, str]]:
    return [{"name": n, "algorithm": "sha256", "digest": "ab" * 32} for n in names]


@pytest.mark.parametrize(
    ("names", "code"),
    [
        (
            ["weights.bin:0:4096", "weights.bin:4000:8192", "weights.bin:8192:10000"],
            "SHARD_OVERLAP",
        ),
        (["weights.bin:0:4096", "weights.bin:8192:10000"], "SHARD_GAP"),
        (["weights.bin:0:4096", "weights.bin:0:4096"], "DUPLICATE_RESOURCE"),
        (["weights.bin:0:4096", "weights.bin:00:4096"], "SHARD_NAME_INVALID"),
        (["weights.bin:0:2048", "weights.bin:2048:10000"], "SHARD_SIZE_MISMATCH"),
        (
            ["weights.bin:0:4096", "weights.bin:4096:8192", "weights.bin:8192:x"],
            "SHARD_NAME_INVALID",
        ),
        (["a:b"], "SHARD_NAME_INVALID"),  # no range at all
        ([":5"], "SHARD_NAME_INVALID"),  # no file name, one number
        (["weights.bin:-4096:0", "weights.bin:0:4096"], "SHARD_NAME_INVALID"),  # negative
        (["weights.bin:0:4096", "weights.bin:4096:-1"], "SHARD_NAME_INVALID"),
    ],
)
def test_malformed_shard_statements_fail_cleanly(
    folder: Path, tmp_path: Path, names: list[str], code: str
) -> None:
    sig = sign_statement(spec_statement(folder, 4096, _with(names)), tmp_path / "m.sig")
    exc = failing(folder, sig)
    assert [p.code for p in errors(exc)] == [code]


def test_shards_with_a_manifest_are_diagnosed_down_to_the_tensor(tiny_model: Path) -> None:
    res = sign(tiny_model, signer=KeySigner(KEY), shard_size=1 << 16, env={})
    st = payload_of(tiny_model / "model.sig")
    assert st["predicate"]["serialization"]["shard_size"] == 1 << 16
    assert {r["algorithm"] for r in st["predicate"]["resources"]} == {"sha256"}
    r = verify(tiny_model, verifier=VERIFIER)
    assert r.files_verified == 4 and r.manifest_digest == res.manifest.digest()
    flip_byte(tiny_model / "model.safetensors", 1, tensor="model.norm.weight")
    exc = failing(tiny_model, tiny_model / "model.sig")
    got = {(p.code, p.tensor) for p in errors(exc)}
    assert got == {("FILE_MODIFIED", None), ("TENSOR_MODIFIED", "model.norm.weight")}


def test_signing_with_shards_reads_each_file_once(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shard digests come from the manifest's read; only a reused file is read for them alone."""
    sign_module = importlib.import_module("modelsign.sign")
    read_alone: list[str] = []
    real = sign_module.hash_shards

    def spy(files: Any, *args: Any, **kw: Any) -> Any:
        read_alone.extend(f.path for f in files)
        return real(files, *args, **kw)

    monkeypatch.setattr(sign_module, "hash_shards", spy)
    old = time.time() - 3600  # untouched for a while, as a downloaded model is: reusable
    for p in tiny_model.rglob("*"):
        os.utime(p, (old, old))
    first = sign(tiny_model, signer=KeySigner(KEY), shard_size=1000, env={})
    assert read_alone == []
    assert verify(tiny_model, verifier=VERIFIER).verdict == "verified"  # every shard checked
    again = sign(
        tiny_model,
        signer=KeySigner(KEY),
        shard_size=1000,
        env={},
        force=True,
        reuse=first.signature,
    )
    assert "model.safetensors" in read_alone and "README.md" not in read_alone
    assert again.statement == first.statement  # the same shard digests, however they were read


# -- hash_shards ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["sha256", "blake2b", "blake3"])
def test_hash_shards_matches_independent_hashing(folder: Path, alg: hashing.RangeHash) -> None:
    files = discover(folder).files
    got = hash_shards(files, 3000, alg, jobs=2)
    new = {"sha256": hashlib.sha256, "blake2b": hashlib.blake2b, "blake3": blake3.blake3}[alg]
    for f in files:
        data = (folder / f.path).read_bytes()
        want = [new(data[a : a + 3000]).hexdigest() for a in range(0, len(data), 3000)]
        assert got[f.path] == want
    assert got["empty.txt"] == [] and len(got["weights.bin"]) == 4


def test_hash_shards_reads_each_byte_once(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = os.preadv

    def counting(fd: int, bufs: list[memoryview], offset: int) -> int:
        n = real(fd, bufs, offset)
        seen.append(n)
        return n

    monkeypatch.setattr(os, "preadv", counting)
    hash_shards(discover(folder).files, 1024)
    assert sum(seen) == sum(SIZES.values())


@pytest.mark.parametrize("shard_size", [1, 999, 1000, 3000, 10000, 20000])
@pytest.mark.parametrize("chunk", [1, 7, 1000, 4096])
def test_shard_feeder_matches_hash_shards(folder: Path, shard_size: int, chunk: int) -> None:
    """Fed a file in chunks of any size, the feeder gives what hash_shards reads for itself."""
    files = discover(folder).files
    want = hash_shards(files, shard_size)
    for f in files:
        data = memoryview((folder / f.path).read_bytes())
        feeder = ShardFeeder(shard_size)
        for a in range(0, len(data), chunk):
            feeder.feed(data[a : a + chunk], a)
        assert feeder.digests() == want[f.path], f.path


def test_empty_files_under_shards_are_judged_by_the_attested_manifest(tiny_model: Path) -> None:
    (tiny_model / "empty.txt").write_bytes(b"")
    sign(tiny_model, signer=KeySigner(KEY), shard_size=1 << 16, env={})
    assert verify(tiny_model, verifier=VERIFIER).verdict == "verified"
    (tiny_model / "added.txt").write_bytes(b"")
    exc = failing(tiny_model, tiny_model / "model.sig")
    assert [(p.code, p.file) for p in errors(exc)] == [("FILE_EXTRA", "added.txt")]
    (tiny_model / "added.txt").unlink()
    (tiny_model / "empty.txt").unlink()
    exc = failing(tiny_model, tiny_model / "model.sig")
    assert [(p.code, p.file) for p in errors(exc)] == [("FILE_MISSING", "empty.txt")]
