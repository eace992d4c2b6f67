"""Runtime integrity monitor: verify models, then re-verify them whenever they change.

A verification holds for a moment; a model served for months can be rewritten
or swapped afterwards. :class:`Watcher` verifies each model under a policy,
then listens for filesystem events (``watchdog``) and re-verifies on any
change. Events the OS does not deliver (network filesystems, an overflowing
inotify queue, a watch limit) are caught by a periodic re-check that compares
every file's stat (size, mtime, ctime, inode) and re-verifies on a difference —
cheap enough to run every minute on models of any size.

It reports transitions, not every check, as dicts with a stable schema —
every key always present::

    {"event": "verified" | "changed" | "tampered" | "restored" | "removed",
     "model": PATH as given, "time": ISO 8601 UTC,
     "verdict": "verified" | "failed" | null (changed, removed),
     "problems": [{"code", "severity", "file", "tensor", "message"}],
     "failed_rules": [policy rules that failed], "signer": {...} | null,
     "paths": [absolute paths that changed: changed only]}

``verified``: the first verification passed (``tampered`` if it failed);
``changed``: files changed, a verification follows; ``tampered``: a
verification failed, or failed with other problems than last time;
``restored``: it passes again after ``tampered`` or ``removed``; ``removed``:
the model path is gone. A change that leaves the verdict and the problems as
they were is reported by ``changed`` alone.

Threads: the observer's thread only marks a model dirty; one worker thread
does every verification — so a model is never verified twice at once — and
calls ``on_event`` in order.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import stat
import subprocess
import threading
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Literal

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

from .compare import Problem
from .discover import MAX_DEPTH
from .errors import InputError, ModelsignError, VerificationError
from .load import ModelsignWarning
from .policy import Policy, resolve_trust
from .sign import default_signature_path
from .signature.verifiers import Verifier
from .verify import VerificationResult, verify

EventName = Literal["verified", "changed", "tampered", "restored", "removed"]
Event = dict[str, Any]
_State = Literal["verified", "tampered", "removed"]

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
#: Timestamps are only as fine as the filesystem's clock: a file changed this
#: close to a snapshot may look unchanged to the next one (git's "racy clean").
_RACY_NS: Final = 2_000_000_000
#: A model written to continuously is still checked, this many debounces after the first event.
_MAX_DELAY: Final = 10
#: Verifications of a model whose files keep changing under them, before one is reported.
_ATTEMPTS: Final = 3
#: How long ``watch`` waits between looks at ``stop_when``.
_POLL: Final = 0.2
ON_CHANGE_TIMEOUT: Final = 30.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(
    name: EventName,
    model: str,
    *,
    verdict: Literal["verified", "failed"] | None = None,
    problems: Sequence[Problem] = (),
    failed_rules: Sequence[str] = (),
    signer: dict[str, Any] | None = None,
    paths: Sequence[str] = (),
) -> Event:
    """One event in the schema above."""
    return {
        "event": name,
        "model": model,
        "time": _now(),
        "verdict": verdict,
        "problems": [
            {
                "code": p.code,
                "severity": p.severity,
                "file": p.file,
                "tensor": p.tensor,
                "message": p.message,
            }
            for p in problems
        ],
        "failed_rules": list(failed_rules),
        "signer": signer,
        "paths": list(paths),
    }


@dataclass(frozen=True)
class _Snapshot:
    """The stat of every path of a model and its signature, to notice changes without events."""

    entries: dict[str, tuple[int, ...]]
    targets: frozenset[str]  # real paths of symlink targets outside the model (HF cache blobs)
    racy: bool
    monotonic: float  # when it was taken

    def changed_paths(self, other: _Snapshot) -> set[str]:
        keys = self.entries.keys() | other.entries.keys()
        return {k for k in keys if self.entries.get(k) != other.entries.get(k)}


@dataclass
class _Model:
    path: str  # as given: what events name
    abspath: str
    signature: str | None
    sig_abspath: str
    is_dir: bool
    index: int
    resolved: str = ""  # the folder a symlinked model path leads to; updated at each check
    state: _State | None = None
    last_problems: tuple[tuple[str, str | None, str | None], ...] = ()
    baseline: _Snapshot = field(default_factory=lambda: _Snapshot({}, frozenset(), True, 0.0))
    # Read by the observer thread: replaced whole, never mutated.
    targets: frozenset[str] = frozenset()

    def concerns(self, p: str) -> bool:
        if p in (self.abspath, self.sig_abspath, self.resolved) or p in self.targets:
            return True
        return self.is_dir and p.startswith(self.roots())

    def roots(self) -> tuple[str, ...]:
        return (self.abspath + os.sep, self.resolved + os.sep)


@dataclass
class _Pending:
    first: float
    last: float
    paths: set[str]

    def deadline(self, debounce: float) -> float:
        return min(self.last + debounce, self.first + _MAX_DELAY * debounce)


class _Stopped(Exception):
    """Raised inside a verification (through its progress callback) to abandon it on stop."""


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watcher._on_fs_event(event)


class Watcher:
    """Verify models under a policy, then re-verify on every change; report events.

    ``start()`` returns at once; the first verification of each model happens
    in the worker and is reported as ``verified`` or ``tampered``. An
    :class:`InputError` during that first round (an unreadable policy key) is a
    configuration error: the worker stops and ``check_now``, ``stop``, the
    context manager and :func:`watch` raise it. Later, every error is reported
    as ``tampered`` with its code and monitoring goes on — an error must not be
    a way to end the monitoring. An exception from ``on_event`` stops it.

    ``use_events=False`` relies on the periodic re-check alone.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        policy: Policy,
        on_event: Callable[[Event], None],
        signature: str | os.PathLike[str] | None = None,
        interval: float = 60.0,
        debounce: float = 0.5,
        verifier: Verifier | None = None,
        jobs: int | None = None,
        use_events: bool = True,
    ) -> None:
        given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not given:
            raise InputError("give at least one model to watch", code="USAGE")
        if signature is not None and len(given) > 1:
            raise InputError("--signature names the signature of one model only", code="USAGE")
        if not interval > 0 or not debounce >= 0:
            raise InputError("the interval must be > 0 and the debounce >= 0", code="USAGE")
        self._policy = policy
        resolve_trust(verifier, policy)  # a usage error now, not in the worker
        self._verifier = verifier  # the caller's, enforced on top of the policy's signers
        self._on_event = on_event
        self._interval = float(interval)
        self._debounce = float(debounce)
        self._jobs = jobs
        self._use_events = use_events
        self._models: list[_Model] = []
        seen: set[str] = set()
        for p in given:
            path = os.fspath(p)
            if not os.path.lexists(path):
                raise InputError(f"no such file or folder: {path}", code="NOT_FOUND", path=path)
            absolute = os.path.abspath(path)
            if absolute in seen:
                continue
            seen.add(absolute)
            sig = os.fspath(signature) if signature is not None else None
            self._models.append(
                _Model(
                    index=len(self._models),
                    path=path,
                    abspath=absolute,
                    signature=sig,
                    sig_abspath=os.path.abspath(sig or default_signature_path(path)),
                    is_dir=os.path.isdir(path),
                    resolved=os.path.realpath(absolute),
                )
            )
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._pending: dict[int, _Pending] = {}
        self._stale: set[str] = set()  # watched folders deleted or moved: watch them anew
        self._wanted_check = 0  # check_now() generations asked for and done
        self._done_check = 0
        self._next_tick = 0.0
        self._started = False
        self._running = False
        self._failure: Exception | None = None
        self._worker: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._handler = _Handler(self)
        self._watches: dict[tuple[str, bool], tuple[ObservedWatch, tuple[int, int]]] = {}
        self._unwatchable: set[str] = set()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Start watching (events first, so nothing changed during the first round is missed)."""
        with self._cond:
            if self._started:
                raise RuntimeError("a Watcher starts only once")
            self._started = True
            self._running = True
            self._next_tick = time.monotonic() + self._interval
        try:
            if self._use_events:
                self._observer = Observer()
                self._observer.start()
                self._sync_watches()
            self._worker = threading.Thread(target=self._run, name="modelsign-watch", daemon=True)
            self._worker.start()
        except BaseException:
            self._shutdown()  # leave no thread behind
            raise

    def stop(self) -> None:
        """Stop the worker (abandoning a verification under way) and the observer; join both.

        Raises what stopped the worker, if anything did.
        """
        self._shutdown()
        self._raise_failure()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._shutdown()
        if exc_type is None:
            self._raise_failure()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker ends (stopped or failed); whether it has."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def check_now(self) -> None:
        """Re-verify every model now, whatever its files' stat says; return when done."""
        with self._cond:
            running = self._running
            if running:
                self._wanted_check += 1
                generation = self._wanted_check
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._done_check >= generation or not self._running)
        self._raise_failure()
        if not running:
            raise RuntimeError("the watcher is not running")

    def _shutdown(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join()
        with self._cond:
            self._running = False
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    # -- the observer's thread: mark dirty, nothing else ----------------------

    def _on_fs_event(self, event: FileSystemEvent) -> None:
        paths = [os.fsdecode(event.src_path)]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        now = time.monotonic()
        with self._cond:
            if isinstance(event, (DirDeletedEvent, DirMovedEvent)):
                self._stale.add(paths[0])
            for i, m in enumerate(self._models):
                hit = [p for p in paths if m.concerns(p)]
                if not hit:
                    continue
                pending = self._pending.setdefault(i, _Pending(now, now, set()))
                pending.last = now
                pending.paths.update(hit)
                self._cond.notify_all()

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        try:
            for m in self._models:
                self._verify(m, announced=True, initial=True)
            self._after_job()
            while (job := self._next_job()) is not None:
                job()
                self._after_job()
        except _Stopped:
            return
        except Exception as exc:  # handed to whoever stops or waits for the watcher
            self._failure = exc
        finally:
            with self._cond:
                self._running = False
                self._cond.notify_all()

    def _next_job(self) -> Callable[[], None] | None:
        with self._cond:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._wanted_check > self._done_check:
                    return self._check_all
                deadlines = {i: p.deadline(self._debounce) for i, p in self._pending.items()}
                due = {i: self._pending.pop(i) for i, d in deadlines.items() if d <= now}
                if due:
                    return lambda: self._changes(due)
                if now >= self._next_tick:
                    self._next_tick = now + self._interval
                    return self._tick
                self._cond.wait(min([self._next_tick, *deadlines.values()]) - now)
        return None

    def _check_all(self) -> None:
        with self._cond:
            generation = self._wanted_check
        for m in self._models:
            self._compare(m, always=True)
        with self._cond:
            self._done_check = generation
            self._cond.notify_all()

    def _changes(self, due: dict[int, _Pending]) -> None:
        for i, pending in sorted(due.items()):
            m = self._models[i]
            self._on_event(_event("changed", m.path, paths=_leaves(pending.paths)))
            self._verify(m, announced=True)

    def _tick(self) -> None:
        for m in self._models:
            self._compare(m)

    def _compare(self, m: _Model, *, always: bool = False) -> None:
        """Re-verify when the stat of any path differs from the last verification's."""
        snap = _snapshot(m)
        changed = snap.changed_paths(m.baseline)
        if changed:
            self._on_event(_event("changed", m.path, paths=_leaves(changed)))
        if changed or m.baseline.racy or always:
            self._verify(m, snap, announced=bool(changed))

    def _after_job(self) -> None:
        """Follow replaced folders; what changed before a new watch took hold is compared."""
        for path in self._sync_watches():
            for m in self._models:
                if path in (m.abspath, m.resolved, os.path.dirname(m.abspath)):
                    self._compare(m)

    def _cancel_point(self, done: int, total: int) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _verify(
        self,
        m: _Model,
        snap: _Snapshot | None = None,
        *,
        announced: bool = False,
        initial: bool = False,
    ) -> None:
        """Verify, and report the outcome of a verification during which nothing changed.

        Outcomes after the first follow a ``changed`` naming what changed,
        whenever events or stat show it: a verification not started by one (a
        re-check of racy timestamps) announces the events it covers, and one
        that overlapped a change is announced and done again, a few times at
        most, so a half-written file is not reported as tampered.
        """
        m.resolved = os.path.realpath(m.abspath)
        current = snap if snap is not None else _snapshot(m)
        attempt = 1
        while True:
            with self._cond:
                # Events from before the snapshot are covered by this verification.
                pending = self._pending.get(m.index)
                if pending is not None and pending.last < current.monotonic:
                    del self._pending[m.index]
                else:
                    pending = None
            if pending is not None and not announced:
                self._on_event(_event("changed", m.path, paths=_leaves(pending.paths)))
            announced = True
            state, result = self._outcome(m, initial)
            after = _snapshot(m)
            during = after.changed_paths(current)
            if not during or attempt == _ATTEMPTS:
                break
            if not initial:  # the first event is the first outcome
                self._on_event(_event("changed", m.path, paths=_leaves(during)))
            current, attempt = after, attempt + 1
        # The snapshot from before the verification: a change during it shows at the next re-check.
        m.baseline = current
        m.targets = current.targets
        self._settle(m, state, result)

    def _outcome(
        self, m: _Model, initial: bool
    ) -> tuple[_State, VerificationResult | ModelsignError | None]:
        if not os.path.lexists(m.path):
            return "removed", None
        try:
            result = verify(
                m.path,
                verifier=self._verifier,
                policy=self._policy,
                signature=m.signature,
                jobs=self._jobs,
                progress=self._cancel_point,
            )
        except VerificationError as exc:
            if isinstance(exc.result, VerificationResult):
                return "tampered", exc.result
            return "tampered", exc
        except InputError as exc:
            if exc.code == "NOT_FOUND":
                return "removed", None
            if initial:
                raise
            return "tampered", exc
        except ModelsignError as exc:
            return "tampered", exc
        except _Stopped:
            raise
        except Exception as exc:  # a model's content must not stop the monitor
            why = f"the model could not be checked ({exc.__class__.__name__}: {exc})"
            return "tampered", ModelsignError(why[:500], code="UNREADABLE", path=m.path)
        return ("verified" if result.verdict == "verified" else "tampered"), result

    def _settle(
        self,
        m: _Model,
        state: _State,
        result: VerificationResult | ModelsignError | None,
    ) -> None:
        """Report a transition (or new problems while tampered); stay quiet otherwise."""
        problems: list[Problem] = []
        rules: list[str] = []
        signer = None
        if isinstance(result, VerificationResult):
            problems = list(result.problems)
            if result.policy is not None:
                rules = [r.rule for r in result.policy.rules if r.status == "fail"]
            if result.signer is not None:
                signer = result.signer.model_dump(mode="json")
        elif result is not None:
            problems = [
                Problem(
                    code=result.code, message=result.message, file=result.path, tensor=result.tensor
                )
            ]
        key = tuple(sorted((p.code, p.file, p.tensor) for p in problems)) + tuple(
            (r, None, None) for r in rules
        )
        previous, m.state = m.state, state
        name: EventName | None = None
        if state == "verified":
            name = "verified" if previous is None else "restored" if previous != state else None
        elif state == "tampered":
            name = "tampered" if previous != state or key != m.last_problems else None
        elif previous != state:
            name = "removed"
        m.last_problems = key
        if name is None:
            return
        verdict: Literal["verified", "failed"] | None = None
        if state != "removed":
            verdict = "verified" if state == "verified" else "failed"
        self._on_event(
            _event(
                name, m.path, verdict=verdict, problems=problems, failed_rules=rules, signer=signer
            )
        )

    # -- watches -------------------------------------------------------------

    def _wanted_dirs(self) -> set[tuple[str, bool]]:
        """Each model's folder (recursive) and the folders of its file, signature and link targets.

        The parent is watched even for a folder model: a watch dies with its
        folder, and the parent sees the folder deleted, moved or re-created.
        """
        wanted: set[tuple[str, bool]] = set()
        for m in self._models:
            wanted.add((os.path.dirname(m.abspath), False))
            if m.is_dir:
                wanted.add((m.resolved, True))  # inotify does not follow a symlinked folder
            if not (m.is_dir and m.sig_abspath.startswith(m.roots())):
                wanted.add((os.path.dirname(m.sig_abspath), False))
            wanted.update((os.path.dirname(t), False) for t in m.targets)
        return wanted

    def _sync_watches(self) -> list[str]:
        """Schedule, drop or renew watches to match the folders on disk; the newly watched ones."""
        observer = self._observer
        if observer is None:
            return []
        with self._cond:
            stale, self._stale = self._stale, set()
        wanted = self._wanted_dirs()
        for key, (old, known) in list(self._watches.items()):
            if key not in wanted or key[0] in stale or _identity(key[0]) != known:
                observer.unschedule(old)
                del self._watches[key]
        fresh: list[str] = []
        for key in sorted(wanted - self._watches.keys()):
            identity = _identity(key[0])
            if identity is None:
                continue  # not there (now): the periodic re-check looks again
            try:
                watch = observer.schedule(
                    self._handler, key[0], recursive=key[1], event_filter=_EVENT_TYPES
                )
            except (OSError, RecursionError) as exc:
                # The periodic re-check covers the folder and the next sync retries.
                # (RecursionError: the observer walks a folder tree recursively.)
                enoent = isinstance(exc, OSError) and exc.errno == errno.ENOENT
                if not enoent and key[0] not in self._unwatchable:
                    self._unwatchable.add(key[0])  # say it once, not at every retry
                    why = getattr(exc, "strerror", None) or exc
                    warnings.warn(
                        f"modelsign: cannot watch {key[0]} for changes ({why}); "
                        f"only the re-check every {self._interval:g} s covers it",
                        ModelsignWarning,
                        stacklevel=1,
                    )
                continue
            self._watches[key] = (watch, identity)
            fresh.append(key[0])
        return fresh


def _leaves(paths: set[str]) -> list[str]:
    """The changed paths without folders reported only because something in them changed."""
    ancestors: set[str] = set()
    for p in paths:
        d = os.path.dirname(p)
        while d not in ancestors and d != os.path.dirname(d):
            ancestors.add(d)
            d = os.path.dirname(d)
    return sorted(paths - ancestors)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _snapshot(m: _Model) -> _Snapshot:
    """Stat every path of the model (not following links out of it) and its signature."""
    taken, monotonic = time.time_ns(), time.monotonic()
    entries: dict[str, tuple[int, ...]] = {}
    targets: set[str] = set()
    for top, recurse in _snapshot_roots(m):
        if top not in entries:
            _visit(m, top, recurse, entries, targets)
    # ctimes: the entry's own (index 3) and, for a symlink, its target's (index 9)
    newest = max((e[i] for e in entries.values() for i in (3, 9) if len(e) > i), default=0)
    return _Snapshot(entries, frozenset(targets), newest >= taken - _RACY_NS, monotonic)


def _snapshot_roots(m: _Model) -> list[tuple[str, bool]]:
    roots = [(m.abspath, m.is_dir)]
    if m.is_dir and m.resolved != m.abspath:
        roots.append((m.resolved, True))
    return [*roots, (m.sig_abspath, False)]


def _visit(
    m: _Model, top: str, recurse: bool, entries: dict[str, tuple[int, ...]], targets: set[str]
) -> None:
    """Stat ``top`` and, with ``recurse``, everything under it — with a stack, not recursion.

    A tree deeper than :data:`MAX_DEPTH` is not followed further (verification
    refuses it as ``TOO_DEEP``), so a model's content can never crash the monitor.
    """
    stack = [(top, 0)]
    while stack:
        p, depth = stack.pop()
        rec = _stat_entry(m, p, targets)
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


def _stat_entry(m: _Model, p: str, targets: set[str]) -> tuple[int, ...] | None:
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
        if not real.startswith(m.roots()):
            targets.add(real)
        try:
            t = os.stat(p)
            rec += (t.st_mode, t.st_size, t.st_mtime_ns, t.st_ctime_ns, t.st_ino, t.st_dev)
        except OSError as exc:
            rec += (-(exc.errno or 1),)
    return rec


def watch(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    policy: Policy,
    on_event: Callable[[Event], None],
    signature: str | os.PathLike[str] | None = None,
    interval: float = 60.0,
    debounce: float = 0.5,
    verifier: Verifier | None = None,
    jobs: int | None = None,
    use_events: bool = True,
    stop_when: Callable[[], bool] | None = None,
) -> None:
    """Run a :class:`Watcher` until ``stop_when()`` is true, or the watcher fails (raised).

    ``stop_when`` is polled a few times a second rather than being an event to
    set, so a signal handler can stop the watch by setting a plain flag (taking
    a lock inside a signal handler can deadlock).
    """
    with Watcher(
        paths,
        policy=policy,
        on_event=on_event,
        signature=signature,
        interval=interval,
        debounce=debounce,
        verifier=verifier,
        jobs=jobs,
        use_events=use_events,
    ) as watcher:
        while not (stop_when is not None and stop_when()):
            if watcher.wait(_POLL):
                break


def command_hook(
    command: str | Sequence[str],
    *,
    on_error: Callable[[str], None],
    timeout: float = ON_CHANGE_TIMEOUT,
) -> Callable[[Event], None]:
    """A callback running ``command`` (no shell) per event: the JSON on its stdin.

    ``MODELSIGN_EVENT`` and ``MODELSIGN_MODEL`` are set in its environment.
    Its output goes to stderr, so stdout stays one JSON event per line. A
    failure, a timeout (the command is killed) or a command that cannot start
    goes to ``on_error`` and never stops the watcher: an alert hook must not be
    a way to end the monitoring. A command not found now is a usage error.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise InputError("the on-change command is empty", code="USAGE")
    if shutil.which(argv[0]) is None:
        raise InputError(f"on-change command not found: {argv[0]}", code="USAGE")

    def run(event: Event) -> None:
        what = f"{event['event']} of {event['model']}"
        env = {**os.environ, "MODELSIGN_EVENT": event["event"], "MODELSIGN_MODEL": event["model"]}
        try:
            proc = subprocess.run(
                argv,
                input=(json.dumps(event) + "\n").encode(),
                stdout=2,
                env=env,
                timeout=timeout,
                check=False,
                shell=False,
            )
        except subprocess.TimeoutExpired:
            on_error(f"on-change command killed after {timeout:g} s ({what})")
            return
        except OSError as exc:
            on_error(f"on-change command could not run: {exc.strerror or exc} ({what})")
            return
        if proc.returncode != 0:
            on_error(f"on-change command failed with exit code {proc.returncode} ({what})")

    return run
