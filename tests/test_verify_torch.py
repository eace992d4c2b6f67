"""Verifying and diffing torch checkpoints: a flipped byte is traced to its tensors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import safetensors.torch
import torch

from modelsign import _observe
from modelsign._internal.discover import ModelFile
from modelsign._internal.hashing import files
from modelsign.diff import diff_models
from modelsign.errors import VerificationError
from modelsign.verify import verify
from tests.helpers.signing import KeyPair, SignedModel, flip_byte
from tests.helpers.torch_files import read_file, save, state_dict

BIN = "pytorch_model.bin"


@pytest.fixture
def views(tmp_path: Path, signed_model: SignedModel) -> Path:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"base": base, "tied": base, "row": base[1], "cols": base[:, :2], "other": torch.ones(3)}
    return signed_model(save(sd, tmp_path / "m" / BIN).parent)


def modified(model: Path, keypair: KeyPair) -> dict[str, set[str | None]]:
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=keypair.verifier)
    out: dict[str, set[str | None]] = {}
    for p in info.value.findings:
        if p.severity == "error":
            out.setdefault(p.code, set()).add(p.tensor)
    return out


def start_of(model: Path, tensor: str) -> int:
    layout = read_file(model / BIN).layout
    assert layout is not None
    return next(t.start for t in layout.tensors if t.name == tensor)


def test_verified(views: Path, keypair: KeyPair) -> None:
    r = verify(views, verifier=keypair.verifier)
    assert r.verdict == "verified" and r.problems == []


def test_flip_in_a_whole_storage_names_every_tensor_on_it(views: Path, keypair: KeyPair) -> None:
    flip_byte(views / BIN, start_of(views, "base"))  # element [0, 0]: not in ``row``
    found = modified(views, keypair)
    # ``cols`` has no digest of its own (not a contiguous range): judged by its storage
    assert found == {"FILE_MODIFIED": {None}, "TENSOR_MODIFIED": {"base", "tied", "cols"}}


def test_flip_in_a_view_names_the_view(views: Path, keypair: KeyPair) -> None:
    flip_byte(views / BIN, start_of(views, "row") + 1)
    found = modified(views, keypair)
    assert found == {"FILE_MODIFIED": {None}, "TENSOR_MODIFIED": {"base", "tied", "cols", "row"}}


def test_flip_in_another_storage(views: Path, keypair: KeyPair) -> None:
    flip_byte(views / BIN, start_of(views, "other"))
    assert modified(views, keypair) == {"FILE_MODIFIED": {None}, "TENSOR_MODIFIED": {"other"}}


def test_another_size_names_only_what_its_header_shows(views: Path, keypair: KeyPair) -> None:
    # Saved again with a longer ``other``: the file is refused for its size and not read,
    # so no storage is said to have changed (its digests were not taken).
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"base": base, "tied": base, "row": base[1], "cols": base[:, :2], "other": torch.ones(100)}
    save(sd, views / BIN)
    assert modified(views, keypair) == {"FILE_SIZE_MISMATCH": {None}, "TENSOR_RETYPED": {"other"}}


def test_flip_in_data_pkl_is_a_clear_problem(views: Path, keypair: KeyPair) -> None:
    with zipfile.ZipFile(views / BIN) as z:
        info = z.getinfo("pytorch_model/data.pkl")
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + 20
    flip_byte(views / BIN, at)
    with pytest.raises(VerificationError) as exc:
        verify(views, verifier=keypair.verifier)
    (p,) = [p for p in exc.value.findings if p.severity == "error"]
    assert p.code == "FILE_MODIFIED" and p.file == BIN
    assert "ZIP_CRC_MISMATCH" in p.message and "pytorch_model/data.pkl" in p.message


def test_a_file_that_no_longer_parses_costs_no_second_read_of_the_others(
    tmp_path: Path, signed_model: SignedModel, keypair: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "m"
    save({"w": torch.ones(4)}, model / BIN)
    (model / "other.bin").write_bytes(bytes(range(256)) * 64)  # read whole, like the checkpoint
    signed_model(model)
    flip_byte(model / BIN, 40)  # inside data.pkl: the checkpoint no longer parses
    reads: list[str] = []
    real = files.hash_file

    def counted(f: ModelFile, **kw: object) -> files.FileDigests:
        reads.append(f.path)
        return real(f, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "hash_file", counted)  # hash_files' reads
    monkeypatch.setattr(_observe, "hash_file", counted)  # verify's own, one file at a time
    with pytest.raises(VerificationError) as exc:
        verify(model, verifier=keypair.verifier)
    assert [p.code for p in exc.value.findings if p.severity == "error"] == ["FILE_MODIFIED"]
    assert sorted(reads) == ["other.bin", BIN]


def test_diff_across_formats(tmp_path: Path) -> None:
    sd = state_dict()
    old = save(sd, tmp_path / "bin" / BIN).parent
    (tmp_path / "st").mkdir()
    safetensors.torch.save_file(sd, str(tmp_path / "st" / "model.safetensors"))
    same = diff_models(old, tmp_path / "st")
    assert not [c for c in same.changes if c.tensor is not None], same.changes
    sd["lin.weight"] = sd["lin.weight"] + 1
    (tmp_path / "st2").mkdir()
    safetensors.torch.save_file(sd, str(tmp_path / "st2" / "model.safetensors"))
    changed = diff_models(old, tmp_path / "st2")
    assert {(c.code, c.tensor) for c in changed.changes if c.tensor} == {
        ("TENSOR_MODIFIED", "lin.weight")
    }


def test_diff_names_a_view_by_its_storage(tmp_path: Path) -> None:
    """``cols`` has no digest of its own: diff judges it by its storage, as verify does."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    old = save({"cols": base[:, :2]}, tmp_path / "a" / BIN).parent
    changed = base.clone()
    changed[0, 0] = 99.0
    new = save({"cols": changed[:, :2]}, tmp_path / "b" / BIN).parent
    found = {(c.code, c.tensor) for c in diff_models(old, new).changes if c.tensor}
    assert found == {("TENSOR_MODIFIED", "cols")}
    same = save({"cols": base.clone()[:, :2]}, tmp_path / "c" / BIN).parent
    assert not [c for c in diff_models(old, same).changes if c.tensor]
