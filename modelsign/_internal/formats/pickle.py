"""Content-based detection of pickle-based model files.

Loading a pickle runs code, so these files are recognised by what they contain,
not by their names: a torch ZIP checkpoint (a ZIP with a ``*.pkl`` member) or a
raw pickle stream. Protocols 0 and 1 have no magic number; for them the first
opcodes are checked, and only under a pickle-ish name, to keep text files out.
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import struct
from typing import NamedTuple

from ...codes import Code
from ...errors import FormatError

TORCH_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib")
"""Names under which pickle-based checkpoints are usually published."""

MAX_CENTRAL_DIRECTORY_BYTES = 64 << 20
"""Largest ZIP central directory read (a checkpoint needs about 100 bytes per member)."""

_ZIP_LOCAL = b"PK\x03\x04"
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL_ENTRY = struct.Struct("<4sHHHHHHIIIHHHHHII")
_UTF8_FLAG = 0x800

_OPCODES = {op.code: op for op in pickletools.opcodes}
# Opcodes a protocol 0/1 pickle can start with: each pushes onto an empty stack.
_START_OPCODES = frozenset("(}])cILFSVNJKMGTUXP")


def sniff_pickle(head: bytes, lower_name: str) -> str | None:
    """Classify a file from its first 16 bytes and lower-cased name.

    Returns ``"torch-zip"`` for a ZIP under a torch checkpoint name (confirm with
    :func:`inspect_zip_for_pickle`), ``"pickle"`` for a pickle stream, else ``None``.
    """
    pickle_name = lower_name.endswith(TORCH_EXTENSIONS)
    if head.startswith(_ZIP_LOCAL):
        return "torch-zip" if pickle_name else None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if pickle_name and _looks_like_old_pickle(head):
        return "pickle"
    return None


def _looks_like_old_pickle(head: bytes) -> bool:
    """True if ``head`` decodes as protocol 0/1 opcodes up to its end or a STOP."""
    if not head or chr(head[0]) not in _START_OPCODES:
        return False
    stream = io.BytesIO(head)
    while True:
        code = stream.read(1).decode("latin-1")
        if not code:
            return True
        op = _OPCODES.get(code)
        if op is None or op.proto > 1:
            return False
        if op.arg is not None:
            at = stream.tell()
            try:
                op.arg.reader(stream)
            except ValueError:
                ran_out = stream.tell() >= len(head)
                return _plausible_cut_argument(code, op.arg.n, head[at:], ran_out)
        if op.name == "STOP":
            return True


# What the start of a newline-terminated argument may look like, when the 16
# sniffed bytes end inside it (text such as "Install..." would otherwise pass).
_PARTIAL_LINE_ARGS = {
    "I": re.compile(rb"[-+]?[0-9]*"),
    "L": re.compile(rb"[-+]?[0-9]*L?"),
    "F": re.compile(rb"[-+]?[0-9.eEinfa]*"),
    "S": re.compile(rb"['\"][^\n]*"),
    "c": re.compile(rb"[A-Za-z_][\w.]*(?:\n[A-Za-z_]?[\w.]*)?"),
    "i": re.compile(rb"[A-Za-z_][\w.]*(?:\n[A-Za-z_]?[\w.]*)?"),
    "g": re.compile(rb"[0-9]*"),
    "p": re.compile(rb"[0-9]*"),
}


def _plausible_cut_argument(code: str, n: int, rest: bytes, ran_out: bool) -> bool:
    """Whether an argument that failed to decode was merely cut off by the sniff window."""
    if n == pickletools.UP_TO_NEWLINE:
        pattern = _PARTIAL_LINE_ARGS.get(code)
        cut = b"\n" not in rest or (code in "ci" and rest.count(b"\n") == 1)
        return cut and (not rest or pattern is None or pattern.fullmatch(rest) is not None)
    # A fixed-size or length-prefixed argument is cut if its reader ran out of bytes
    # (a negative length, say, fails earlier).
    return ran_out


def _pread_exact(fd: int | bytes, n: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, n, offset) if isinstance(fd, int) else fd[offset : offset + n]
    if len(data) != n:
        raise FormatError(
            f"ZIP {what} at byte {offset} is cut short ({len(data)} of {n} bytes)",
            code=Code.PICKLE_BAD_ZIP,
        )
    return data


def _bad_zip(msg: str) -> FormatError:
    return FormatError(f"not a readable ZIP archive: {msg}", code=Code.PICKLE_BAD_ZIP)


class _Directory(NamedTuple):
    """Where the central directory is, as the end records say."""

    offset: int
    size: int
    entries: int
    end: int  # where it must end: the first end record


def inspect_zip_for_pickle(fd: int | bytes, size: int) -> list[str]:
    """Names of the ``*.pkl`` members of the ZIP open as ``fd`` (``size`` bytes).

    Reads only the end records and the central directory, through ``os.pread``
    (or from ``fd`` itself when it is the archive's bytes: a ZIP inside a ZIP).
    The central directory must end exactly where the end records begin, so data
    prepended or appended to the archive (a polyglot) is refused rather than
    read one way here and another way by a loader.
    """
    d = _end_records(fd, size)
    if d.size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise _bad_zip(
            f"central directory of {d.size} bytes exceeds the "
            f"{MAX_CENTRAL_DIRECTORY_BYTES}-byte limit"
        )
    if d.offset + d.size != d.end:
        raise _bad_zip(
            f"central directory [{d.offset}, {d.offset + d.size}) does not end at the "
            f"end records (byte {d.end})"
        )
    if d.entries > d.size // _CENTRAL_ENTRY.size:
        raise _bad_zip(f"{d.entries} entries cannot fit in a {d.size}-byte central directory")
    cd = _pread_exact(fd, d.size, d.offset, "central directory")
    return _pkl_members(cd, d.entries)


def _end_records(fd: int | bytes, size: int) -> _Directory:
    """The end of central directory record, and the ZIP64 one it may point to."""
    if size < _EOCD.size:
        raise _bad_zip(f"{size} bytes is too short for an end of central directory record")
    tail_len = min(size, _EOCD.size + 0xFFFF)
    tail_start = size - tail_len
    tail = _pread_exact(fd, tail_len, tail_start, "tail")
    # The record is the last signature whose comment length reaches the end exactly.
    pos = tail.rfind(b"PK\x05\x06", 0, len(tail) - _EOCD.size + 4)
    while pos >= 0 and pos + _EOCD.size + _EOCD.unpack_from(tail, pos)[7] != len(tail):
        pos = tail.rfind(b"PK\x05\x06", 0, pos + 3)
    if pos < 0:
        raise _bad_zip("no end of central directory record at the end of the file")
    eocd_at = tail_start + pos
    _, disk, cd_disk, n_disk, n_entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    if disk != 0 or cd_disk != 0 or n_disk != n_entries:
        raise _bad_zip("multi-disk archives are not supported")
    found = _Directory(cd_offset, cd_size, n_entries, eocd_at)
    return _zip64(fd, eocd_at - _ZIP64_LOCATOR.size) or found


def _zip64(fd: int | bytes, locator_at: int) -> _Directory | None:
    """The ZIP64 end record, when a locator sits right before the end record."""
    if locator_at < 0:
        return None
    locator = _pread_exact(fd, _ZIP64_LOCATOR.size, locator_at, "ZIP64 locator")
    sig, loc_disk, z64_at, n_disks = _ZIP64_LOCATOR.unpack(locator)
    if sig != b"PK\x06\x07":
        return None
    if loc_disk != 0 or n_disks > 1:
        raise _bad_zip("multi-disk archives are not supported")
    if z64_at + _ZIP64_EOCD.size > locator_at:
        raise _bad_zip(f"ZIP64 end record offset {z64_at} is out of place")
    record = _pread_exact(fd, _ZIP64_EOCD.size, z64_at, "ZIP64 end record")
    (sig, rec_size, _, _, disk, cd_disk, n_disk, n_entries, cd_size, cd_offset) = (
        _ZIP64_EOCD.unpack(record)
    )
    if sig != b"PK\x06\x06" or z64_at + 12 + rec_size != locator_at:
        raise _bad_zip(f"bad ZIP64 end of central directory record at byte {z64_at}")
    if disk != 0 or cd_disk != 0 or n_disk != n_entries:
        raise _bad_zip("multi-disk archives are not supported")
    return _Directory(cd_offset, cd_size, n_entries, z64_at)


def _pkl_members(cd: bytes, n_entries: int) -> list[str]:
    """The ``*.pkl`` names in a central directory of exactly ``n_entries`` entries."""
    names: list[str] = []
    at = 0
    for index in range(n_entries):
        if at + _CENTRAL_ENTRY.size > len(cd):
            raise _bad_zip(f"central directory entry {index} is cut short")
        fields = _CENTRAL_ENTRY.unpack_from(cd, at)
        if fields[0] != b"PK\x01\x02":
            raise _bad_zip(f"bad signature for central directory entry {index}")
        flags, name_len, extra_len, comment_len = fields[3], fields[10], fields[11], fields[12]
        name_at = at + _CENTRAL_ENTRY.size
        at = name_at + name_len + extra_len + comment_len
        if at > len(cd):
            raise _bad_zip(f"central directory entry {index} overruns the directory")
        raw = cd[name_at : name_at + name_len]
        # The same rule as Python's zipfile: UTF-8 if flagged, else code page 437.
        name = raw.decode("utf-8" if flags & _UTF8_FLAG else "cp437", "replace")
        if name.lower().endswith(".pkl"):
            names.append(name)
    if at != len(cd):
        raise _bad_zip(f"{len(cd) - at} unexplained bytes at the end of the central directory")
    return names
