"""NumPy ``.npy`` / ``.npz``: strict headers, ranges checked against numpy as the oracle."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from modelsign._internal.formats import detect_format
from modelsign._internal.formats.numpy_format import (
    HEADER_LIMIT,
    NumpyFile,
    read_npy,
    read_npy_header,
    read_numpy,
)
from modelsign._internal.formats.ziparchive import ReadAt
from modelsign.codes import Code
from modelsign.errors import FormatError

DTYPES = ["<f4", "<f8", "<f2", "|u1", "|i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "|b1", "<c8"]
NAMES = ["F32", "F64", "F16", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL", "C64"]


def npy_bytes(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def reader(data: bytes) -> ReadAt:
    return lambda n, at: data[at : at + n]


def parse(data: bytes, path: str = "w.npy") -> NumpyFile:
    return read_numpy(lambda n, at: data[at : at + n], len(data), path)


def refused(data: bytes, code: Code, path: str = "w.npy") -> FormatError:
    with pytest.raises(FormatError) as info:
        parse(data, path)
    assert info.value.code is code, info.value.message
    assert info.value.path is not None and info.value.path.startswith(path)
    return info.value


def sample(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (rng.standard_normal((3, 5)) * 50).astype(np.dtype(dtype))


@pytest.mark.parametrize(("descr", "name"), list(zip(DTYPES, NAMES, strict=True)))
def test_npy_range_is_the_array_bytes(descr: str, name: str) -> None:
    arr = sample(descr)
    data = npy_bytes(arr)
    layout = parse(data).layout
    (t,) = layout.tensors
    assert (t.dtype, t.shape, t.n_elements, t.digestible) == (name, (3, 5), 15, True)
    assert data[t.start : t.end] == arr.tobytes()
    assert t.end == len(data) and layout.storages[0].start == t.start


def test_big_endian_keeps_a_name_of_its_own() -> None:
    arr = sample(">f4")
    (t,) = parse(npy_bytes(arr)).layout.tensors
    assert t.dtype == "F32_BE"


def test_fortran_order_is_not_digestible_but_one_dimension_is() -> None:
    (t,) = parse(npy_bytes(np.asfortranarray(sample("<f4")))).layout.tensors
    assert not t.digestible
    (t,) = parse(npy_bytes(np.asfortranarray(np.arange(4.0)))).layout.tensors
    assert t.digestible


def test_zero_size_and_scalar_arrays() -> None:
    (t,) = parse(npy_bytes(np.zeros((0, 3), np.float32))).layout.tensors
    assert t.nbytes == 0 and t.shape == (0, 3)
    (t,) = parse(npy_bytes(np.float64(2.5))).layout.tensors
    assert t.shape == () and t.nbytes == 8


def test_versions_2_and_3() -> None:
    from numpy.lib import format as npf

    arr = sample("<i4")
    for version in ((2, 0), (3, 0)):
        buf = io.BytesIO()
        npf.write_array(buf, arr, version=version)
        h = read_npy_header(reader(buf.getvalue()), len(buf.getvalue()), "w")
        assert h.version == version[0] and h.shape == (3, 5) and h.data_offset % 16 == 0


def test_every_truncation_point_is_a_format_error() -> None:
    data = npy_bytes(np.arange(6, dtype=np.int16))
    codes = set()
    for cut in range(len(data)):
        with pytest.raises(FormatError) as info:
            parse(data[:cut])
        codes.add(info.value.code)
    assert codes <= {Code.TRUNCATED, Code.NUMPY_BAD_MAGIC}
    refused(data + b"\0", Code.NUMPY_TRAILING_DATA)


def header(text: str, version: int = 1) -> bytes:
    """A .npy prelude + header ``text`` padded like numpy pads it."""
    pre = 10 if version == 1 else 12
    body = text.encode("latin-1")
    pad = (-(pre + len(body) + 1)) % 16
    body += b" " * pad + b"\n"
    fmt = "<H" if version == 1 else "<I"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(fmt, len(body)) + body


GOOD = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (10**30,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", Code.NUMPY_BAD_HEADER),
        (
            "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
            Code.NUMPY_BAD_HEADER,
        ),
        ("{'descr': '<f4', 'fortran_order': False}", Code.NUMPY_BAD_HEADER),
        ("['descr', 'fortran_order', 'shape']", Code.NUMPY_BAD_HEADER),
        ("{'descr': 4, 'fortran_order': False, 'shape': (2,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", Code.NUMPY_BAD_HEADER),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)*65, }", Code.NUMPY_BAD_HEADER),
        (
            "{'descr': __import__('os'), 'fortran_order': False, 'shape': (2,)}",
            Code.NUMPY_BAD_HEADER,
        ),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", Code.NUMPY_BAD_HEADER),
        ("(" * 300 + ")" * 300, Code.NUMPY_BAD_HEADER),
        # descrs NumPy itself does not understand
        ("{'descr': '<f4junk', 'fortran_order': False, 'shape': (2,), }", Code.NUMPY_BAD_HEADER),
        (
            "{'descr': [('a', '<x9')], 'fortran_order': False, 'shape': (2,), }",
            Code.NUMPY_BAD_HEADER,
        ),
        ("{'descr': [1, 2], 'fortran_order': False, 'shape': (2,), }", Code.NUMPY_BAD_HEADER),
    ],
)
def test_hostile_headers(text: str, code: Code) -> None:
    refused(header(text) + b"\0" * 8, code)


@pytest.mark.parametrize(
    "descr, nbytes",
    [("'<U3'", 24), ("'<M8[s]'", 16), ("'|f4'", 8), ("[('a', '<f4')]", 8)],
)
def test_dtypes_without_a_tensor_form_are_a_storage_and_a_finding(descr: str, nbytes: int) -> None:
    text = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}"
    data = header(text) + b"\1" * nbytes
    found = parse(data)
    assert found.scan is None and found.layout.tensors == ()
    (store,) = found.layout.storages
    assert (store.start, store.end) == (len(data) - nbytes, len(data))
    (note,) = found.layout.findings
    assert note.code is Code.NUMPY_UNSUPPORTED_DTYPE and note.file == "w.npy"
    refused(data + b"\0", Code.NUMPY_TRAILING_DATA)  # its size is still exact
    refused(data[:-1], Code.TRUNCATED)


def test_a_record_with_an_object_field_holds_a_pickle_and_plain_arrays_none() -> None:
    assert parse(npy_bytes(np.arange(4.0))).scan is None
    fields = np.zeros(1, dtype=[("w", "f4"), ("o", "O")])
    record = parse(npy_bytes(fields, allow_pickle=True))
    assert record.scan is not None and record.scan.pickles == 1


@pytest.mark.parametrize(
    "data, code",
    [
        (b"\x93NUMPY\x09\x00\x02\x00{}", Code.NUMPY_BAD_HEADER),
        (b"\x93NUMPY\x01\x00\x05\x00{'x'\n", Code.NUMPY_BAD_HEADER),
        (b"\x93NUMP", Code.TRUNCATED),
    ],
)
def test_short_and_bad_headers(data: bytes, code: Code) -> None:
    refused(data, code)


def test_huge_shape_is_truncated_not_allocated() -> None:
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1048576), }"
    refused(header(text), Code.TRUNCATED)


def test_header_layout_rules() -> None:
    good = header(GOOD) + b"\0" * 8
    parse(good)
    refused(good[:-9] + b"\0" * 9, Code.NUMPY_BAD_HEADER)  # no newline at the end
    refused(b"\x93NUMPY\x04\x00" + good[8:], Code.NUMPY_BAD_HEADER)
    refused(b"\x93NUMPX" + good[6:], Code.NUMPY_BAD_MAGIC)
    unaligned = b"\x93NUMPY\x01\x00" + struct.pack("<H", 63) + GOOD.encode() + b"\n" + b"\0" * 8
    refused(unaligned, Code.NUMPY_BAD_HEADER)
    over = b"\x93NUMPY\x02\x00" + struct.pack("<I", HEADER_LIMIT + 1) + b" " * 64
    refused(over, Code.HEADER_TOO_LARGE)
    refused(header(GOOD + "\u00e9", version=3) + b"\0" * 8, Code.NUMPY_BAD_HEADER)


def test_object_array_goes_through_the_pickle_analyser() -> None:
    found = parse(npy_bytes(np.array([1, "a", None], dtype=object), allow_pickle=True))
    assert found.scan is not None and found.scan.pickles == 1
    assert found.layout.tensors == () and found.pickle_members == ["w"]


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def test_malicious_object_array_is_dangerous() -> None:
    arr = np.empty(1, dtype=object)
    arr[0] = Evil()
    found = parse(npy_bytes(arr, allow_pickle=True))
    assert found.scan is not None and found.scan.verdict == "dangerous"
    assert Code.PICKLE_DANGEROUS_GLOBAL in {i.code for i in found.scan.issues}


def npz(tmp_path: Path, compressed: bool, **arrays: np.ndarray) -> bytes:
    path = tmp_path / "a.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)  # type: ignore[arg-type]
    return path.read_bytes()


def test_npz_stored_members_located_in_the_file(tmp_path: Path) -> None:
    arrays = {d.strip("<|"): sample(d) for d in DTYPES}
    data = npz(tmp_path, False, **arrays)
    found = parse(data, "a.npz")
    assert {t.name for t in found.layout.tensors} == set(arrays)
    for t in found.layout.tensors:
        assert data[t.start : t.end] == arrays[t.name].tobytes()
        assert t.storage == f"{t.name}.npy" and t.digestible
    assert len(found.layout.crc_ranges) == len(arrays)


def test_npz_deflated_members_are_storages_without_tensor_digests(tmp_path: Path) -> None:
    data = npz(tmp_path, True, w=sample("<f4"), b=np.arange(3))
    found = parse(data, "a.npz")
    assert all(not t.digestible for t in found.layout.tensors)
    assert {s.dtype for s in found.layout.storages} == {"deflate"}
    assert {(t.name, t.dtype, t.shape) for t in found.layout.tensors} == {
        ("w", "F32", (3, 5)),
        ("b", "I64", (3,)),
    }


def test_npz_object_member_and_foreign_member(tmp_path: Path) -> None:
    data = npz(tmp_path, False, w=sample("<f4"), o=np.array([{"a": 1}], dtype=object))
    found = parse(data, "a.npz")
    assert found.pickle_members == ["o.npy"] and found.scan is not None
    assert [t.name for t in found.layout.tensors] == ["w"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("w.npy", npy_bytes(sample("<f4")))
        z.writestr("notes.txt", b"hi")
    refused(buf.getvalue(), Code.NUMPY_BAD_ARCHIVE, "a.npz")


def test_npz_member_with_trailing_bytes(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("w.npy", npy_bytes(sample("<f4")) + b"x")
    refused(buf.getvalue(), Code.NUMPY_TRAILING_DATA, "a.npz")


def test_detection() -> None:
    assert detect_format("x.npy", b"") == "numpy"
    assert detect_format("x.npz", b"PK\x03\x04") == "numpy"
    assert detect_format("x.bin", b"\x93NUMPY\x01\x00") == "numpy"
    assert detect_format("x.safetensors", b"\x93NUMPY\x01\x00") == "safetensors"


def test_a_digest_oracle() -> None:
    arr = sample("<f8")
    data = npy_bytes(arr)
    (t,) = read_npy(lambda n, at: data[at : at + n], len(data), "dir/w.npy").layout.tensors
    assert t.name == "w"
    assert hashlib.sha256(data[t.start : t.end]).digest() == hashlib.sha256(arr.tobytes()).digest()
