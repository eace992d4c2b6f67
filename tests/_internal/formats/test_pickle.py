"""Content-based detection of pickle-based files, on real torch checkpoints and pickles."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from modelsign._internal.formats import pickle as pk
from modelsign._internal.formats.pickle import inspect_zip_for_pickle, sniff_pickle
from modelsign.errors import FormatError


def head(path: Path) -> bytes:
    return path.read_bytes()[:16]


def zip_pickles(path: Path) -> list[str]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return inspect_zip_for_pickle(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def zip_error(path: Path) -> FormatError:
    with pytest.raises(FormatError) as info:
        zip_pickles(path)
    assert info.value.code == "PICKLE_BAD_ZIP"
    return info.value


@pytest.fixture
def torch_zip(tmp_path: Path) -> Path:
    path = tmp_path / "pytorch_model.bin"
    torch.save(OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.zeros(3)), path)
    return path


@pytest.mark.parametrize("name", ["pytorch_model.bin", "m.pt", "m.pth", "m.ckpt", "x.pkl"])
def test_torch_zip_checkpoint(torch_zip: Path, name: str) -> None:
    assert head(torch_zip).startswith(b"PK\x03\x04")
    assert sniff_pickle(head(torch_zip), name) == "torch-zip"


def test_torch_zip_members(torch_zip: Path) -> None:
    names = zip_pickles(torch_zip)
    assert names == [n for n in zipfile.ZipFile(torch_zip).namelist() if n.endswith(".pkl")]
    assert len(names) == 1 and names[0].endswith("/data.pkl")


def test_torch_zip_under_another_name_is_found_by_inspection(tmp_path: Path) -> None:
    path = tmp_path / "weights.dat"
    torch.save({"w": torch.ones(2)}, path)
    assert sniff_pickle(head(path), "weights.dat") is None  # the cheap sniff needs a name
    assert [n.rsplit("/", 1)[-1] for n in zip_pickles(path)] == ["data.pkl"]


def test_legacy_torch_save_is_a_raw_pickle(tmp_path: Path) -> None:
    path = tmp_path / "old.weights"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert sniff_pickle(head(path), "old.weights") == "pickle"


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("obj", [{"a": [1, 2]}, None, OrderedDict(x=b"\x00" * 64)])
def test_binary_pickle_protocols(protocol: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    assert sniff_pickle(data[:16], "no-extension") == "pickle"


@pytest.mark.parametrize("protocol", [0, 1])
@pytest.mark.parametrize(
    "obj",
    [{"a": [1, 2]}, [1.5, "x"], 7, None, "text", OrderedDict(w=[1]), (1, 2), 2**80],
    ids=repr,
)
def test_old_protocols_under_pickle_names(protocol: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    assert sniff_pickle(data[:16], "model.pkl") == "pickle"
    assert sniff_pickle(data[:16], "weights.bin") == "pickle"
    assert sniff_pickle(data[:16], "readme") is None  # no magic: the name must agree


def test_protocol_0_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"layer": list(range(10))}, protocol=0))
    assert sniff_pickle(head(path), path.name.lower()) == "pickle"


@pytest.mark.parametrize(
    "data",
    [
        b"hello world, this is text\n",
        b'{"model_type": "bert"}',
        b"# Model card\n\nSome text",
        b"Install: pip install x\n",
        b"(c) 2024 Company",
        b"Some text here, and more",
        b"}\n",
        b"I12\nnot a pickle",
        b"T\xff\xff\xff\xff" + b"x" * 11,  # negative BINSTRING length
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        b"",
        b"\x80\x06\x95",  # no such protocol
        b"\x80",
    ],
    ids=repr,
)
def test_non_pickles(data: bytes) -> None:
    for name in ("x.bin", "x.pkl", "x.txt"):
        assert sniff_pickle(data[:16], name) is None


def test_non_pickle_zip(tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.txt", "hello")
        z.writestr("dir/b.json", "{}")
    assert sniff_pickle(head(path), "archive.zip") is None
    assert sniff_pickle(head(path), "archive.bin") == "torch-zip"  # the cheap guess…
    assert zip_pickles(path) == []  # …that inspection corrects


def test_zip_with_comment_and_pkl_member(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("top/data.pkl", pickle.dumps({"a": 1}))
        z.writestr("other.PKL", b"")
        z.writestr("notes.txt", "x")
        z.comment = b"PK\x05\x06 a comment that mentions the signature"
    assert zip_pickles(path) == ["top/data.pkl", "other.PKL"]


def test_zip64_records_from_python_zipfile(tmp_path: Path) -> None:
    path = tmp_path / "z64.zip"
    with zipfile.ZipFile(path, "w") as z, z.open("archive/data.pkl", "w", force_zip64=True) as f:
        f.write(pickle.dumps([1, 2, 3]))
    assert zip_pickles(path) == ["archive/data.pkl"]


def test_empty_zip(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    assert zip_pickles(path) == []


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert "end of central directory" in zip_error(path).message
    path.write_bytes(b"PK")
    zip_error(path)


def test_truncated_torch_zip(torch_zip: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(torch_zip.read_bytes()[:-30])
    zip_error(cut)


def test_bytes_appended_to_a_zip(torch_zip: Path, tmp_path: Path) -> None:
    path = tmp_path / "poly.bin"
    path.write_bytes(torch_zip.read_bytes() + b"trailing")
    zip_error(path)


def test_bytes_prepended_to_a_zip(torch_zip: Path, tmp_path: Path) -> None:
    path = tmp_path / "poly.bin"
    path.write_bytes(b"\x00" * 64 + torch_zip.read_bytes())
    assert len(zipfile.ZipFile(path).namelist()) > 0  # Python's zipfile would read it
    zip_error(path)


def test_corrupt_central_directory(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", b"x")
    data = bytearray(buf.getvalue())
    at = data.rfind(b"PK\x01\x02")
    data[at : at + 4] = b"PK\x01\x03"
    path = tmp_path / "c.zip"
    path.write_bytes(bytes(data))
    zip_error(path)


def test_central_directory_size_is_bounded(
    torch_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pk, "MAX_CENTRAL_DIRECTORY_BYTES", 64)
    assert "limit" in zip_error(torch_zip).message
