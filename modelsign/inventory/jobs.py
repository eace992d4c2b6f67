"""What a scan collects before judging: one job per model found, and how to read it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from .._internal._atomic import open_regular_fd
from .._internal.discover import MAX_DEPTH, ModelTree
from .._internal.hashing import pread_all
from .._internal.metadata.provenance import SourceRepo
from .._internal.signature.location import SIDECAR_FILES
from ..errors import DiscoveryError, ModelsignError
from .report import StoreKind

# Sidecars that are never part of a model's content.
SIDECARS: Final = SIDECAR_FILES


class Unreadable(Exception):
    """A model that cannot be inventoried; the message is the reason shown."""


@dataclass(frozen=True)
class Address:
    """What a content-addressed store says a file is."""

    algorithm: Literal["sha256", "git-sha1"]
    hex: str
    size: int | None = None  # the size the store recorded, if it records one
    label: str = ""  # the name the store gives it (blobs/sha256-…, an etag)


@dataclass
class Prepared:
    tree: ModelTree
    target: str  # what a signature covers and verify() is given
    signature: str | None
    addresses: dict[str, Address]
    source: SourceRepo | None = None


@dataclass
class Job:
    name: str
    store: StoreKind
    location: str
    prepare: Callable[[], Prepared] | None  # None: known to be unreadable
    reason: str | None = None
    revision: str | None = None
    refs: tuple[str, ...] = ()


class Jobs:
    """The models found so far; finding only lists folders, so reading waits for judging."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def broken(self, name: str, store: StoreKind, location: str, reason: str) -> None:
        """A model already known to be unreadable is still reported, with why."""
        self.jobs.append(Job(name, store, location, None, reason))

    def walk_error(self, kind: StoreKind) -> Callable[[OSError], None]:
        def report(exc: OSError) -> None:
            path = str(exc.filename or "")
            self.broken(os.path.basename(path), kind, path, f"cannot list: {os_reason(exc)}")

        return report


def describe(exc: ModelsignError) -> str:
    where = f"{exc.path}: " if exc.path else ""
    text = f"{exc.code}: {where}{exc.message}"
    if exc.expected is not None or exc.actual is not None:
        text += f" (expected {exc.expected}, actual {exc.actual})"
    return text


def os_reason(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc.__class__.__name__}{where}"


def read_small(path: str, limit: int) -> bytes:
    """The first ``limit`` bytes of a regular file, never blocking on a FIFO or following a link."""
    try:
        fd = open_regular_fd(path)
    except DiscoveryError as exc:
        raise Unreadable(f"{path}: {exc.message}") from None
    try:
        return pread_all(fd, limit)
    finally:
        os.close(fd)


def walk_tree(
    top: str, onerror: Callable[[OSError], None]
) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, onerror=...)`` (top-down, links listed, not followed) with a stack.

    Python 3.11's ``os.walk`` recurses, so a store nested deep enough would end
    the scan in a ``RecursionError``; past :data:`MAX_DEPTH` a folder is
    reported through ``onerror`` and not entered.
    """
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            onerror(exc)
            continue
        dirs = [e.name for e in entries if e.is_dir()]
        files = [e.name for e in entries if not e.is_dir()]
        yield folder, dirs, files  # the caller may prune ``dirs``, as with os.walk
        deeper = [os.path.join(folder, d) for d in dirs]
        deeper = [d for d in deeper if not os.path.islink(d)]
        if deeper and depth >= MAX_DEPTH:
            onerror(OSError(0, f"TOO_DEEP: folders nest more than {MAX_DEPTH} levels", folder))
            continue
        stack.extend((d, depth + 1) for d in reversed(deeper))
