"""The protobuf wire format, read with bounds: the layer under the ONNX reader (:mod:`.onnx`).

A message is walked field by field (:meth:`WireReader.fields`) without ever
reading a length-delimited value the caller does not ask for: a tensor's
payload is skipped by its length, so only tags, lengths and the values the
reader needs are read from disk. Reads go through a read-ahead window that never
extends past the end of the message being walked; it starts at 256 bytes, doubles
(to 64 KiB) while only structure is read, and starts again at 256 bytes after
each skipped payload (:meth:`WireReader.skipped_payload`). What it reads of a
payload is read ahead with the structure before it: at most 256 bytes more than
that structure (since the previous payload) took.

Every check raises :class:`~modelsign.errors.FormatError`: a varint of more than
10 bytes or past 64 bits, a field number 0 or above 2^29-1, wire types 3, 4, 6
and 7 (3 and 4 are groups, which onnx.proto does not use; 6 and 7 do not exist),
a known field with a wire type it cannot have, a singular known field repeated
(protobuf would silently keep the last value, or merge messages: two readers
could see two models), a length past its message (``ONNX_MALFORMED``) or past
the file (``ONNX_TRUNCATED``), and more than ``MAX_READ`` bytes read in all
(``ONNX_TOO_LARGE``). Unknown fields are skipped by their wire type, as protobuf
does for forward compatibility.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Final, NamedTuple

from ...codes import Code
from ...errors import FormatError

VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
I32: Final = 5

MAX_READ: Final = 64 << 20
"""Most bytes read from an ONNX file to parse it (its structure; payloads are skipped)."""

_MIN_FILL: Final = 256  # read-ahead after a payload: about one tensor's header
_MAX_FILL: Final = 64 << 10
_MAX_VARINT: Final = 10
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1
_FIXED_SIZES: Final = {I64: 8, I32: 4}
_WIRE_NAMES: Final = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}

Pread = Callable[[int, int], bytes]
"""``pread(n, offset)``: up to ``n`` bytes at ``offset``, as :func:`os.pread` takes them."""


class Rule(NamedTuple):
    """A known field of a message: its name, the wire types it may have, whether singular."""

    name: str
    wires: frozenset[int]
    singular: bool


def one(name: str, wire: int) -> Rule:
    """A singular field (``optional`` in onnx.proto): at most once in a message."""
    return Rule(name, frozenset({wire}), True)


def many(name: str, *wires: int) -> Rule:
    """A repeated field; a scalar one may be packed (``LEN``) or not."""
    return Rule(name, frozenset(wires), False)


Spec = Mapping[int, Rule]


class Field(NamedTuple):
    """One known field of a message, as found: nothing of a length-delimited value is read."""

    number: int
    name: str
    wire: int
    value: int  # a varint's value, a length-delimited field's length, 0 for fixed-size
    at: int  # where its tag starts
    start: int  # where its value starts
    end: int  # where its value ends
    limit: int  # where the message holding it ends


def int64(value: int) -> int:
    """A varint's 64 bits as the signed ``int64``/``int32`` protobuf stores in them."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fd_pread(fd: int) -> Pread:
    """Reads from an open file descriptor, never moving its offset."""
    return lambda n, offset: os.pread(fd, n, offset)


def bytes_pread(data: bytes | memoryview) -> Pread:
    """Reads from bytes already in memory (a loader's verified buffer)."""
    return lambda n, offset: bytes(data[offset : offset + n])


class WireReader:
    """Bounded reads of one protobuf file through a read-ahead window."""

    def __init__(self, pread: Pread, size: int, path: str, *, budget: int = MAX_READ) -> None:
        self._pread = pread
        self.size = size
        self.path = path
        self._budget = budget
        self.bytes_read = 0
        self._buf = b""
        self._buf_at = 0
        self._fill = _MIN_FILL

    def error(self, code: Code, message: str, *, tensor: str | None = None) -> FormatError:
        return FormatError(message, code=code, path=self.path, tensor=tensor)

    def _past(self, needed: int, limit: int, what: str) -> FormatError:
        """A value needs bytes up to ``needed`` but its message (or the file) ends at ``limit``."""
        if needed > self.size:
            return self.error(
                Code.ONNX_TRUNCATED,
                f"file is truncated: {what} needs bytes up to {needed}, "
                f"but the file has {self.size} bytes",
            )
        return self.error(
            Code.ONNX_MALFORMED,
            f"{what} runs to byte {needed}, past the end of its message at byte {limit}",
        )

    def _ensure(self, pos: int, n: int, limit: int) -> int:
        """Have ``[pos, pos + n)`` in the window (``pos + n <= limit``); its offset in it."""
        off = pos - self._buf_at
        if off >= 0 and off + n <= len(self._buf):
            return off
        want = min(max(n, self._fill), limit - pos)
        if self.bytes_read + want > self._budget:
            raise self.error(
                Code.ONNX_TOO_LARGE,
                f"parsing needs more than {self._budget} bytes of structure "
                f"(at byte {pos}); only tensor payloads are skipped",
            )
        data = self._pread(want, pos)
        if len(data) != want:
            raise self.error(Code.ONNX_TRUNCATED, f"file shrank while reading byte {pos}")
        self.bytes_read += want
        self._buf, self._buf_at = data, pos
        self._fill = min(self._fill * 2, _MAX_FILL)
        return 0

    def skipped_payload(self) -> None:
        """A payload was skipped: read ahead little, so the next one's start is hardly read."""
        self._fill = _MIN_FILL

    def varint(self, pos: int, limit: int, what: str) -> tuple[int, int]:
        """The varint at ``pos`` (within ``limit``) and the position after it."""
        off = pos - self._buf_at
        if pos < limit and 0 <= off < len(self._buf) and self._buf[off] < 0x80:
            return self._buf[off], pos + 1  # the common case: one byte, already read
        n = min(_MAX_VARINT, limit - pos)
        if n <= 0:
            raise self._past(pos + 1, limit, f"a varint of {what} at byte {pos}")
        off = self._ensure(pos, n, limit)
        buf = self._buf
        value = shift = 0
        for i in range(n):
            b = buf[off + i]
            value |= (b & 0x7F) << shift
            if b < 0x80:
                if value >> 64:
                    raise self.error(
                        Code.ONNX_MALFORMED, f"a varint of {what} at byte {pos} runs past 64 bits"
                    )
                return value, pos + i + 1
            shift += 7
        if n == _MAX_VARINT:
            raise self.error(
                Code.ONNX_MALFORMED, f"a varint of {what} at byte {pos} has more than 10 bytes"
            )
        raise self._past(limit + 1, limit, f"a varint of {what} at byte {pos}")

    def fields(self, start: int, end: int, spec: Spec, what: str) -> Iterator[Field]:
        """The known fields of the message ``[start, end)``, in file order; unknown ones skipped.

        ``what`` names the message type in errors. The hot path builds no text.
        """
        pos = start
        seen: set[int] = set()
        while pos < end:
            at = pos
            key, pos = self.varint(pos, end, what)
            number, wire = key >> 3, key & 7
            if not 0 < number <= _MAX_FIELD_NUMBER:
                raise self.error(
                    Code.ONNX_MALFORMED,
                    f"{what} at byte {start}: field number {number} at byte {at} is not valid",
                )
            rule = spec.get(number)
            if rule is not None:
                if wire not in rule.wires or (rule.singular and number in seen):
                    raise self._rule_error(rule, number, wire, f"{what} at byte {start}")
                if rule.singular:
                    seen.add(number)
            value, value_start, pos = self._value(wire, pos, end, what)
            if rule is not None:
                yield Field(number, rule.name, wire, value, at, value_start, pos, end)

    def _rule_error(self, rule: Rule, number: int, wire: int, what: str) -> FormatError:
        if wire not in rule.wires:
            wanted = " or ".join(_WIRE_NAMES[w] for w in sorted(rule.wires))
            return self.error(
                Code.ONNX_MALFORMED,
                f"{what}: {rule.name} (field {number}) has wire type {wire}, not {wanted}",
            )
        return self.error(
            Code.ONNX_MALFORMED,
            f"{what}: {rule.name} (field {number}) appears twice; it is singular "
            "(protobuf readers would keep the last one, or merge them)",
        )

    def _value(self, wire: int, pos: int, end: int, what: str) -> tuple[int, int, int]:
        """Consume one value: (varint value or length, where it starts, where it ends)."""
        if wire == VARINT:
            value, after = self.varint(pos, end, what)
            return value, pos, after
        if wire == LEN:
            length, start = self.varint(pos, end, what)
            if start + length > end:
                raise self._past(start + length, end, f"a field of {what} at byte {pos}")
            return length, start, start + length
        size = _FIXED_SIZES.get(wire)
        if size is None:
            raise self.error(
                Code.ONNX_MALFORMED,
                f"a field of {what} at byte {pos} has wire type {wire}, which is not a protobuf "
                "wire type in use (3 and 4 are groups, which ONNX does not use)",
            )
        if pos + size > end:
            raise self._past(pos + size, end, f"a field of {what}")
        return 0, pos, pos + size

    def read(self, f: Field) -> bytes:
        """The bytes of a length-delimited field's value."""
        n = f.end - f.start
        off = self._ensure(f.start, n, f.limit)
        return self._buf[off : off + n]

    def string(self, f: Field, what: str) -> str:
        """A string field, strictly UTF-8."""
        raw = self.read(f)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(
                Code.ONNX_MALFORMED,
                f"{what} (byte {f.start}) is not UTF-8 "
                f"(at byte {exc.start} of {len(raw)}: {raw[:64]!r})",
            ) from None

    def varints(self, f: Field, what: str) -> list[int]:
        """The value of a repeated varint field: one unpacked value, or a packed run of them."""
        if f.wire == VARINT:
            return [f.value]
        raw = self.read(f)
        out: list[int] = []
        value = shift = 0
        for b in raw:
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                out.append(value)
                value = shift = 0
            elif shift >= 7 * _MAX_VARINT:
                break
        if shift or any(v >> 64 for v in out):
            raise self.error(
                Code.ONNX_MALFORMED,
                f"{what}: {f.name} (byte {f.start}) is not a run of packed varints",
            )
        return out
