"""The strict safetensors reader, on files written by the safetensors library and
on hand-made malformed files (one per rule)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from modelsign._internal.formats import read_layout
from modelsign._internal.formats import safetensors as st
from modelsign._internal.formats.layout import HeaderReader, WeightLayout
from modelsign._internal.formats.safetensors import (
    DTYPE_BITS,
    HEADER_LIMIT,
    looks_like_safetensors,
    parse_safetensors,
)
from modelsign.errors import FormatError
from tests.helpers.safetensors_files import (
    entry,
    header_json,
    raw_safetensors,
    split_safetensors,
    torch_tensor_bytes,
    write_safetensors,
    write_safetensors_torch,
    write_sharded,
)


def layout_of(path: Path) -> WeightLayout:
    """Open, sniff and dispatch like the rest of modelsign does."""
    return read_layout(path)


def write_raw(tmp_path: Path, data: bytes, name: str = "bad.safetensors") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def error_of(tmp_path: Path, data: bytes) -> FormatError:
    with pytest.raises(FormatError) as info:
        layout_of(write_raw(tmp_path, data))
    assert info.value.path is not None and info.value.path.endswith("bad.safetensors")
    return info.value


def codes(layout: WeightLayout) -> list[str]:
    return [f.code for f in layout.findings]


def assert_tiles(layout: WeightLayout, path: Path) -> None:
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    assert layout.header_size == 8 + n
    assert layout.file_size == path.stat().st_size
    assert layout.padding == ()
    at = layout.header_size
    for span in layout.tensors:
        assert span.start == at
        assert span.nbytes == span.n_elements * DTYPE_BITS[span.dtype] // 8
        at = span.end
    assert at == layout.file_size


def assert_matches_library(layout: WeightLayout, path: Path) -> None:
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == sorted(t.name for t in layout.tensors)
        assert (f.metadata() or {}) == layout.metadata
        for span in layout.tensors:
            sl = f.get_slice(span.name)
            assert sl.get_dtype() == span.dtype
            assert list(sl.get_shape()) == list(span.shape)


# --- valid files ------------------------------------------------------------------


def test_numpy_file_spans_hold_the_tensor_bytes(tmp_path: Path) -> None:
    tensors: dict[str, np.ndarray] = {
        "w.f32": np.arange(12, dtype=np.float32).reshape(3, 4),
        "w.f16": np.linspace(-1, 1, 10, dtype=np.float16),
        "ids": np.array([[1, -2], [3, 1 << 40]], dtype=np.int64),
        "mask": np.array([True, False, True]),
        "u8": np.arange(5, dtype=np.uint8),
        "scalar": np.array(3.5, dtype=np.float64),
        "empty": np.zeros((0, 7), dtype=np.float32),
    }
    path = write_safetensors(tmp_path / "m.safetensors", tensors)
    layout = layout_of(path)
    data = path.read_bytes()

    assert layout.format == "safetensors"
    assert layout.findings == ()
    assert layout.metadata == {}
    by_name = {t.name: t for t in layout.tensors}
    assert set(by_name) == set(tensors)
    for name, arr in tensors.items():
        span = by_name[name]
        assert data[span.start : span.end] == arr.tobytes()
        assert span.shape == arr.shape
        assert span.n_elements == arr.size
    assert by_name["ids"].dtype == "I64" and by_name["mask"].dtype == "BOOL"
    assert [t.start for t in layout.tensors] == sorted(t.start for t in layout.tensors)
    assert_tiles(layout, path)
    assert_matches_library(layout, path)


def test_torch_low_precision_dtypes(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "bf16": torch.randn(4, 3, generator=g).to(torch.bfloat16),
        "e4m3": torch.randn(16, generator=g).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(2, 8, generator=g).to(torch.float8_e5m2),
        "e8m0": torch.ones(4).to(torch.float8_e8m0fnu),
        "f4": torch.zeros(2, 4, dtype=torch.uint8).view(torch.float4_e2m1fn_x2),
    }
    path = write_safetensors_torch(tmp_path / "t.safetensors", tensors)
    layout = layout_of(path)
    data = path.read_bytes()
    by_name = {t.name: t for t in layout.tensors}
    assert {n: s.dtype for n, s in by_name.items()} == {
        "bf16": "BF16",
        "e4m3": "F8_E4M3",
        "e5m2": "F8_E5M2",
        "e8m0": "F8_E8M0",
        "f4": "F4",
    }
    for name, t in tensors.items():
        span = by_name[name]
        assert data[span.start : span.end] == torch_tensor_bytes(t)
    assert by_name["f4"].n_elements == 16 and by_name["f4"].nbytes == 8  # two per byte
    assert_tiles(layout, path)
    assert_matches_library(layout, path)


def test_metadata_is_returned(tmp_path: Path) -> None:
    meta = {"format": "pt", "note": 'a "quoted" value', "ünï": "çødé"}
    path = write_safetensors(tmp_path / "m.safetensors", {"a": np.ones(3, np.float32)}, meta)
    layout = layout_of(path)
    assert layout.metadata == meta
    assert layout.findings == ()
    assert_tiles(layout, path)


def test_zero_tensors(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "e.safetensors", {}, {"k": "v"})
    layout = layout_of(path)
    assert layout.tensors == ()
    assert layout.header_size == layout.file_size == path.stat().st_size
    assert layout.metadata == {"k": "v"}
    bare = layout_of(write_raw(tmp_path, raw_safetensors(b"{}      ")))
    assert bare.tensors == () and bare.file_size == 16


def test_sharded_model_files(tmp_path: Path) -> None:
    tensors = {f"layer.{i}.w": np.full((i + 1, 2), i, np.float32) for i in range(5)}
    index, shards = write_sharded(tmp_path, tensors, 3)
    assert [p.name for p in shards] == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    seen: dict[str, bytes] = {}
    for shard in shards:
        layout = layout_of(shard)
        assert layout.metadata == {"format": "pt"}
        assert_tiles(layout, shard)
        data = shard.read_bytes()
        seen.update({t.name: data[t.start : t.end] for t in layout.tensors})
    assert seen == {n: a.tobytes() for n, a in tensors.items()}
    assert set(json.loads(index.read_text())["weight_map"]) == set(tensors)


def test_hand_made_sub_byte_and_unsorted_entries(tmp_path: Path) -> None:
    header = {
        "b": entry("F6_E2M3", [4], 2, 5),  # 4 x 6 bits = 3 bytes
        "a": entry("F4", [2, 2], 0, 2),  # 4 x 4 bits = 2 bytes
        "z": entry("F32", [0], 5, 5),
    }
    layout = layout_of(write_raw(tmp_path, raw_safetensors(header_json(header), b"\x00" * 5)))
    start = layout.header_size
    assert [(t.name, t.start - start, t.end - start) for t in layout.tensors] == [
        ("a", 0, 2),
        ("b", 2, 5),
        ("z", 5, 5),
    ]


def test_reads_only_the_header(tmp_path: Path) -> None:
    big = np.zeros(3 << 20, dtype=np.uint8)  # larger than one read block
    path = write_safetensors(tmp_path / "big.safetensors", {"x": big})
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = HeaderReader(fd, path.stat().st_size, str(path), limit=HEADER_LIMIT + 8)
        layout = parse_safetensors(reader)
    finally:
        os.close(fd)
    assert reader.consumed == layout.header_size
    assert len(reader.buffered) < path.stat().st_size


def test_dtype_table_matches_the_library() -> None:
    assert len(DTYPE_BITS) == 22
    assert DTYPE_BITS["F4"] == 4 and DTYPE_BITS["F6_E3M2"] == 6 and DTYPE_BITS["BOOL"] == 8
    assert DTYPE_BITS["C64"] == 64 and DTYPE_BITS["BF16"] == 16


def test_looks_like_safetensors(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", {"a": np.ones(2, np.float32)})
    assert looks_like_safetensors(path.read_bytes()[:16])
    assert looks_like_safetensors(raw_safetensors(b"{}      "))
    assert not looks_like_safetensors(b"GGUF\x03\x00\x00\x00" + b"\x00" * 8)
    assert not looks_like_safetensors(b"\x80\x04\x95" + b"\x00" * 13)
    assert not looks_like_safetensors(struct.pack("<Q", HEADER_LIMIT + 1) + b'{"a":1}')
    assert not looks_like_safetensors(struct.pack("<Q", 0) + b"{}")
    assert not looks_like_safetensors(struct.pack("<Q", 10) + b" {}")
    assert not looks_like_safetensors(struct.pack("<Q", 10) + b"{x")
    assert not looks_like_safetensors(b"\x08\x00")


# --- warnings ---------------------------------------------------------------------


F32_A = {"a": entry("F32", [1], 0, 4)}


def test_unknown_entry_field_is_a_warning(tmp_path: Path) -> None:
    header = {"a": {**entry("F32", [1], 0, 4), "note": {"hidden": [1, 2]}}}
    layout = layout_of(write_raw(tmp_path, raw_safetensors(header_json(header), b"\x00" * 4)))
    assert codes(layout) == ["SAFETENSORS_UNKNOWN_FIELD"]
    assert layout.findings[0].tensor == "a" and "'note'" in layout.findings[0].message
    assert layout.findings[0].severity == "warning"


def test_escaped_name_is_a_warning(tmp_path: Path) -> None:
    raw = b'{"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    layout = layout_of(write_raw(tmp_path, raw_safetensors(raw, b"\x00" * 4)))
    assert [t.name for t in layout.tensors] == ["a"]
    assert codes(layout) == ["SAFETENSORS_NONCANONICAL_NAME"]
    assert layout.findings[0].tensor == "a"


def test_ascii_escaped_unicode_name_is_a_warning(tmp_path: Path) -> None:
    raw = json.dumps({"wé": entry("U8", [1], 0, 1)}, ensure_ascii=True).encode()
    layout = layout_of(write_raw(tmp_path, raw_safetensors(raw, b"\x00")))
    assert codes(layout) == ["SAFETENSORS_NONCANONICAL_NAME"]
    plain = json.dumps({"wé": entry("U8", [1], 0, 1)}, ensure_ascii=False).encode()
    assert codes(layout_of(write_raw(tmp_path, raw_safetensors(plain, b"\x00")))) == []


def test_required_escapes_are_canonical(tmp_path: Path) -> None:
    header = {'a"b\\c\n': entry("U8", [1], 0, 1)}
    layout = layout_of(write_raw(tmp_path, raw_safetensors(header_json(header), b"\x00")))
    assert codes(layout) == []
    assert layout.tensors[0].name == 'a"b\\c\n'


def test_long_padding_is_a_warning(tmp_path: Path) -> None:
    raw = header_json(F32_A, pad=False) + b" " * 8
    layout = layout_of(write_raw(tmp_path, raw_safetensors(raw, b"\x00" * 4)))
    assert codes(layout) == ["SAFETENSORS_HEADER_PADDING"]
    ok = header_json(F32_A, pad=False) + b" " * 7
    assert codes(layout_of(write_raw(tmp_path, raw_safetensors(ok, b"\x00" * 4)))) == []


def test_whitespace_inside_the_json_is_accepted(tmp_path: Path) -> None:
    raw = json.dumps(F32_A, indent=2).encode()
    layout = layout_of(write_raw(tmp_path, raw_safetensors(raw, b"\x00" * 4)))
    assert [t.name for t in layout.tensors] == ["a"] and codes(layout) == []


# --- errors -----------------------------------------------------------------------


def test_file_shorter_than_the_size_field(tmp_path: Path) -> None:
    assert error_of(tmp_path, b"\x08\x00\x00").code == "TRUNCATED"


@pytest.mark.parametrize(
    "declared",
    [0, HEADER_LIMIT + 1, 1 << 63, (1 << 64) - 1],
    ids=["zero", "over-limit", "huge", "u64-max"],
)
def test_bad_header_size(tmp_path: Path, declared: int) -> None:
    err = error_of(tmp_path, raw_safetensors(b"{}      ", size=declared))
    assert err.code == "SAFETENSORS_BAD_HEADER_SIZE"
    assert str(declared) in err.message


def test_header_size_beyond_the_file(tmp_path: Path) -> None:
    err = error_of(tmp_path, raw_safetensors(b"{}      ", size=9))
    assert err.code == "SAFETENSORS_BAD_HEADER_SIZE"


def test_invalid_utf8(tmp_path: Path) -> None:
    raw = b'{"\xff":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00")).code == "SAFETENSORS_BAD_UTF8"
    # a UTF-8-encoded surrogate (CESU-8) is not UTF-8 either
    raw = b'{"\xed\xa0\x80":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00")).code == "SAFETENSORS_BAD_UTF8"


@pytest.mark.parametrize(
    "raw",
    [b" {}", b"\n{}", b"\xef\xbb\xbf{}", b"[1]", b'"str"', b"null"],
    ids=["space", "newline", "bom", "array", "string", "null"],
)
def test_header_must_start_with_brace(tmp_path: Path, raw: bytes) -> None:
    assert error_of(tmp_path, raw_safetensors(raw)).code == "SAFETENSORS_BAD_HEADER_START"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":}',
        b'{"a" 1}',
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},}',
        b"{a:1}",
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}',
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":NaN}}',
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":' + b"1" * 5000 + b"}}",
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":' + b"[" * 100_000 + b"}}",
        b'{"a\tb":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
    ],
    ids=[
        "no-value",
        "no-colon",
        "trailing-comma",
        "bare-key",
        "unclosed",
        "nan",
        "huge-int",
        "deep",
        "control-char",
    ],
)
def test_invalid_json(tmp_path: Path, raw: bytes) -> None:
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00")).code == "SAFETENSORS_BAD_JSON"


@pytest.mark.parametrize("tail", [b"x", b"\n", b"\t", b"\x00", b" {}", b"  \x00"], ids=repr)
def test_content_after_the_object(tmp_path: Path, tail: bytes) -> None:
    err = error_of(tmp_path, raw_safetensors(b"{}" + tail))
    assert err.code == "SAFETENSORS_BAD_HEADER_END"


def test_duplicate_tensor_key(tmp_path: Path) -> None:
    raw = (
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    )
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00\x00"))
    assert err.code == "SAFETENSORS_DUPLICATE_KEY" and err.tensor == "a"


def test_duplicate_escaped_tensor_key(tmp_path: Path) -> None:
    raw = (
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"\\u0061":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    )
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00\x00")).code == (
        "SAFETENSORS_DUPLICATE_KEY"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        b'{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
    ],
    ids=["in-entry", "in-metadata"],
)
def test_nested_duplicate_key(tmp_path: Path, raw: bytes) -> None:
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00")).code == "SAFETENSORS_DUPLICATE_KEY"


@pytest.mark.parametrize(
    "meta",
    [{"k": 1}, {"k": None}, {"k": ["v"]}, {"k": {"n": "v"}}, ["k", "v"], "k=v", None],
    ids=["int", "null", "list", "object", "array", "string", "null-metadata"],
)
def test_bad_metadata(tmp_path: Path, meta: Any) -> None:
    raw = header_json({"__metadata__": meta, **F32_A})
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00" * 4)).code == (
        "SAFETENSORS_BAD_METADATA"
    )


def test_metadata_with_lone_surrogate(tmp_path: Path) -> None:
    raw = b'{"__metadata__":{"k":"\\ud800"}}'
    assert error_of(tmp_path, raw_safetensors(raw)).code == "SAFETENSORS_BAD_METADATA"


@pytest.mark.parametrize(
    "value",
    [
        [1],
        "F32",
        {"shape": [1], "data_offsets": [0, 4]},
        {"dtype": "F32", "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [1]},
        {"dtype": 32, "shape": [1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [1 << 64], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]},
        {"dtype": "F32", "shape": [1], "data_offsets": [0]},
        {"dtype": "F32", "shape": [1], "data_offsets": [False, 4]},
        {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]},
        {"dtype": "F32", "shape": [1], "data_offsets": {"begin": 0, "end": 4}},
        {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]},
    ],
    ids=[
        "array",
        "string",
        "no-dtype",
        "no-shape",
        "no-offsets",
        "dtype-int",
        "shape-int",
        "shape-bool",
        "shape-negative",
        "shape-float",
        "shape-over-u64",
        "offsets-3",
        "offsets-1",
        "offsets-bool",
        "offsets-negative",
        "offsets-object",
        "begin-after-end",
    ],
)
def test_bad_entry(tmp_path: Path, value: Any) -> None:
    err = error_of(tmp_path, raw_safetensors(header_json({"t": value}), b"\x00" * 4))
    assert err.code == "SAFETENSORS_BAD_ENTRY"
    assert err.tensor == "t" and "'t'" in err.message


@pytest.mark.parametrize(
    "raw",
    [b'{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b'{"\\udc00":{"x":1}}'],
    ids=["empty", "lone-surrogate"],
)
def test_bad_name(tmp_path: Path, raw: bytes) -> None:
    assert error_of(tmp_path, raw_safetensors(raw, b"\x00")).code == "SAFETENSORS_BAD_NAME"


@pytest.mark.parametrize("dtype", ["f32", "F8", "FLOAT32", "Q4_0", ""])
def test_unknown_dtype(tmp_path: Path, dtype: str) -> None:
    raw = header_json({"t": entry(dtype, [1], 0, 4)})
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00" * 4))
    assert err.code == "SAFETENSORS_UNKNOWN_DTYPE"
    assert err.tensor == "t" and repr(dtype) in err.message


@pytest.mark.parametrize(
    ("dtype", "shape", "nbytes"),
    [
        ("F32", [2], 4),
        ("F32", [1], 8),
        ("F16", [3, 3], 17),
        ("F4", [3], 2),  # 12 bits is not a whole number of bytes
        ("F6_E3M2", [3], 3),
        ("U8", [1 << 40, 1 << 40, 1 << 40], 8),
        ("F64", [(1 << 64) - 1] * 10_000, 8),
        ("U8", [], 0),
    ],
    ids=["short", "long", "f16", "f4-odd", "f6", "overflow", "huge-rank", "scalar-empty"],
)
def test_size_mismatch(tmp_path: Path, dtype: str, shape: list[int], nbytes: int) -> None:
    raw = header_json({"t": entry(dtype, shape, 0, nbytes)})
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00" * nbytes))
    assert err.code == "SAFETENSORS_SIZE_MISMATCH"
    assert err.tensor == "t"
    assert err.actual == f"{nbytes} bytes" and err.expected


def test_size_mismatch_reports_expected_bytes(tmp_path: Path) -> None:
    raw = header_json({"t": entry("F32", [2, 3], 0, 20)})
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00" * 20))
    assert (err.expected, err.actual) == ("24 bytes", "20 bytes")


def test_gap_before_first_tensor(tmp_path: Path) -> None:
    raw = header_json({"a": entry("F32", [1], 4, 8)})
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00" * 8))
    assert err.code == "SAFETENSORS_OFFSET_GAP" and err.tensor == "a"


def test_gap_between_tensors(tmp_path: Path) -> None:
    raw = header_json({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)})
    err = error_of(tmp_path, raw_safetensors(raw, b"\x00" * 12))
    assert err.code == "SAFETENSORS_OFFSET_GAP"
    assert "'a'" in err.message and "'b'" in err.message


@pytest.mark.parametrize(
    "header",
    [
        {"a": entry("F32", [2], 0, 8), "b": entry("F32", [1], 4, 8)},
        {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 0, 4)},
        {"a": entry("F32", [2], 0, 8), "b": entry("F32", [0], 4, 4)},
    ],
    ids=["partial", "aliased", "empty-inside"],
)
def test_overlap(tmp_path: Path, header: dict[str, Any]) -> None:
    err = error_of(tmp_path, raw_safetensors(header_json(header), b"\x00" * 8))
    assert err.code == "SAFETENSORS_OFFSET_OVERLAP"
    assert "'a'" in err.message and "'b'" in err.message


def test_trailing_bytes(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "ok.safetensors", {"a": np.ones(4, np.float32)})
    err = error_of(tmp_path, path.read_bytes() + b"\x00")
    assert err.code == "SAFETENSORS_TRAILING_BYTES"
    assert (err.expected, err.actual) == (str(path.stat().st_size), str(path.stat().st_size + 1))


def test_polyglot_with_appended_zip_is_rejected(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "ok.safetensors", {"a": np.ones(4, np.float32)})
    torch.save({"x": torch.zeros(1)}, tmp_path / "payload.pt")
    data = path.read_bytes() + (tmp_path / "payload.pt").read_bytes()
    assert error_of(tmp_path, data).code == "SAFETENSORS_TRAILING_BYTES"


def test_truncated_data(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "ok.safetensors", {"a": np.ones(4, np.float32)})
    err = error_of(tmp_path, path.read_bytes()[:-1])
    assert err.code == "TRUNCATED"


def test_zero_tensors_with_trailing_data(tmp_path: Path) -> None:
    assert error_of(tmp_path, raw_safetensors(b"{}      ", b"\x00")).code == (
        "SAFETENSORS_TRAILING_BYTES"
    )


def test_too_many_tensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st, "MAX_TENSORS", 2)
    two = {"a": entry("U8", [1], 0, 1), "b": entry("U8", [1], 1, 2)}
    ok = layout_of(write_raw(tmp_path, raw_safetensors(header_json(two), b"\x00" * 2)))
    assert len(ok.tensors) == 2
    three = {**two, "c": entry("U8", [1], 2, 3), "__metadata__": {}}
    err = error_of(tmp_path, raw_safetensors(header_json(three), b"\x00" * 3))
    assert err.code == "SAFETENSORS_TOO_MANY_TENSORS"


def test_modified_real_file_is_checked(tmp_path: Path) -> None:
    """A real file with one entry's shape edited fails, naming the tensor."""
    path = write_safetensors(
        tmp_path / "m.safetensors", {"a": np.ones((2, 2), np.float32), "b": np.ones(3, np.int64)}
    )
    header, buffer = split_safetensors(path.read_bytes())
    header["b"]["shape"] = [4]
    err = error_of(tmp_path, raw_safetensors(header_json(header), buffer))
    assert err.code == "SAFETENSORS_SIZE_MISMATCH" and err.tensor == "b"
    assert "b" in err.diagnostics()


def test_content_sniff_without_extension(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", {"a": np.ones(2, np.float32)})
    bare = path.rename(tmp_path / "weights")
    assert [t.name for t in layout_of(bare).tensors] == ["a"]
