"""The segments of a weight file — header, tensors, padding — digested as the bytes stream by.

A strict reader's :class:`~modelsign._internal.formats.layout.WeightLayout`
says how every byte of the file is used; :class:`SegmentFeeder` takes the
file's chunks in order and feeds each byte to the digest of the segment it
falls in (padding is checked to be zero instead).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from ...codes import Code
from ...errors import FormatError
from ..formats.layout import WeightLayout
from .algorithms import Hasher, TensorHash, new_hasher
from .views import Crc32, RangeFeeder

SegmentKind = Literal["header", "tensor", "padding"]


class Segment(NamedTuple):
    """The bytes ``[start, end)`` of a weight file and what they are."""

    start: int
    end: int
    kind: SegmentKind
    tensor: int = -1  # the index in ``layout.tensors`` of a "tensor" segment


def segments(layout: WeightLayout, path: str) -> list[Segment]:
    """The layout's segments in file order; they must tile the file exactly.

    The data segments are the storages where the layout has them, else the
    tensors; in a ``scattered`` layout every gap is structure ("header").
    """
    data = layout.storages or layout.tensors
    segs = [Segment(0, layout.header_size, "header")]
    segs += [Segment(t.start, t.end, "tensor", i) for i, t in enumerate(data)]
    segs += [Segment(a, b, "padding") for a, b in layout.padding]
    segs.sort(key=lambda s: (s.start, s.end))
    if layout.scattered:
        segs = _fill_gaps(segs, layout.file_size)
    # The strict readers guarantee the segments tile the file; check anyway,
    # since a gap here would mean bytes that no digest covers.
    expected = 0
    for s in segs:
        if s.start != expected or s.end < s.start:
            raise FormatError(
                f"layout does not cover bytes [{expected}, {s.start})",
                code=Code.LAYOUT_GAP,
                path=path,
            )
        expected = s.end
    if expected != layout.file_size:
        raise FormatError(
            f"layout covers {expected} of {layout.file_size} bytes",
            code=Code.LAYOUT_GAP,
            path=path,
        )
    return segs


def _fill_gaps(segs: list[Segment], size: int) -> list[Segment]:
    """``segs`` with every byte they leave out as a header segment (overlaps stay errors)."""
    out: list[Segment] = []
    at = 0
    for s in segs:
        if s.start > at:
            out.append(Segment(at, s.start, "header"))
        out.append(s)
        at = max(at, s.end)
    if at < size:
        out.append(Segment(at, size, "header"))
    return out


class SegmentFeeder:
    """Feeds chunks, in file order, to the digest of the segment they fall in.

    With no ``algorithm`` tensors are not digested; the header is then digested
    with SHA-256 and padding is still checked.
    """

    def __init__(self, layout: WeightLayout, algorithm: TensorHash | None, path: str) -> None:
        self.path = path
        self.algorithm = algorithm
        self.segs = segments(layout, path)
        self.layout = layout
        self.idx = 0
        self.current: Hasher | None = None
        self.header: Hasher = new_hasher(algorithm or "sha256")
        self.data_digests: list[str] = [""] * len(layout.storages or layout.tensors)
        self.digests: list[str] = self.data_digests  # the tensors' (storages: set by finish)
        self.crc_failures: list[tuple[str, str, str]] = []  # (member, actual, expected)
        self._views: RangeFeeder | None = None
        self._view_of: list[int] = []  # tensors with a range of their own in a storage
        self._crcs = RangeFeeder([(a, b) for _, a, b, _ in layout.crc_ranges], Crc32)
        if layout.storages and algorithm is not None:
            whole = {(s.start, s.end) for s in layout.storages}
            ts = layout.tensors
            self._view_of = [
                i for i, t in enumerate(ts) if t.digestible and (t.start, t.end) not in whole
            ]
            alg: TensorHash = algorithm
            ranges = [(ts[i].start, ts[i].end) for i in self._view_of]
            self._views = RangeFeeder(ranges, lambda: new_hasher(alg))

    def feed(self, view: memoryview, pos: int) -> None:
        """The bytes ``view`` found at offset ``pos`` (right after the previous chunk)."""
        if self._views is not None:
            self._views.feed(view, pos)
        if self.layout.crc_ranges:
            self._crcs.feed(view, pos)
        base = pos
        end = pos + len(view)
        segs = self.segs
        while self.idx < len(segs) and pos < end:
            seg = segs[self.idx]
            if seg.end <= pos and seg.start < seg.end:
                self.idx += 1
                continue
            b = min(end, seg.end)
            self._take(seg, view[max(pos, seg.start) - base : b - base])
            if b >= seg.end:
                self._close(seg)
                self.idx += 1
            pos = b
        # zero-length segments right at the end of this chunk
        while self.idx < len(segs) and segs[self.idx].start == segs[self.idx].end <= end:
            self._close(segs[self.idx])
            self.idx += 1

    def _take(self, seg: Segment, part: memoryview) -> None:
        if seg.kind == "header":
            self.header.update(part)
        elif seg.kind == "tensor":
            if self.algorithm is not None:
                if self.current is None:
                    self.current = new_hasher(self.algorithm)
                self.current.update(part)
        elif part.tobytes().count(0) != len(part):
            raise FormatError(
                f"padding bytes [{seg.start}, {seg.end}) are not all zero",
                code=Code.GGUF_NONZERO_PADDING,  # only GGUF layouts have padding ranges
                path=self.path,
            )

    def _close(self, seg: Segment) -> None:
        if seg.kind == "tensor" and self.algorithm is not None:
            h = self.current if self.current is not None else new_hasher(self.algorithm)
            self.data_digests[seg.tensor] = h.hexdigest()
            self.current = None

    def finish(self) -> None:
        """After the last chunk: every segment must have been seen whole."""
        while self.idx < len(self.segs) and self.segs[self.idx].start == self.segs[self.idx].end:
            self._close(self.segs[self.idx])
            self.idx += 1
        if self.idx != len(self.segs):
            raise FormatError(
                f"file ended before segment at offset {self.segs[self.idx].start}",
                code=Code.TRUNCATED,
                path=self.path,
            )
        self._crcs.finish()
        for (name, *_, crc), got in zip(self.layout.crc_ranges, self._crcs.digests, strict=True):
            if got != f"{crc:08x}":
                self.crc_failures.append((name, got, f"{crc:08x}"))
        if self.layout.storages:
            self.digests = self._tensor_digests()

    def _tensor_digests(self) -> list[str]:
        """Each tensor's digest: its storage's when it is the whole storage, else its own."""
        if self.algorithm is None:
            return [""] * len(self.layout.tensors)
        storage = {
            (s.start, s.end): d
            for s, d in zip(self.layout.storages, self.data_digests, strict=True)
        }
        out = [
            storage.get((t.start, t.end), "") if t.digestible else "" for t in self.layout.tensors
        ]
        if self._views is not None:
            self._views.finish()
            for i, d in zip(self._view_of, self._views.digests, strict=True):
                out[i] = d
        return out
