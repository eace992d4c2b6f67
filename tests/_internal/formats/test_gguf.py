"""The strict GGUF reader: valid files from GGUFWriter, one malformed file per rule."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
import pytest

from modelsign._internal.formats import gguf as gguf_format
from modelsign._internal.formats import read_layout
from modelsign._internal.formats.gguf import HEADER_LIMIT, parse_gguf
from modelsign._internal.formats.layout import HeaderReader, WeightLayout
from modelsign.errors import FormatError
from tests.helpers.gguf_files import (
    QT,
    VT,
    QuantTensor,
    RawGGUF,
    gguf_kv,
    gguf_string,
    quantized,
    random_quant,
    tensor_bytes,
    u32,
    u64,
    write_gguf,
)

RNG = np.random.default_rng(1234)


def check_tiling(layout: WeightLayout, data: bytes) -> None:
    """Header, tensors and padding cover the file exactly, and padding is all zeros."""
    assert layout.file_size == len(data)
    ranges = [(0, layout.header_size, "header")]
    ranges += [(t.start, t.end, t.name) for t in layout.tensors]
    ranges += [(a, b, "padding") for a, b in layout.padding]
    ranges.sort(key=lambda r: (r[0], r[1]))
    pos = 0
    for start, end, what in ranges:
        assert start == pos, f"{what} starts at {start}, expected {pos}"
        assert end >= start
        pos = end
    assert pos == len(data)
    for a, b in layout.padding:
        assert a < b
        assert data[a:b] == bytes(b - a)
    assert [t.start for t in layout.tensors] == sorted(t.start for t in layout.tensors)


def check_against_gguf_reader(layout: WeightLayout, path: Path) -> None:
    """gguf's own (lenient) reader agrees on where every tensor is."""
    reader = gguf.GGUFReader(path)
    assert reader.data_offset == layout.header_size
    assert len(reader.tensors) == len(layout.tensors)
    by_name = {t.name: t for t in layout.tensors}
    for rt in reader.tensors:
        span = by_name[rt.name]
        assert span.start == rt.data_offset
        assert span.nbytes == rt.n_bytes
        assert span.n_elements == rt.n_elements
        assert span.shape == tuple(int(d) for d in rt.shape)
        assert span.dtype == rt.tensor_type.name


def parse(path: Path) -> WeightLayout:
    layout = read_layout(path)
    check_tiling(layout, path.read_bytes())
    return layout


def error_of(path: Path) -> FormatError:
    with pytest.raises(FormatError) as e:
        read_layout(path)
    assert e.value.path == str(path)
    return e.value


# -- valid files ------------------------------------------------------------------


def test_f32_f16_i32_tensors(tmp_path: Path) -> None:
    tensors: dict[str, npt.NDArray[Any]] = {
        "token_embd.weight": RNG.standard_normal((3, 64)).astype(np.float32),
        "output_norm.weight": RNG.standard_normal(100).astype(np.float16),
        "positions": np.arange(7, dtype=np.int32),
    }
    path = write_gguf(tmp_path / "m.gguf", tensors=tensors, name="tiny")
    layout = parse(path)
    data = path.read_bytes()

    assert layout.format == "gguf"
    assert layout.version == 3
    assert layout.alignment == 32
    assert layout.header_size % 32 == 0
    assert [t.name for t in layout.tensors] == list(tensors)
    by_name = {t.name: t for t in layout.tensors}
    for name, array in tensors.items():
        span = by_name[name]
        assert data[span.start : span.end] == array.tobytes()
        assert span.start % 32 == 0
        assert span.shape == tuple(reversed(array.shape))  # innermost first
        assert span.n_elements == array.size
        assert span.nbytes == array.nbytes
    assert by_name["token_embd.weight"].dtype == "F32"
    assert by_name["output_norm.weight"].dtype == "F16"
    assert by_name["positions"].dtype == "I32"
    # 200 F16 bytes are padded to 224, 28 I32 bytes to 32
    assert layout.padding == (
        (by_name["output_norm.weight"].end, by_name["positions"].start),
        (by_name["positions"].end, len(data)),
    )
    assert layout.metadata == {"general.architecture": "llama", "general.name": "tiny"}
    assert layout.findings == ()
    assert layout.chat_template is None
    check_against_gguf_reader(layout, path)


def test_q8_0_tensor(tmp_path: Path) -> None:
    q = quantized(RNG.standard_normal((4, 64)), QT.Q8_0)
    path = write_gguf(tmp_path / "q8.gguf", tensors={"w": q})
    layout = parse(path)
    (span,) = layout.tensors
    assert span.dtype == "Q8_0"
    assert span.shape == (64, 4)
    assert span.n_elements == 256
    assert span.nbytes == 4 * 2 * 34  # two 34-byte blocks of 32 per row
    assert path.read_bytes()[span.start : span.end] == tensor_bytes(q)
    check_against_gguf_reader(layout, path)


def test_k_quant_tensors(tmp_path: Path) -> None:
    tensors: dict[str, QuantTensor] = {
        "blk.0.ffn_up.weight": random_quant((2, 256), QT.Q4_K, seed=1),
        "blk.0.ffn_down.weight": random_quant((3, 512), QT.Q6_K, seed=2),
    }
    path = write_gguf(tmp_path / "k.gguf", tensors=tensors, file_type=15)
    layout = parse(path)
    data = path.read_bytes()
    q4, q6 = layout.tensors
    assert (q4.dtype, q4.shape, q4.nbytes) == ("Q4_K", (256, 2), 2 * 144)
    assert (q6.dtype, q6.shape, q6.nbytes) == ("Q6_K", (512, 3), 3 * 2 * 210)
    for span, value in zip(layout.tensors, tensors.values(), strict=True):
        assert data[span.start : span.end] == tensor_bytes(value)
    assert layout.metadata["general.file_type"] == 15
    assert gguf.LlamaFileType(15).name == "MOSTLY_Q4_K_M"
    assert layout.findings == ()
    check_against_gguf_reader(layout, path)


@pytest.mark.parametrize("alignment", [1, 8, 64, 4096])
def test_custom_alignment(tmp_path: Path, alignment: int) -> None:
    tensors: dict[str, npt.NDArray[Any]] = {
        "a": RNG.standard_normal(5).astype(np.float32),
        "b": RNG.standard_normal((2, 3)).astype(np.float16),
        "c": RNG.standard_normal(1).astype(np.float32),
    }
    path = write_gguf(tmp_path / "a.gguf", tensors=tensors, alignment=alignment)
    layout = parse(path)
    assert layout.alignment == alignment
    assert layout.metadata["general.alignment"] == alignment
    assert layout.header_size % alignment == 0
    for span, array in zip(layout.tensors, tensors.values(), strict=True):
        assert span.start % alignment == 0
        assert path.read_bytes()[span.start : span.end] == array.tobytes()
    if alignment == 1:
        assert layout.padding == ()
    check_against_gguf_reader(layout, path)


def test_vocab_only_file(tmp_path: Path) -> None:
    vocab = [f"tok{i}" for i in range(1000)] + ["Ġhello", "日本語", "<0x0A>"]
    path = write_gguf(tmp_path / "vocab.gguf", vocab=vocab, license="apache-2.0")
    layout = parse(path)
    assert layout.tensors == ()
    assert layout.padding == ()
    assert layout.header_size == layout.file_size
    assert layout.metadata["general.license"] == "apache-2.0"
    assert layout.metadata["tokenizer.ggml.model"] == "gpt2"
    assert "tokenizer.ggml.tokens" not in layout.metadata  # arrays are skipped
    check_against_gguf_reader(layout, path)


def test_vocab_only_file_may_stop_after_tensor_infos(tmp_path: Path) -> None:
    raw = RawGGUF().add_kv("general.architecture", VT.STRING, "llama")
    head = raw.header()
    assert len(head) % 32 != 0
    path = tmp_path / "v.gguf"
    path.write_bytes(head)
    layout = parse(path)
    assert layout.header_size == len(head)
    assert layout.tensors == ()


def test_chat_template_is_reported(tmp_path: Path) -> None:
    template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    path = write_gguf(tmp_path / "chat.gguf", chat_template=template)
    layout = parse(path)
    assert layout.chat_template == template
    assert "tokenizer.chat_template" not in layout.metadata
    (finding,) = layout.findings
    assert finding.code == "GGUF_CHAT_TEMPLATE"
    assert finding.severity == "warning"
    assert "Jinja" in finding.message
    assert finding.path == str(path)


def test_named_chat_templates_are_reported(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "chat.gguf",
        extra={
            "tokenizer.chat_template": (VT.STRING, "{{ x }}"),
            "tokenizer.chat_template.tool_use": (VT.STRING, "{{ tools }}"),
        },
    )
    layout = parse(path)
    assert layout.chat_template == "{{ x }}"
    assert layout.metadata["tokenizer.chat_template.tool_use"] == "{{ tools }}"
    assert [f.code for f in layout.findings] == ["GGUF_CHAT_TEMPLATE"] * 2
    assert "tokenizer.chat_template.tool_use" in layout.findings[1].message


def test_metadata_values(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "meta.gguf",
        name="Tiny Llama Q4",
        license="llama3",
        file_type=int(gguf.LlamaFileType.MOSTLY_Q8_0),
        base_models=[
            {"name": "Llama 3 8B", "organization": "Meta Llama"},
            {"name": "Mistral 7B", "repo_url": "https://huggingface.co/mistralai/x"},
        ],
        extra={
            "test.u8": (VT.UINT8, 255),
            "test.i8": (VT.INT8, -128),
            "test.u16": (VT.UINT16, 65535),
            "test.i16": (VT.INT16, -32768),
            "test.u32": (VT.UINT32, 2**32 - 1),
            "test.i32": (VT.INT32, -(2**31)),
            "test.f32": (VT.FLOAT32, 0.5),
            "test.bool": (VT.BOOL, True),
            "test.u64": (VT.UINT64, 2**64 - 1),
            "test.i64": (VT.INT64, -(2**63)),
            "test.f64": (VT.FLOAT64, 1e300),
            "test.tags": (VT.ARRAY, ["a", "b"]),
        },
        tensors={"w": np.zeros(4, np.float32)},
    )
    meta = parse(path).metadata
    assert meta["general.name"] == "Tiny Llama Q4"
    assert meta["general.license"] == "llama3"
    assert meta["general.file_type"] == 7
    assert meta["general.base_model.count"] == 2
    assert meta["general.base_model.0.name"] == "Llama 3 8B"
    assert meta["general.base_model.0.organization"] == "Meta Llama"
    assert meta["general.base_model.1.repo_url"] == "https://huggingface.co/mistralai/x"
    expected = {
        "test.u8": 255,
        "test.i8": -128,
        "test.u16": 65535,
        "test.i16": -32768,
        "test.u32": 2**32 - 1,
        "test.i32": -(2**31),
        "test.f32": 0.5,
        "test.bool": True,
        "test.u64": 2**64 - 1,
        "test.i64": -(2**63),
        "test.f64": 1e300,
    }
    for key, value in expected.items():
        assert meta[key] == value
        assert type(meta[key]) is type(value)
    assert "test.tags" not in meta


def test_unknown_file_type_is_reported(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "ft.gguf", file_type=999)
    layout = parse(path)
    assert layout.metadata["general.file_type"] == 999
    (finding,) = layout.findings
    assert finding.code == "GGUF_UNKNOWN_FILE_TYPE"
    assert "999" in finding.message


def test_version_2_and_layout_offsets(tmp_path: Path) -> None:
    raw = RawGGUF(version=2).add_kv("general.architecture", VT.STRING, "llama")
    raw.add_tensor("a", [33], QT.F32).add_tensor("b", [32, 2], QT.Q8_0)
    path = raw.write(tmp_path / "v2.gguf")
    layout = parse(path)
    assert layout.version == 2
    start = raw.data_start()
    assert layout.header_size == start
    a, b = layout.tensors
    assert (a.start, a.end) == (start, start + 132)
    assert (b.start, b.end) == (start + 160, start + 160 + 68)
    assert layout.padding == ((start + 132, start + 160), (start + 228, start + 256))
    assert layout.kv_range == (24, 24 + len(raw.kvs[0]))
    data = path.read_bytes()
    assert data[a.start : a.end] == raw.tensors[0].data
    assert data[b.start : b.end] == raw.tensors[1].data


def test_kv_range_covers_the_kv_section(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", license="mit", tensors={"w": np.ones(3, np.float32)})
    layout = parse(path)
    assert layout.kv_range is not None
    start, end = layout.kv_range
    data = path.read_bytes()
    assert start == 24
    assert data[end : end + 8 + 1] == gguf_string("w")  # the first tensor info follows


def test_zero_sized_tensor_and_unpadded_end(tmp_path: Path) -> None:
    raw = RawGGUF(pad_last=False)
    raw.add_tensor("empty", [0, 4], QT.F32).add_tensor("x", [3], QT.F32)
    path = raw.write(tmp_path / "z.gguf")
    layout = parse(path)
    empty, x = layout.tensors
    assert empty.nbytes == 0 and empty.n_elements == 0
    assert empty.start == x.start == layout.header_size
    assert x.end == layout.file_size
    assert layout.padding == ()


def test_partial_final_padding_is_allowed(tmp_path: Path) -> None:
    raw = RawGGUF(pad_last=False, trailing=bytes(7)).add_tensor("x", [3], QT.F32)
    path = raw.write(tmp_path / "p.gguf")
    layout = parse(path)
    (x,) = layout.tensors
    assert layout.padding == ((x.end, x.end + 7),)


def nested_array(levels: int) -> tuple[int, list[object]]:
    """``(element_type, items)`` of an array nesting ``levels`` arrays in all."""
    inner: tuple[int, list[object]] = (VT.INT32, [1, 2])
    for _ in range(levels - 1):
        inner = (VT.ARRAY, [inner, (VT.STRING, ["x"])])
    return inner


def test_nested_arrays_within_depth(tmp_path: Path) -> None:
    element_type, items = nested_array(4)
    raw = RawGGUF().add_kv("test.nested", VT.ARRAY, items, element_type)
    raw.add_kv("test.after", VT.UINT8, 7)
    layout = parse(raw.write(tmp_path / "n.gguf"))
    assert layout.metadata == {"test.after": 7}


def test_tensor_name_of_64_bytes_is_allowed(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor("n" * 64, [4], QT.F32)
    (span,) = parse(raw.write(tmp_path / "n.gguf")).tensors
    assert span.name == "n" * 64


def test_reads_only_the_header(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", tensors={"w": np.ones((8, 32), np.float32)})
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = HeaderReader(fd, os.fstat(fd).st_size, str(path), limit=HEADER_LIMIT)
        layout = parse_gguf(reader)
    finally:
        os.close(fd)
    assert reader.consumed == layout.header_size
    assert reader.buffered[: layout.header_size] == path.read_bytes()[: layout.header_size]


def test_large_vocabulary_is_fast(tmp_path: Path) -> None:
    vocab = [f"token_{i}_Ġ" for i in range(150_000)]
    path = write_gguf(tmp_path / "big.gguf", vocab=vocab)
    started = time.perf_counter()
    layout = read_layout(path)
    assert time.perf_counter() - started < 3
    assert layout.header_size == layout.file_size


def test_appended_archive_is_trailing_data(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", tensors={"w": np.ones(8, np.float32)})
    with path.open("ab") as f:
        f.write(b"PK\x03\x04" + bytes(60))
    err = error_of(path)
    assert err.code == "GGUF_TRAILING_DATA"
    assert "64 bytes" in err.message


# -- malformed files: one rule each --------------------------------------------------


def minimal(**kw: object) -> RawGGUF:
    raw = RawGGUF(**kw)  # type: ignore[arg-type]
    raw.add_kv("general.architecture", VT.STRING, "llama")
    raw.add_tensor("w", [32], QT.F32)
    return raw


def write(tmp_path: Path, data: bytes, name: str = "bad.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_minimal_fixture_is_valid(tmp_path: Path) -> None:
    parse(minimal().write(tmp_path / "ok.gguf"))


def test_bad_magic(tmp_path: Path) -> None:
    err = error_of(minimal(magic=b"GGUG").write(tmp_path / "m.gguf"))
    assert err.code == "GGUF_BAD_MAGIC"
    assert "GGUG" in err.message


@pytest.mark.parametrize("version", [0, 1, 4, 3 << 24])
def test_bad_version(tmp_path: Path, version: int) -> None:
    err = error_of(minimal(version=version).write(tmp_path / "m.gguf"))
    assert err.code == "GGUF_BAD_VERSION"
    assert str(version) in err.message
    if version == 3 << 24:
        assert "big-endian" in err.message


def test_truncated_preamble(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, minimal().to_bytes()[:20])).code == "TRUNCATED"


def test_truncated_inside_kv(tmp_path: Path) -> None:
    raw = minimal()
    cut = 24 + len(raw.kvs[0]) - 3
    assert error_of(write(tmp_path, raw.to_bytes()[:cut])).code == "TRUNCATED"


def test_truncated_inside_tensor_infos(tmp_path: Path) -> None:
    raw = minimal()
    cut = len(raw.header()) - 4
    assert error_of(write(tmp_path, raw.to_bytes()[:cut])).code == "TRUNCATED"


def test_truncated_header_padding(tmp_path: Path) -> None:
    raw = minimal()
    assert raw.data_start() - len(raw.header()) > 1
    cut = len(raw.header()) + 1
    assert error_of(write(tmp_path, raw.to_bytes()[:cut])).code == "TRUNCATED"


def test_truncated_tensor_data(tmp_path: Path) -> None:
    raw = minimal().add_tensor("last", [64], QT.F32)
    err = error_of(write(tmp_path, raw.to_bytes()[:-100]))
    assert err.code == "TRUNCATED"
    assert err.tensor == "last"


def test_truncated_writer_file(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", tensors={"w": np.ones((4, 64), np.float32)})
    path.write_bytes(path.read_bytes()[:-600])
    err = error_of(path)
    assert err.code == "TRUNCATED"
    assert err.tensor == "w"


def fails_fast(path: Path, code: str) -> FormatError:
    """Parse a file whose header declares something huge: no big allocation, no delay."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(FormatError) as e:
            read_layout(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.value.code == code, e.value
    assert time.perf_counter() - started < 1
    assert peak < 4 << 20
    return e.value


def test_huge_string_length(tmp_path: Path) -> None:
    kv = gguf_string("general.name") + u32(VT.STRING) + u64(2**62) + b"abc"
    fails_fast(RawGGUF(kvs=[kv]).write(tmp_path / "s.gguf"), "GGUF_STRING_TOO_LARGE")


def test_string_just_over_the_limit(tmp_path: Path) -> None:
    kv = gguf_string("general.name") + u32(VT.STRING) + u64(gguf_format._MAX_STRING + 1)
    fails_fast(RawGGUF(kvs=[kv]).write(tmp_path / "s.gguf"), "GGUF_STRING_TOO_LARGE")


def test_huge_string_in_array(tmp_path: Path) -> None:
    kv = gguf_string("t.tokens") + u32(VT.ARRAY) + u32(VT.STRING) + u64(2)
    kv += gguf_string("ok") + u64(2**40)
    fails_fast(RawGGUF(kvs=[kv]).write(tmp_path / "s.gguf"), "GGUF_STRING_TOO_LARGE")


def test_string_longer_than_file(tmp_path: Path) -> None:
    kv = gguf_string("general.name") + u32(VT.STRING) + u64(1 << 20) + b"abc"
    fails_fast(RawGGUF(kvs=[kv]).write(tmp_path / "s.gguf"), "TRUNCATED")


@pytest.mark.parametrize("element_type", [VT.UINT8, VT.STRING, VT.ARRAY])
def test_huge_array_count(tmp_path: Path, element_type: int) -> None:
    kv = gguf_string("t.arr") + u32(VT.ARRAY) + u32(element_type) + u64(2**40)
    err = fails_fast(RawGGUF(kvs=[kv]).write(tmp_path / "a.gguf"), "GGUF_ARRAY_TOO_LARGE")
    assert str(2**40) in err.message


@pytest.mark.parametrize("element_type", [VT.UINT64, VT.STRING, VT.ARRAY])
def test_array_count_beyond_file(tmp_path: Path, element_type: int) -> None:
    kv = gguf_string("t.arr") + u32(VT.ARRAY) + u32(element_type) + u64(10_000_000)
    fails_fast(RawGGUF(kvs=[kv + bytes(64)]).write(tmp_path / "a.gguf"), "TRUNCATED")


def test_array_beyond_header_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf_format, "HEADER_LIMIT", 1000)
    raw = RawGGUF().add_kv("t.arr", VT.ARRAY, list(range(200)), VT.UINT64)
    fails_fast(raw.write(tmp_path / "a.gguf"), "HEADER_TOO_LARGE")


def test_header_limit_of_the_reader(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "v.gguf", vocab=[f"t{i}" for i in range(500)])
    fd = os.open(path, os.O_RDONLY)
    try:
        reader = HeaderReader(fd, os.fstat(fd).st_size, str(path), limit=1024)
        with pytest.raises(FormatError) as e:
            parse_gguf(reader)
    finally:
        os.close(fd)
    assert e.value.code == "HEADER_TOO_LARGE"


@pytest.mark.parametrize(
    ("tensor_count", "kv_count"), [(2**40, 0), (0, 2**63), (1_000_001, 0), (0, 1_000_001)]
)
def test_huge_counts(tmp_path: Path, tensor_count: int, kv_count: int) -> None:
    raw = RawGGUF(tensor_count=tensor_count, kv_count=kv_count)
    fails_fast(raw.write(tmp_path / "c.gguf"), "GGUF_COUNT_TOO_LARGE")


def test_counts_beyond_file(tmp_path: Path) -> None:
    raw = minimal(tensor_count=999_999)
    err = fails_fast(raw.write(tmp_path / "c.gguf"), "TRUNCATED")
    assert "999999 tensor infos need at least" in err.message


def test_duplicate_key(tmp_path: Path) -> None:
    raw = minimal().add_kv("general.license", VT.STRING, "mit")
    raw.add_kv("general.license", VT.STRING, "proprietary")
    err = error_of(raw.write(tmp_path / "d.gguf"))
    assert err.code == "GGUF_DUPLICATE_KEY"
    assert "general.license" in err.message


def test_duplicate_tensor_name(tmp_path: Path) -> None:
    raw = minimal().add_tensor("w", [32], QT.F32)
    err = error_of(raw.write(tmp_path / "d.gguf"))
    assert err.code == "GGUF_DUPLICATE_TENSOR"
    assert err.tensor == "w"


@pytest.mark.parametrize(
    ("vtype", "value"),
    [(VT.UINT32, 0), (VT.UINT32, 3), (VT.UINT32, 48), (VT.UINT32, 2 << 20), (VT.UINT64, 32)],
)
def test_bad_alignment(tmp_path: Path, vtype: int, value: int) -> None:
    raw = minimal().add_kv("general.alignment", vtype, value)
    err = error_of(raw.write(tmp_path / "a.gguf"))
    assert err.code == "GGUF_BAD_ALIGNMENT"


def test_misaligned_offset(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor("a", [3], QT.F32).add_tensor("b", [3], QT.F32, offset=12)
    err = error_of(raw.write(tmp_path / "o.gguf"))
    assert err.code == "GGUF_BAD_OFFSET"
    assert err.tensor == "b"
    assert (err.expected, err.actual) == ("32", "12")
    assert "not a multiple of 32" in err.message


def test_non_sequential_offset(tmp_path: Path) -> None:
    # an aligned gap between tensors could hide data that no tensor accounts for
    raw = RawGGUF().add_tensor("a", [8], QT.F32).add_tensor("b", [8], QT.F32, offset=64)
    err = error_of(raw.write(tmp_path / "o.gguf"))
    assert err.code == "GGUF_BAD_OFFSET"
    assert (err.expected, err.actual) == ("32", "64")


def test_overlapping_offset(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor("a", [8], QT.F32).add_tensor("b", [8], QT.F32, offset=0)
    err = error_of(raw.write(tmp_path / "o.gguf"))
    assert err.code == "GGUF_BAD_OFFSET"
    assert err.tensor == "b"


def test_first_offset_not_zero(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor("a", [8], QT.F32, offset=32)
    assert error_of(raw.write(tmp_path / "o.gguf")).code == "GGUF_BAD_OFFSET"


def test_nonzero_padding_before_data(tmp_path: Path) -> None:
    raw = minimal()
    gap = raw.data_start() - len(raw.header())
    assert gap > 0
    raw.header_padding = bytes(gap - 1) + b"\x01"
    err = error_of(raw.write(tmp_path / "p.gguf"))
    assert err.code == "GGUF_NONZERO_PADDING"
    assert str(raw.data_start() - 1) in err.message


@pytest.mark.parametrize("trailing", [b"\x00" * 32, b"x", b"PK\x03\x04"])
def test_trailing_data_after_last_tensor(tmp_path: Path, trailing: bytes) -> None:
    err = error_of(minimal(trailing=trailing).write(tmp_path / "t.gguf"))
    assert err.code == "GGUF_TRAILING_DATA"


def test_trailing_data_after_vocab_only_file(tmp_path: Path) -> None:
    raw = RawGGUF(trailing=b"\x00").add_kv("general.architecture", VT.STRING, "llama")
    assert error_of(raw.write(tmp_path / "t.gguf")).code == "GGUF_TRAILING_DATA"


@pytest.mark.parametrize("ggml_type", [4, 5, 31, 999, 2**32 - 1])
def test_unknown_ggml_type(tmp_path: Path, ggml_type: int) -> None:
    raw = RawGGUF().add_tensor("w", [32], ggml_type, b"")
    err = error_of(raw.write(tmp_path / "u.gguf"))
    assert err.code == "GGUF_UNKNOWN_TYPE"
    assert err.tensor == "w"
    assert str(ggml_type) in err.message


@pytest.mark.parametrize("dims", [[], [1, 1, 1, 1, 32]])
def test_bad_n_dims(tmp_path: Path, dims: list[int]) -> None:
    raw = RawGGUF().add_tensor("w", dims, QT.F32, b"\x00" * 128)
    err = error_of(raw.write(tmp_path / "d.gguf"))
    assert err.code == "GGUF_BAD_DIMS"
    assert str(len(dims)) in err.message


def test_n_dims_huge(tmp_path: Path) -> None:
    info = gguf_string("w") + u32(2**32 - 1) + bytes(64)
    raw = RawGGUF(tensor_count=1, kvs=[])
    path = write(tmp_path, raw.header() + info)
    assert error_of(path).code == "GGUF_BAD_DIMS"


@pytest.mark.parametrize(
    ("dims", "ggml_type"),
    [([100], QT.Q4_K), ([16, 2], QT.Q8_0), ([255, 1], QT.Q6_K)],
)
def test_shape_not_multiple_of_block(tmp_path: Path, dims: list[int], ggml_type: int) -> None:
    raw = RawGGUF().add_tensor("w", dims, ggml_type, b"\x00" * 64)
    err = error_of(raw.write(tmp_path / "s.gguf"))
    assert err.code == "GGUF_BAD_SHAPE"
    assert err.tensor == "w"
    assert "block size" in err.message


@pytest.mark.parametrize("dims", [[2**32, 2**31], [2**63, 0], [2**64 - 1]])
def test_element_count_overflow(tmp_path: Path, dims: list[int]) -> None:
    raw = RawGGUF().add_tensor("w", dims, QT.F32, b"")
    err = error_of(raw.write(tmp_path / "s.gguf"))
    assert err.code == "GGUF_BAD_SHAPE"


def test_huge_tensor_is_truncated_not_allocated(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor("w", [2**31, 2**30], QT.F32, b"")
    err = fails_fast(raw.write(tmp_path / "s.gguf"), "TRUNCATED")
    assert err.tensor == "w"


@pytest.mark.parametrize("name", [b"", b"n" * 65, b"bad\x00name", b"esc\x1b[2Jname"])
def test_bad_tensor_name(tmp_path: Path, name: bytes) -> None:
    raw = RawGGUF().add_tensor(name, [32], QT.F32)
    assert error_of(raw.write(tmp_path / "n.gguf")).code == "GGUF_BAD_TENSOR_NAME"


def test_huge_tensor_name_length(tmp_path: Path) -> None:
    info = u64(2**60) + b"abc"
    path = write(tmp_path, RawGGUF(tensor_count=1).header() + info + bytes(64))
    fails_fast(path, "GGUF_BAD_TENSOR_NAME")


def test_invalid_utf8_value(tmp_path: Path) -> None:
    raw = minimal().add_kv("general.name", VT.STRING, b"caf\xe9")
    err = error_of(raw.write(tmp_path / "s.gguf"))
    assert err.code == "GGUF_BAD_STRING"
    assert "general.name" in err.message


def test_invalid_utf8_array_element(tmp_path: Path) -> None:
    raw = minimal().add_kv("t.tokens", VT.ARRAY, [b"ok", b"ok", b"\xff\xfe"], VT.STRING)
    err = error_of(raw.write(tmp_path / "s.gguf"))
    assert err.code == "GGUF_BAD_STRING"
    assert "element 2" in err.message


def test_invalid_utf8_tensor_name(tmp_path: Path) -> None:
    raw = RawGGUF().add_tensor(b"w\xc3", [32], QT.F32)
    assert error_of(raw.write(tmp_path / "s.gguf")).code == "GGUF_BAD_STRING"


@pytest.mark.parametrize("key", [b"", "general.licenѕe".encode(), b"tab\tkey", b"\xff"])
def test_bad_key(tmp_path: Path, key: bytes) -> None:
    raw = minimal().add_kv(key, VT.STRING, "x")
    assert error_of(raw.write(tmp_path / "k.gguf")).code == "GGUF_BAD_KEY"


def test_huge_key_length(tmp_path: Path) -> None:
    raw = RawGGUF(kvs=[u64(2**40) + b"general"])
    fails_fast(raw.write(tmp_path / "k.gguf"), "GGUF_BAD_KEY")


def test_unknown_value_type(tmp_path: Path) -> None:
    kv = gguf_string("t.x") + u32(13) + bytes(8)
    err = error_of(RawGGUF(kvs=[kv]).write(tmp_path / "v.gguf"))
    assert err.code == "GGUF_BAD_VALUE_TYPE"
    assert "13" in err.message


def test_unknown_array_element_type(tmp_path: Path) -> None:
    kv = gguf_string("t.x") + u32(VT.ARRAY) + u32(99) + u64(1) + bytes(8)
    err = error_of(RawGGUF(kvs=[kv]).write(tmp_path / "v.gguf"))
    assert err.code == "GGUF_BAD_VALUE_TYPE"


def test_chat_template_must_be_a_string(tmp_path: Path) -> None:
    raw = minimal().add_kv("tokenizer.chat_template", VT.UINT32, 1)
    assert error_of(raw.write(tmp_path / "c.gguf")).code == "GGUF_BAD_VALUE_TYPE"


def test_bool_must_be_0_or_1(tmp_path: Path) -> None:
    raw = minimal().add_kv("t.flag", VT.BOOL, 2)
    assert error_of(raw.write(tmp_path / "b.gguf")).code == "GGUF_BAD_VALUE"
    raw = minimal().add_kv("t.flags", VT.ARRAY, [0, 1, 7], VT.BOOL)
    assert error_of(raw.write(tmp_path / "b2.gguf")).code == "GGUF_BAD_VALUE"


def test_arrays_nested_too_deep(tmp_path: Path) -> None:
    element_type, items = nested_array(5)
    raw = minimal().add_kv("t.deep", VT.ARRAY, items, element_type)
    assert error_of(raw.write(tmp_path / "n.gguf")).code == "GGUF_ARRAY_TOO_DEEP"


def test_kv_bytes_are_exact(tmp_path: Path) -> None:
    """A fixture sanity check: gguf_kv encodes what GGUFWriter writes."""
    path = write_gguf(tmp_path / "m.gguf", arch="llama")
    expected = gguf_kv("general.architecture", VT.STRING, "llama")
    assert path.read_bytes()[24 : 24 + len(expected)] == expected
