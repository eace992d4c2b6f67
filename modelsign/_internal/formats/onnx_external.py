"""Where an ONNX tensor's external data may be: a plain relative path under the model folder.

ONNX loaders have resolved ``external_data`` locations with a bare path join, so a
model could make its loader read any file (CVE-2022-25882, GHSA-538c-55jv-c5g9):
absolute paths, ``..``, a symlink out of the folder. Both functions refuse every
such location before anything is read, each class of refusal with its own code.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Mapping
from typing import Final

from ...codes import Code
from ...errors import FormatError

# onnxruntime reads a tensor whose location is this tag from the memory address in its offset.
_ORT_MEMORY_TAG: Final = "*/_ORT_MEM_ADDR_/*"
_DRIVE: Final = re.compile(r"[A-Za-z]:")


def _refuse(code: Code, location: str, why: str, path: str, tensor: str | None) -> FormatError:
    who = f"tensor {tensor!r}: " if tensor is not None else ""
    return FormatError(
        f"{who}external data location {location[:200]!r} {why}",
        code=code,
        path=path,
        tensor=tensor,
    )


def check_location(location: str, *, path: str, tensor: str | None = None) -> None:
    """Refuse a location that is not a plain relative POSIX path (the text only: no I/O).

    ``path`` is the .onnx file's, for the error.
    """
    if not location:
        raise _refuse(Code.ONNX_EXTERNAL_EMPTY, location, "is empty", path, tensor)
    if "\0" in location:
        raise _refuse(Code.ONNX_EXTERNAL_NUL, location, "holds a NUL byte", path, tensor)
    why = None
    if location == _ORT_MEMORY_TAG:
        why = "is onnxruntime's tag for a memory address, not a file"
    elif location.startswith("/"):
        why = "is an absolute path"
    elif location.startswith("\\\\"):
        why = "is a Windows UNC path"
    elif _DRIVE.match(location):
        why = "starts with a Windows drive"
    if why is not None:
        raise _refuse(Code.ONNX_EXTERNAL_ABSOLUTE, location, why, path, tensor)
    if "\\" in location:
        raise _refuse(
            Code.ONNX_EXTERNAL_BACKSLASH,
            location,
            "holds a backslash (locations are POSIX paths; Windows reads it as a separator)",
            path,
            tensor,
        )
    if ".." in location.split("/"):
        raise _refuse(Code.ONNX_EXTERNAL_PARENT, location, "has a '..' component", path, tensor)


def resolve_external(
    root: str,
    model_relpath: str,
    location: str,
    *,
    tensor: str | None = None,
    within: Mapping[str, str] | None = None,
) -> str:
    """The POSIX path, relative to ``root``, of the data file ``location`` names.

    ``model_relpath`` is the .onnx file's POSIX path relative to the model folder
    ``root``; ``location`` is relative to the .onnx file's folder. Refuses (before
    anything is opened) a location that is not a plain relative path, one that
    resolves out of its boundary through a symlink (``ONNX_EXTERNAL_ESCAPE``), and
    one that is not an existing regular file (``ONNX_EXTERNAL_MISSING``). The
    boundary is ``root``, or for a file discovery vetted, the real folder
    ``within`` gives it: a Hugging Face snapshot's links lead into the cache that
    holds the repo's ``blobs/`` (discovery refuses a link anywhere else), so a data
    file there resolves outside the snapshot yet stays in bounds. A symlink that
    stays in bounds is allowed here; the path returned is the one written, not
    its target (the model's file list judges symlinks).
    """
    check_location(location, path=model_relpath, tensor=tensor)
    # No '..' and not absolute: the normalised join stays below the model's folder.
    rel = posixpath.normpath(posixpath.join(posixpath.dirname(model_relpath), location))
    bound = os.path.realpath((within or {}).get(rel) or root)
    real = os.path.realpath(os.path.join(root, *rel.split("/")))
    if os.path.commonpath([bound, real]) != bound:
        where = "the model folder" if bound == os.path.realpath(root) else "the folder"
        raise _refuse(
            Code.ONNX_EXTERNAL_ESCAPE,
            location,
            f"resolves to {real}, outside {where} {bound}",
            model_relpath,
            tensor,
        )
    try:
        mode = os.stat(real).st_mode
    except OSError as exc:
        why = f"names {rel}, which cannot be found ({exc.strerror})"
        raise _refuse(Code.ONNX_EXTERNAL_MISSING, location, why, model_relpath, tensor) from None
    if not stat.S_ISREG(mode):
        why = f"names {rel}, which is not a regular file"
        raise _refuse(Code.ONNX_EXTERNAL_MISSING, location, why, model_relpath, tensor)
    return rel
