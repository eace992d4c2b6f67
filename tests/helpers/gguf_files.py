"""GGUF fixtures for the test-suite.

Two builders:

* :func:`write_gguf` writes a real file with ``gguf.GGUFWriter`` (what
  llama.cpp's converters produce), for valid models.
* :class:`RawGGUF` assembles the bytes by hand, field by field, so a test can
  break exactly one rule (a count, an offset, a padding byte) and nothing else.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, GGUFWriter
from gguf.quants import quantize

VT = GGUFValueType
QT = GGMLQuantizationType


@dataclass(frozen=True)
class QuantTensor:
    """A tensor stored as raw ggml blocks: ``data`` is uint8 with rows of block bytes."""

    data: npt.NDArray[np.uint8]
    qtype: GGMLQuantizationType


TensorValue = npt.NDArray[Any] | QuantTensor


def quantized(array: npt.NDArray[Any], qtype: GGMLQuantizationType = QT.Q8_0) -> QuantTensor:
    """Quantize with gguf's reference implementation (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, ...)."""
    return QuantTensor(np.asarray(quantize(array.astype(np.float32), qtype), np.uint8), qtype)


def random_quant(
    shape: Sequence[int], qtype: GGMLQuantizationType, *, seed: int = 0
) -> QuantTensor:
    """Random bytes of the right size for a ``qtype`` tensor of logical ``shape``.

    ``shape`` is in numpy order (innermost dimension last, a multiple of the block size);
    meant for types gguf cannot quantize, such as the K-quants.
    """
    block, type_size = GGML_QUANT_SIZES[qtype]
    *outer, inner = shape
    assert inner % block == 0, f"{inner} is not a multiple of the {qtype.name} block {block}"
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(*outer, inner // block * type_size), dtype=np.uint8)
    return QuantTensor(data, qtype)


def tensor_bytes(value: TensorValue) -> bytes:
    """The bytes a tensor occupies in the file's data section."""
    if isinstance(value, QuantTensor):
        return value.data.tobytes()
    return np.ascontiguousarray(value).tobytes()


def write_gguf(
    path: Path | str,
    *,
    tensors: Mapping[str, TensorValue] | None = None,
    arch: str = "llama",
    name: str | None = None,
    license: str | None = None,
    file_type: int | None = None,
    chat_template: str | None = None,
    base_models: Sequence[Mapping[str, str]] = (),
    alignment: int | None = None,
    vocab: Sequence[str] | None = None,
    extra: Mapping[str, tuple[GGUFValueType, Any]] | None = None,
) -> Path:
    """Write a GGUF v3 file with ``gguf.GGUFWriter`` and return its path.

    ``tensors`` maps names to numpy arrays (F32, F16, F64, I8..I64) or
    :class:`QuantTensor`; ``base_models`` are ``general.base_model.{i}.{field}``
    values, e.g. ``[{"name": "Llama 3", "organization": "Meta"}]``; ``vocab`` adds
    token, score and token-type arrays; ``extra`` maps keys to ``(type, value)``
    (for ARRAY the value is a list whose element type gguf infers).
    """
    path = Path(path)
    writer = GGUFWriter(path, arch=arch)
    if name is not None:
        writer.add_name(name)
    if license is not None:
        writer.add_license(license)
    if file_type is not None:
        writer.add_file_type(file_type)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    if base_models:
        writer.add_base_model_count(len(base_models))
        for i, model in enumerate(base_models):
            for key, value in model.items():
                writer.add_string(f"general.base_model.{i}.{key}", value)
    if vocab is not None:
        writer.add_tokenizer_model("gpt2")
        writer.add_token_list(list(vocab))
        writer.add_token_scores([0.0] * len(vocab))
        writer.add_token_types([1] * len(vocab))
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    for key, (vtype, raw_value) in (extra or {}).items():
        writer.add_key_value(key, raw_value, vtype)
    for tname, tensor in (tensors or {}).items():
        if isinstance(tensor, QuantTensor):
            writer.add_tensor(tname, tensor.data, raw_dtype=tensor.qtype)
        else:
            writer.add_tensor(tname, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# -- raw bytes ------------------------------------------------------------------

_SCALAR_FORMATS = {
    VT.UINT8: "<B",
    VT.INT8: "<b",
    VT.UINT16: "<H",
    VT.INT16: "<h",
    VT.UINT32: "<I",
    VT.INT32: "<i",
    VT.FLOAT32: "<f",
    VT.BOOL: "<B",
    VT.UINT64: "<Q",
    VT.INT64: "<q",
    VT.FLOAT64: "<d",
}


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def gguf_string(s: str | bytes) -> bytes:
    """A GGUF string: u64 length, then the bytes (``str`` is UTF-8 encoded)."""
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return u64(len(raw)) + raw


def gguf_value(vtype: int, value: Any, element_type: int | None = None) -> bytes:
    """Encode a value without its type tag; arrays take ``element_type`` and a list."""
    if vtype == VT.STRING:
        return gguf_string(value)
    if vtype == VT.ARRAY:
        assert element_type is not None, "arrays need element_type"
        items: list[Any] = list(value)
        if element_type == VT.ARRAY:
            # nested: each item is (element_type, list)
            body = b"".join(gguf_value(VT.ARRAY, v, t) for t, v in items)
        else:
            body = b"".join(gguf_value(element_type, v) for v in items)
        return u32(element_type) + u64(len(items)) + body
    return struct.pack(_SCALAR_FORMATS[GGUFValueType(vtype)], value)


def gguf_kv(key: str | bytes, vtype: int, value: Any, element_type: int | None = None) -> bytes:
    """One KV pair: key string, u32 value type, value."""
    return gguf_string(key) + u32(vtype) + gguf_value(vtype, value, element_type)


def gguf_tensor_info(name: str | bytes, dims: Sequence[int], ggml_type: int, offset: int) -> bytes:
    """One tensor info: name, u32 n_dims, u64 dims (innermost first), u32 type, u64 offset."""
    return (
        gguf_string(name)
        + u32(len(dims))
        + b"".join(u64(d) for d in dims)
        + u32(ggml_type)
        + u64(offset)
    )


def ggml_nbytes(dims: Sequence[int], ggml_type: int) -> int:
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    n = 1
    for d in dims:
        n *= d
    return n // block * type_size


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


@dataclass
class RawTensor:
    """A tensor for :class:`RawGGUF`; ``offset=None`` means the correct packed offset."""

    name: str | bytes
    dims: Sequence[int]  # innermost first, as stored
    ggml_type: int
    data: bytes
    offset: int | None = None


@dataclass
class RawGGUF:
    """A GGUF file assembled by hand; every field can be overridden to break one rule.

    ``kvs`` are encoded pairs (:func:`gguf_kv`) or any raw bytes. ``alignment`` lays
    out the file; declaring it is up to the test (``gguf_kv("general.alignment", ...)``).
    """

    kvs: list[bytes] = field(default_factory=list)
    tensors: list[RawTensor] = field(default_factory=list)
    magic: bytes = b"GGUF"
    version: int = 3
    alignment: int = 32
    tensor_count: int | None = None  # None: len(tensors)
    kv_count: int | None = None  # None: len(kvs)
    header_padding: bytes | None = None  # None: zeros up to the alignment
    pad_last: bool = True  # pad the last tensor up to the alignment
    trailing: bytes = b""  # appended at the very end

    def add_kv(
        self, key: str | bytes, vtype: int, value: Any, element_type: int | None = None
    ) -> RawGGUF:
        self.kvs.append(gguf_kv(key, vtype, value, element_type))
        return self

    def add_tensor(
        self,
        name: str | bytes,
        dims: Sequence[int],
        ggml_type: int = QT.F32,
        data: bytes | None = None,
        *,
        offset: int | None = None,
        seed: int = 0,
    ) -> RawGGUF:
        """Add a tensor; ``data`` defaults to random bytes of the right size."""
        if data is None:
            nbytes = ggml_nbytes(dims, ggml_type)
            data = np.random.default_rng(seed).integers(0, 256, nbytes, np.uint8).tobytes()
        self.tensors.append(RawTensor(name, dims, ggml_type, data, offset))
        return self

    def header(self) -> bytes:
        """Preamble, KV pairs and tensor infos, without the padding before the data."""
        out = bytearray(self.magic + u32(self.version))
        out += u64(len(self.tensors) if self.tensor_count is None else self.tensor_count)
        out += u64(len(self.kvs) if self.kv_count is None else self.kv_count)
        for kv in self.kvs:
            out += kv
        offset = 0
        for t in self.tensors:
            out += gguf_tensor_info(
                t.name, t.dims, t.ggml_type, offset if t.offset is None else t.offset
            )
            offset += _align(len(t.data), self.alignment)
        return bytes(out)

    def data_start(self) -> int:
        head = self.header()
        if self.header_padding is not None:
            return len(head) + len(self.header_padding)
        return _align(len(head), self.alignment)

    def to_bytes(self) -> bytes:
        head = self.header()
        out = bytearray(head)
        if self.header_padding is None:
            out += bytes(_align(len(head), self.alignment) - len(head))
        else:
            out += self.header_padding
        for i, t in enumerate(self.tensors):
            out += t.data
            if self.pad_last or i < len(self.tensors) - 1:
                out += bytes(_align(len(t.data), self.alignment) - len(t.data))
        out += self.trailing
        return bytes(out)

    def write(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path
