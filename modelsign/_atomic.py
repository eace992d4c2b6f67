"""File I/O rules: atomic output (temporary file, fsync, rename) and safe input."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from .errors import InputError


def write_atomic(path: str, data: bytes, *, force: bool = False, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see all of it or nothing.

    Without ``force`` an existing file is never replaced — checked again at
    the final step with ``link`` so a file created meanwhile is not clobbered.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".modelsign-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(
            f"cannot write in {folder}: {exc.strerror}", code="OUTPUT_UNWRITABLE", path=path
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise InputError(
                    "output exists; pass --force to overwrite", code="OUTPUT_EXISTS", path=path
                ) from exc
            os.unlink(tmp)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


@overload
def open_regular(path: str, mode: Literal["rb"] = "rb") -> BinaryIO: ...
@overload
def open_regular(path: str, mode: Literal["r"], *, encoding: str) -> TextIO: ...
def open_regular(path: str, mode: str = "rb", *, encoding: str | None = None) -> IO[Any]:
    """Open a user-supplied file for reading, refusing anything but a regular file.

    ``open()`` on a FIFO blocks until a writer appears; opening non-blocking and
    checking the type first means a wrong path is an error, never a hang. The
    refusal is an ``OSError`` so callers map it like any unreadable file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode, encoding=encoding)
    except BaseException:
        os.close(fd)
        raise
