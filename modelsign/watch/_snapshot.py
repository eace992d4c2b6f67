"""Stat snapshots of a model: changes noticed without filesystem events."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .._internal.discover import MAX_DEPTH

#: Timestamps are only as fine as the filesystem's clock: a file changed this
#: close to a snapshot may look unchanged to the next one (git's "racy clean").
_RACY_NS: Final = 2_000_000_000


@dataclass(frozen=True)
class Snapshot:
    """The stat of every path of a model and its signature, to notice changes without events."""

    entries: dict[str, tuple[int, ...]]
    targets: frozenset[str]  # real paths of symlink targets outside the model (HF cache blobs)
    racy: bool
    monotonic: float  # when it was taken

    def changed_paths(self, other: Snapshot) -> set[str]:
        keys = self.entries.keys() | other.entries.keys()
        return {k for k in keys if self.entries.get(k) != other.entries.get(k)}


def leaves(paths: set[str]) -> list[str]:
    """The changed paths without folders reported only because something in them changed."""
    ancestors: set[str] = set()
    for p in paths:
        d = os.path.dirname(p)
        while d not in ancestors and d != os.path.dirname(d):
            ancestors.add(d)
            d = os.path.dirname(d)
    return sorted(paths - ancestors)


def dir_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def take_snapshot(roots: Sequence[tuple[str, bool]], inside: tuple[str, ...]) -> Snapshot:
    """Stat each root (with ``True``: all under it), not following links out of ``inside``."""
    taken, monotonic = time.time_ns(), time.monotonic()
    entries: dict[str, tuple[int, ...]] = {}
    targets: set[str] = set()
    for top, recurse in roots:
        if top not in entries:
            _visit(inside, top, recurse, entries, targets)
    # ctimes: the entry's own (index 3) and, for a symlink, its target's (index 9)
    newest = max((e[i] for e in entries.values() for i in (3, 9) if len(e) > i), default=0)
    return Snapshot(entries, frozenset(targets), newest >= taken - _RACY_NS, monotonic)


def _visit(
    inside: tuple[str, ...],
    top: str,
    recurse: bool,
    entries: dict[str, tuple[int, ...]],
    targets: set[str],
) -> None:
    """Stat ``top`` and, with ``recurse``, everything under it — with a stack, not recursion.

    A tree deeper than :data:`MAX_DEPTH` is not followed further (verification
    refuses it as ``TOO_DEEP``), so a model's content can never crash the monitor.
    """
    stack = [(top, 0)]
    while stack:
        p, depth = stack.pop()
        rec = _stat_entry(inside, p, targets)
        if rec is None:
            continue
        entries[p] = rec
        if not (recurse and stat.S_ISDIR(rec[0]) and len(rec) > 1) or depth >= MAX_DEPTH:
            continue
        try:
            names = sorted(os.listdir(p))
        except OSError as exc:
            entries[p] = (*rec, -(exc.errno or 1))
            continue
        stack.extend((os.path.join(p, name), depth + 1) for name in reversed(names))


def _stat_entry(inside: tuple[str, ...], p: str, targets: set[str]) -> tuple[int, ...] | None:
    """What a path's stat says (a link: its target's too); None when it is gone."""
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return (-(exc.errno or 1),)  # unreadable is a state too
    rec: tuple[int, ...] = (
        st.st_mode,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
    )
    if stat.S_ISLNK(st.st_mode):
        real = os.path.realpath(p)
        if not real.startswith(inside):
            targets.add(real)
        try:
            t = os.stat(p)
            rec += (t.st_mode, t.st_size, t.st_mtime_ns, t.st_ctime_ns, t.st_ino, t.st_dev)
        except OSError as exc:
            rec += (-(exc.errno or 1),)
    return rec
