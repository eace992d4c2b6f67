"""One read per file: its SHA-256 and, for a weight file, header and tensor digests.

Per file, one reader thread reads fixed-size chunks into a small ring of
buffers and feeds the file's SHA-256 (sequential by nature); a second thread
per weight file feeds the same buffers to the header and per-tensor digests
and checks padding bytes are zero, and, when signing with OMS shards, a third
feeds them to the shard digests. Memory is constant (``DEPTH`` × ``CHUNK``
per file in flight), files are processed ``jobs`` at a time, and the hash
libraries release the GIL, so a single large file uses two cores or more and
several files use all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...codes import Code
from ...errors import DiscoveryError, FormatError, ModelsignError
from ..discover import ModelFile
from ..findings import Finding
from ..formats import SNIFF_BYTES, FileFormat, detect_format, parse_weights
from ..formats.checkpoint import read_checkpoint
from ..formats.keras import HDF5_MAGIC, read_keras
from ..formats.layout import WeightLayout
from ..formats.numpy_format import read_numpy
from ..formats.pickle import TORCH_EXTENSIONS
from ..formats.pickle_scan import PickleScan, scan_pickles
from ..formats.ziparchive import ZIP_MAGIC
from .algorithms import TensorHash, digest_bytes
from .reading import CHUNK, check_unchanged, open_checked, pread_all
from .segments import SegmentFeeder, segments
from .shards import ShardFeeder

DEPTH = 4  # buffers in flight per file when digests run on lane threads
CAPTURE_LIMIT = 4 << 20  # small text files kept for metadata readers (model card, config)
#: Files up to this size are read (and hashed) whole when peeking: their
#: first header read covers them anyway.
PEEK_WHOLE = 1 << 20


#: Something fed every chunk of a file in order: ``feed(chunk, offset)``.
Feed = Callable[[memoryview, int], None]


@dataclass
class FileDigests:
    """Everything learned from one read of one file."""

    file: ModelFile
    format: FileFormat
    sha256: str
    layout: WeightLayout | None = None
    header_digest: str | None = None
    kv_digest: str | None = None  # GGUF KV section, from the header bytes already read
    tensor_digests: list[str] | None = None  # aligned with layout.tensors
    captured: bytes | None = None
    shard_digests: list[str] | None = None  # with a shard size: SHA-256, in offset order
    pickle_members: list[str] = field(default_factory=list)
    pickle_scan: PickleScan | None = None  # what the file's pickles import, once analysed
    storage_digests: list[str] | None = None  # aligned with layout.storages
    crc_failures: list[tuple[str, str, str]] = field(default_factory=list)  # member, got, want
    findings: list[Finding] = field(default_factory=list)


class _Ring:
    """The read buffers of one file; a buffer comes back once every lane has fed it on."""

    def __init__(self, count: int, size: int, lanes: int) -> None:
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(count):
            self._free.put(bytearray(size))
        self._users = max(lanes, 1)  # without lanes the reader gives it back itself
        self._left: dict[int, int] = {}
        self._lock = threading.Lock()

    def get(self) -> bytearray:
        buf = self._free.get()
        with self._lock:
            self._left[id(buf)] = self._users
        return buf

    def release(self, buf: bytearray) -> None:
        with self._lock:
            self._left[id(buf)] -= 1
            done = self._left[id(buf)] == 0
        if done:
            self._free.put(buf)


class _Lane:
    """A thread that runs one feed over the chunks handed to it, in order."""

    def __init__(self, feed: Feed, ring: _Ring) -> None:
        self.feed = feed
        self.ring = ring
        self.work: queue.Queue[tuple[bytearray, int, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            buf, n, pos = item
            if self.error is None:
                try:
                    self.feed(memoryview(buf)[:n], pos)
                except BaseException as exc:  # re-raised by the reader thread in join()
                    self.error = exc
            self.ring.release(buf)


def _join(lanes: Sequence[_Lane]) -> None:
    """Wait for every lane to finish; re-raise the first one's error."""
    for lane in lanes:
        lane.work.put(None)
    for lane in lanes:
        lane.thread.join()
    for lane in lanes:
        if lane.error is not None:
            raise lane.error


class _FilePass:
    """One read of one open file, from its start to ``size``.

    Every chunk goes to the file's SHA-256 (and the captured copy) on the
    reader thread, then to each feed: on the reader thread too, or on a lane
    thread of its own.
    """

    def __init__(
        self, fd: int, path: str, size: int, capture: bool, progress: Callable[[int], None] | None
    ) -> None:
        self.fd = fd
        self.path = path
        self.size = size
        self.sha256 = hashlib.sha256()
        self.captured = bytearray() if capture and size <= CAPTURE_LIMIT else None
        self.progress = progress
        self.pos = 0

    def took(self, chunk: bytes | memoryview) -> None:
        """``chunk`` is the next bytes of the file (from ``pos``)."""
        self.sha256.update(chunk)
        if self.captured is not None:
            self.captured += chunk
        self.pos += len(chunk)
        if self.progress is not None:
            self.progress(len(chunk))

    def run(self, first: bytes, feeds: Sequence[tuple[Feed, bool]]) -> None:
        """Feed the bytes already read (``first``, from offset 0), then read on to the end.

        ``feeds`` are ``(feed, heavy)``: unless the rest is a single chunk, a
        heavy feed gets a lane thread of its own.
        """
        for feed, _heavy in feeds:
            feed(memoryview(first), 0)
        self.took(first)
        big = self.size - self.pos > CHUNK
        self._stream(
            inline=[feed for feed, heavy in feeds if not (heavy and big)],
            threaded=[feed for feed, heavy in feeds if heavy and big],
        )

    def _stream(self, inline: Sequence[Feed], threaded: Sequence[Feed]) -> None:
        # Without a lane one buffer is reused, so it stays in the CPU cache.
        ring = _Ring(DEPTH if threaded else 1, min(CHUNK, max(self.size, 1)), len(threaded))
        lanes = [_Lane(feed, ring) for feed in threaded]
        raw = os.fdopen(self.fd, "rb", buffering=0, closefd=False)
        raw.seek(self.pos)  # the header was read with pread; stream on from its end
        try:
            while self.pos < self.size:
                buf = ring.get()
                n = raw.readinto(memoryview(buf)[: min(len(buf), self.size - self.pos)]) or 0
                if n == 0:
                    raise DiscoveryError(
                        f"file shrank while reading (at byte {self.pos} of {self.size})",
                        code=Code.FILE_CHANGED,
                        path=self.path,
                    )
                chunk, pos = memoryview(buf)[:n], self.pos
                self.took(chunk)
                for feed in inline:
                    feed(chunk, pos)
                for lane in lanes:
                    lane.work.put((buf, n, pos))
                if not lanes:
                    ring.release(buf)
        finally:
            _join(lanes)


def _parse_weights(
    d: FileDigests, fd: int, size: int, tensor_hash: TensorHash | None
) -> tuple[SegmentFeeder, bytes]:
    """Parse a weight file's header strictly; returns its feeder and the bytes read so far."""
    layout, reader = parse_weights(d.format, fd, size, d.file.path)
    d.layout = layout
    first = reader.buffered
    if layout.kv_range is not None:
        kv_a, kv_b = layout.kv_range
        d.kv_digest = digest_bytes(tensor_hash or "sha256", first[kv_a:kv_b])
    return SegmentFeeder(layout, tensor_hash, d.file.path), first


def hash_file(
    f: ModelFile,
    *,
    tensor_hash: TensorHash | None,
    capture: bool = False,
    progress: Callable[[int], None] | None = None,
    size: int | None = None,
    shard_size: int | None = None,
    layout: WeightLayout | None = None,
) -> FileDigests:
    """Digest one file in a single pass; parse its header strictly if it is a weight file.

    With ``size`` (the signed size) a file of another size is refused before
    anything is read. With ``shard_size`` the same read gives the file's
    SHA-256 OMS shard digests too. ``layout`` is how the file is laid out when
    another file says so (an ONNX model, of its external data file).
    """
    fd = open_checked(f, size)
    try:
        st = os.fstat(fd)
        head = os.pread(fd, SNIFF_BYTES, 0)
        d = FileDigests(f, detect_format(f.path, head), "")
        feeds: list[tuple[Feed, bool]] = []
        shards: ShardFeeder | None = None
        feeder, first, heavy = _weights_feeder(d, fd, st.st_size, head, tensor_hash, layout)
        if feeder is not None:
            feeds.append((feeder.feed, heavy))
        if shard_size is not None:
            shards = ShardFeeder(shard_size)
            feeds.append((shards.feed, True))
        read = _FilePass(fd, f.path, st.st_size, capture, progress)
        read.run(first, feeds)
        check_unchanged(fd, st, f.path)
        if feeder is not None:
            feeder.finish()
    finally:
        os.close(fd)
    d.sha256 = read.sha256.hexdigest()
    if feeder is not None:
        d.header_digest = feeder.header.hexdigest()
        d.crc_failures = feeder.crc_failures
        if tensor_hash is not None:
            d.tensor_digests = feeder.digests
            d.storage_digests = feeder.data_digests if feeder.layout.storages else None
    if shards is not None:
        d.shard_digests = shards.digests()
    if read.captured is not None:
        d.captured = bytes(read.captured)
    return d


def _weights_feeder(
    d: FileDigests,
    fd: int,
    size: int,
    head: bytes,
    tensor_hash: TensorHash | None,
    layout: WeightLayout | None,
) -> tuple[SegmentFeeder | None, bytes, bool]:
    """The feeder of a file with a layout, the bytes its reader read, and if it is heavy."""
    if layout is not None:  # an ONNX external data file: its tensors as the model says
        d.format, d.layout = "onnx", layout
        return SegmentFeeder(layout, tensor_hash, d.file.path), b"", tensor_hash is not None
    if d.format in ("safetensors", "gguf", "onnx"):
        feeder, first = _parse_weights(d, fd, size, tensor_hash)
        # Tensor digests are worth a thread of their own; the header digest alone is not.
        return feeder, first, tensor_hash is not None
    examine_archive(d, fd, size, head)
    if d.layout is None:
        return None, b"", False
    # a torch checkpoint: CRC-32s to check at least
    return SegmentFeeder(d.layout, tensor_hash, d.file.path), b"", True


def examine_archive(d: FileDigests, fd: int, size: int, head: bytes) -> None:
    """The layout (and pickles) of a file that is not safetensors or GGUF, where it has one.

    A NumPy file or ``.keras`` archive is read strictly (a damaged one is an
    error); one holding object arrays is a pickle file (its layout stays
    ``numpy``). A legacy Keras HDF5 file is not parsed.
    """

    def read(n: int, at: int) -> bytes:
        return os.pread(fd, n, at)

    if d.format == "numpy":
        found = read_numpy(read, size, d.file.path)
        d.layout = found.layout
        if found.scan is not None:
            d.format, d.pickle_scan, d.pickle_members = "pickle", found.scan, found.pickle_members
    elif d.format == "keras":
        if head[:8] != HDF5_MAGIC:
            d.layout = read_keras(read, size, d.file.path).layout
    else:
        examine_pickles(d, fd, size, head)


def examine_pickles(d: FileDigests, fd: int, size: int, head: bytes) -> None:
    """What the pickles of a ZIP or pickle file import; a torch checkpoint's layout.

    Under a checkpoint extension a ZIP or binary pickle that cannot be analysed
    is an error; anything else stays as it is (still digested) with a finding,
    since plenty of ordinary archives are not strictly formed.
    """
    path = d.file.path
    zip_file = head[:4] == ZIP_MAGIC
    # Protocols 0 and 1 have no magic: "colon\n" in a .bin file looks like one.
    magic = zip_file or head[:1] == b"\x80"
    strict = d.format == "pickle" and magic and path.lower().endswith(TORCH_EXTENSIONS)
    try:
        if zip_file:
            found = read_checkpoint(lambda n, at: os.pread(fd, n, at), size, path)
            if found is not None:
                d.format, d.pickle_members = "pickle", found.pickle_members
                d.pickle_scan, d.layout = found.scan, found.layout
        elif d.format == "pickle":
            d.pickle_scan = _scan_raw(fd, size, path)
    except FormatError as exc:
        exc.path = path
        if strict:
            raise
        d.findings.append(
            Finding(
                code=Code.ZIP_UNREADABLE if zip_file else exc.code,
                severity="info" if zip_file else "warning",
                message=f"{'ZIP archive' if zip_file else 'pickle'} could not be analysed: "
                f"{exc.message}",
                file=path,
            )
        )


def _scan_raw(fd: int, size: int, path: str) -> PickleScan:
    """Analyse a raw (or legacy torch) pickle file through a mapping: pages never touched
    (a legacy file's storages after its pickles) are never read."""
    mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    try:
        return scan_pickles(memoryview(mm), where=path)
    finally:
        # A slice may still be referenced (by a raised error's frames): then it is
        # unmapped when that goes.
        with contextlib.suppress(BufferError):
            mm.close()


def structure_digest(fd: int, layout: WeightLayout, path: str) -> str:
    """SHA-256 of a scattered layout's header segments (its structure), read by pread."""
    h = hashlib.sha256()
    for s in segments(layout, path):
        if s.kind == "header":
            h.update(pread_all(fd, s.end - s.start, s.start))
    return h.hexdigest()


def peek_file(f: ModelFile) -> FileDigests:
    """What the manifest engine learns from one file without reading its weights.

    Weight files are parsed strictly (header and tensor table) and their header
    and KV digests taken (SHA-256); ZIPs are checked for pickle members; a file
    of at most :data:`PEEK_WHOLE` bytes is read whole and hashed. A larger
    file's SHA-256 stays unknown (``""``): a peek describes a model, it never
    vouches for its bytes.
    """
    fd = open_checked(f)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, SNIFF_BYTES, 0)
        fmt = detect_format(f.path, head)
        d = FileDigests(f, fmt, "")
        data: bytes | None = None
        if fmt == "onnx":
            d.layout = parse_weights(fmt, fd, size, f.path)[0]
            d.header_digest = structure_digest(fd, d.layout, f.path)
        elif fmt in ("safetensors", "gguf"):
            layout, reader = parse_weights(fmt, fd, size, f.path)
            first = reader.buffered  # the strict readers read up to header_size at least
            d.layout = layout
            d.header_digest = hashlib.sha256(first[: layout.header_size]).hexdigest()
            if layout.kv_range is not None:
                a, b = layout.kv_range
                d.kv_digest = hashlib.sha256(first[a:b]).hexdigest()
            if len(first) >= size:
                data = first[:size]
        else:
            examine_archive(d, fd, size, head)
            if d.layout is not None:
                d.header_digest = structure_digest(fd, d.layout, f.path)
        if data is None and size <= PEEK_WHOLE:
            data = pread_all(fd, size)
        if data is not None and len(data) == size:
            d.sha256 = hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)
    return d


def hash_files(
    files: Sequence[ModelFile],
    *,
    tensor_hash: TensorHash | None,
    capture: Callable[[str], bool] = lambda _p: False,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    sizes: Mapping[str, int] | None = None,
    shard_size: int | None = None,
    layouts: Mapping[str, WeightLayout] | None = None,
    failures: dict[str, ModelsignError] | None = None,
) -> list[FileDigests]:
    """Digest ``files`` (largest first, ``jobs`` at a time); results in input order.

    ``sizes``: signed sizes by file name; a file of another size is refused unread.
    ``shard_size``: take the files' OMS shard digests in the same read.
    ``layouts``: layouts other files give, by name (ONNX external data files).
    ``failures``: where modelsign's error for each file that fails goes (by name),
    the others' digests still returned; without it the first such error is raised.
    """
    sizes = sizes or {}
    layouts = layouts or {}
    jobs = jobs or os.cpu_count() or 1
    order = sorted(range(len(files)), key=lambda i: -files[i].size)
    results: list[FileDigests | None] = [None] * len(files)
    lock = threading.Lock()

    def report(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    def one(i: int) -> None:
        f = files[i]
        results[i] = hash_file(
            f,
            tensor_hash=tensor_hash,
            capture=capture(f.path),
            progress=report,
            size=sizes.get(f.path),
            shard_size=shard_size,
            layout=layouts.get(f.path),
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, i) for i in order]
        errors = {
            files[i].path: exc
            for i, f in zip(order, futures, strict=True)
            if (exc := f.exception())
        }
    _settle(errors, failures)
    return [r for r in results if r is not None]


def _settle(
    errors: Mapping[str, BaseException], failures: dict[str, ModelsignError] | None
) -> None:
    """Raise what must be raised of the files' errors; hand the rest to ``failures``."""
    other = [e for e in errors.values() if not isinstance(e, ModelsignError)]
    if other:
        raise other[0]
    ours = {p: e for p, e in errors.items() if isinstance(e, ModelsignError)}
    if failures is None and ours:
        # Report the first failure in name order so the error is deterministic.
        raise min(ours.values(), key=lambda e: e.path or "")
    if failures is not None:
        failures.update(ours)
