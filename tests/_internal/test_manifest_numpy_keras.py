"""NumPy and Keras files in a manifest: tensor digests shared with safetensors, flags, findings."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelsign import build_manifest
from modelsign._internal.discover import discover
from modelsign._internal.hashing import hash_file, peek_file
from modelsign._internal.manifest.schema import FileEntry, Manifest
from modelsign.codes import Code
from modelsign.errors import FormatError
from tests.helpers.keras_files import LAMBDA, WEIGHTS, dense, keras_archive


def entry(m: Manifest, name: str) -> FileEntry:
    found = m.file(name)
    assert found is not None
    return found


def digests(e: FileEntry) -> dict[str, str | None]:
    assert e.weights is not None
    return {t.name: t.digest for t in e.weights.tensors}


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "w": rng.standard_normal((4, 6)).astype(np.float32),
        "b": rng.integers(0, 100, 6).astype(np.int64),
        "m": rng.integers(0, 2, (2, 3)).astype(np.bool_),
    }


def test_same_arrays_same_tensor_digests_as_safetensors(
    tmp_path: Path, arrays: dict[str, np.ndarray]
) -> None:
    save_file(arrays, str(tmp_path / "model.safetensors"))
    np.savez(tmp_path / "stored.npz", **arrays)  # type: ignore[arg-type]
    np.savez_compressed(tmp_path / "packed.npz", **arrays)  # type: ignore[arg-type]
    np.save(tmp_path / "w.npy", arrays["w"])
    m = build_manifest(tmp_path, tensor_hash="sha256")
    want = digests(entry(m, "model.safetensors"))
    assert want == {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()}
    assert digests(entry(m, "stored.npz")) == want
    assert digests(entry(m, "w.npy")) == {"w": want["w"]}
    assert set(digests(entry(m, "packed.npz")).values()) == {None}
    packed = entry(m, "packed.npz").weights
    assert packed is not None and all(s.digest for s in packed.storages)
    assert {e.format for e in m.files} == {"safetensors", "numpy"}
    assert not [f for f in m.findings if f.path and f.path.endswith((".npy", ".npz"))]


def test_header_digest_of_peek_and_hash_agree(
    tmp_path: Path, arrays: dict[str, np.ndarray]
) -> None:
    np.savez(tmp_path / "a.npz", **arrays)  # type: ignore[arg-type]
    (f,) = discover(tmp_path).files
    assert peek_file(f).header_digest == hash_file(f, tensor_hash="sha256").header_digest


def test_changed_array_byte_changes_its_digest_only(
    tmp_path: Path, arrays: dict[str, np.ndarray]
) -> None:
    np.savez(tmp_path / "a.npz", **arrays)  # type: ignore[arg-type]
    before = digests(entry(build_manifest(tmp_path, tensor_hash="sha256"), "a.npz"))
    path = tmp_path / "a.npz"
    data = bytearray(path.read_bytes())
    b = arrays["b"].tobytes()
    at = bytes(data).index(b)
    data[at] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as info:  # the member's CRC-32 no longer matches
        build_manifest(tmp_path, tensor_hash="sha256")
    assert info.value.code is Code.ZIP_CRC_MISMATCH and "tensor b" in info.value.message
    assert before["b"] != hashlib.sha256(bytes(data[at : at + len(b)])).hexdigest()


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_object_arrays_are_pickle_files(tmp_path: Path) -> None:
    np.save(tmp_path / "ok.npy", np.array([1, None], dtype=object), allow_pickle=True)
    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    np.savez(tmp_path / "bad.npz", w=np.zeros(2), o=evil)
    m = build_manifest(tmp_path, tensor_hash="sha256")
    ok, bad = entry(m, "ok.npy"), entry(m, "bad.npz")
    assert (ok.format, ok.flags) == ("pickle", ["safe-state-dict", "unsafe-format"])
    assert (bad.format, bad.flags) == ("pickle", ["unsafe-format"])
    assert bad.weights is not None and bad.weights.format == "numpy"
    found = {(f.path, f.code) for f in m.findings}
    assert ("ok.npy", Code.PICKLE_UNSAFE) in found
    assert ("bad.npz", Code.PICKLE_DANGEROUS_GLOBAL) in found


def test_keras_files(tmp_path: Path) -> None:
    keras_archive(tmp_path / "plain.keras", dense("a"))
    keras_archive(tmp_path / "lambda.keras", dense("a"), LAMBDA)
    (tmp_path / "legacy.h5").write_bytes(WEIGHTS)
    m = build_manifest(tmp_path, tensor_hash="sha256")
    plain, lam, legacy = entry(m, "plain.keras"), entry(m, "lambda.keras"), entry(m, "legacy.h5")
    assert (plain.format, plain.flags) == ("keras", [])
    assert (
        plain.weights is not None
        and plain.weights.storages[0].digest == hashlib.sha256(WEIGHTS).hexdigest()
    )
    assert lam.flags == ["code"]
    assert (legacy.format, legacy.flags, legacy.weights) == ("keras", ["unsafe-format"], None)
    found = {(f.path, f.code) for f in m.findings}
    assert ("lambda.keras", Code.KERAS_LAMBDA) in found
    assert ("legacy.h5", Code.KERAS_LEGACY_H5) in found


def test_damaged_files_name_the_file(tmp_path: Path) -> None:
    data = io.BytesIO()
    np.save(data, np.arange(10))
    (tmp_path / "cut.npy").write_bytes(data.getvalue()[:-3])
    with pytest.raises(FormatError) as info:
        build_manifest(tmp_path, tensor_hash="sha256")
    assert info.value.code is Code.TRUNCATED and info.value.path == "cut.npy"
