"""File I/O rules: atomic output (temporary file, fsync, rename) and safe input.

Every open of a model file goes through :func:`open_model_file` (or, for a
path with no discovery record, :func:`open_regular_fd`), so that no code path
can block on a FIFO, follow a link swapped in after discovery, or read a file
of another size than the signature records.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import IO, Any, BinaryIO, Literal, Protocol, TextIO, overload

from ..codes import Code
from ..errors import DiscoveryError, InputError


class ModelFile(Protocol):
    """What opening a file needs of its discovery record (``discover.ModelFile`` is one)."""

    @property
    def path(self) -> str: ...
    @property
    def real(self) -> str: ...
    @property
    def dev(self) -> int: ...
    @property
    def ino(self) -> int: ...
    @property
    def within(self) -> str: ...


#: Never block (a FIFO's open waits for a writer), never follow a last-component
#: link, never leak the descriptor into a child process.
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


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
            f"cannot write in {folder}: {exc.strerror}", code=Code.OUTPUT_UNWRITABLE, path=path
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
                    "output exists; pass --force to overwrite", code=Code.OUTPUT_EXISTS, path=path
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


def open_regular_fd(path: str, name: str | None = None) -> int:
    """A blocking descriptor of regular file ``path``, opened without blocking or following.

    A FIFO, socket or device (swapped in at any time) is ``SPECIAL_FILE``,
    naming ``name`` (the model-relative name) or the path; open failures are
    the ``OSError`` (ELOOP for a link), for callers to map as they report.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DiscoveryError(
                f"{describe_mode(mode)} is where a regular file was; it is not read",
                code=Code.SPECIAL_FILE,
                path=name or path,
            )
        os.set_blocking(fd, True)  # reads of a regular file must not return EAGAIN
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_model_file(f: ModelFile, *, size: int | None = None, same_file: bool = True) -> int:
    """Open model file ``f`` as discovery saw it: the one way model bytes are opened.

    Its folder is resolved (a folder swapped for a link is followed by us, not
    by ``open``) and must stay inside ``f.within``; the file itself is opened
    as :func:`open_regular_fd` does, never through a link (an allowed link was
    resolved by discovery: ``f.real`` is its target). With ``same_file`` the
    descriptor must be the inode discovery recorded (``FILE_CHANGED``); a
    loader, which checks the very bytes it reads, passes False to say what
    changed instead. Given the signed ``size``, another size is
    ``FILE_SIZE_MISMATCH`` — before a caller reads or allocates anything.
    """
    folder, base = os.path.split(f.real)
    target = os.path.join(os.path.realpath(folder), base)
    if f.within and not target.startswith(f.within.rstrip(os.sep) + os.sep):
        raise DiscoveryError(
            f"now resolves to {target!r}, outside {f.within!r}",
            code=Code.SYMLINK_ESCAPE,
            path=f.path,
        )
    fd = open_regular_fd(target, f.path)
    try:
        st = os.fstat(fd)
        if same_file and (st.st_dev, st.st_ino) != (f.dev, f.ino):
            raise DiscoveryError(
                "the file was replaced after discovery", code=Code.FILE_CHANGED, path=f.path
            )
        if size is not None and st.st_size != size:
            raise size_mismatch(f.path, size, st.st_size)
        return fd
    except BaseException:
        os.close(fd)
        raise


def size_mismatch(name: str, signed: int, actual: int) -> DiscoveryError:
    """``FILE_SIZE_MISMATCH``: the file is not the signed size, so none of it is read."""
    return DiscoveryError(
        f"file is {actual} bytes, {signed} were signed; not read",
        code=Code.FILE_SIZE_MISMATCH,
        path=name,
        expected=str(signed),
        actual=str(actual),
    )


def describe_mode(mode: int) -> str:
    """What a file type is called in messages: "a FIFO", "a socket", ..."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a special file"
