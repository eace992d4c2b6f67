"""What the check core is given and what it gives back: plain values, no file handles.

The caller (``verify``'s reader, a loader) does the I/O and reports what it
saw: the files found (:class:`Listing`), what it measured of each signed file
(:class:`Seen`), the digests of unsigned files that may be a missing one
renamed. :func:`~.judge.judge` turns that and the signed statement into every
problem (:class:`Judgement`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..manifest import WeightsInfo
from .compare import Problem


@dataclass(frozen=True)
class Listing:
    """The files found where the model is (the signature's own files left out)."""

    sizes: Mapping[str, int]  # name relative to the model root → size in bytes
    single_file: bool = False  # the model is one file (its one name above)
    problem: Problem | None = None  # why the folder could not be walked (then nothing is listed)


@dataclass(frozen=True)
class Seen:
    """What was measured of one signed file.

    Only what the plan asked for is there: a file judged by its size alone has
    at most its header's layout; a file checked by its parts has their digests.
    """

    sha256: str | None = None  # the whole-file digest, in the signed algorithm
    parts: tuple[str | bool, ...] | None = None  # each covering part's digest (padding: all zero)
    shards: tuple[str, ...] | None = None  # each signed shard's digest, in order
    #: The layout (and tensor digests) as read; for a file of another size, its header's alone.
    weights: WeightsInfo | None = None
    unparsable: str | None = None  # "CODE: message": why the file no longer parses
    failure: Problem | None = None  # refused at open, or changed while read: said as it is


@dataclass(frozen=True)
class Observed:
    """Everything the reader saw of the model."""

    listing: Listing
    seen: Mapping[str, Seen] = field(default_factory=dict)  # by signed file name
    #: SHA-256 of the unsigned files the plan named as possible renames.
    extra_sha256: Mapping[str, str] = field(default_factory=dict)
    #: Reads that failed for a batch of files (named when they can be): no verdict for those.
    failures: Sequence[Problem] = ()


@dataclass(frozen=True)
class Judgement:
    """Every problem found, sorted by file and tensor, and what verified."""

    problems: tuple[Problem, ...]
    files_verified: int = 0
    files_by_tensor_digests: int = 0
    tensors_verified: int = 0
    bytes_verified: int = 0
