"""Digests of byte ranges that may overlap, fed as a file's chunks stream by in order.

An archive's tensors are ranges within its storages — views of one storage
can overlap — and its members carry CRC-32s: each range gets an accumulator
of its own, fed the part of every chunk it covers, so the file is still read
once whatever the ranges.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from .algorithms import Hasher


class Crc32:
    """zlib's CRC-32 behind the :class:`Hasher` interface (``hexdigest`` is 8 hex digits)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview, /) -> object:
        self.value = zlib.crc32(data, self.value)
        return None

    def hexdigest(self) -> str:
        return f"{self.value:08x}"


class RangeFeeder:
    """Feeds each range of ``ranges`` (``[start, end)``, any order, may overlap) its bytes."""

    def __init__(self, ranges: Sequence[tuple[int, int]], new: Callable[[], Hasher]) -> None:
        self._new = new
        self._order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
        self._ranges = ranges
        self._next = 0  # index into _order of the next range to open
        self._open: dict[int, Hasher] = {}
        self.digests: list[str] = [""] * len(ranges)

    def feed(self, view: memoryview, pos: int) -> None:
        """The bytes ``view`` found at offset ``pos`` (right after the previous chunk)."""
        end = pos + len(view)
        order, ranges = self._order, self._ranges
        while self._next < len(order) and ranges[order[self._next]][0] < end:
            self._open[order[self._next]] = self._new()
            self._next += 1
        self._close_empty(end)
        for i in list(self._open):
            a, b = ranges[i]
            lo, hi = max(a, pos), min(b, end)
            if lo < hi:
                self._open[i].update(view[lo - pos : hi - pos])
            if b <= end:
                self.digests[i] = self._open.pop(i).hexdigest()

    def _close_empty(self, end: int) -> None:
        # Zero-length ranges exactly at the end of this chunk open only now.
        while self._next < len(self._order):
            a, b = self._ranges[self._order[self._next]]
            if not a == b == end:
                return
            self.digests[self._order[self._next]] = self._new().hexdigest()
            self._next += 1

    def finish(self) -> None:
        """After the last chunk: ranges at the very end (empty files, empty tensors)."""
        while self._next < len(self._order):
            i = self._order[self._next]
            self._open[i] = self._new()
            self._next += 1
        for i in list(self._open):
            self.digests[i] = self._open.pop(i).hexdigest()
