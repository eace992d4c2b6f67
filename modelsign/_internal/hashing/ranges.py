"""Independent byte ranges digested on all cores: the verification fast path.

The tensors of a strictly parsed file are independent, so unlike a whole-file
SHA-256 they hash in parallel even inside one file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ...codes import Code
from ...errors import DiscoveryError
from .algorithms import RangeHash, range_hasher
from .reading import CHUNK, pread_into

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

    A zero-check job yields whether every byte is zero.
    """
    threads = threads or os.cpu_count() or 1
    run = _RangeRun(jobs, threads, progress)
    # Each worker takes the next job itself: a future per job costs more than
    # hashing a small tensor (100,000 tensors: seconds of hand-offs).
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for fut in [pool.submit(run.worker) for _ in range(min(threads, len(jobs)))]:
            fut.result()
    return run.results


def _buffer_pieces(job: RangeJob, buf: memoryview) -> Iterator[memoryview]:
    """A buffer job's bytes: whole, or piece by piece, each prepared first."""
    step = _PIECE if job.prepare is not None else max(1, job.end - job.start)
    for a in range(job.start, job.end, step):
        b = min(a + step, job.end)
        if job.prepare is not None:
            job.prepare(a, b)
        yield buf[a:b]


class _RangeRun:
    """The shared state of one ``hash_ranges`` call: the queue of jobs and their results."""

    def __init__(
        self, jobs: Sequence[RangeJob], threads: int, progress: Callable[[int], None] | None
    ) -> None:
        self.jobs = jobs
        self.threads = threads
        self.progress = progress
        self.results: list[str | bool] = [False] * len(jobs)
        self._next = iter(sorted(range(len(jobs)), key=lambda i: jobs[i].start - jobs[i].end))
        # The last ranges to start (all of them when there are few: a partial load,
        # one huge tensor) would leave cores idle at the end, so their BLAKE3
        # updates spread over all cores.
        self._few = sum(j.end - j.start >= CHUNK for j in jobs) < 2 * threads
        self._started = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._preadv: Any = getattr(os, "preadv", None)

    def worker(self) -> None:
        while True:
            with self._lock:
                i = next(self._next, None)
                if i is None:
                    return
                self._started += 1
                spread = self._spread(self.jobs[i])
            job = self.jobs[i]
            self.results[i] = self._digest(job, spread)
            if self.progress is not None:
                with self._lock:
                    self.progress(job.end - job.start)

    def _spread(self, job: RangeJob) -> bool:
        # (only for whole buffers: 1 MiB file reads are too small to split)
        late = self._few or len(self.jobs) - self._started < self.threads - 1
        return job.buf is not None and self.threads > 1 and late

    def _digest(self, job: RangeJob, spread: bool) -> str | bool:
        pieces = _buffer_pieces(job, job.buf) if job.buf is not None else self._file_pieces(job)
        if job.algorithm is None:
            zero = True
            for part in pieces:  # every piece still read (into ``dest``) and prepared
                zero = zero and part.tobytes().count(0) == len(part)
            return zero
        h = range_hasher(job.algorithm, spread=spread)
        for part in pieces:
            h.update(part)
        return h.hexdigest()

    def _file_pieces(self, job: RangeJob) -> Iterator[memoryview]:
        """A file job's bytes in order, read into ``dest`` or this thread's buffer."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(CHUNK)
        view = memoryview(buf)
        pos = job.start
        while pos < job.end:
            want = min(CHUNK, job.end - pos)
            if job.dest is not None:
                target = job.dest[pos - job.start : pos - job.start + want]
            else:
                target = view[:want]
            n = pread_into(job.fd, target, pos, self._preadv)
            if n == 0:
                raise DiscoveryError(
                    f"file shrank while reading (at byte {pos})", code=Code.FILE_CHANGED
                )
            yield target[:n]
            pos += n
