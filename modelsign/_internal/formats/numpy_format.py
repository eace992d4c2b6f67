"""NumPy ``.npy`` files and ``.npz`` archives, read strictly (named so as not to shadow numpy).

A ``.npy`` file is ``\\x93NUMPY``, a version (1.0: u16 header length; 2.0 and
3.0: u32; 3.0's header is UTF-8), a Python dict literal with exactly the keys
``descr``, ``fortran_order`` and ``shape``, padded with spaces to a multiple
of 16 bytes and ending in ``\\n``, then the array's bytes: exactly
``prod(shape) × itemsize`` of them, to the end of the file (or member).

A plain array is one tensor, located where it lies, so the hashing pipeline
digests it in its one read — with the same digest as the same array in a
safetensors file (C order, same dtype name). A Fortran-order array (more than
one dimension over 1) gets a storage digest only, and so does an array of a
dtype with no tensor form (strings, dates, structured records): a
``NUMPY_UNSUPPORTED_DTYPE`` finding says so. An array whose dtype holds Python
objects (``|O``, or a structured dtype with an object field) is a pickle: it
goes through the static analyser and the file is pickle-bearing.

A ``.npz`` is a ZIP (read strictly) of ``*.npy`` members. A stored member's
array is located in the file like a ``.npy``'s. A deflated member
(``np.savez_compressed``) is recorded as a storage of its compressed bytes,
digested as they are, with no tensor digest (inflating it would be a second
read): its header is inflated (bounded) to check its dtype, shape and size.
"""

from __future__ import annotations

import ast
import math
import os
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Final

from ...codes import Code
from ...errors import FormatError
from ..findings import Finding
from .layout import TensorSpan, WeightLayout
from .pickle_scan import MAX_PICKLE_BYTES, PickleScan, scan_pickle
from .ziparchive import DEFLATED, ZIP_MAGIC, ReadAt, ZipMember, read_member, read_zip

MAGIC: Final = b"\x93NUMPY"
HEADER_LIMIT: Final = 10_000
"""Longest header dict accepted (numpy's own ``max_header_size`` default)."""
MAX_DIMS: Final = 64  # numpy's NPY_MAXDIMS

_KEYS: Final = frozenset({"descr", "fortran_order", "shape"})
_KINDS: Final = {
    ("b", 1): "BOOL",
    ("u", 1): "U8",
    ("i", 1): "I8",
    ("u", 2): "U16",
    ("i", 2): "I16",
    ("f", 2): "F16",
    ("u", 4): "U32",
    ("i", 4): "I32",
    ("f", 4): "F32",
    ("c", 8): "C64",
    ("u", 8): "U64",
    ("i", 8): "I64",
    ("f", 8): "F64",
    ("c", 16): "C128",
}


def _error(msg: str, code: Code, where: str) -> FormatError:
    return FormatError(msg, code=code, path=where)


@dataclass(frozen=True)
class NpyHeader:
    """A parsed ``.npy`` header; ``data_offset`` bytes precede the array's data."""

    version: int
    data_offset: int
    descr: str | list[object]  # a list: a structured dtype
    dtype: str | None  # modelsign's dtype name; None: no tensor form
    itemsize: int
    shape: tuple[int, ...]
    fortran_order: bool
    objects: bool = False  # the dtype holds Python objects: the data is a pickle

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.n_elements * self.itemsize

    @property
    def c_contiguous(self) -> bool:
        """Whether the data is in C order (a Fortran array of one long dimension is)."""
        return not self.fortran_order or sum(d > 1 for d in self.shape) <= 1


def dtype_name(descr: str) -> tuple[str, int] | None:
    """modelsign's name and the item size of a simple numeric or bool ``descr``, else None.

    Big-endian types keep a name of their own (``F32_BE``): their bytes are not
    the little-endian ones safetensors holds.
    """
    if len(descr) >= 3 and descr[0] in "<>|" and descr[2:].isdigit() and descr[2:].isascii():
        size = int(descr[2:])
        name = _KINDS.get((descr[1], size))
        if name is not None and (descr[0] != "|" or size == 1):
            return (f"{name}_BE" if descr[0] == ">" and size > 1 else name), size
    return None


def _classify(descr: str | list[object], where: str) -> tuple[str | None, int, bool]:
    """(dtype name or None, item size, holds objects) of a header's ``descr``.

    Names modelsign knows are taken as they are; any other descr is what
    NumPy's own reader makes of it (``np.load`` does the same), and one NumPy
    does not understand is a bad header.
    """
    known = dtype_name(descr) if isinstance(descr, str) else None
    if known is not None:
        return known[0], known[1], False
    import numpy as np  # here: only such arrays need it (it is slow to import)

    try:
        dt = np.lib.format.descr_to_dtype(descr)  # type: ignore[arg-type]  # a str is fine
    except (TypeError, ValueError, KeyError, IndexError, RecursionError) as exc:
        raise _error(
            f".npy header 'descr' {descr!r} is not a NumPy dtype ({exc})",
            Code.NUMPY_BAD_HEADER,
            where,
        ) from None
    return None, dt.itemsize, bool(dt.hasobject)


def _prelude(read: ReadAt, size: int, where: str) -> tuple[int, int]:
    """The version and the header dict's length, after checking the magic."""
    head = read(min(size, 8), 0)
    if len(head) < 8:
        if not MAGIC.startswith(head[:6]):
            raise _error("not a .npy file (no \\x93NUMPY magic)", Code.NUMPY_BAD_MAGIC, where)
        raise _error(f"truncated .npy header ({size} bytes)", Code.TRUNCATED, where)
    if head[:6] != MAGIC:
        raise _error("not a .npy file (no \\x93NUMPY magic)", Code.NUMPY_BAD_MAGIC, where)
    major, minor = head[6], head[7]
    if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
        raise _error(f".npy version {major}.{minor} is unknown", Code.NUMPY_BAD_HEADER, where)
    width = 2 if major == 1 else 4
    raw = read(width, 8) if size >= 8 + width else b""
    if len(raw) != width:
        raise _error("truncated .npy header (no header length)", Code.TRUNCATED, where)
    n = struct.unpack("<H" if width == 2 else "<I", raw)[0]
    if n > HEADER_LIMIT:
        raise _error(
            f".npy header of {n} bytes is over the {HEADER_LIMIT}-byte limit",
            Code.HEADER_TOO_LARGE,
            where,
        )
    return major, n


def read_npy_header(read: ReadAt, size: int, where: str) -> NpyHeader:
    """Strictly parse the ``.npy`` header at offset 0 of the ``size`` bytes behind ``read``."""
    major, n = _prelude(read, size, where)
    start = 10 if major == 1 else 12
    if start + n > size:
        raise _error(
            f"truncated .npy header: needs {start + n} bytes, has {size}", Code.TRUNCATED, where
        )
    raw = read(n, start)
    if len(raw) != n:
        raise _error("truncated .npy header", Code.TRUNCATED, where)
    if (start + n) % 16:
        raise _error(
            f".npy header ends at byte {start + n}, not on a 16-byte boundary",
            Code.NUMPY_BAD_HEADER,
            where,
        )
    try:
        text = raw.decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError:
        raise _error(".npy header is not UTF-8", Code.NUMPY_BAD_HEADER, where) from None
    descr, fortran, shape = parse_header_dict(text, where)
    dtype, itemsize, objects = _classify(descr, where)
    return NpyHeader(major, start + n, descr, dtype, itemsize, shape, fortran, objects)


def parse_header_dict(text: str, where: str) -> tuple[str | list[object], bool, tuple[int, ...]]:
    """``descr``, ``fortran_order`` and ``shape`` from a header dict literal, checked exactly."""

    def bad(why: str) -> FormatError:
        return _error(f".npy header {why}", Code.NUMPY_BAD_HEADER, where)

    if len(text) > HEADER_LIMIT:
        raise bad(f"is over {HEADER_LIMIT} characters")
    if not text.endswith("\n"):
        raise bad("does not end in a newline")
    body = text[:-1].rstrip(" ")
    if not body.startswith("{") or not body.endswith("}"):
        raise bad("is not a dict literal padded with spaces")
    try:
        node = ast.parse(body, mode="eval").body
        if not isinstance(node, ast.Dict):
            raise bad("is not a dict literal")
        keys = [k.value if isinstance(k, ast.Constant) else None for k in node.keys]
        if len(set(keys)) != len(keys) or set(keys) != _KEYS:
            raise bad(f"has keys {keys!r}, not exactly {sorted(_KEYS)}")
        value = ast.literal_eval(node)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise bad(f"is not a dict literal ({type(exc).__name__})") from None
    descr, fortran, shape = value["descr"], value["fortran_order"], value["shape"]
    if type(descr) is not str and type(descr) is not list:
        raise bad(f"'descr' is {type(descr).__name__}, not a dtype string or record list")
    if type(fortran) is not bool:
        raise bad("'fortran_order' is not True or False")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        raise bad("'shape' is not a tuple of non-negative integers")
    if len(shape) > MAX_DIMS:
        raise bad(f"'shape' has {len(shape)} dimensions (at most {MAX_DIMS})")
    return descr, fortran, shape


@dataclass
class NumpyFile:
    """A ``.npy`` or ``.npz`` file: its layout and what its object arrays' pickles import."""

    layout: WeightLayout
    scan: PickleScan | None = None  # set when it holds object arrays
    pickle_members: list[str] = field(default_factory=list)


def _data_size(h: NpyHeader, available: int, where: str, tensor: str) -> None:
    """The array's bytes must be exactly ``available``."""
    if available < h.nbytes:
        raise _error(
            f"array {tensor!r}: {h.nbytes} bytes of {h.descr} {list(h.shape)} expected, "
            f"{available} present",
            Code.TRUNCATED,
            where,
        )
    if available > h.nbytes:
        raise _error(
            f"array {tensor!r}: {available - h.nbytes} bytes after its {h.nbytes} bytes of data",
            Code.NUMPY_TRAILING_DATA,
            where,
        )


def _array(
    h: NpyHeader, name: str, storage: str, start: int, end: int, where: str
) -> tuple[tuple[TensorSpan, ...], TensorSpan, tuple[Finding, ...]]:
    """The array's tensor (none without a tensor form, then a finding says why) and its storage.

    Tensor and storage are the same range; the tensor digest is the storage's.
    """
    label = h.dtype or (h.descr if isinstance(h.descr, str) else "structured")
    store = TensorSpan(
        name=storage, dtype=label, shape=(end - start,), start=start, end=end, n_elements=0
    )
    if h.dtype is None:
        note = Finding(
            code=Code.NUMPY_UNSUPPORTED_DTYPE,
            severity="info",
            message=f"array {name!r}: dtype {h.descr!r} has no tensor form (numeric and "
            "bool arrays have): its bytes are digested as a storage",
            file=where,
        )
        return (), store, (note,)
    tensor = TensorSpan(
        name=name,
        dtype=h.dtype,
        shape=h.shape,
        start=start,
        end=end,
        n_elements=h.n_elements,
        storage=storage,
        digestible=h.c_contiguous,
    )
    return (tensor,), store, ()


def read_npy(read: ReadAt, size: int, path: str) -> NumpyFile:
    """The ``.npy`` file of ``size`` bytes behind ``read``."""
    h = read_npy_header(read, size, path)
    name = _stem(path)
    if h.objects:
        if size - h.data_offset > MAX_PICKLE_BYTES:
            msg = f"object array over the {MAX_PICKLE_BYTES}-byte pickle limit"
            raise _error(msg, Code.PICKLE_TOO_LARGE, path)
        data = read(size - h.data_offset, h.data_offset)
        if len(data) != size - h.data_offset:
            raise _error("file shrank while reading", Code.TRUNCATED, path)
        layout = WeightLayout("numpy", size, 0, (), scattered=True)
        return NumpyFile(layout, scan_pickle(data, where=path), [name])
    _data_size(h, size - h.data_offset, path, name)
    tensors, store, notes = _array(h, name, name, h.data_offset, size, path)
    layout = WeightLayout(
        "numpy", size, 0, tensors, storages=(store,), scattered=True, findings=notes
    )
    return NumpyFile(layout)


def _stem(path: str) -> str:
    base = os.path.basename(path)
    return base[:-4] if base.lower().endswith(".npy") else base


def _inflated_head(read: ReadAt, m: ZipMember, want: int, where: str) -> bytes:
    """At most ``want`` bytes from the start of a deflated member (bounded input and output)."""
    inflate = zlib.decompressobj(-15)
    out = b""
    at = m.data_start
    try:
        while len(out) < want and at < m.data_end and not inflate.eof:
            chunk = read(min(1 << 16, m.data_end - at), at)
            if not chunk:
                break
            at += len(chunk)
            out += inflate.decompress(chunk, want - len(out))
    except zlib.error as exc:
        msg = f"member {m.name} does not inflate: {exc}"
        raise _error(msg, Code.ZIP_MALFORMED, where) from None
    return out


def _member_reader(read: ReadAt, m: ZipMember, where: str) -> ReadAt:
    """``read`` within the member's uncompressed bytes (its header, for a deflated one)."""
    if m.method == DEFLATED:
        head = _inflated_head(read, m, min(m.size, 12 + HEADER_LIMIT), where)
        return lambda n, at: head[at : at + n]
    if not m.stored:
        raise _error(f"member {m.name}: compression method {m.method}", Code.ZIP_MALFORMED, where)
    return lambda n, at: read(max(0, min(n, m.size - at)), m.data_start + at)


def _member_header(read: ReadAt, m: ZipMember, where: str) -> NpyHeader:
    return read_npy_header(_member_reader(read, m, where), m.size, f"{where}:{m.name}")


def _member_pickle(read: ReadAt, m: ZipMember, h: NpyHeader, where: str) -> PickleScan:
    data = read_member(read, m, where)
    return scan_pickle(memoryview(data)[h.data_offset :], where=where, member=m.name)


def member_objects(read: ReadAt, m: ZipMember, where: str) -> PickleScan | None:
    """What the pickle of an object-array member imports; None for any other array.

    Only the header of another array is read (inflated, bounded, if deflated).
    """
    h = _member_header(read, m, where)
    return _member_pickle(read, m, h, where) if h.objects else None


def read_npz(read: ReadAt, size: int, path: str) -> NumpyFile:
    """The ``.npz`` archive of ``size`` bytes behind ``read``: every member a ``.npy``."""
    archive = read_zip(read, size, path)
    tensors: list[TensorSpan] = []
    storages: list[TensorSpan] = []
    notes: list[Finding] = []
    found = NumpyFile(WeightLayout("numpy", size, 0, ()))
    for m in archive.members:
        if not m.name.endswith(".npy"):
            raise _error(f"member {m.name} is not a .npy array", Code.NUMPY_BAD_ARCHIVE, path)
        h = _member_header(read, m, path)
        if h.objects:
            found.scan = found.scan or PickleScan(path)
            found.scan.merge(_member_pickle(read, m, h, path))
            found.pickle_members.append(m.name)
            continue
        _data_size(h, m.size - h.data_offset, f"{path}:{m.name}", m.name[:-4])
        # A deflated member: its compressed bytes, digested as they are (no tensor digest).
        start = m.data_start + h.data_offset if m.stored else m.data_start
        spans, store, note = _array(h, m.name[:-4], m.name, start, m.data_end, path)
        if not m.stored:
            spans = tuple(replace(t, digestible=False, data_size=h.nbytes) for t in spans)
            store = replace(store, dtype="deflate")
        tensors += spans
        storages.append(store)
        notes += note
    crcs = tuple((m.name, m.data_start, m.data_end, m.crc) for m in archive.members if m.stored)
    found.layout = WeightLayout(
        "numpy",
        size,
        0,
        tuple(sorted(tensors, key=lambda t: t.start)),
        storages=tuple(sorted(storages, key=lambda s: s.start)),
        scattered=True,
        crc_ranges=crcs,
        findings=tuple(notes),
    )
    return found


def read_numpy(read: ReadAt, size: int, path: str) -> NumpyFile:
    """A ``.npy`` file or ``.npz`` archive, told apart by its first bytes."""
    if read(min(size, 4), 0) == ZIP_MAGIC:
        return read_npz(read, size, path)
    return read_npy(read, size, path)


def holds_objects(read: ReadAt, size: int, path: str) -> bool:
    """Whether the ``.npy`` file or ``.npz`` archive has an object array (data that is a
    pickle), from its array headers alone: what :func:`read_numpy` finds a pickle in."""
    if read(min(size, 4), 0) == ZIP_MAGIC:
        members = read_zip(read, size, path).members
        return any(
            _member_header(read, m, path).objects for m in members if m.name.endswith(".npy")
        )
    return read_npy_header(read, size, path).objects


__all__ = [
    "HEADER_LIMIT",
    "MAGIC",
    "NpyHeader",
    "NumpyFile",
    "dtype_name",
    "holds_objects",
    "member_objects",
    "parse_header_dict",
    "read_npy",
    "read_npy_header",
    "read_npz",
    "read_numpy",
]
