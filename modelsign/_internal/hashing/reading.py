"""Reading an open model file in chunks, and noticing when it changes underneath."""

from __future__ import annotations

import os
from typing import Any

from ...codes import Code
from ...errors import DiscoveryError
from .._atomic import open_model_file
from ..discover import ModelFile

# 1 MiB chunks stay in the CPU cache between the copy from the page cache and
# the hash that reads them: measurably faster than larger chunks.
CHUNK = 1 << 20


def open_checked(f: ModelFile, size: int | None = None) -> int:
    """Open ``f`` as discovery saw it (see ``open_model_file``); unreadable is a DiscoveryError."""
    try:
        return open_model_file(f, size=size)
    except OSError as exc:
        raise DiscoveryError(
            f"cannot open: {exc.strerror}", code=Code.UNREADABLE, path=f.path
        ) from exc


def stream_digest(f: ModelFile, hasher: Any, *, size: int | None = None) -> str:
    """Feed a whole file (opened as discovery saw it) to ``hasher``; return its hex digest.

    With ``size`` (the signed size) a file of another size is refused unread.
    """
    fd = open_checked(f, size)
    try:
        pos = 0
        while chunk := os.pread(fd, CHUNK, pos):
            hasher.update(chunk)
            pos += len(chunk)
    finally:
        os.close(fd)
    return str(hasher.hexdigest())


def pread_all(fd: int, size: int, offset: int = 0) -> bytes:
    """``size`` bytes at ``offset`` (fewer only at end of file): pread may return short."""
    out = bytearray()
    while len(out) < size:
        chunk = os.pread(fd, size - len(out), offset + len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def pread_into(fd: int, target: memoryview, offset: int, preadv: Any) -> int:
    """Read at ``offset`` into ``target``; may return fewer bytes (the caller loops)."""
    if preadv is not None:
        return int(preadv(fd, [target], offset))
    data = os.pread(fd, len(target), offset)  # platforms without preadv
    target[: len(data)] = data
    return len(data)


def changed_since(fd: int, then: os.stat_result) -> bool:
    """Whether an open file's size or mtime changed since ``then`` (it was written to)."""
    now = os.fstat(fd)
    return (now.st_size, now.st_mtime_ns) != (then.st_size, then.st_mtime_ns)


def check_unchanged(fd: int, then: os.stat_result, path: str) -> None:
    """Refuse a file that grew past ``then.st_size`` or whose size or mtime moved since."""
    if os.pread(fd, 1, then.st_size):
        raise DiscoveryError(
            f"file grew while reading (past {then.st_size} bytes)",
            code=Code.FILE_CHANGED,
            path=path,
        )
    if changed_since(fd, then):
        raise DiscoveryError("file was modified while reading", code=Code.FILE_CHANGED, path=path)
