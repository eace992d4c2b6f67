"""Atomic output: a temporary file in the target folder, fsync, then rename."""

from __future__ import annotations

import os
import tempfile

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
