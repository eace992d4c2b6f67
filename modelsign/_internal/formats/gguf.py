"""Strict reader for GGUF v2/v3 headers.

Written from the format rules (ggml's ``docs/gguf.md`` and the checks of its
``gguf.cpp`` loader) rather than on top of ``gguf.GGUFReader``, which accepts
trailing data, non-zero padding and non-contiguous tensor offsets: any byte a
runtime could interpret differently from this reader would be a place to hide
unsigned content. Only constants come from the ``gguf`` package.

Every length read from the file is bounded before anything is allocated or
read for it, so a hostile header fails fast instead of exhausting memory.
"""

from __future__ import annotations

import itertools
import struct
from typing import Final, NamedTuple

from gguf.constants import GGML_QUANT_SIZES, GGUFValueType, LlamaFileType

from ...codes import Code
from ...errors import FormatError
from ..findings import Finding
from .layout import HeaderReader, MetadataValue, TensorSpan, WeightLayout

HEADER_LIMIT: Final = 256 << 20
"""Maximum header size in bytes: preamble, KV pairs, tensor infos and padding."""

_MAGIC: Final = b"GGUF"
_VERSIONS: Final = (2, 3)  # both use u64 counts and lengths; v1 (u32) is obsolete

_MAX_TENSORS: Final = 1_000_000
_MAX_KVS: Final = 1_000_000
_MAX_STRING: Final = 16 << 20  # bytes
_MAX_ARRAY: Final = 16 << 20  # elements
_MAX_ARRAY_DEPTH: Final = 4  # a top-level array has depth 1
_MAX_KEY: Final = 65535  # bytes, as the GGUF spec requires
_MAX_TENSOR_NAME: Final = 64  # bytes, per the GGUF spec (ggml itself loads at most 63)
_MAX_DIMS: Final = 4
_MAX_ELEMENTS: Final = 1 << 63  # ggml counts elements in an int64
_DEFAULT_ALIGNMENT: Final = 32
_MAX_ALIGNMENT: Final = 1 << 20

# Smallest encodings, used to reject counts that cannot fit in the file before looping.
_MIN_KV: Final = 8 + 1 + 4 + 1  # key length, 1-byte key, value type, u8 value
_MIN_TENSOR_INFO: Final = 8 + 1 + 4 + 8 + 4 + 8  # name length, name, n_dims, 1 dim, type, offset
_MIN_STRING: Final = 8
_MIN_ARRAY: Final = 4 + 8  # element type, count

_ALIGNMENT_KEY: Final = "general.alignment"
_FILE_TYPE_KEY: Final = "general.file_type"
_CHAT_TEMPLATE_KEY: Final = "tokenizer.chat_template"

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ARRAY_HEAD = struct.Struct("<IQ")
_TYPE_AND_OFFSET = struct.Struct("<IQ")

_BOOL: Final = int(GGUFValueType.BOOL)
_STRING: Final = int(GGUFValueType.STRING)
_ARRAY: Final = int(GGUFValueType.ARRAY)
_UINT32: Final = int(GGUFValueType.UINT32)
_SCALARS: Final[dict[int, struct.Struct]] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_VALUE_TYPE_NAMES: Final[dict[int, str]] = {int(t): t.name for t in GGUFValueType}

# ggml type id -> (name, block size in elements, bytes per block)
_GGML_TYPES: Final[dict[int, tuple[str, int, int]]] = {
    int(t): (t.name, block, size) for t, (block, size) in GGML_QUANT_SIZES.items()
}
_FILE_TYPES: Final = frozenset(int(t) for t in LlamaFileType)

# C0 controls and DEL: they would let a name rewrite the terminal line that reports it,
# and a NUL would make ggml (C strings) see a different name than we do.
_CONTROL: Final = bytes(range(0x20)) + b"\x7f"


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _type_name(vtype: int) -> str:
    return _VALUE_TYPE_NAMES.get(vtype, f"unknown type {vtype}")


class _TensorInfo(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    n_elements: int
    offset: int  # relative to the data section
    nbytes: int


class _Parser:
    """One pass over a GGUF header; every check raises a ``FormatError``."""

    def __init__(self, reader: HeaderReader) -> None:
        self.r = reader
        self.findings: list[Finding] = []
        self.metadata: dict[str, MetadataValue] = {}
        self.alignment = _DEFAULT_ALIGNMENT
        self.chat_template: str | None = None

    def error(
        self,
        code: str,
        message: str,
        *,
        tensor: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> FormatError:
        return FormatError(
            message, code=code, path=self.r.path, tensor=tensor, expected=expected, actual=actual
        )

    def need(self, nbytes: int, what: str) -> None:
        """Fail before a loop or read whose minimum size exceeds what the file has left."""
        at = self.r.consumed
        if at + nbytes > HEADER_LIMIT:
            raise self.error(
                "HEADER_TOO_LARGE",
                f"{what} need at least {nbytes} bytes from byte {at}, "
                f"beyond the {HEADER_LIMIT}-byte header limit",
            )
        left = self.r.size - at
        if nbytes > left:
            raise self.error(
                "TRUNCATED",
                f"file is truncated: {what} need at least {nbytes} bytes from byte {at}, "
                f"but only {left} remain",
            )

    def u32(self, what: str) -> int:
        value: int = _U32.unpack(self.r.read(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = _U64.unpack(self.r.read(8, what))[0]
        return value

    def decode(self, raw: bytes, what: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(
                "GGUF_BAD_STRING",
                f"{what} is not valid UTF-8 (byte {exc.start} of {len(raw)}: {raw[:64]!r})",
            ) from None

    def string(self, what: str) -> str:
        n = self.u64(f"length of {what}")
        if n > _MAX_STRING:
            raise self.error(
                "GGUF_STRING_TOO_LARGE",
                f"{what} declares {n} bytes; strings are limited to {_MAX_STRING} bytes",
            )
        return self.decode(self.r.read(n, what), what)

    # -- KV section -------------------------------------------------------------

    def key(self, index: int) -> str:
        what = f"key of KV pair {index}"
        n = self.u64(f"length of {what}")
        if not 0 < n <= _MAX_KEY:
            raise self.error(
                "GGUF_BAD_KEY", f"{what} has length {n}; keys must be 1..{_MAX_KEY} bytes"
            )
        raw = self.r.read(n, what)
        if not raw.isascii() or raw.translate(None, _CONTROL) != raw:
            raise self.error(
                "GGUF_BAD_KEY",
                f"{what} {raw[:80]!r} is not printable ASCII, as GGUF keys must be",
            )
        return raw.decode("ascii")

    def value(self, vtype: int, key: str) -> MetadataValue | None:
        """Read one KV value; arrays are validated and skipped (``None``)."""
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            raw = self.r.read(scalar.size, f"value of {key!r}")
            if vtype == _BOOL and raw[0] > 1:
                raise self.error(
                    "GGUF_BAD_VALUE", f"bool value of {key!r} is {raw[0]}; it must be 0 or 1"
                )
            value: MetadataValue = scalar.unpack(raw)[0]
            return value
        if vtype == _STRING:
            return self.string(f"value of {key!r}")
        if vtype == _ARRAY:
            self.array(key, 1)
            return None
        raise self.error("GGUF_BAD_VALUE_TYPE", f"{key!r} has unknown value type {vtype}")

    def array(self, key: str, depth: int) -> None:
        what = f"array {key!r}"
        etype, count = _ARRAY_HEAD.unpack(self.r.read(_ARRAY_HEAD.size, f"header of {what}"))
        if count > _MAX_ARRAY:
            raise self.error(
                "GGUF_ARRAY_TOO_LARGE",
                f"{what} declares {count} elements; arrays are limited to {_MAX_ARRAY}",
            )
        scalar = _SCALARS.get(etype)
        if scalar is not None:
            nbytes = count * scalar.size
            self.need(nbytes, f"the {count} {_type_name(etype)} values of {what}")
            data = self.r.read(nbytes, what)
            if etype == _BOOL and data.translate(None, b"\x00\x01"):
                raise self.error("GGUF_BAD_VALUE", f"{what} holds a bool that is not 0 or 1")
        elif etype == _STRING:
            self.need(count * _MIN_STRING, f"the {count} strings of {what}")
            self.string_elements(count, what)
        elif etype == _ARRAY:
            if depth >= _MAX_ARRAY_DEPTH:
                raise self.error(
                    "GGUF_ARRAY_TOO_DEEP",
                    f"{what} nests arrays deeper than {_MAX_ARRAY_DEPTH} levels",
                )
            self.need(count * _MIN_ARRAY, f"the {count} arrays of {what}")
            for _ in range(count):
                self.array(key, depth + 1)
        else:
            raise self.error("GGUF_BAD_VALUE_TYPE", f"{what} has unknown element type {etype}")

    def string_elements(self, count: int, what: str) -> None:
        """Validate ``count`` strings; each read also takes the next element's length.

        Vocabularies hold 100k+ strings, so halving the reads matters.
        """
        if count == 0:
            return
        elem = f"string element of {what}"
        n = self.u64(f"length of {elem}")
        last = count - 1
        for i in range(count):
            if n > _MAX_STRING:
                raise self.error(
                    "GGUF_STRING_TOO_LARGE",
                    f"element {i} of {what} declares {n} bytes; "
                    f"strings are limited to {_MAX_STRING} bytes",
                )
            if i == last:
                self.decode(self.r.read(n, elem), f"element {i} of {what}")
                return
            chunk = self.r.read(n + 8, elem)
            self.decode(chunk[:n], f"element {i} of {what}")
            n = _U64.unpack_from(chunk, n)[0]

    # -- tensor infos -----------------------------------------------------------

    def tensor_name(self, index: int) -> str:
        what = f"name of tensor {index}"
        n = self.u64(f"length of {what}")
        if not 0 < n <= _MAX_TENSOR_NAME:
            raise self.error(
                "GGUF_BAD_TENSOR_NAME",
                f"{what} has length {n}; tensor names must be 1..{_MAX_TENSOR_NAME} bytes",
            )
        raw = self.r.read(n, what)
        name = self.decode(raw, what)
        if raw.translate(None, _CONTROL) != raw:
            raise self.error(
                "GGUF_BAD_TENSOR_NAME",
                f"{what} {name!r} contains control characters",
                tensor=name,
            )
        return name

    # -- sections ---------------------------------------------------------------

    def preamble(self) -> tuple[int, int, int]:
        """Magic and version; return ``(version, tensor_count, kv_count)``."""
        magic = self.r.read(4, "GGUF magic")
        if magic != _MAGIC:
            raise self.error(
                "GGUF_BAD_MAGIC", f"file starts with {magic!r}, not the GGUF magic b'GGUF'"
            )
        version = self.u32("GGUF version")
        if version not in _VERSIONS:
            hint = ""
            if version & 0xFFFF == 0 and version >> 16:
                hint = " (this looks like a big-endian GGUF file, which is not supported)"
            raise self.error(
                "GGUF_BAD_VERSION",
                f"GGUF version {version} is not supported; only versions 2 and 3 are{hint}",
            )
        tensor_count = self.u64("tensor count")
        kv_count = self.u64("KV count")
        if tensor_count > _MAX_TENSORS:
            raise self.error(
                "GGUF_COUNT_TOO_LARGE",
                f"tensor count {tensor_count} exceeds the limit of {_MAX_TENSORS}",
            )
        if kv_count > _MAX_KVS:
            raise self.error(
                "GGUF_COUNT_TOO_LARGE", f"KV count {kv_count} exceeds the limit of {_MAX_KVS}"
            )
        self.need(
            kv_count * _MIN_KV + tensor_count * _MIN_TENSOR_INFO,
            f"{kv_count} KV pairs and {tensor_count} tensor infos",
        )
        return version, tensor_count, kv_count

    def kv_pairs(self, count: int) -> None:
        """Read the KV section into ``metadata``, ``alignment`` and ``chat_template``."""
        keys: set[str] = set()
        for i in range(count):
            key = self.key(i)
            if key in keys:
                raise self.error("GGUF_DUPLICATE_KEY", f"KV key {key!r} appears more than once")
            keys.add(key)
            vtype = self.u32(f"value type of {key!r}")
            value = self.value(vtype, key)
            if key == _ALIGNMENT_KEY:
                self.alignment = self.check_alignment(vtype, value)
            elif key == _CHAT_TEMPLATE_KEY:
                if not isinstance(value, str):
                    raise self.error(
                        "GGUF_BAD_VALUE_TYPE",
                        f"{key!r} has type {_type_name(vtype)}; it must be a STRING",
                    )
                self.chat_template = value
                self.findings.append(_template_finding(self.r.path, key, value))
                continue  # reported on its own, not as metadata
            elif key.startswith(_CHAT_TEMPLATE_KEY + ".") and isinstance(value, str):
                self.findings.append(_template_finding(self.r.path, key, value))
            elif key == _FILE_TYPE_KEY:
                self.check_file_type(vtype, value)
            if value is not None:
                self.metadata[key] = value

    def check_alignment(self, vtype: int, value: MetadataValue | None) -> int:
        if vtype != _UINT32 or not isinstance(value, int):
            raise self.error(
                "GGUF_BAD_ALIGNMENT",
                f"{_ALIGNMENT_KEY} has type {_type_name(vtype)}; it must be UINT32",
            )
        if value <= 0 or value & (value - 1) or value > _MAX_ALIGNMENT:
            raise self.error(
                "GGUF_BAD_ALIGNMENT",
                f"{_ALIGNMENT_KEY} is {value}; it must be a power of two no larger "
                f"than {_MAX_ALIGNMENT}",
            )
        return value

    def check_file_type(self, vtype: int, value: MetadataValue | None) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value in _FILE_TYPES:
            return
        shown = "an array" if value is None else repr(value)
        self.findings.append(
            Finding(
                code=Code.GGUF_UNKNOWN_FILE_TYPE,
                severity="warning",
                message=(
                    f"{_FILE_TYPE_KEY} is {shown} ({_type_name(vtype)}), which is not a known "
                    "llama file type; the quantization it claims cannot be interpreted"
                ),
                file=self.r.path,
            )
        )

    def tensor_infos(self, count: int) -> list[_TensorInfo]:
        """Read tensor infos; offsets must be exactly the packed, aligned sequence."""
        infos: list[_TensorInfo] = []
        names: set[str] = set()
        expected_offset = 0
        for i in range(count):
            name = self.tensor_name(i)
            if name in names:
                raise self.error(
                    "GGUF_DUPLICATE_TENSOR",
                    f"tensor name {name!r} appears more than once",
                    tensor=name,
                )
            names.add(name)
            n_dims = self.u32(f"n_dims of tensor {name!r}")
            if not 1 <= n_dims <= _MAX_DIMS:
                raise self.error(
                    "GGUF_BAD_DIMS",
                    f"tensor has {n_dims} dimensions; GGUF allows 1..{_MAX_DIMS}",
                    tensor=name,
                )
            rest = self.r.read(8 * n_dims + _TYPE_AND_OFFSET.size, f"info of tensor {name!r}")
            dims: tuple[int, ...] = struct.unpack_from(f"<{n_dims}Q", rest)
            ggml_type, offset = _TYPE_AND_OFFSET.unpack_from(rest, 8 * n_dims)
            n_elements = 1
            for d in dims:
                n_elements *= d
            if n_elements >= _MAX_ELEMENTS or any(d >= _MAX_ELEMENTS for d in dims):
                raise self.error(
                    "GGUF_BAD_SHAPE",
                    f"shape {list(dims)} overflows ggml's int64 element count",
                    tensor=name,
                )
            known = _GGML_TYPES.get(ggml_type)
            if known is None:
                raise self.error("GGUF_UNKNOWN_TYPE", f"unknown ggml type {ggml_type}", tensor=name)
            dtype, block, type_size = known
            if dims[0] % block:
                raise self.error(
                    "GGUF_BAD_SHAPE",
                    f"first dimension {dims[0]} of shape {list(dims)} is not a multiple of "
                    f"the {dtype} block size {block}",
                    tensor=name,
                )
            if offset != expected_offset:
                misaligned = (
                    f", not a multiple of {self.alignment}," if offset % self.alignment else ""
                )
                raise self.error(
                    "GGUF_BAD_OFFSET",
                    f"data offset {offset}{misaligned} is not the packed offset "
                    f"{expected_offset} that follows the previous tensor",
                    tensor=name,
                    expected=str(expected_offset),
                    actual=str(offset),
                )
            nbytes = n_elements // block * type_size
            infos.append(_TensorInfo(name, dtype, dims, n_elements, offset, nbytes))
            expected_offset += _align(nbytes, self.alignment)
        return infos

    def data_start(self, has_tensors: bool) -> int:
        """Read the zero padding that ends the header; return the header size."""
        ti_end = self.r.consumed
        start = _align(ti_end, self.alignment)
        if not has_tensors and self.r.size == ti_end:
            return ti_end  # a vocab-only file may stop right after the tensor infos
        pad = self.r.read(start - ti_end, "padding before the data section")
        if pad.count(0) != len(pad):
            first = ti_end + len(pad) - len(pad.lstrip(b"\x00"))
            raise self.error(
                "GGUF_NONZERO_PADDING",
                f"padding [{ti_end}, {start}) before the data section has a non-zero "
                f"byte at offset {first}",
            )
        return start

    def spans(
        self, infos: list[_TensorInfo], header_size: int
    ) -> tuple[tuple[TensorSpan, ...], tuple[tuple[int, int], ...]]:
        """Place tensors in the file and check that the file ends with the last one."""
        spans = tuple(
            TensorSpan(
                name=t.name,
                dtype=t.dtype,
                shape=t.shape,
                start=header_size + t.offset,
                end=header_size + t.offset + t.nbytes,
                n_elements=t.n_elements,
            )
            for t in infos
        )
        size = self.r.size
        data_end = spans[-1].end if spans else header_size
        if size < data_end:
            short = next(s for s in spans if s.end > size)
            raise self.error(
                "TRUNCATED",
                f"file is truncated: tensor data [{short.start}, {short.end}) extends past "
                f"the end of the file at {size} bytes",
                tensor=short.name,
            )
        aligned_end = _align(data_end, self.alignment)
        if size > aligned_end:
            raise self.error(
                "GGUF_TRAILING_DATA",
                f"{size - aligned_end} bytes follow the end of the tensor data at {data_end} "
                f"and its padding to {aligned_end}; the file has {size} bytes",
            )
        padding = [(a.end, b.start) for a, b in itertools.pairwise(spans) if a.end < b.start]
        if spans and data_end < size:
            padding.append((data_end, size))
        return spans, tuple(padding)


def parse_gguf(reader: HeaderReader) -> WeightLayout:
    """Strictly parse a GGUF v2/v3 file's header and lay out the rest of the file.

    Reads the header (up to the aligned start of the data section) through
    ``reader`` and never a byte of tensor data; the returned padding ranges
    must be checked for zeros by the caller while it streams the data.
    """
    p = _Parser(reader)
    version, tensor_count, kv_count = p.preamble()
    kv_start = reader.consumed
    p.kv_pairs(kv_count)
    kv_end = reader.consumed
    infos = p.tensor_infos(tensor_count)
    header_size = p.data_start(bool(infos))
    tensors, padding = p.spans(infos, header_size)
    return WeightLayout(
        format="gguf",
        file_size=reader.size,
        header_size=header_size,
        tensors=tensors,
        padding=padding,
        metadata=p.metadata,
        findings=tuple(p.findings),
        version=version,
        alignment=p.alignment,
        kv_range=(kv_start, kv_end),
        chat_template=p.chat_template,
    )


def _template_finding(path: str, key: str, template: str) -> Finding:
    return Finding(
        code=Code.GGUF_CHAT_TEMPLATE,
        severity="warning",
        message=(
            f"{key} holds a Jinja template ({len(template.encode('utf-8'))} bytes) that "
            "inference runtimes execute to build every prompt; templates can change model "
            "behaviour and run code in runtimes that render them unsandboxed: review it"
        ),
        file=path,
    )
