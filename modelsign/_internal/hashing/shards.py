"""OMS shard digests: every ``shard_size`` range of a file.

:func:`hash_shards` reads files for them alone, all their shards on all
cores; :class:`ShardFeeder` takes them from a read made anyway (signing reads
each file once for the manifest and its shards).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ...codes import Code
from ...errors import DiscoveryError, InputError
from ..discover import ModelFile
from .algorithms import Hasher, RangeHash, range_hasher
from .ranges import RangeJob, hash_ranges
from .reading import changed_since, open_checked

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
        raise InputError(f"shard size must be positive, got {shard_size}", code=Code.BAD_SHARD_SIZE)
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
            fds.append(open_checked(f))
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
                "file was modified while reading", code=Code.FILE_CHANGED, path=changed
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


class ShardFeeder:
    """Digests every ``shard_size`` range of a file as its chunks stream by, in order."""

    def __init__(self, shard_size: int, hash_type: RangeHash = "sha256") -> None:
        if shard_size <= 0:
            raise InputError(
                f"shard size must be positive, got {shard_size}", code=Code.BAD_SHARD_SIZE
            )
        self.shard_size = shard_size
        self.hash_type: RangeHash = hash_type
        self._digests: list[str] = []
        self._current: Hasher | None = None
        self._left = 0  # bytes still due to the current shard

    def feed(self, view: memoryview, pos: int) -> None:
        """The bytes ``view`` found at offset ``pos`` (right after the previous chunk)."""
        while view:
            if self._current is None:
                self._current = range_hasher(self.hash_type)
                self._left = self.shard_size
            n = min(len(view), self._left)
            self._current.update(view[:n])
            self._left -= n
            view = view[n:]
            if self._left == 0:
                self._digests.append(self._current.hexdigest())
                self._current = None

    def digests(self) -> list[str]:
        """After the last chunk: the shard digests in offset order (none for an empty file)."""
        if self._current is not None:
            self._digests.append(self._current.hexdigest())
            self._current = None
        return self._digests
