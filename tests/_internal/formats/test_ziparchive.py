"""The strict ZIP reader: what Python's zipfile lets through is refused, each with its code."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from modelsign._internal.formats import ziparchive as za
from modelsign._internal.formats.checkpoint import read_checkpoint
from modelsign._internal.formats.ziparchive import ZipArchive, read_zip
from modelsign.codes import Code
from modelsign.errors import FormatError
from tests.helpers.pickle_payloads import zip_bytes


def read(data: bytes) -> ZipArchive:
    return read_zip(lambda n, at: data[at : at + n], len(data), "a.zip")


def refused(data: bytes, code: Code) -> FormatError:
    with pytest.raises(FormatError) as info:
        read(data)
    assert info.value.code is code, info.value.message
    assert info.value.path == "a.zip"
    return info.value


def pickles(data: bytes) -> list[str]:
    found = read_checkpoint(lambda n, at: data[at : at + n], len(data), "a.zip")
    return [] if found is None else found.pickle_members


@pytest.fixture
def checkpoint(tmp_path: Path) -> bytes:
    path = tmp_path / "pytorch_model.bin"
    torch.save(OrderedDict(w=torch.arange(6.0).reshape(2, 3), b=torch.zeros(3)), path)
    return path.read_bytes()


def test_a_torch_checkpoint_members_tile_the_archive(checkpoint: bytes) -> None:
    archive = read(checkpoint)
    names = [m.name for m in archive.members]
    assert names == zipfile.ZipFile(io.BytesIO(checkpoint)).namelist()
    at = 0
    for m in archive.members:  # torch writes data descriptors: each member ends after its own
        assert m.header_offset == at and m.stored
        assert checkpoint[m.data_start : m.data_end] == zipfile.ZipFile(
            io.BytesIO(checkpoint)
        ).read(m.name)
        at = m.end
    assert at == archive.directory_offset


def test_zip_members_stored_and_deflated() -> None:
    data = zip_bytes({"a.txt": b"hello" * 100}, deflate=True)
    (m,) = read(data).members
    assert m.method == za.DEFLATED and m.size == 500 and not m.stored
    assert zlib.decompress(data[m.data_start : m.data_end], -15) == b"hello" * 100


def test_pickle_members_of_a_zip_whatever_its_name() -> None:
    data = zip_bytes({"top/data.pkl": pickle.dumps({"a": 1}), "other.PKL": b"", "n.txt": b"x"})
    assert pickles(data) == ["top/data.pkl", "other.PKL"]
    assert pickles(zip_bytes({"a.txt": b"hello"})) == []


def test_a_pickle_under_another_member_name_is_found() -> None:
    assert pickles(zip_bytes({"weights/blob": pickle.dumps([1, 2], protocol=4)})) == [
        "weights/blob"
    ]


def test_comment_mentioning_the_end_signature() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("top/data.pkl", pickle.dumps({"a": 1}))
        z.comment = b"PK\x05\x06 a comment that mentions the signature"
    assert pickles(buf.getvalue()) == ["top/data.pkl"]


def test_zip64_records_from_python_zipfile() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, z.open("archive/data.pkl", "w", force_zip64=True) as f:
        f.write(pickle.dumps([1, 2, 3]))
    assert pickles(buf.getvalue()) == ["archive/data.pkl"]


def test_empty_zip() -> None:
    assert read(zip_bytes({})).members == ()


def test_not_a_zip() -> None:
    refused(b"PK\x03\x04" + b"\x00" * 100, Code.ZIP_EXTRA_DATA)
    refused(b"PK", Code.ZIP_TRUNCATED)


def test_truncated(checkpoint: bytes) -> None:
    for cut in (30, 200, len(checkpoint) // 2):
        with pytest.raises(FormatError) as info:
            read(checkpoint[:-cut])
        assert info.value.code.startswith("ZIP_")


def test_appended_data(checkpoint: bytes) -> None:
    refused(checkpoint + b"trailing", Code.ZIP_EXTRA_DATA)


def test_prepended_data(checkpoint: bytes) -> None:
    poly = b"\x00" * 64 + checkpoint
    assert len(zipfile.ZipFile(io.BytesIO(poly)).namelist()) > 0  # Python's zipfile reads it
    refused(poly, Code.ZIP_EXTRA_DATA)


def test_duplicate_member_names() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, pytest.warns(UserWarning):
        z.writestr("data.pkl", pickle.dumps(1))
        z.writestr("data.pkl", pickle.dumps(2))
    refused(buf.getvalue(), Code.ZIP_DUPLICATE_NAME)


def test_local_name_differs_from_the_central_one() -> None:
    data = zip_bytes({"data.pkl": pickle.dumps(1)})
    local = data.replace(b"data.pkl", b"evil.pkl", 1)  # the first occurrence: the local header
    refused(local, Code.ZIP_HEADER_MISMATCH)


def test_local_method_differs() -> None:
    data = bytearray(zip_bytes({"a.txt": b"x" * 50}))
    struct.pack_into("<H", data, 8, 8)  # local header says deflated; the central one stored
    refused(bytes(data), Code.ZIP_HEADER_MISMATCH)


def test_local_crc_differs() -> None:
    data = bytearray(zip_bytes({"a.txt": b"x" * 50}))
    data[14] ^= 1
    refused(bytes(data), Code.ZIP_HEADER_MISMATCH)


def test_descriptor_disagrees(checkpoint: bytes) -> None:
    data = bytearray(checkpoint)
    at = data.find(b"PK\x07\x08")
    data[at + 4] ^= 1  # the first member's CRC in its data descriptor
    refused(bytes(data), Code.ZIP_HEADER_MISMATCH)


def test_encrypted_member() -> None:
    data = zip_bytes({"a.txt": b"x"})
    data = _set_flags(data, 0x1)
    refused(data, Code.ZIP_ENCRYPTED)


def _set_flags(data: bytes, flags: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<H", out, 6, flags)
    at = out.find(b"PK\x01\x02")
    struct.pack_into("<H", out, at + 8, flags)
    return bytes(out)


def test_overlapping_members() -> None:
    data = zip_bytes({"a.txt": b"a" * 10, "b.txt": b"b" * 10})
    second = data.find(b"PK\x03\x04", 4)
    at = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    out = bytearray(data)
    struct.pack_into("<I", out, at + 42, 0)  # b.txt's central entry points at a.txt's header
    assert second > 0
    with pytest.raises(FormatError) as info:
        read(bytes(out))
    assert info.value.code in (Code.ZIP_HEADER_MISMATCH, Code.ZIP_OVERLAP)


def test_bytes_between_members() -> None:
    data = zip_bytes({"a.txt": b"a" * 10, "b.txt": b"b" * 10})
    second = data.find(b"PK\x03\x04", 4)
    gap = data[:second] + b"\x00" * 7 + data[second:]
    out = bytearray(gap)
    cd = out.find(b"PK\x01\x02")
    cd2 = out.find(b"PK\x01\x02", cd + 4)
    struct.pack_into("<I", out, cd2 + 42, second + 7)  # b.txt moved by the gap
    eocd = out.rfind(b"PK\x05\x06")
    struct.pack_into("<I", out, eocd + 16, cd)  # the directory moved too
    refused(bytes(out), Code.ZIP_EXTRA_DATA)


def test_central_directory_bounded(checkpoint: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(za, "MAX_CENTRAL_DIRECTORY_BYTES", 64)
    refused(checkpoint, Code.ZIP_TOO_LARGE)


def test_every_cut_of_a_small_checkpoint_is_a_format_error(checkpoint: bytes) -> None:
    for cut in range(0, len(checkpoint), 7):
        try:
            read(checkpoint[:cut])
        except FormatError as exc:
            assert exc.code.startswith("ZIP_"), (cut, exc.code)
        else:  # pragma: no cover - a cut archive must never read
            pytest.fail(f"cut at {cut} read")
