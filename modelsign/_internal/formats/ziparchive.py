"""A strict ZIP reader for the archives models ship in: torch checkpoints, ``.npz``, ``.keras``.

Python's :mod:`zipfile` is lenient: it reads the central directory and
trusts it, so two tools can see two different archives in the same bytes
(data prepended or appended, members overlapping, a local header that names
another file than the central one). Here every member's local header must
agree with its central entry, members must tile the bytes before the central
directory exactly, from byte 0, and the central directory must end where the
end records begin. Only the structure is read (``pread``); member data is
located, not read, so the hashing pipeline can digest it in its one read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ...codes import Code
from ...errors import FormatError

MAX_CENTRAL_DIRECTORY_BYTES: Final = 64 << 20
"""Largest central directory read (a checkpoint needs about 100 bytes per member)."""
MAX_MEMBERS: Final = 1_000_000
MAX_MEMBER_BYTES = 256 << 20
"""Largest member read whole (a pickle, a nested ZIP, an object array, a config)."""

#: A local header's signature: what a ZIP starts with (and ``torch.load`` tests for one).
ZIP_MAGIC: Final = b"PK\x03\x04"
#: ``read(n, offset)``: up to ``n`` bytes at ``offset`` (an ``os.pread`` or a buffer slice).
ReadAt = Callable[[int, int], bytes]

_EOCD = struct.Struct("<4sHHHHIIH")
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_UTF8_FLAG: Final = 0x800
_ENCRYPTED_FLAGS: Final = 0x1 | 0x40  # traditional / strong encryption
_DESCRIPTOR_FLAG: Final = 0x8
_U32: Final = 0xFFFFFFFF
_U16: Final = 0xFFFF

STORED: Final = 0
DEFLATED: Final = 8


@dataclass(frozen=True)
class ZipMember:
    """One member: its local header at ``header_offset``, its data ``[data_start, data_end)``."""

    name: str
    header_offset: int
    data_start: int
    data_end: int  # data_start + compressed size
    end: int  # after the data descriptor, if any: where the next member must begin
    method: int
    crc: int
    size: int  # uncompressed

    @property
    def stored(self) -> bool:
        return self.method == STORED


@dataclass(frozen=True)
class ZipArchive:
    """A strictly read archive: members in file order, then the central directory."""

    members: tuple[ZipMember, ...]
    directory_offset: int
    size: int

    def member(self, name: str) -> ZipMember | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


def _error(msg: str, code: Code = Code.ZIP_MALFORMED, path: str | None = None) -> FormatError:
    return FormatError(msg, code=code, path=path)


def _exact(read: ReadAt, n: int, offset: int, what: str) -> bytes:
    data = read(n, offset)
    if len(data) != n:
        raise _error(
            f"ZIP {what} at byte {offset} is cut short ({len(data)} of {n} bytes)",
            Code.ZIP_TRUNCATED,
        )
    return data


def read_zip(read: ReadAt, size: int, path: str) -> ZipArchive:
    """Read and check the structure of the ZIP archive of ``size`` bytes behind ``read``."""
    try:
        return _read(read, size)
    except FormatError as exc:
        exc.path = path
        raise


def _read(read: ReadAt, size: int) -> ZipArchive:
    cd_offset, cd_size, entries, cd_end = _end_records(read, size)
    if cd_size > MAX_CENTRAL_DIRECTORY_BYTES or entries > MAX_MEMBERS:
        raise _error(
            f"central directory of {cd_size} bytes and {entries} entries exceeds the "
            f"limits ({MAX_CENTRAL_DIRECTORY_BYTES} bytes, {MAX_MEMBERS} entries)",
            Code.ZIP_TOO_LARGE,
        )
    if cd_offset + cd_size != cd_end:
        raise _error(
            f"central directory [{cd_offset}, {cd_offset + cd_size}) does not end at the "
            f"end records (byte {cd_end}): data hidden between them",
            Code.ZIP_EXTRA_DATA,
        )
    if entries > cd_size // _CENTRAL.size:
        raise _error(f"{entries} entries cannot fit in a {cd_size}-byte central directory")
    central = _central_entries(_exact(read, cd_size, cd_offset, "central directory"), entries)
    members = sorted((_local(read, c, cd_offset) for c in central), key=lambda m: m.header_offset)
    _tile(members, cd_offset)
    return ZipArchive(tuple(members), cd_offset, size)


def _end_records(read: ReadAt, size: int) -> tuple[int, int, int, int]:
    """(directory offset, size, entries, where it must end) from the end records."""
    if size < _EOCD.size:
        raise _error(
            f"{size} bytes is too short for an end of central directory record",
            Code.ZIP_TRUNCATED,
        )
    tail_len = min(size, _EOCD.size + _U16)
    tail_start = size - tail_len
    tail = _exact(read, tail_len, tail_start, "tail")
    # The record is the last signature whose comment reaches the end exactly:
    # anything appended after the archive leaves no such record.
    pos = tail.rfind(b"PK\x05\x06", 0, len(tail) - _EOCD.size + 4)
    while pos >= 0 and pos + _EOCD.size + _EOCD.unpack_from(tail, pos)[7] != len(tail):
        pos = tail.rfind(b"PK\x05\x06", 0, pos + 3)
    if pos < 0:
        raise _error(
            "no end of central directory record at the end of the file "
            "(not a ZIP archive, or data appended to one)",
            Code.ZIP_EXTRA_DATA,
        )
    eocd_at = tail_start + pos
    _, disk, cd_disk, n_disk, n_entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    if disk != 0 or cd_disk != 0 or n_disk != n_entries:
        raise _error("multi-disk archives are not supported")
    z64 = _zip64(read, eocd_at - _ZIP64_LOCATOR.size)
    if z64 is not None:
        return z64
    return cd_offset, cd_size, n_entries, eocd_at


def _zip64(read: ReadAt, locator_at: int) -> tuple[int, int, int, int] | None:
    """The ZIP64 end record, when a locator sits right before the end record."""
    if locator_at < 0:
        return None
    sig, loc_disk, z64_at, n_disks = _ZIP64_LOCATOR.unpack(
        _exact(read, _ZIP64_LOCATOR.size, locator_at, "ZIP64 locator")
    )
    if sig != b"PK\x06\x07":
        return None
    if loc_disk != 0 or n_disks > 1:
        raise _error("multi-disk archives are not supported")
    actual_at = locator_at - _ZIP64_EOCD.size  # where a record without extensible data sits
    if z64_at != actual_at and actual_at >= 0 and read(4, actual_at) == b"PK\x06\x06":
        raise _error(
            f"the ZIP64 end record is at byte {actual_at}, the archive says {z64_at}: "
            f"its offsets are shifted by {actual_at - z64_at} bytes (data prepended)",
            Code.ZIP_EXTRA_DATA,
        )
    if z64_at + _ZIP64_EOCD.size > locator_at:
        raise _error(f"ZIP64 end record offset {z64_at} is out of place")
    record = _exact(read, _ZIP64_EOCD.size, z64_at, "ZIP64 end record")
    sig, rec_size, _, _, disk, cd_disk, n_disk, n_entries, cd_size, cd_offset = _ZIP64_EOCD.unpack(
        record
    )
    if sig != b"PK\x06\x06" or z64_at + 12 + rec_size != locator_at:
        raise _error(f"bad ZIP64 end of central directory record at byte {z64_at}")
    if disk != 0 or cd_disk != 0 or n_disk != n_entries:
        raise _error("multi-disk archives are not supported")
    return cd_offset, cd_size, n_entries, z64_at


@dataclass(frozen=True)
class _Central:
    name: str
    raw_name: bytes
    flags: int
    method: int
    crc: int
    csize: int
    size: int
    offset: int


def _central_entries(cd: bytes, n_entries: int) -> list[_Central]:
    out: list[_Central] = []
    seen: set[str] = set()
    at = 0
    for index in range(n_entries):
        if at + _CENTRAL.size > len(cd):
            raise _error(f"central directory entry {index} is cut short")
        f = _CENTRAL.unpack_from(cd, at)
        if f[0] != b"PK\x01\x02":
            raise _error(f"bad signature for central directory entry {index}")
        flags, method, crc, csize, size = f[3], f[4], f[7], f[8], f[9]
        name_len, extra_len, comment_len, disk, offset = f[10], f[11], f[12], f[13], f[16]
        name_at = at + _CENTRAL.size
        at = name_at + name_len + extra_len + comment_len
        if at > len(cd):
            raise _error(f"central directory entry {index} overruns the directory")
        raw = cd[name_at : name_at + name_len]
        name = _decode(raw, flags)
        if disk != 0:
            raise _error(f"member {name!r} is on another disk")
        if name in seen:
            raise _error(f"member name {name!r} appears twice", Code.ZIP_DUPLICATE_NAME)
        seen.add(name)
        if flags & _ENCRYPTED_FLAGS:
            raise _error(f"member {name!r} is encrypted", Code.ZIP_ENCRYPTED)
        extra = cd[name_at + name_len : name_at + name_len + extra_len]
        size, csize, offset = _zip64_extra(extra, (size, csize, offset), name)
        out.append(_Central(name, raw, flags, method, crc, csize, size, offset))
    if at != len(cd):
        raise _error(f"{len(cd) - at} unexplained bytes at the end of the central directory")
    return out


def _decode(raw: bytes, flags: int) -> str:
    """A member name, by the same rule as Python's zipfile (UTF-8 if flagged, else cp437)."""
    try:
        return raw.decode("utf-8" if flags & _UTF8_FLAG else "cp437")
    except UnicodeDecodeError as exc:
        raise _error(f"member name {raw!r} is not valid UTF-8") from exc


def _zip64_extra(extra: bytes, values: tuple[int, int, int], name: str) -> tuple[int, int, int]:
    """Sizes and offset with their ZIP64 replacements (only for the fields set to 0xFFFFFFFF)."""
    wanted = [i for i, v in enumerate(values) if v == _U32]
    if not wanted:
        return values
    at = 0
    while at + 4 <= len(extra):
        tag, n = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + n]
        if tag == 0x0001:
            if len(body) < 8 * len(wanted):
                raise _error(f"ZIP64 extra field of {name!r} is too short")
            out = list(values)
            for k, i in enumerate(wanted):
                out[i] = struct.unpack_from("<Q", body, 8 * k)[0]
            return out[0], out[1], out[2]
        at += 4 + n
    raise _error(f"member {name!r} needs a ZIP64 extra field and has none")


def _local(read: ReadAt, c: _Central, cd_offset: int) -> ZipMember:
    """The member whose central entry is ``c``, checked against its local header."""
    if c.offset + _LOCAL.size > cd_offset:
        raise _error(f"local header of {c.name!r} at byte {c.offset} is past the members")
    f = _LOCAL.unpack(_exact(read, _LOCAL.size, c.offset, f"local header of {c.name!r}"))
    sig, _, flags, method, _, _, crc, csize, size, name_len, extra_len = f
    if sig != ZIP_MAGIC:
        raise _error(f"no local header for {c.name!r} at byte {c.offset}", Code.ZIP_HEADER_MISMATCH)
    var = _exact(read, name_len + extra_len, c.offset + _LOCAL.size, f"name of {c.name!r}")
    mismatch = []
    if var[:name_len] != c.raw_name:
        mismatch.append(f"name {var[:name_len]!r}")
    if method != c.method:
        mismatch.append(f"method {method} (central: {c.method})")
    if (flags ^ c.flags) & (_ENCRYPTED_FLAGS | _DESCRIPTOR_FLAG | _UTF8_FLAG):
        mismatch.append(f"flags {flags:#x} (central: {c.flags:#x})")
    if not flags & _DESCRIPTOR_FLAG:
        size, csize, _ = _zip64_extra(var[name_len:], (size, csize, 0), c.name)
        if (crc, csize, size) != (c.crc, c.csize, c.size):
            mismatch.append(f"crc/sizes {crc:#x}/{csize}/{size}")
    if mismatch:
        raise _error(
            f"local header of {c.name!r} disagrees with the central directory: "
            + ", ".join(mismatch),
            Code.ZIP_HEADER_MISMATCH,
        )
    start = c.offset + _LOCAL.size + name_len + extra_len
    end = start + c.csize
    if flags & _DESCRIPTOR_FLAG:
        end = _descriptor(read, c, end, cd_offset)
    if method == STORED and c.csize != c.size:
        raise _error(f"stored member {c.name!r} has sizes {c.csize} and {c.size}")
    return ZipMember(c.name, c.offset, start, start + c.csize, end, method, c.crc, c.size)


def _descriptor(read: ReadAt, c: _Central, at: int, cd_offset: int) -> int:
    """Where the data descriptor after ``c``'s data ends; it must repeat the central values."""
    sig = read(4, at)
    body_at = at + 4 if sig == b"PK\x07\x08" else at
    zip64 = c.csize >= _U32 or c.size >= _U32
    fmt = "<IQQ" if zip64 else "<III"
    n = struct.calcsize(fmt)
    if body_at + n > cd_offset:
        raise _error(f"data descriptor of {c.name!r} runs into the central directory")
    crc, csize, size = struct.unpack(fmt, _exact(read, n, body_at, f"descriptor of {c.name!r}"))
    if (crc, csize, size) != (c.crc, c.csize, c.size):
        raise _error(
            f"data descriptor of {c.name!r} disagrees with the central directory",
            Code.ZIP_HEADER_MISMATCH,
        )
    return body_at + n


def _tile(members: list[ZipMember], cd_offset: int) -> None:
    """Members must follow each other from byte 0 to the central directory, no gap, no overlap."""
    expected = 0
    for m in members:
        if m.header_offset < expected:
            raise _error(
                f"member {m.name!r} at byte {m.header_offset} overlaps the one before "
                f"(which ends at byte {expected})",
                Code.ZIP_OVERLAP,
            )
        if m.header_offset > expected:
            where = "before the first member" if expected == 0 else f"after byte {expected}"
            raise _error(
                f"{m.header_offset - expected} bytes {where} belong to no member",
                Code.ZIP_EXTRA_DATA,
            )
        expected = m.end
    if expected > cd_offset:
        raise _error(
            f"the last member ends at byte {expected}, inside the central directory",
            Code.ZIP_OVERLAP,
        )
    if expected < cd_offset:
        raise _error(
            f"{cd_offset - expected} bytes after byte {expected} belong to no member",
            Code.ZIP_EXTRA_DATA,
        )


def read_member(read: ReadAt, m: ZipMember, where: str, limit: int | None = None) -> bytes:
    """A member's uncompressed bytes, at most ``limit`` (:data:`MAX_MEMBER_BYTES`), CRC-checked."""
    limit = MAX_MEMBER_BYTES if limit is None else limit
    if m.size > limit:  # (the pickle analyser's bound: its code)
        raise _error(f"member {m.name} is over {limit} bytes", Code.PICKLE_TOO_LARGE, where)
    raw = read(m.data_end - m.data_start, m.data_start)
    if len(raw) != m.data_end - m.data_start:
        raise _error(f"member {m.name} is cut short", Code.ZIP_TRUNCATED, where)
    if m.method == STORED:
        data = raw
    elif m.method == DEFLATED:
        inflate = zlib.decompressobj(-15)
        try:
            data = inflate.decompress(raw, limit + 1)
        except zlib.error as exc:
            msg = f"member {m.name} does not inflate: {exc}"
            raise _error(msg, Code.ZIP_MALFORMED, where) from None
        if len(data) != m.size or not inflate.eof:
            raise _error(
                f"member {m.name} inflates to another size than its {m.size} bytes",
                Code.ZIP_MALFORMED,
                where,
            )
    else:
        raise _error(f"member {m.name}: compression method {m.method}", Code.ZIP_MALFORMED, where)
    if zlib.crc32(data) != m.crc:
        raise _error(
            f"member {m.name}: CRC-32 {zlib.crc32(data):08x}, the archive says {m.crc:08x}",
            Code.ZIP_CRC_MISMATCH,
            where,
        )
    return data
