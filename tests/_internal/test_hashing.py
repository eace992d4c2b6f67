"""The single-pass hashing pipeline: file, header and tensor digests from one read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import blake3
import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from modelsign._internal import hashing
from modelsign._internal.discover import discover
from modelsign._internal.hashing import files as file_hashing
from modelsign._internal.hashing import hash_file, hash_files
from modelsign._internal.hashing import ranges as range_hashing
from modelsign.errors import DiscoveryError, FormatError


def h(alg: str, data: bytes) -> str:
    return blake3.blake3(data).hexdigest() if alg == "blake3" else hashlib.sha256(data).hexdigest()


def write_big_safetensors(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    tensors = {
        # larger than one CHUNK, so a tensor spans chunks and the lane thread runs
        "big": rng.standard_normal((3 << 20) // 4 * 4).astype(np.float32).reshape(-1, 4),
        "small": np.arange(7, dtype=np.int64),
        "empty": np.zeros((0, 5), dtype=np.float16),
        "tail": rng.standard_normal(1000).astype(np.float16),
    }
    save_file(tensors, str(path))
    return tensors


@pytest.mark.parametrize("alg", ["blake3", "sha256"])
def test_digests_match_independent_computation(
    tmp_path: Path, alg: hashing.TensorHash, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_hashing, "CHUNK", 1 << 20)  # many chunks, tensors across boundaries
    path = tmp_path / "m.safetensors"
    write_big_safetensors(path)
    data = path.read_bytes()
    (f,) = discover(path).files
    d = hash_file(f, tensor_hash=alg)
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.layout is not None and d.tensor_digests is not None
    assert d.header_digest == h(alg, data[: d.layout.header_size])
    for span, digest in zip(d.layout.tensors, d.tensor_digests, strict=False):
        assert digest == h(alg, data[span.start : span.end]), span.name
    names = {t.name for t in d.layout.tensors}
    assert names == {"big", "small", "empty", "tail"}


def test_no_tensor_hash_still_parses_and_digests_file(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    write_big_safetensors(path)
    (f,) = discover(path).files
    d = hash_file(f, tensor_hash=None)
    assert d.tensor_digests is None and d.layout is not None
    assert d.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_gguf_padding_checked_and_kv_digest(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_string("tokenizer.chat_template", "{{ messages }}")
    w.add_tensor("a", np.ones(3, dtype=np.float32))  # 12 bytes, padded to 32
    w.add_tensor("b", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    (f,) = discover(path).files
    d = hash_file(f, tensor_hash="sha256")
    assert d.layout is not None and d.layout.padding
    data = path.read_bytes()
    a, b = d.layout.kv_range  # type: ignore[misc]
    assert d.kv_digest == hashlib.sha256(data[a:b]).hexdigest()
    # a non-zero byte in the padding after tensor "a" is refused
    pad_start = d.layout.padding[0][0]
    raw = bytearray(data)
    raw[pad_start] = 1
    path.write_bytes(bytes(raw))
    (f,) = discover(path).files
    with pytest.raises(FormatError) as e:
        hash_file(f, tensor_hash="sha256")
    assert e.value.code == "GGUF_NONZERO_PADDING"


def test_file_replaced_after_discovery(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"one")
    (f,) = discover(tmp_path).files
    (tmp_path / "b.bin").write_bytes(b"two")
    os.replace(tmp_path / "b.bin", tmp_path / "a.bin")
    with pytest.raises(DiscoveryError) as e:
        hash_file(f, tensor_hash="blake3")
    assert e.value.code == "FILE_CHANGED"


def test_many_files_in_parallel_keep_order(tmp_path: Path) -> None:
    for i in range(20):
        (tmp_path / f"f{i:02d}.bin").write_bytes(os.urandom(1000 * i))
    tree = discover(tmp_path)
    seen: list[int] = []
    results = hash_files(tree.files, tensor_hash="blake3", jobs=3, progress=seen.append)
    assert [r.file.path for r in results] == [f.path for f in tree.files]
    for r in results:
        assert r.sha256 == hashlib.sha256((tmp_path / r.file.path).read_bytes()).hexdigest()
    assert sum(seen) == sum(f.size for f in tree.files)


def test_first_error_in_name_order_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").write_bytes(b"\x00" * 3)
    (tmp_path / "b.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(FormatError) as e:
        hash_files(discover(tmp_path).files, tensor_hash="blake3")
    assert e.value.path == "a.safetensors"


def test_an_unexpected_error_in_a_worker_is_raised_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a ModelsignError (a bug, or the OS): re-raised unchanged, never swallowed."""
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(b"x" * 10)
    real = file_hashing.hash_file

    def failing(f: object, **kw: object) -> object:
        if getattr(f, "path", None) == "b.bin":
            raise RuntimeError("disk on fire")
        return real(f, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(file_hashing, "hash_file", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        hash_files(discover(tmp_path).files, tensor_hash="blake3", jobs=2)


def test_torch_zip_detected_by_content_under_any_name(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "weights.dat", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with zipfile.ZipFile(tmp_path / "assets.zip", "w") as z:
        z.writestr("readme.txt", b"hello")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    tree = discover(tmp_path, ignore=["broken.pt"])
    got = {d.file.path: d for d in hash_files(tree.files, tensor_hash="blake3")}
    assert got["weights.dat"].format == "pickle"
    assert got["weights.dat"].pickle_members == ["archive/data.pkl"]
    assert got["assets.zip"].format == "opaque"
    assert got["broken.zip"].format == "opaque"
    assert [f.code for f in got["broken.zip"].findings] == ["ZIP_UNREADABLE"]
    (f,) = [x for x in discover(tmp_path).files if x.path == "broken.pt"]
    with pytest.raises(FormatError) as e:
        hash_file(f, tensor_hash="blake3")
    assert e.value.code == "ZIP_EXTRA_DATA" and e.value.path == "broken.pt"


def test_hash_ranges_prepares_each_piece_of_a_buffer_before_hashing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mapped loader faults pages in per piece: every byte prepared, in order, before use."""
    monkeypatch.setattr(range_hashing, "_PIECE", 1000)
    data = bytearray(os.urandom(5500)) + bytearray(700)
    view = memoryview(data)
    prepared: list[tuple[int, int]] = []

    def prepare(a: int, b: int) -> None:
        prepared.append((a, b))

    jobs = [
        hashing.RangeJob(-1, 100, 5500, "sha256", buf=view, prepare=prepare),
        hashing.RangeJob(-1, 5500, 6200, None, buf=view, prepare=prepare),
        hashing.RangeJob(-1, 0, 0, "blake3", buf=view, prepare=prepare),
    ]
    got = hashing.hash_ranges(jobs, threads=1)
    assert got == [
        hashlib.sha256(data[100:5500]).hexdigest(),
        True,
        blake3.blake3(b"").hexdigest(),
    ]
    first = [p for p in prepared if p[0] < 5500]
    assert first == [(a, min(a + 1000, 5500)) for a in range(100, 5500, 1000)]
    assert [p for p in prepared if p[0] >= 5500] == [(5500, 6200)]
    data[6000] = 1
    assert hashing.hash_ranges(jobs[1:2])[0] is False


def test_few_large_buffer_ranges_spread_blake3_over_all_cores_with_the_same_digest() -> None:
    data = os.urandom(3 << 20)
    view = memoryview(data)
    jobs = [hashing.RangeJob(-1, 0, len(data), "blake3", buf=view)]
    jobs.append(hashing.RangeJob(-1, 5, len(data) - 5, "blake3", buf=view))
    assert hashing.hash_ranges(jobs, threads=2) == [
        blake3.blake3(data).hexdigest(),
        blake3.blake3(data[5:-5]).hexdigest(),
    ]
    spread = hashing.new_hasher("blake3", spread=True)
    spread.update(data)
    assert spread.hexdigest() == blake3.blake3(data).hexdigest()
