"""PyTorch ZIP checkpoints: what their pickles import, and where each tensor's bytes are.

The archive is read strictly (:mod:`.ziparchive`). Every pickle in it — each
``*.pkl`` member, any other member that starts like a pickle, and those in
ZIPs nested inside — goes through the static analyser. The main pickle
(``<prefix>/data.pkl``) is followed symbolically (:mod:`.torch_state`) to
map each tensor to its storage member ``<prefix>/data/<key>``, which must be
stored uncompressed: the layout then locates every storage's bytes so the
hashing pipeline digests them — and each tensor's range within — in its one
read of the file, the same way as a safetensors tensor.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Final

from ...codes import Code
from ...errors import FormatError
from ...issues import Issue
from .._atomic import open_regular_fd
from .layout import TensorSpan, WeightLayout
from .numpy_format import MAGIC as NUMPY_MAGIC
from .numpy_format import member_objects
from .pickle import sniff_pickle
from .pickle_scan import PickleScan, scan_pickles
from .torch_state import STORAGE_DTYPES, TorchTensor, torch_tensors
from .ziparchive import (
    DEFLATED,
    STORED,
    ZIP_MAGIC,
    ReadAt,
    ZipArchive,
    ZipMember,
    read_member,
    read_zip,
)

MAX_ZIP_DEPTH: Final = 2
"""How deep a ZIP inside a ZIP member is followed (deeper is an error)."""
_STORAGE_RECORD: Final = re.compile(r"(?:[^/]+/)?data/[0-9]+")
_PICKLE_MAGIC: Final = tuple(bytes([0x80, p]) for p in range(2, 6))


@dataclass
class Checkpoint:
    """A ZIP that holds pickles: the analyser's result and, for a torch checkpoint, its layout."""

    scan: PickleScan
    pickle_members: list[str] = field(default_factory=list)
    layout: WeightLayout | None = None


def _error(msg: str, code: Code, where: str) -> FormatError:
    return FormatError(msg, code=code, path=where)


def _main_pickle(archive: ZipArchive) -> ZipMember | None:
    """``<prefix>/data.pkl``, the prefix being the first member's folder (as torch reads it)."""
    if not archive.members:
        return None
    prefix = archive.members[0].name.split("/", 1)[0]
    main = archive.member(f"{prefix}/data.pkl")
    if main is not None:
        return main
    return next((m for m in archive.members if m.name.endswith("data.pkl")), None)


def read_checkpoint(read: ReadAt, size: int, where: str, *, depth: int = 0) -> Checkpoint | None:
    """The checkpoint in the ZIP of ``size`` bytes behind ``read``; None if it holds no pickle.

    The main pickle is read once: analysed, then followed for the tensors.
    """
    archive = read_zip(read, size, where)
    main = _main_pickle(archive)
    found = Checkpoint(PickleScan(where))
    tensors: list[TorchTensor] = []
    storages: dict[str, ZipMember] = {}
    if main is not None:
        data = read_member(read, main, where)
        found.scan.merge(scan_pickles(data, where=where, member=main.name))
        found.pickle_members.append(main.name)
        tensors = torch_tensors(data, where=where)
        storages = _storages(archive, main.name.rpartition("/")[0], tensors, where)
    used = {m.name for m in storages.values()}
    for m in archive.members:
        if m is not main:
            _member(read, m, where, found, depth, storage=m.name in used)
    if not found.pickle_members:
        return None
    _torchscript(archive, found)
    if main is not None:
        found.layout = _layout(archive, size, tensors, storages, where)
    return found


def scan_torch_zip(path: str | os.PathLike[str], *, where: str | None = None) -> PickleScan:
    """Analyse every pickle of the ZIP at ``path`` (whatever its name), read strictly."""
    where = where or os.fspath(path)
    fd = open_regular_fd(os.fspath(path))
    try:
        size = os.fstat(fd).st_size
        found = read_checkpoint(lambda n, at: os.pread(fd, n, at), size, where)
    finally:
        os.close(fd)
    return found.scan if found is not None else PickleScan(where)


def scan_checkpoint_bytes(data: bytes | memoryview, *, where: str) -> PickleScan:
    """Analyse a checkpoint held in memory: the exact bytes a loader is handed.

    Dispatched as ``torch.load`` dispatches: bytes that start like a ZIP are a
    ZIP checkpoint, read as strictly as a file on disk; anything else is a raw
    pickle or a legacy torch file (several pickles in a row).
    """
    view = memoryview(data).cast("B")
    if bytes(view[:4]) == ZIP_MAGIC:
        found = read_checkpoint(lambda n, at: bytes(view[at : at + n]), len(view), where)
        return found.scan if found is not None else PickleScan(where)
    return scan_pickles(view, where=where)


def _prefix(read: ReadAt, m: ZipMember, n: int) -> bytes:
    """Up to ``n`` first uncompressed bytes of member ``m`` (b"" if they cannot be had)."""
    if m.method == STORED:
        return read(min(n, m.data_end - m.data_start), m.data_start)
    if m.method != DEFLATED:
        return b""  # read_member says why, if the member is read at all
    # Deflate adds at most 5 bytes per 64 KiB stored block: n + 1 KiB covers n.
    raw = read(min(n + 1024, m.data_end - m.data_start), m.data_start)
    try:
        return zlib.decompressobj(-15).decompress(raw, n)
    except zlib.error:
        return b""


def _kind(m: ZipMember, head: bytes) -> str | None:
    """What a member holds: a pickle, a ZIP, a NumPy array, or nothing to analyse.

    A ``*.pkl`` member is what torch unpickles, whatever its bytes; any other
    is judged by its first bytes (as picklescan does), so a pickle under
    another name or beside ``data.pkl`` is not missed.
    """
    lower = m.name.lower()
    if lower.endswith(".pkl"):
        return "pickle"
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(NUMPY_MAGIC):
        return "npy"
    if head.startswith(_PICKLE_MAGIC) or sniff_pickle(head, lower) == "pickle":
        return "pickle"
    return None


def _member(
    read: ReadAt, m: ZipMember, where: str, found: Checkpoint, depth: int, *, storage: bool
) -> None:
    """Analyse one member that is (or holds) a pickle.

    A storage — one a tensor uses, or any storage record ``<prefix>/data/<n>`` —
    is tensor bytes torch never unpickles: a whole, well-formed pickle, array or
    ZIP there is analysed (as picklescan does), bytes that merely start that way
    (about one storage in 16,000) are data, not an error.
    """
    kind = _kind(m, _prefix(read, m, 16))
    if kind is None:
        return
    try:
        if kind == "npy":  # an array: only one holding objects is read past its header
            objects = member_objects(read, m, where)
            if objects is None:
                return
            scan, names = objects, [m.name]
        elif kind == "zip":
            scan, names = _nested(read_member(read, m, where), m, where, depth)
        else:
            scan, names = (
                scan_pickles(read_member(read, m, where), where=where, member=m.name),
                [m.name],
            )
    except FormatError:
        if not storage and _STORAGE_RECORD.fullmatch(m.name) is None:
            raise
        return
    found.pickle_members += names
    found.scan.merge(scan)


def _nested(data: bytes, m: ZipMember, where: str, depth: int) -> tuple[PickleScan, list[str]]:
    if depth >= MAX_ZIP_DEPTH:
        raise _error(
            f"member {m.name}: a ZIP nested more than {MAX_ZIP_DEPTH} deep",
            Code.PICKLE_TOO_DEEP,
            where,
        )
    inner = read_checkpoint(
        lambda n, at: data[at : at + n], len(data), f"{where}:{m.name}", depth=depth + 1
    )
    if inner is None:
        return PickleScan(where), []
    inner.scan.issues = [i.model_copy(update={"file": where}) for i in inner.scan.issues]
    return inner.scan, [f"{m.name}!{n}" for n in inner.pickle_members]


def _torchscript(archive: ZipArchive, found: Checkpoint) -> None:
    hits = [m.name for m in archive.members if "/code/" in f"/{m.name}"]
    hits += [m.name for m in archive.members if m.name.endswith("constants.pkl")]
    if hits:
        found.scan.torchscript = True
        found.scan.issues.append(
            Issue(
                code=Code.PICKLE_TORCHSCRIPT,
                severity="warning",
                message=f"a TorchScript archive (holds code: {hits[0]})",
                file=found.scan.where,
                actual=hits[0],
            )
        )


def _storages(
    archive: ZipArchive, prefix: str, tensors: list[TorchTensor], where: str
) -> dict[str, ZipMember]:
    """The member of each storage the tensors use, by storage key; each must be stored."""
    out: dict[str, ZipMember] = {}
    for t in tensors:
        name = f"{prefix}/data/{t.storage}" if prefix else f"data/{t.storage}"
        m = archive.member(name)
        if m is None:
            raise _error(
                f"tensor {t.name!r}: storage member {name} is missing",
                Code.TORCH_BAD_CHECKPOINT,
                where,
            )
        if not m.stored:
            raise _error(
                f"tensor {t.name!r}: storage member {name} is compressed (method "
                f"{m.method}); tensor storages must be stored",
                Code.ZIP_COMPRESSED_STORAGE,
                where,
            )
        out[t.storage] = m
    return out


def _layout(
    archive: ZipArchive,
    size: int,
    tensors: list[TorchTensor],
    storages: dict[str, ZipMember],
    where: str,
) -> WeightLayout:
    dtypes: dict[str, tuple[str, int] | None] = {}  # by storage key, as _span finds them
    spans = [_span(t, storages[t.storage], dtypes, where) for t in tensors]
    stores = [
        TensorSpan(
            name=m.name,
            dtype=(dtypes[key] or ("?", 1))[0],
            shape=(m.size,),
            start=m.data_start,
            end=m.data_end,
            n_elements=m.size,
        )
        for key, m in sorted(storages.items(), key=lambda kv: kv[1].data_start)
    ]
    crcs = tuple((m.name, m.data_start, m.data_end, m.crc) for m in archive.members if m.stored)
    return WeightLayout(
        format="pytorch",
        file_size=size,
        header_size=0,
        tensors=tuple(sorted(spans, key=lambda s: (s.start, s.name))),
        storages=tuple(stores),
        scattered=True,
        crc_ranges=crcs,
    )


def _span(
    t: TorchTensor, m: ZipMember, dtypes: dict[str, tuple[str, int] | None], where: str
) -> TensorSpan:
    """Where tensor ``t`` lies in the file; contiguous ones get a digest like safetensors'."""
    known = STORAGE_DTYPES.get(t.storage_class)
    if t.storage in dtypes and dtypes[t.storage] != known:
        raise _error(
            f"tensor {t.name!r}: storage {t.storage} is used with two dtypes",
            Code.TORCH_BAD_CHECKPOINT,
            where,
        )
    dtypes[t.storage] = known
    dtype, item = known or (f"torch.{t.storage_class}", 1)
    n = t.n_elements
    extent = 0 if n == 0 else 1 + sum((d - 1) * s for d, s in zip(t.shape, t.stride, strict=True))
    start = m.data_start + t.storage_offset * item
    end = start + extent * item
    if end > m.data_end:
        raise _error(
            f"tensor {t.name!r}: elements [{t.storage_offset}, {t.storage_offset + extent}) "
            f"run past its storage of {m.size} bytes",
            Code.TORCH_BAD_CHECKPOINT,
            where,
        )
    return TensorSpan(
        name=t.name,
        dtype=dtype,
        shape=t.shape,
        start=start,
        end=end,
        n_elements=n,
        storage=m.name,
        digestible=known is not None and t.contiguous,
        # a strided view's range spans elements not its own: its values are n × itemsize
        data_size=n * item if known is not None and extent != n else None,
    )
