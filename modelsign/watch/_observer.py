"""The OS observer and the folders it watches, renewed as folders are replaced."""

from __future__ import annotations

import errno
import warnings
from collections.abc import Callable
from typing import Final

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from ..load import ModelsignWarning
from ._snapshot import dir_identity

#: Opening and reading a file are events too; verification reads every file, so
#: listening to them would make each verification trigger the next.
_EVENT_TYPES: Final[list[type[FileSystemEvent]]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
]


class _Handler(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._on_event(event)


class FolderWatches:
    """An observer and its watches, keyed by (folder, recursive).

    Not thread-safe: started, synced and stopped by one thread at a time (the
    watcher's caller, then its worker). ``on_event`` runs on the observer's thread.
    """

    def __init__(self, on_event: Callable[[FileSystemEvent], None], interval: float) -> None:
        self._handler = _Handler(on_event)
        self._interval = interval  # for the warning only
        self._observer: BaseObserver | None = None
        self._watches: dict[tuple[str, bool], tuple[ObservedWatch, tuple[int, int]]] = {}
        self._unwatchable: set[str] = set()

    @property
    def observer(self) -> BaseObserver | None:
        """The running observer; None before ``start`` and after ``stop``."""
        return self._observer

    @property
    def active(self) -> bool:
        return self._observer is not None

    def start(self) -> None:
        self._observer = Observer()
        self._observer.start()

    def stop(self) -> None:
        """Stop the observer and join its thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    def sync(self, wanted: set[tuple[str, bool]], stale: set[str]) -> list[str]:
        """Schedule, drop or renew watches to match the folders on disk; the newly watched ones.

        ``stale``: folders deleted or moved since the last sync, watched anew.
        """
        observer = self._observer
        if observer is None:
            return []
        for key, (old, known) in list(self._watches.items()):
            if key not in wanted or key[0] in stale or dir_identity(key[0]) != known:
                observer.unschedule(old)
                del self._watches[key]
        fresh: list[str] = []
        for key in sorted(wanted - self._watches.keys()):
            identity = dir_identity(key[0])
            if identity is None:
                continue  # not there (now): the periodic re-check looks again
            try:
                watch = observer.schedule(
                    self._handler, key[0], recursive=key[1], event_filter=_EVENT_TYPES
                )
            except (OSError, RecursionError) as exc:
                # The periodic re-check covers the folder and the next sync retries.
                # (RecursionError: the observer walks a folder tree recursively.)
                self._warn_once(key[0], exc)
                continue
            self._watches[key] = (watch, identity)
            fresh.append(key[0])
        return fresh

    def _warn_once(self, folder: str, exc: OSError | RecursionError) -> None:
        enoent = isinstance(exc, OSError) and exc.errno == errno.ENOENT
        if not enoent and folder not in self._unwatchable:
            self._unwatchable.add(folder)  # say it once, not at every retry
            why = getattr(exc, "strerror", None) or exc
            warnings.warn(
                f"modelsign: cannot watch {folder} for changes ({why}); "
                f"only the re-check every {self._interval:g} s covers it",
                ModelsignWarning,
                stacklevel=1,
            )
