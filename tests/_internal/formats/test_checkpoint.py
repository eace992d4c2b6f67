"""Torch checkpoints read without unpickling, against what torch itself loads.

Each tensor's name, dtype and shape must equal ``torch.load(weights_only=True)``'s;
its bytes in the file must be the tensor's elements; each storage digest must
equal the digest of the member's bytes read independently (Python's zipfile);
and the same weights saved as safetensors must have the same weights digest.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import blake3
import pytest
import safetensors.torch
import torch

from modelsign._internal.formats.checkpoint import read_checkpoint
from modelsign._internal.formats.layout import TensorSpan
from modelsign.codes import Code
from modelsign.errors import FormatError
from modelsign.sign import build_manifest
from tests.helpers.safetensors_files import torch_tensor_bytes
from tests.helpers.torch_files import read_file, rewrite, save, state_dict

_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def spans(path: Path) -> dict[str, TensorSpan]:
    layout = read_file(path).layout
    assert layout is not None
    return {t.name: t for t in layout.tensors}


def test_tensors_match_torch_load(tmp_path: Path) -> None:
    path = save(state_dict(), tmp_path / "pytorch_model.bin")
    loaded = torch.load(path, weights_only=True)
    found = spans(path)
    assert sorted(found) == sorted(loaded)
    data = path.read_bytes()
    for name, t in loaded.items():
        s = found[name]
        assert (s.dtype, s.shape, s.n_elements) == (_DTYPES[t.dtype], tuple(t.shape), t.numel())
        assert s.digestible and s.storage == f"pytorch_model/data/{s.storage.rsplit('/', 1)[1]}"
        assert data[s.start : s.end] == torch_tensor_bytes(t), name


@pytest.mark.parametrize("algorithm", ["blake3", "sha256"])
def test_storage_digests_equal_independent_digests(tmp_path: Path, algorithm: str) -> None:
    path = save(state_dict(), tmp_path / "m" / "pytorch_model.bin")
    manifest = build_manifest(path.parent, env={}, tensor_hash=algorithm)  # type: ignore[arg-type]
    (entry,) = [f for f in manifest.files if f.path == "pytorch_model.bin"]
    assert entry.weights is not None and entry.weights.format == "pytorch"
    new = blake3.blake3 if algorithm == "blake3" else hashlib.sha256
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    storages = [n for n in members if "/data/" in n]
    assert sorted(s.name for s in entry.weights.storages) == sorted(storages)
    for s in entry.weights.storages:
        assert s.digest == new(members[s.name]).hexdigest(), s.name
        assert s.length == len(members[s.name])
    loaded = torch.load(path, weights_only=True)
    for t in entry.weights.tensors:
        assert t.digest == new(torch_tensor_bytes(loaded[t.name])).hexdigest(), t.name
    assert "safe-state-dict" in entry.flags


def test_same_weights_digest_as_safetensors(tmp_path: Path) -> None:
    sd = state_dict()
    save(sd, tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "st").mkdir()
    safetensors.torch.save_file(sd, str(tmp_path / "st" / "model.safetensors"))
    a = build_manifest(tmp_path / "bin", env={})
    b = build_manifest(tmp_path / "st", env={})
    assert a.weights_digest is not None and a.weights_digest == b.weights_digest
    ta = {t.name: t for f in a.files if f.weights for t in f.weights.tensors}
    tb = {t.name: t for f in b.files if f.weights for t in f.weights.tensors}
    assert {n: (t.dtype, t.shape, t.digest) for n, t in ta.items()} == {
        n: (t.dtype, t.shape, t.digest) for n, t in tb.items()
    }


def test_tied_weights_share_one_storage(tmp_path: Path) -> None:
    w = torch.randn(5, 4)
    path = save({"emb.weight": w, "head.weight": w}, tmp_path / "m" / "pytorch_model.bin")
    found = spans(path)
    assert found["emb.weight"].storage == found["head.weight"].storage
    assert (found["emb.weight"].start, found["emb.weight"].end) == (
        found["head.weight"].start,
        found["head.weight"].end,
    )
    (entry,) = build_manifest(path.parent, env={}).files
    assert entry.weights is not None and len(entry.weights.storages) == 1
    digests = {t.name: t.digest for t in entry.weights.tensors}
    assert digests["emb.weight"] == digests["head.weight"] == entry.weights.storages[0].digest


def test_views_with_a_storage_offset(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"base": base, "row": base[1], "cols": base[:, :2]}
    path = save(sd, tmp_path / "m" / "pytorch_model.bin")
    found = spans(path)
    data = path.read_bytes()
    assert found["row"].start == found["base"].start + 16 and found["row"].digestible
    assert data[found["row"].start : found["row"].end] == torch_tensor_bytes(base[1])
    assert not found["cols"].digestible  # not a contiguous range: storage digest only
    (entry,) = build_manifest(path.parent, env={}, tensor_hash="sha256").files
    assert entry.weights is not None
    t = {t.name: t for t in entry.weights.tensors}
    assert t["row"].digest == hashlib.sha256(torch_tensor_bytes(base[1])).hexdigest()
    assert t["base"].digest == entry.weights.storages[0].digest
    assert t["cols"].digest is None and t["cols"].storage == t["base"].storage
    assert entry.weights.weights_digest is None  # a tensor without a digest of its own


def test_legacy_format_is_analysed_without_a_layout(tmp_path: Path) -> None:
    path = save(
        state_dict(), tmp_path / "m" / "pytorch_model.bin", _use_new_zipfile_serialization=False
    )
    (entry,) = build_manifest(path.parent, env={}).files
    assert entry.format == "pickle" and entry.weights is None
    assert "unsafe-format" in entry.flags


def test_nested_dict_checkpoint(tmp_path: Path) -> None:
    sd = state_dict()
    path = save({"model": sd, "epoch": 3, "opt": {"lr": 0.1}}, tmp_path / "ckpt.pt")
    found = spans(path)
    assert sorted(found) == sorted(f"model.{k}" for k in sd)
    data = path.read_bytes()
    for k, t in sd.items():
        s = found[f"model.{k}"]
        assert data[s.start : s.end] == torch_tensor_bytes(t)


@pytest.mark.parametrize("name", ["weights.dat", "other.bin"])
def test_renamed_checkpoint(tmp_path: Path, name: str) -> None:
    """Under any name (the archive prefix then is not the file stem) it is a checkpoint."""
    sd = state_dict()
    path = save(sd, tmp_path / "m" / "pytorch_model.bin").rename(tmp_path / "m" / name)
    found = spans(path)
    assert all(s.storage and s.storage.startswith("pytorch_model/data/") for s in found.values())
    (entry,) = build_manifest(path.parent, env={}).files
    assert entry.format == "pickle" and entry.weights is not None
    assert entry.weights.format == "pytorch" and len(entry.weights.tensors) == len(sd)


def test_archive_prefix_of_a_buffer(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3)}, buf)
    data = buf.getvalue()
    found = read_checkpoint(lambda n, at: data[at : at + n], len(data), "buf")
    assert found is not None and found.layout is not None
    (t,) = found.layout.tensors
    assert t.storage == "archive/data/0"
    assert data[t.start : t.end] == torch_tensor_bytes(torch.ones(3))


# --- hostile checkpoints ---------------------------------------------------------------


def refused(path: Path, code: Code) -> FormatError:
    with pytest.raises(FormatError) as info:
        read_file(path)
    assert info.value.code is code, info.value.message
    return info.value


def test_compressed_storage_is_refused_naming_the_tensor(tmp_path: Path) -> None:
    path = save({"a": torch.ones(64), "b": torch.zeros(64)}, tmp_path / "pytorch_model.bin")
    key = spans(path)["b"].storage
    assert key is not None
    rewrite(path, lambda _n, d: d, compress={key})
    exc = refused(path, Code.ZIP_COMPRESSED_STORAGE)
    assert "'b'" in exc.message and key in exc.message


def _pickle_of(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read("pytorch_model/data.pkl")


def _with_pickle(path: Path, pkl: bytes) -> None:
    rewrite(path, lambda n, d: pkl if n.endswith("data.pkl") else d)


def test_tensor_running_past_its_storage(tmp_path: Path) -> None:
    path = save({"w": torch.ones(4)}, tmp_path / "pytorch_model.bin")
    # the rebuild call's storage offset: BININT1 0 right after the persistent id
    pkl = _pickle_of(path)
    at = pkl.index(b"Q") + 1  # BINPERSID, then the offset
    assert pkl[at : at + 2] == b"K\x00"
    _with_pickle(path, pkl[:at] + b"K\x02" + pkl[at + 2 :])
    exc = refused(path, Code.TORCH_BAD_CHECKPOINT)
    assert "'w'" in exc.message and "run past" in exc.message


def test_persistent_id_naming_a_missing_member(tmp_path: Path) -> None:
    path = save({"w": torch.ones(4), "v": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    gone = spans(path)["v"].storage
    rewrite(path, lambda n, d: None if n == gone else d)
    exc = refused(path, Code.TORCH_BAD_CHECKPOINT)
    assert "'v'" in exc.message and "missing" in exc.message


def test_data_pkl_that_is_not_a_pickle(tmp_path: Path) -> None:
    path = save({"w": torch.ones(4)}, tmp_path / "m" / "pytorch_model.bin")
    _with_pickle(path, b"\x80\x02this is not a pickle at all")
    with pytest.raises(FormatError) as info:
        read_file(path)
    assert info.value.code.name.startswith(("PICKLE_", "TORCH_")), info.value.message
    with pytest.raises(FormatError):
        build_manifest(path.parent, env={})


def test_data_pkl_without_pickle_magic(tmp_path: Path) -> None:
    path = save({"w": torch.ones(4)}, tmp_path / "m" / "pytorch_model.bin")
    _with_pickle(path, b"just text")
    with pytest.raises(FormatError):
        build_manifest(path.parent, env={})


def test_crc_broken_at_manifest_time_names_the_tensor(tmp_path: Path) -> None:
    path = save({"a": torch.ones(4), "b": torch.zeros(4)}, tmp_path / "m" / "pytorch_model.bin")
    s = spans(path)["b"]
    data = bytearray(path.read_bytes())
    data[s.start] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as info:
        build_manifest(path.parent, env={})
    assert info.value.code is Code.ZIP_CRC_MISMATCH
    assert "b" in info.value.message and s.storage in info.value.message


def test_many_tensors_and_deep_nesting(tmp_path: Path) -> None:
    many = {f"t{i}": torch.full((1,), float(i)) for i in range(300)}
    path = save({"many": many}, tmp_path / "pytorch_model.bin")
    assert sum(n.startswith("many.") for n in spans(path)) == 300
    deep: dict[str, object] = {"w": torch.ones(2)}
    for i in range(40):
        deep = {f"d{i}": deep}
    path = save({"deep": deep, "cfg": {"a": {"b": {"c": 1}}}}, tmp_path / "deep.pt")
    # a tensor past the name depth bound is refused, not silently left out
    exc = refused(path, Code.TORCH_BAD_CHECKPOINT)
    assert "deeper than" in exc.message


@pytest.mark.parametrize("depth", [100, 50_000])
def test_deep_pickle_nesting_is_bounded(tmp_path: Path, depth: int) -> None:
    """Lists nested ``depth`` deep: refused or read, never a RecursionError."""
    path = save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")
    _with_pickle(path, b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b".")
    try:
        found = read_file(path)
    except FormatError:
        return
    assert found.layout is not None and found.layout.tensors == ()
