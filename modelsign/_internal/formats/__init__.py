"""Format detection and the strict readers' common entry point.

Formats are recognised by content first; a weight-file extension
(``.safetensors``, ``.gguf``) forces the strict reader even when the content
does not look right, so a damaged weight file is an error, not an opaque file.
"""

from __future__ import annotations

import os
from typing import Literal

from ...errors import FormatError, InputError, ModelsignError
from .._atomic import open_regular_fd
from .checkpoint import read_checkpoint
from .gguf import HEADER_LIMIT as GGUF_HEADER_LIMIT
from .gguf import parse_gguf
from .keras import HDF5_MAGIC, read_keras
from .layout import BytesHeaderReader, HeaderReader, WeightFormat, WeightLayout
from .numpy_format import MAGIC as NUMPY_MAGIC
from .numpy_format import holds_objects, read_numpy
from .onnx import looks_like_onnx, parse_onnx, parse_onnx_bytes
from .onnx_layout import onnx_layout
from .pickle import sniff_pickle
from .safetensors import HEADER_LIMIT as SAFETENSORS_HEADER_LIMIT
from .safetensors import looks_like_safetensors, parse_safetensors
from .ziparchive import ReadAt

FileFormat = Literal["safetensors", "gguf", "pickle", "onnx", "numpy", "keras", "opaque"]

SNIFF_BYTES = 16


def detect_format(name: str, head: bytes) -> FileFormat:
    """Classify a file from its POSIX name and first bytes (at least ``SNIFF_BYTES``)."""
    lower = name.lower()
    if head[:4] == b"GGUF" or lower.endswith(".gguf"):
        return "gguf"
    if lower.endswith(".safetensors"):
        return "safetensors"
    if head[:1] == b"\x80" and sniff_pickle(head, lower) == "pickle":
        return "pickle"  # a pickle under an array's name is still what np.load unpickles
    if head[:6] == NUMPY_MAGIC or lower.endswith((".npy", ".npz")):
        return "numpy"
    if lower.endswith(".keras") or (head[:8] == HDF5_MAGIC and lower.endswith((".h5", ".hdf5"))):
        return "keras"
    if looks_like_safetensors(head):
        return "safetensors"
    if sniff_pickle(head, lower) is not None:
        return "pickle"
    if looks_like_onnx(head, lower):
        return "onnx"
    return "opaque"


def file_format(fmt: FileFormat | WeightFormat) -> FileFormat:
    """The file format of a weight layout's format (a torch checkpoint is a pickle file)."""
    return "pickle" if fmt == "pytorch" else fmt


def parse_weights(
    fmt: FileFormat | WeightFormat, fd: int, size: int, path: str
) -> tuple[WeightLayout, HeaderReader]:
    """Strictly parse the header of an open weight file.

    Returns the layout and the reader, whose buffered bytes the caller feeds to
    its digests before streaming the rest of the file (none for a checkpoint,
    whose structure is read where it lies).
    """
    fmt = file_format(fmt)
    if fmt in ("pickle", "numpy", "keras"):
        layout = _archive_layout(fmt, lambda n, at: os.pread(fd, n, at), size, path)
        return layout, HeaderReader(fd, size, path, limit=0)
    if fmt == "onnx":
        return onnx_layout(parse_onnx(fd, size, path)), HeaderReader(fd, size, path, limit=0)
    if fmt == "safetensors":
        reader = HeaderReader(fd, size, path, limit=SAFETENSORS_HEADER_LIMIT + 8)
        return parse_safetensors(reader), reader
    if fmt == "gguf":
        reader = HeaderReader(fd, size, path, limit=GGUF_HEADER_LIMIT)
        return parse_gguf(reader), reader
    raise InputError(f"{fmt} files have no weight layout", path=path)


def parse_weights_bytes(
    fmt: FileFormat | WeightFormat, data: bytes | memoryview, path: str
) -> WeightLayout:
    """Strictly parse a weight file held in memory (never re-reading its path)."""
    fmt = file_format(fmt)
    if fmt in ("pickle", "numpy", "keras"):
        return _archive_layout(fmt, lambda n, at: bytes(data[at : at + n]), len(data), path)
    if fmt == "onnx":
        return onnx_layout(parse_onnx_bytes(data, path))
    if fmt == "safetensors":
        return parse_safetensors(BytesHeaderReader(data, path, limit=SAFETENSORS_HEADER_LIMIT + 8))
    if fmt == "gguf":
        return parse_gguf(BytesHeaderReader(data, path, limit=GGUF_HEADER_LIMIT))
    raise InputError(f"{fmt} files have no weight layout", path=path)


def _archive_layout(fmt: FileFormat, read: ReadAt, size: int, path: str) -> WeightLayout:
    """A layout read through ``read``: a torch checkpoint, NumPy file or Keras archive."""
    if fmt == "numpy":
        return read_numpy(read, size, path).layout
    if fmt == "keras":
        if read(min(size, 8), 0) == HDF5_MAGIC:
            raise InputError("legacy Keras HDF5 files have no weight layout", path=path)
        return read_keras(read, size, path).layout
    return _checkpoint_layout(read, size, path)


def _checkpoint_layout(read: ReadAt, size: int, path: str) -> WeightLayout:
    found = read_checkpoint(read, size, path)
    if found is None or found.layout is None:
        raise InputError("not a torch checkpoint (no data.pkl)", path=path)
    return found.layout


def sniff_file(path: str, name: str) -> FileFormat:
    """The format of a file from its name and first bytes, without parsing or blocking.

    For files judged but not read (unsigned files beside a model): a FIFO,
    socket, device or unreadable path is reported as ``opaque``. A NumPy file
    with an object array is ``pickle``, as the manifest records it (only its
    array headers are read).
    """
    try:
        fd = open_regular_fd(path, name)
    except (OSError, ModelsignError):
        return "opaque"  # gone, a symlink, not a regular file, or unreadable
    try:
        fmt = detect_format(name, os.pread(fd, SNIFF_BYTES, 0))
        return "pickle" if fmt == "numpy" and _holds_objects(fd, name) else fmt
    finally:
        os.close(fd)


def _holds_objects(fd: int, name: str) -> bool:
    """Whether the NumPy file open at ``fd`` has an object array (False if it cannot be read)."""
    try:
        return holds_objects(lambda n, at: os.pread(fd, n, at), os.fstat(fd).st_size, name)
    except FormatError:
        return False  # damaged: judged by its name and magic, as before


def read_layout(path: str | os.PathLike[str]) -> WeightLayout:
    """Open ``path`` and strictly parse it as the weight format it is."""
    p = os.fspath(path)
    fd = open_regular_fd(p)  # a FIFO is an error, never a hang
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, SNIFF_BYTES, 0)
        fmt = detect_format(os.path.basename(p), head)
        return parse_weights(fmt, fd, size, p)[0]
    finally:
        os.close(fd)


__all__ = [
    "GGUF_HEADER_LIMIT",
    "SAFETENSORS_HEADER_LIMIT",
    "FileFormat",
    "HeaderReader",
    "WeightFormat",
    "WeightLayout",
    "detect_format",
    "file_format",
    "parse_weights",
    "parse_weights_bytes",
    "read_layout",
    "sniff_file",
]
