"""Strict safetensors header reader.

The reference (Rust) validator accepts inputs that parsers disagree on or that
can hide content: duplicate keys (last one wins in some parsers, first in
others), whitespace before the header, unbounded header padding, unknown entry
fields and escaped tensor names. This reader rejects what can change the
meaning of a file and records a warning for what is merely unusual. It reads
only the header; the returned layout accounts for every byte of the file.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from ...codes import Code
from ...errors import FormatError
from .._json import encodable, unique_keys
from ..findings import Finding
from .layout import HeaderReader, MetadataValue, TensorSpan, WeightLayout

HEADER_LIMIT: int = 100_000_000
"""Largest accepted header JSON, in bytes (the reference validator's cap)."""

MAX_TENSORS: int = 1_000_000
"""Most tensors accepted in one file: bounds the work a tiny-entry header can cause."""

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
"""Every dtype of safetensors 0.8.0 (case-sensitive) and its size in bits per element."""

METADATA_KEY = "__metadata__"
_ENTRY_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_U64_MAX = (1 << 64) - 1
_JSON_WS = re.compile(r"[ \t\n\r]*")
_WRITER_PADDING = 7  # writers pad 8 + N to a multiple of 8 with spaces


def looks_like_safetensors(head: bytes) -> bool:
    """Cheap content sniff: a plausible little-endian u64 header size, then ``{``."""
    if len(head) < 9:
        return False
    (n,) = struct.unpack_from("<Q", head)
    if not 0 < n <= HEADER_LIMIT or head[8:9] != b"{":
        return False
    # After '{' a real header continues with a key, the closing brace, or whitespace.
    return len(head) < 10 or head[9:10] in (b'"', b"}", b" ", b"\t", b"\n", b"\r")


def parse_safetensors(reader: HeaderReader) -> WeightLayout:
    """Strictly parse a safetensors header, reading nothing past it.

    Raises :class:`FormatError` with a rule-specific code for any violation;
    returns tensors sorted by start with absolute offsets.
    """
    path = reader.path
    n, text = _header_text(reader)
    findings: list[Finding] = []
    members, end = _parse_top_object(text, path, findings)
    _check_trailer(text[end:], n, path, findings)

    data_start = 8 + n
    metadata: dict[str, MetadataValue] = {}
    entries: list[_Entry] = []
    for name, value in members:
        if name == METADATA_KEY:
            metadata = _check_metadata(value, path)
            continue
        dtype, shape, begin, end_ = _check_entry(name, value, path, findings)
        n_elements = _check_size(name, dtype, shape, begin, end_, path)
        entries.append(_Entry(name, dtype, shape, begin, end_, n_elements))
    spans = _tile(entries, data_start, path)
    _check_file_size(spans[-1].end if spans else data_start, reader.size, path)
    return WeightLayout(
        format="safetensors",
        file_size=reader.size,
        header_size=data_start,
        tensors=tuple(spans),
        padding=(),
        metadata=metadata,
        findings=tuple(findings),
    )


class _Entry(NamedTuple):
    """A tensor as the header states it (offsets relative to the data buffer)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    n_elements: int


def _header_text(reader: HeaderReader) -> tuple[int, str]:
    """The header's size N and its JSON text (UTF-8, a ``{`` first)."""
    path = reader.path
    (n,) = struct.unpack("<Q", reader.read(8, "header size"))
    if not 0 < n <= HEADER_LIMIT or 8 + n > reader.size:
        raise FormatError(
            f"header size {n} must be in 1..{HEADER_LIMIT} and fit in the "
            f"{reader.size}-byte file (8 + N <= file size)",
            code=Code.SAFETENSORS_BAD_HEADER_SIZE,
            path=path,
            actual=str(n),
        )
    raw = reader.read(n, "header JSON")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"header is not valid UTF-8 ({exc.reason} at byte {8 + exc.start})",
            code=Code.SAFETENSORS_BAD_UTF8,
            path=path,
        ) from None
    if not text.startswith("{"):
        raise FormatError(
            f"header must be a JSON object starting with '{{' at byte 8 (no leading "
            f"whitespace); it starts with {text[:16]!r}",
            code=Code.SAFETENSORS_BAD_HEADER_START,
            path=path,
        )
    return n, text


def _check_trailer(trailer: str, n: int, path: str, findings: list[Finding]) -> None:
    """After the closing brace only space padding (a finding when writers would not pad so)."""
    if trailer.strip(" "):
        raise FormatError(
            f"header has content after the closing '}}' at byte "
            f"{8 + n - len(trailer.encode('utf-8'))}: "
            f"{trailer[:32]!r} (only space padding is allowed)",
            code=Code.SAFETENSORS_BAD_HEADER_END,
            path=path,
        )
    if len(trailer) > _WRITER_PADDING:
        findings.append(
            Finding(
                code=Code.SAFETENSORS_HEADER_PADDING,
                message=f"header is padded with {len(trailer)} spaces; writers pad with at "
                f"most {_WRITER_PADDING}",
                file=path,
            )
        )


def _tile(entries: list[_Entry], data_start: int, path: str) -> list[TensorSpan]:
    """The tensors in offset order; they must tile the data buffer, no gap, no overlap."""
    entries.sort(key=lambda e: (e.begin, e.end, e.name))
    spans: list[TensorSpan] = []
    prev_name: str | None = None
    prev_end = 0
    for name, dtype, shape, begin, end_, n_elements in entries:
        if begin > prev_end:
            after = f"tensor {prev_name!r}" if prev_name is not None else "the buffer start"
            raise FormatError(
                f"gap of {begin - prev_end} bytes between {after} (ends at {prev_end}) and "
                f"tensor {name!r} (begins at {begin}): offsets must tile the data buffer",
                code=Code.SAFETENSORS_OFFSET_GAP,
                path=path,
                tensor=name,
            )
        if begin < prev_end:
            raise FormatError(
                f"tensor {name!r} [{begin}, {end_}) overlaps tensor {prev_name!r} "
                f"(ends at {prev_end})",
                code=Code.SAFETENSORS_OFFSET_OVERLAP,
                path=path,
                tensor=name,
            )
        spans.append(
            TensorSpan(
                name=name,
                dtype=dtype,
                shape=shape,
                start=data_start + begin,
                end=data_start + end_,
                n_elements=n_elements,
            )
        )
        prev_name, prev_end = name, end_
    return spans


def _check_file_size(expected_size: int, size: int, path: str) -> None:
    """The data buffer must end exactly at the end of the file."""
    if expected_size > size:
        raise FormatError(
            f"file is truncated: tensor data ends at byte {expected_size} but the file "
            f"has {size} bytes",
            code=Code.TRUNCATED,
            path=path,
            expected=str(expected_size),
            actual=str(size),
        )
    if expected_size < size:
        raise FormatError(
            f"{size - expected_size} bytes after the last tensor (data ends at "
            f"byte {expected_size}, file has {size})",
            code=Code.SAFETENSORS_TRAILING_BYTES,
            path=path,
            expected=str(expected_size),
            actual=str(size),
        )


def _reject_duplicates(path: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    return unique_keys(
        lambda key: FormatError(
            f"duplicate JSON key {key!r} in the header",
            code=Code.SAFETENSORS_DUPLICATE_KEY,
            path=path,
        )
    )


def _bad_constant(path: str) -> Callable[[str], Any]:
    """A ``parse_constant`` hook: NaN and Infinity are Python extensions, not JSON."""

    def hook(token: str) -> Any:
        raise FormatError(
            f"header JSON contains {token}, which is not JSON",
            code=Code.SAFETENSORS_BAD_JSON,
            path=path,
        )

    return hook


def _skip_ws(text: str, i: int) -> int:
    m = _JSON_WS.match(text, i)
    return m.end() if m else i


def _parse_top_object(
    text: str, path: str, findings: list[Finding]
) -> tuple[list[tuple[str, Any]], int]:
    """Parse the top-level object by hand, keeping each key's raw text.

    The raw text is what reveals escaped names; values are parsed by the
    standard decoder with duplicate keys refused. Returns the members in
    header order and the index just past the closing brace.
    """
    decoder = json.JSONDecoder(
        object_pairs_hook=_reject_duplicates(path), parse_constant=_bad_constant(path)
    )
    members: list[tuple[str, Any]] = []
    seen: set[str] = set()
    n_tensors = 0
    try:
        i = _skip_ws(text, 1)
        if text[i : i + 1] == "}":
            return members, i + 1
        while True:
            if text[i : i + 1] != '"':
                raise _json_error("expected a string key", text, i, path)
            key, j = decoder.raw_decode(text, i)  # a JSON string: the key, decoded
            raw_key = text[i:j]
            if key in seen:
                raise FormatError(
                    f"duplicate key {key!r} in the header",
                    code=Code.SAFETENSORS_DUPLICATE_KEY,
                    path=path,
                    tensor=key,
                )
            seen.add(key)
            i = _skip_ws(text, j)
            if text[i : i + 1] != ":":
                raise _json_error("expected ':'", text, i, path)
            i = _skip_ws(text, i + 1)
            value, i = decoder.raw_decode(text, i)
            _check_name(key, raw_key, path, findings)
            if key != METADATA_KEY:
                n_tensors += 1
                if n_tensors > MAX_TENSORS:
                    raise FormatError(
                        f"more than {MAX_TENSORS} tensors in one file",
                        code=Code.SAFETENSORS_TOO_MANY_TENSORS,
                        path=path,
                    )
            members.append((key, value))
            i = _skip_ws(text, i)
            sep = text[i : i + 1]
            if sep == "}":
                return members, i + 1
            if sep != ",":
                raise _json_error("expected ',' or '}'", text, i, path)
            i = _skip_ws(text, i + 1)
    except json.JSONDecodeError as exc:
        raise _json_error(exc.msg, text, exc.pos, path) from None
    except (ValueError, RecursionError) as exc:  # e.g. integers too long to convert
        raise FormatError(
            f"header is not acceptable JSON: {exc}", code=Code.SAFETENSORS_BAD_JSON, path=path
        ) from None


def _json_error(msg: str, text: str, pos: int, path: str) -> FormatError:
    byte = 8 + len(text[:pos].encode("utf-8", "surrogatepass"))
    return FormatError(
        f"header is not valid JSON: {msg} at byte {byte}",
        code=Code.SAFETENSORS_BAD_JSON,
        path=path,
    )


def _check_name(key: str, raw_key: str, path: str, findings: list[Finding]) -> None:
    if not key or not encodable(key):
        raise FormatError(
            f"tensor name {raw_key} is empty or not encodable as UTF-8",
            code=Code.SAFETENSORS_BAD_NAME,
            path=path,
        )
    # Without a backslash the raw text is canonical: strict JSON has no raw control
    # characters or quotes inside strings, the only characters that need escaping.
    if "\\" not in raw_key:
        return
    canonical = json.dumps(key, ensure_ascii=False)
    if raw_key != canonical:
        findings.append(
            Finding(
                code=Code.SAFETENSORS_NONCANONICAL_NAME,
                message=f"name is written {raw_key} in the header instead of {canonical}: "
                "escapes can hide what a name looks like to other tools",
                file=path,
                tensor=key,
            )
        )


def _check_metadata(value: Any, path: str) -> dict[str, MetadataValue]:
    if not isinstance(value, dict):
        raise FormatError(
            f"__metadata__ must be an object of strings, not {_json_type(value)}",
            code=Code.SAFETENSORS_BAD_METADATA,
            path=path,
        )
    out: dict[str, MetadataValue] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise FormatError(
                f"__metadata__ value for {k!r} must be a string, not {_json_type(v)}",
                code=Code.SAFETENSORS_BAD_METADATA,
                path=path,
            )
        if not (encodable(k) and encodable(v)):
            raise FormatError(
                f"__metadata__ entry {k!r} holds a lone surrogate escape",
                code=Code.SAFETENSORS_BAD_METADATA,
                path=path,
            )
        out[k] = v
    return out


def _bad_entry(name: str, msg: str, path: str) -> FormatError:
    return FormatError(
        f"tensor entry {name!r}: {msg}", code=Code.SAFETENSORS_BAD_ENTRY, path=path, tensor=name
    )


def _is_u64(x: Any) -> bool:
    return type(x) is int and 0 <= x <= _U64_MAX


def _check_entry(
    name: str, value: Any, path: str, findings: list[Finding]
) -> tuple[str, tuple[int, ...], int, int]:
    if not isinstance(value, dict):
        raise _bad_entry(name, f"must be an object, not {_json_type(value)}", path)
    missing = sorted(_ENTRY_FIELDS - value.keys())
    if missing:
        raise _bad_entry(name, f"missing field(s) {', '.join(missing)}", path)
    unknown = sorted(value.keys() - _ENTRY_FIELDS)
    if unknown:
        findings.append(
            Finding(
                code=Code.SAFETENSORS_UNKNOWN_FIELD,
                message=f"unknown field(s) {', '.join(repr(u) for u in unknown)} in the "
                "tensor entry (ignored by loaders, but they can carry hidden data)",
                file=path,
                tensor=name,
            )
        )
    dtype = value["dtype"]
    if not isinstance(dtype, str):
        raise _bad_entry(name, f"dtype must be a string, not {_json_type(dtype)}", path)
    if dtype not in DTYPE_BITS:
        raise FormatError(
            f"tensor entry {name!r}: unknown dtype {dtype!r} (names are case-sensitive)",
            code=Code.SAFETENSORS_UNKNOWN_DTYPE,
            path=path,
            tensor=name,
        )
    shape = value["shape"]
    if not isinstance(shape, list) or not all(_is_u64(d) for d in shape):
        raise _bad_entry(name, f"shape must be a list of non-negative integers: {shape!r}", path)
    offsets = value["data_offsets"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_u64, offsets))):
        raise _bad_entry(
            name, f"data_offsets must be [begin, end] non-negative integers: {offsets!r}", path
        )
    begin, end = offsets
    if begin > end:
        raise _bad_entry(name, f"data_offsets begin {begin} is after end {end}", path)
    return dtype, tuple(shape), begin, end


def _check_size(
    name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int, path: str
) -> int:
    """Check that the shape and dtype need exactly ``end - begin`` bytes; return the count."""
    bits = DTYPE_BITS[dtype]
    actual_bits = (end - begin) * 8
    # Stop multiplying past 2**64 elements: no file holds that many, and a long
    # shape of huge dimensions would otherwise build enormous integers.
    n_elements = _product(shape, limit=_U64_MAX)
    if n_elements is None or n_elements * bits != actual_bits:
        if n_elements is None:
            expected = "more than 2**64 elements (overflow)"
        else:
            total = n_elements * bits
            expected = f"{total // 8} bytes" if total % 8 == 0 else f"{total} bits"
        raise FormatError(
            f"shape {list(shape)} of {dtype} ({bits} bits per element) needs {expected}, "
            f"but data_offsets [{begin}, {end}) hold {end - begin} bytes",
            code=Code.SAFETENSORS_SIZE_MISMATCH,
            path=path,
            tensor=name,
            expected=expected,
            actual=f"{end - begin} bytes",
        )
    return n_elements


def _product(dims: tuple[int, ...], *, limit: int) -> int | None:
    """Product of ``dims``, or ``None`` once it exceeds ``limit`` (no huge intermediates)."""
    if 0 in dims:
        return 0
    out = 1
    for d in dims:
        out *= d
        if out > limit:
            return None
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
