"""Step 3 of the data flow: read every byte of the model once and digest it.

Per file, one reader thread reads fixed-size chunks into a small ring of
buffers and feeds the file's SHA-256 (sequential by nature); a second thread
per weight file feeds the same buffers to the header and per-tensor digests
and checks padding bytes are zero. Memory is constant (``DEPTH`` × ``CHUNK``
per file in flight), files are processed ``jobs`` at a time, and both hash
libraries release the GIL, so a single large file uses two cores and several
files use all of them.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import blake3

from ..errors import DiscoveryError, FormatError, InputError, ModelsignError
from ._atomic import open_model_file
from .discover import ModelFile
from .findings import Finding
from .formats import SNIFF_BYTES, FileFormat, detect_format, parse_weights
from .formats.layout import WeightLayout
from .formats.pickle import inspect_zip_for_pickle

TensorHash = Literal["blake3", "sha256"]
TENSOR_HASHES: tuple[TensorHash, ...] = ("blake3", "sha256")
#: What a byte range may be digested with: the tensor hashes, and BLAKE2b for
#: OMS shard signatures (``serialization.hash_type``).
RangeHash = Literal["blake3", "sha256", "blake2b"]

# 1 MiB chunks stay in the CPU cache between the copy from the page cache and
# the hash that reads them: measurably faster than larger chunks.
CHUNK = 1 << 20
DEPTH = 4
CAPTURE_LIMIT = 4 << 20  # small text files kept for metadata readers (model card, config)


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher(algorithm: TensorHash, *, spread: bool = False) -> _Hasher:
    """A fresh hasher for tensor and header digests.

    ``spread``: a BLAKE3 hasher that splits large updates over all cores (the
    digest is the same), for when there are fewer ranges than cores to share.
    """
    if algorithm == "blake3":
        return blake3.blake3(max_threads=blake3.blake3.AUTO if spread else 1)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise InputError(f"unknown tensor hash {algorithm!r}", code="BAD_ALGORITHM")


def digest_bytes(algorithm: TensorHash, data: bytes) -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return h.hexdigest()


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
    pickle_members: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


class _SegmentFeeder:
    """Feeds chunks, in file order, to the digest of the segment they fall in."""

    def __init__(self, layout: WeightLayout, algorithm: TensorHash | None, path: str) -> None:
        self.path = path
        self.algorithm = algorithm
        # (start, end, kind, tensor index) sorted by start; kinds: h header, t tensor, p padding
        segs: list[tuple[int, int, str, int]] = [(0, layout.header_size, "h", -1)]
        segs += [(t.start, t.end, "t", i) for i, t in enumerate(layout.tensors)]
        segs += [(a, b, "p", -1) for a, b in layout.padding]
        segs.sort(key=lambda s: (s[0], s[1]))
        # The strict readers guarantee the segments tile the file; check anyway,
        # since a gap here would mean bytes that no digest covers.
        expected = 0
        for s_start, s_end, _kind, _ti in segs:
            if s_start != expected or s_end < s_start:
                raise FormatError(
                    f"layout does not cover bytes [{expected}, {s_start})",
                    code="LAYOUT_GAP",
                    path=path,
                )
            expected = s_end
        if expected != layout.file_size:
            raise FormatError(
                f"layout covers {expected} of {layout.file_size} bytes",
                code="LAYOUT_GAP",
                path=path,
            )
        self.segs = segs
        self.layout = layout
        self.idx = 0
        self.current: _Hasher | None = None
        self.header: _Hasher = new_hasher(algorithm or "sha256")
        self.kv_digest: str | None = None

        self.digests: list[str] = [""] * len(layout.tensors)

    def feed(self, view: memoryview, pos: int) -> None:
        base = pos
        end = pos + len(view)
        segs = self.segs
        while self.idx < len(segs) and pos < end:
            s_start, s_end, kind, ti = segs[self.idx]
            if s_end <= pos and s_start < s_end:
                self.idx += 1
                continue
            a = max(pos, s_start)
            b = min(end, s_end)
            part = view[a - base : b - base]
            if kind == "h":
                self.header.update(part)
            elif kind == "t":
                if self.algorithm is not None:
                    if self.current is None:
                        self.current = new_hasher(self.algorithm)
                    self.current.update(part)
            elif part.tobytes().count(0) != len(part):
                raise FormatError(
                    f"padding bytes [{s_start}, {s_end}) are not all zero",
                    code="GGUF_NONZERO_PADDING",  # only GGUF layouts have padding ranges
                    path=self.path,
                )
            if b >= s_end:
                self._close(kind, ti)
                self.idx += 1
            pos = b
        # zero-length segments right at the end of this chunk
        while self.idx < len(segs) and segs[self.idx][0] == segs[self.idx][1] <= end:
            self._close(segs[self.idx][2], segs[self.idx][3])
            self.idx += 1

    def _close(self, kind: str, ti: int) -> None:
        if kind == "t" and self.algorithm is not None:
            h = self.current if self.current is not None else new_hasher(self.algorithm)
            self.digests[ti] = h.hexdigest()
            self.current = None

    def finish(self) -> None:
        while self.idx < len(self.segs) and self.segs[self.idx][0] == self.segs[self.idx][1]:
            self._close(self.segs[self.idx][2], self.segs[self.idx][3])
            self.idx += 1
        if self.idx != len(self.segs):
            raise FormatError(
                f"file ended before segment at offset {self.segs[self.idx][0]}",
                code="TRUNCATED",
                path=self.path,
            )


class _Lane:
    """A thread that runs a feeder over chunks handed to it, in order."""

    _STOP: tuple[bytearray, int, int] | None = None

    def __init__(self, feeder: _SegmentFeeder, free: queue.Queue[bytearray]) -> None:
        self.feeder = feeder
        self.free = free
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
                    self.feeder.feed(memoryview(buf)[:n], pos)
                except BaseException as exc:  # re-raised by the reader thread in join()
                    self.error = exc
            self.free.put(buf)

    def join(self) -> None:
        self.work.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _open_checked(f: ModelFile, size: int | None = None) -> int:
    try:
        return open_model_file(f, size=size)
    except OSError as exc:
        raise DiscoveryError(
            f"cannot open: {exc.strerror}", code="UNREADABLE", path=f.path
        ) from exc


def hash_file(
    f: ModelFile,
    *,
    tensor_hash: TensorHash | None,
    capture: bool = False,
    progress: Callable[[int], None] | None = None,
    size: int | None = None,
) -> FileDigests:
    """Digest one file in a single pass; parse its header strictly if it is a weight file.

    With ``size`` (the signed size) a file of another size is refused before
    anything is read.
    """
    fd = _open_checked(f, size)
    try:
        st = os.fstat(fd)
        size = st.st_size
        head = os.pread(fd, SNIFF_BYTES, 0)
        fmt = detect_format(f.path, head)
        file_hash = hashlib.sha256()
        layout = None
        pos = 0
        lane: _Lane | None = None
        feeder: _SegmentFeeder | None = None
        captured = bytearray() if capture and size <= CAPTURE_LIMIT else None
        free: queue.Queue[bytearray] = queue.Queue()
        pickle_members: list[str] = []
        notes: list[Finding] = []
        if fmt in ("safetensors", "gguf"):
            layout, reader = parse_weights(fmt, fd, size, f.path)
            feeder = _SegmentFeeder(layout, tensor_hash, f.path)
            first = reader.buffered
            file_hash.update(first)
            if layout.kv_range is not None:
                kv_a, kv_b = layout.kv_range
                feeder.kv_digest = digest_bytes(tensor_hash or "sha256", first[kv_a:kv_b])
            feeder.feed(memoryview(first), 0)
            pos = len(first)
            if progress is not None:
                progress(pos)
            if captured is not None:
                captured += first
            if tensor_hash is not None and size - pos > CHUNK:
                lane = _Lane(feeder, free)
        elif head[:4] == b"PK\x03\x04":
            fmt, pickle_members = zip_checkpoint(fd, size, f.path, fmt, notes)
        # Without a lane one buffer is reused, so it stays in the CPU cache.
        for _ in range(DEPTH if lane is not None else 1):
            free.put(bytearray(min(CHUNK, max(size, 1))))
        raw = os.fdopen(fd, "rb", buffering=0, closefd=False)
        raw.seek(pos)  # the header was read with pread; stream on from its end
        try:
            while pos < size:
                buf = free.get()
                view = memoryview(buf)
                n = raw.readinto(view[: min(len(buf), size - pos)]) or 0
                if n == 0:
                    raise DiscoveryError(
                        f"file shrank while reading (at byte {pos} of {size})",
                        code="FILE_CHANGED",
                        path=f.path,
                    )
                chunk = view[:n]
                file_hash.update(chunk)
                if captured is not None:
                    captured += chunk
                if lane is not None:
                    lane.work.put((buf, n, pos))
                else:
                    if feeder is not None:
                        feeder.feed(chunk, pos)
                    free.put(buf)
                pos += n
                if progress is not None:
                    progress(n)
        finally:
            if lane is not None:
                lane.join()
        if os.pread(fd, 1, size):
            raise DiscoveryError(
                f"file grew while reading (past {size} bytes)", code="FILE_CHANGED", path=f.path
            )
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise DiscoveryError(
                "file was modified while reading", code="FILE_CHANGED", path=f.path
            )
        if feeder is not None:
            feeder.finish()
    finally:
        os.close(fd)
    result = FileDigests(f, fmt, file_hash.hexdigest(), layout)
    if feeder is not None:
        result.header_digest = feeder.header.hexdigest()
        result.kv_digest = feeder.kv_digest
        if tensor_hash is not None:
            result.tensor_digests = feeder.digests
    if captured is not None:
        result.captured = bytes(captured)
    result.pickle_members = pickle_members
    result.findings = notes
    return result


def zip_checkpoint(
    fd: int, size: int, path: str, fmt: FileFormat, notes: list[Finding]
) -> tuple[FileFormat, list[str]]:
    """A ZIP holding a ``*.pkl`` member is a torch checkpoint, whatever its name.

    Under a checkpoint extension an unreadable ZIP is an error; under any other
    name it stays an opaque file (still digested) with a finding, since plenty
    of ordinary archives are not strictly formed.
    """
    try:
        members = inspect_zip_for_pickle(fd, size)
    except FormatError as exc:
        exc.path = path
        if fmt == "pickle":
            raise
        notes.append(
            Finding(
                code="ZIP_UNREADABLE",
                severity="info",
                message=f"ZIP archive could not be checked for pickle members: {exc.message}",
                file=path,
            )
        )
        return fmt, []
    return ("pickle" if members or fmt == "pickle" else fmt), members


#: Files up to this size are read (and hashed) whole when peeking: their
#: first header read covers them anyway.
PEEK_WHOLE = 1 << 20


def peek_file(f: ModelFile) -> FileDigests:
    """What the manifest engine learns from one file without reading its weights.

    Weight files are parsed strictly (header and tensor table) and their header
    and KV digests taken (SHA-256); ZIPs are checked for pickle members; a file
    of at most :data:`PEEK_WHOLE` bytes is read whole and hashed. A larger
    file's SHA-256 stays unknown (``""``): a peek describes a model, it never
    vouches for its bytes.
    """
    fd = _open_checked(f)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, SNIFF_BYTES, 0)
        fmt = detect_format(f.path, head)
        d = FileDigests(f, fmt, "")
        data: bytes | None = None
        if fmt in ("safetensors", "gguf"):
            layout, reader = parse_weights(fmt, fd, size, f.path)
            first = reader.buffered  # the strict readers read up to header_size at least
            d.layout = layout
            d.header_digest = hashlib.sha256(first[: layout.header_size]).hexdigest()
            if layout.kv_range is not None:
                a, b = layout.kv_range
                d.kv_digest = hashlib.sha256(first[a:b]).hexdigest()
            if len(first) >= size:
                data = first[:size]
        elif head[:4] == b"PK\x03\x04":
            d.format, d.pickle_members = zip_checkpoint(fd, size, f.path, fmt, d.findings)
        if data is None and size <= PEEK_WHOLE:
            data = pread_all(fd, size)
        if data is not None and len(data) == size:
            d.sha256 = hashlib.sha256(data).hexdigest()
    finally:
        os.close(fd)
    return d


def stream_digest(f: ModelFile, hasher: Any, *, size: int | None = None) -> str:
    """Feed a whole file (opened as discovery saw it) to ``hasher``; return its hex digest.

    With ``size`` (the signed size) a file of another size is refused unread.
    """
    fd = _open_checked(f, size)
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


def hash_files(
    files: Sequence[ModelFile],
    *,
    tensor_hash: TensorHash | None,
    capture: Callable[[str], bool] = lambda _p: False,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> list[FileDigests]:
    """Digest ``files`` (largest first, ``jobs`` at a time); results in input order.

    ``sizes``: signed sizes by file name; a file of another size is refused unread.
    """
    sizes = sizes or {}
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
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, i) for i in order]
        errors: list[BaseException] = []
        for fut in futures:
            exc = fut.exception()
            if exc is not None:
                errors.append(exc)
    if errors:
        # Report the first failure in name order so the error is deterministic.
        ours = [e for e in errors if isinstance(e, ModelsignError)]
        if ours:
            raise min(ours, key=lambda e: e.path or "")
        raise errors[0]
    return [r for r in results if r is not None]


_PIECE = 32 << 20  # what a prepared buffer job faults in, then hashes


@dataclass(frozen=True)
class RangeJob:
    """A byte range to digest (or, with no algorithm, to check is zero).

    The bytes come from an open file (``fd``) or, for loaders that hash exactly
    the buffer they hand to the runtime, from ``buf``. With ``dest`` (a view of
    exactly ``end - start`` bytes) the file's bytes are read into it and each
    piece is hashed right after it is read, while it is still in the CPU cache:
    a loader fills its tensor memory and verifies it in one parallel pass.
    With ``buf`` and ``prepare``, ``prepare(start, end)`` runs before each piece
    of ``buf`` is hashed: a file mapping faults its pages in ahead, so one
    thread waits for the disk while another hashes.
    """

    fd: int
    start: int
    end: int
    algorithm: RangeHash | None
    buf: memoryview | None = None
    dest: memoryview | None = None
    prepare: Callable[[int, int], None] | None = None


def hash_ranges(
    jobs: Sequence[RangeJob],
    *,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[str | bool]:
    """Digest independent ranges on all cores, largest first; results in input order.

    This is the verification fast path: the tensors of a strictly parsed file
    are independent, so unlike a whole-file SHA-256 they hash in parallel even
    inside one file. A zero-check job yields whether every byte is zero.
    """
    threads = threads or os.cpu_count() or 1
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].start - jobs[i].end)
    # The last ranges to start (all of them when there are few: a partial load,
    # one huge tensor) would leave cores idle at the end, so their BLAKE3
    # updates spread over all cores.
    few = sum(j.end - j.start >= CHUNK for j in jobs) < 2 * threads
    started = [0]
    results: list[str | bool] = [False] * len(jobs)
    local = threading.local()
    lock = threading.Lock()
    preadv = getattr(os, "preadv", None)

    def pieces(job: RangeJob) -> Iterator[memoryview]:
        """The job's bytes in order, each piece ready to hash."""
        if job.buf is not None:
            step = _PIECE if job.prepare is not None else max(1, job.end - job.start)
            for a in range(job.start, job.end, step):
                b = min(a + step, job.end)
                if job.prepare is not None:
                    job.prepare(a, b)
                yield job.buf[a:b]
            return
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(CHUNK)
        view = memoryview(buf)
        pos = job.start
        while pos < job.end:
            want = min(CHUNK, job.end - pos)
            if job.dest is not None:
                target = job.dest[pos - job.start : pos - job.start + want]
            else:
                target = view[:want]
            n = _pread_into(job.fd, target, pos, preadv)
            if n == 0:
                raise DiscoveryError(
                    f"file shrank while reading (at byte {pos})", code="FILE_CHANGED"
                )
            yield target[:n]
            pos += n

    def one(i: int) -> None:
        job = jobs[i]
        with lock:
            started[0] += 1
            # (only for whole buffers: 1 MiB file reads are too small to split)
            spread = job.buf is not None and threads > 1
            spread = spread and (few or len(jobs) - started[0] < threads - 1)
        h: _Hasher | None = None
        if job.algorithm == "blake2b":
            h = hashlib.blake2b()
        elif job.algorithm is not None:
            h = new_hasher(job.algorithm, spread=spread)
        zero = True
        for part in pieces(job):
            if h is not None:
                h.update(part)
            elif zero:
                zero = part.tobytes().count(0) == len(part)
        results[i] = h.hexdigest() if h is not None else zero
        if progress is not None:
            with lock:
                progress(job.end - job.start)

    # Each worker takes the next job itself: a future per job costs more than
    # hashing a small tensor (100,000 tensors: seconds of hand-offs).
    queue = iter(order)

    def worker() -> None:
        while True:
            with lock:
                i = next(queue, None)
            if i is None:
                return
            one(i)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for fut in [pool.submit(worker) for _ in range(min(threads, len(jobs)))]:
            fut.result()
    return results


def _pread_into(fd: int, target: memoryview, offset: int, preadv: Any) -> int:
    """Read at ``offset`` into ``target``; may return fewer bytes (the caller loops)."""
    if preadv is not None:
        return int(preadv(fd, [target], offset))
    data = os.pread(fd, len(target), offset)  # platforms without preadv
    target[: len(data)] = data
    return len(data)


#: Files open at once while hashing shards: all their ranges share the cores,
#: but a folder of many thousand files must not run out of descriptors.
SHARD_BATCH = 256


def hash_shards(
    files: Sequence[ModelFile],
    shard_size: int,
    hash_type: RangeHash = "sha256",
    *,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[str]]:
    """Digest every ``shard_size`` range of every file (OMS shard serialization).

    Unlike a whole-file SHA-256, the shards of one file are independent, so
    they hash on all cores even for a single large file; each byte is read
    once, and memory stays at one chunk per thread. Returns each file's shard
    digests in offset order (an empty list for a zero-length file).
    """
    if shard_size <= 0:
        raise InputError(f"shard size must be positive, got {shard_size}", code="BAD_SHARD_SIZE")
    out: dict[str, list[str]] = {}
    for i in range(0, len(files), SHARD_BATCH):
        out.update(
            _hash_shard_batch(files[i : i + SHARD_BATCH], shard_size, hash_type, jobs, progress)
        )
    return out


def _hash_shard_batch(
    files: Sequence[ModelFile],
    shard_size: int,
    hash_type: RangeHash,
    jobs: int | None,
    progress: Callable[[int], None] | None,
) -> dict[str, list[str]]:
    fds: list[int] = []
    try:
        stats: list[os.stat_result] = []
        work: list[RangeJob] = []
        owner: list[str] = []
        for f in files:
            fds.append(_open_checked(f))
            st = os.fstat(fds[-1])
            stats.append(st)
            for a in range(0, st.st_size, shard_size):
                work.append(RangeJob(fds[-1], a, min(a + shard_size, st.st_size), hash_type))
                owner.append(f.path)
        try:
            digests = hash_ranges(work, threads=jobs, progress=progress)
        except DiscoveryError as exc:
            exc.path = exc.path or _changed(files, fds, stats) or None
            raise
        if (changed := _changed(files, fds, stats)) is not None:
            raise DiscoveryError(
                "file was modified while reading", code="FILE_CHANGED", path=changed
            )
    finally:
        for fd in fds:
            os.close(fd)
    out: dict[str, list[str]] = {f.path: [] for f in files}
    for path, d in zip(owner, digests, strict=True):
        out[path].append(str(d))
    return out


def _changed(
    files: Sequence[ModelFile], fds: Sequence[int], before: Sequence[os.stat_result]
) -> str | None:
    """The first file whose size or mtime moved since ``before``, or that grew past it."""
    for f, fd, st in zip(files, fds, before, strict=True):
        if changed_since(fd, st) or os.pread(fd, 1, st.st_size):
            return f.path
    return None


def changed_since(fd: int, then: os.stat_result) -> bool:
    """Whether an open file's size or mtime changed since ``then`` (it was written to)."""
    now = os.fstat(fd)
    return (now.st_size, now.st_mtime_ns) != (then.st_size, then.st_mtime_ns)
