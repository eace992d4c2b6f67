"""ONNX tensors (``TensorProto``) and their external data, for the ONNX reader (:mod:`.onnx`).

A tensor's payload is never read: :func:`parse_tensor` records where it is (an
inline ``raw_data`` or packed typed field, or an external file) and checks that
its size is the one ``dims`` × ``data_type`` need. The checks are stricter than
onnx's own loaders wherever those would let two readers disagree: exactly one
data field, packed and in one piece; ``external_data`` only with
``data_location: EXTERNAL``, only known keys, each once; offsets and lengths
plain decimal ``int64``.

External locations are checked as text here (:func:`check_location`) and
against the file system by :func:`resolve_external` before anything is read: a
location is a relative POSIX path under the model folder, as the ONNX spec says,
never a way out of it (absolute paths, drive letters, UNC names, ``..``,
backslashes, symlinks that lead out of the folder).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace
from typing import Final, Literal

from ...codes import Code
from ...errors import FormatError
from .onnx_external import check_location
from .onnx_wire import I32, I64, LEN, VARINT, Field, WireReader, int64, many, one

TensorField = Literal[
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "external",
    "empty",
]

# data_type -> (dtype name, bits per element); names as modelsign gives safetensors dtypes.
DTYPES: Final[dict[int, tuple[str, int]]] = {
    1: ("F32", 32),
    2: ("U8", 8),
    3: ("I8", 8),
    4: ("U16", 16),
    5: ("I16", 16),
    6: ("I32", 32),
    7: ("I64", 64),
    8: ("STRING", 0),
    9: ("BOOL", 8),
    10: ("F16", 16),
    11: ("F64", 64),
    12: ("U32", 32),
    13: ("U64", 64),
    14: ("C64", 64),
    15: ("C128", 128),
    16: ("BF16", 16),
    17: ("F8_E4M3", 8),  # FLOAT8E4M3FN
    18: ("F8_E4M3FNUZ", 8),
    19: ("F8_E5M2", 8),
    20: ("F8_E5M2FNUZ", 8),
    21: ("UINT4", 4),
    22: ("INT4", 4),
    23: ("F4", 4),  # FLOAT4E2M1
    24: ("F8_E8M0", 8),
    25: ("UINT2", 2),
    26: ("INT2", 2),
    27: ("F6_E2M3", 6),
    28: ("F6_E3M2", 6),
}
"""Every ``TensorProto.DataType`` of onnx 1.23 (not 0, UNDEFINED): its dtype name and bits."""

_STRING: Final = 8
_EXTERNAL: Final = 1
_MAX_RANK: Final = 64
_MAX_INT64: Final = (1 << 63) - 1
_DECIMAL: Final = re.compile(r"[0-9]{1,19}")
_EXTERNAL_KEYS: Final = frozenset({"location", "offset", "length", "checksum", "basepath"})

# Typed data fields: number -> (name, the data types it may hold, bytes per element or 0 for
# varints). Sub-byte types pack 2 (4-bit) or 4 (2-bit) elements per int32_data value.
_TYPED: Final[dict[int, tuple[TensorField, frozenset[int], int]]] = {
    4: ("float_data", frozenset({1, 14}), 4),
    5: ("int32_data", frozenset({2, 3, 4, 5, 6, 9, 10, *range(16, 29)}), 0),
    7: ("int64_data", frozenset({7}), 0),
    10: ("double_data", frozenset({11, 15}), 8),
    11: ("uint64_data", frozenset({12, 13}), 0),
}
_COMPLEX: Final = frozenset({14, 15})  # two values per element
_RAW: Final = 9
_STRING_DATA: Final = 6
_DATA_FIELDS: Final = frozenset({_RAW, _STRING_DATA, *_TYPED})

TENSOR: Final = {
    1: many("dims", VARINT, LEN),
    2: one("data_type", VARINT),
    3: one("segment", LEN),
    4: many("float_data", I32, LEN),
    5: many("int32_data", VARINT, LEN),
    6: many("string_data", LEN),
    7: many("int64_data", VARINT, LEN),
    8: one("name", LEN),
    9: one("raw_data", LEN),
    10: many("double_data", I64, LEN),
    11: many("uint64_data", VARINT, LEN),
    12: one("doc_string", LEN),
    13: many("external_data", LEN),
    14: one("data_location", VARINT),
    16: many("metadata_props", LEN),
}
ENTRY: Final = {1: one("key", LEN), 2: one("value", LEN)}


@dataclass(frozen=True)
class ExternalRef:
    """Where an external tensor's bytes are: ``location`` (relative to the .onnx file's folder).

    ``length`` is ``None`` when the tensor does not give one: its data runs to the end
    of the file (:func:`external_span` resolves it against the data file's size).
    """

    location: str
    offset: int
    length: int | None


@dataclass(frozen=True)
class OnnxTensor:
    """One tensor of the model, and where its data is.

    ``field`` is where the data is stored: ``raw_data``, a packed typed field
    (``float_data``, ``int32_data``, ``int64_data``, ``double_data``,
    ``uint64_data``), ``string_data`` (the range then holds the strings' fields,
    tags included), ``external`` (``start``/``end`` are ``None``, ``external``
    says where), or ``empty`` (no elements, no data). ``[start, end)`` is an
    absolute range of the .onnx file. ``data_nbytes`` is the size of the data as
    raw little-endian bytes — what ``raw_data`` or an external range must hold —
    and ``None`` for STRING tensors.
    """

    name: str
    dtype: str
    dims: tuple[int, ...]
    n_elements: int
    data_nbytes: int | None
    field: TensorField
    start: int | None = None
    end: int | None = None
    external: ExternalRef | None = None


class _Raw:
    """The fields of one TensorProto as found, before the checks."""

    def __init__(self) -> None:
        self.name = ""
        self.dims: list[int] = []
        self.data_type = 0
        self.location = 0
        self.segment = False
        self.data: dict[int, list[Field]] = {}
        self.external: list[tuple[str, str]] = []


def _read_raw(r: WireReader, f: Field) -> _Raw:
    raw = _Raw()
    for t in r.fields(f.start, f.end, TENSOR, "TensorProto"):
        n = t.number
        if n == 1:
            # Bound a packed run before reading it: a varint is 1 to 10 bytes.
            if t.end - t.start <= 10 * _MAX_RANK:
                raw.dims += (int64(v) for v in r.varints(t, f"tensor {raw.name!r}"))
            if len(raw.dims) > _MAX_RANK or t.end - t.start > 10 * _MAX_RANK:
                raise r.error(
                    Code.ONNX_TOO_LARGE,
                    f"tensor at byte {f.start} has more than {_MAX_RANK} dims",
                    tensor=raw.name or None,
                )
        elif n == 2:
            raw.data_type = int64(t.value)
        elif n == 3:
            raw.segment = True
        elif n == 8:
            raw.name = r.string(t, "a tensor name")
        elif n == 13:
            raw.external.append(entry(r, t, "external_data"))
        elif n == 14:
            raw.location = int64(t.value)
        elif n in _DATA_FIELDS:
            raw.data.setdefault(n, []).append(t)
            if n != _STRING_DATA:
                r.skipped_payload()
    return raw


def entry(r: WireReader, f: Field, what: str) -> tuple[str, str]:
    """A ``StringStringEntryProto``: (key, value)."""
    key = value = ""
    for e in r.fields(f.start, f.end, ENTRY, "StringStringEntryProto"):
        text = r.string(e, f"a {what} {e.name}")
        if e.number == 1:
            key = text
        else:
            value = text
    return key, value


def parse_tensor(r: WireReader, f: Field) -> OnnxTensor:
    """Parse the ``TensorProto`` in field ``f``; its payload is located, never read."""
    return _Check(r, f, _read_raw(r, f)).tensor()


class _Check:
    """The checks of one tensor, from the fields found to a :class:`OnnxTensor`."""

    def __init__(self, r: WireReader, f: Field, raw: _Raw) -> None:
        self.r = r
        self.raw = raw
        self.label = raw.name or f"(unnamed tensor at byte {f.start})"

    def bad(self, message: str) -> FormatError:
        return self.r.error(
            Code.ONNX_BAD_TENSOR, f"tensor {self.label!r}: {message}", tensor=self.label
        )

    def tensor(self) -> OnnxTensor:
        raw = self.raw
        if raw.segment:
            raise self.bad("has a segment: tensors split into segments are not supported")
        if raw.data_type not in DTYPES:
            what = "no data_type" if raw.data_type == 0 else f"unknown data_type {raw.data_type}"
            raise self.bad(f"{what} (onnx 1.23 knows 1..28)")
        if any(d < 0 for d in raw.dims):
            raise self.bad(f"negative dims {raw.dims}")
        if raw.location not in (0, _EXTERNAL):
            raise self.bad(f"data_location {raw.location} is neither 0 (DEFAULT) nor 1 (EXTERNAL)")
        dtype, bits = DTYPES[raw.data_type]
        n = math.prod(raw.dims)
        nbytes = None if raw.data_type == _STRING else -(-n * bits // 8)
        base = OnnxTensor(raw.name, dtype, tuple(raw.dims), n, nbytes, "empty")
        if raw.location == _EXTERNAL or raw.external:
            return self.external(base)
        if not raw.data:
            if n:
                raise self.bad(f"has no data for its {n} elements")
            return base
        if len(raw.data) > 1:
            names = ", ".join(TENSOR[k].name for k in sorted(raw.data))
            raise self.bad(f"has data in more than one field ({names})")
        ((number, found),) = raw.data.items()
        if number == _STRING_DATA:
            return self.strings(base, found)
        if any(x.wire != LEN for x in found):
            raise self.bad(
                f"{TENSOR[number].name} is not packed (modelsign reads packed data only)"
            )
        if len(found) > 1:
            raise self.bad(f"{TENSOR[number].name} is split into {len(found)} pieces")
        return self.inline(base, number, found[0])

    def inline(self, base: OnnxTensor, number: int, data: Field) -> OnnxTensor:
        """Data in one ``raw_data`` or packed typed field."""
        size, data_type = data.end - data.start, self.raw.data_type
        if number == _RAW:
            if data_type == _STRING:
                raise self.bad("STRING data must be in string_data, not raw_data")
            if size != base.data_nbytes:
                raise self.bad(
                    f"raw_data holds {size} bytes; dims {list(base.dims)} of {base.dtype} "
                    f"need {base.data_nbytes}"
                )
            return replace(base, field="raw_data", start=data.start, end=data.end)
        field, types, width = _TYPED[number]
        if data_type not in types:
            raise self.bad(f"{field} cannot hold {base.dtype}")
        per_value = {2: 4, 4: 2}.get(DTYPES[data_type][1], 1)  # 2- and 4-bit types pack
        values = -(-base.n_elements // per_value) * (2 if data_type in _COMPLEX else 1)
        if width and size != values * width:
            raise self.bad(
                f"{field} holds {size} bytes; {values} values of {width} bytes need "
                f"{values * width}"
            )
        if not width and not values <= size <= values * 10:
            # Counting packed varints would mean reading the payload: bound it instead.
            raise self.bad(f"{field} holds {size} bytes, which cannot be {values} varints")
        return replace(base, field=field, start=data.start, end=data.end)

    def strings(self, base: OnnxTensor, found: list[Field]) -> OnnxTensor:
        """A STRING tensor: its range is its ``string_data`` fields, tags and all, back to back."""
        if self.raw.data_type != _STRING:
            raise self.bad(f"string_data cannot hold {base.dtype}")
        if len(found) != base.n_elements:
            raise self.bad(
                f"has {len(found)} strings; dims {list(base.dims)} need {base.n_elements}"
            )
        for prev, cur in itertools.pairwise(found):
            if cur.at != prev.end:
                raise self.bad(f"string_data is not one run of fields (a gap at byte {prev.end})")
        return replace(base, field="string_data", start=found[0].at, end=found[-1].end)

    def external(self, base: OnnxTensor) -> OnnxTensor:
        """Data in another file: ``external_data`` says where."""
        raw = self.raw
        if raw.location != _EXTERNAL:
            raise self.bad("has external_data but its data_location is not EXTERNAL (1)")
        if raw.data:
            raise self.bad("has data_location EXTERNAL and inline data too")
        if raw.data_type == _STRING:
            raise self.bad("is a STRING tensor with external data, which ONNX does not allow")
        keys: dict[str, str] = {}
        for key, value in raw.external:
            if key not in _EXTERNAL_KEYS:
                raise self.bad(
                    f"unknown external_data key {key[:100]!r} (known: {sorted(_EXTERNAL_KEYS)})"
                )
            if key in keys:
                raise self.bad(f"external_data key {key!r} appears twice")
            keys[key] = value
        if "location" not in keys:
            raise self.bad("has data_location EXTERNAL but no external_data location")
        check_location(keys["location"], path=self.r.path, tensor=self.label)
        offset = self.decimal(keys.get("offset", "0"), "offset")
        length = None if "length" not in keys else self.decimal(keys["length"], "length")
        if length is not None and length != base.data_nbytes:
            raise self.bad(
                f"external data length {length}; dims {list(base.dims)} of {base.dtype} need "
                f"{base.data_nbytes} bytes"
            )
        ref = ExternalRef(keys["location"], offset, length)
        return replace(base, field="external", external=ref)

    def decimal(self, text: str, key: str) -> int:
        """An offset or length: ASCII digits only (no sign, no space), an int64."""
        if not _DECIMAL.fullmatch(text) or int(text) > _MAX_INT64:
            raise self.bad(f"external_data {key} {text[:40]!r} is not a decimal int64")
        return int(text)
