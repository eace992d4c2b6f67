"""The :class:`Watcher`: one worker thread verifies; the observer's thread marks models dirty."""

from __future__ import annotations

import os
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileSystemEvent,
)

from .._internal.check.compare import Problem
from .._internal.signature.location import signature_location
from .._internal.signature.verifiers import Verifier
from .._trust import resolve_trust
from ..codes import Code
from ..errors import InputError, ModelsignError
from ..policy import Policy
from ..verify import VerificationResult, verify_model
from ._observer import FolderWatches
from ._snapshot import Snapshot, leaves, take_snapshot
from .events import Event, EventName, Verdict, make_event

_State = Literal["verified", "tampered", "removed"]

#: A model written to continuously is still checked, this many debounces after the first event.
_MAX_DELAY: Final = 10
#: Verifications of a model whose files keep changing under them, before one is reported.
_ATTEMPTS: Final = 3
#: How long ``watch`` waits between looks at ``stop_when``.
_POLL: Final = 0.2


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
    baseline: Snapshot = field(default_factory=lambda: Snapshot({}, frozenset(), True, 0.0))
    # Read by the observer thread: replaced whole, never mutated.
    targets: frozenset[str] = frozenset()

    def concerns(self, p: str) -> bool:
        if p in (self.abspath, self.sig_abspath, self.resolved) or p in self.targets:
            return True
        return self.is_dir and p.startswith(self.roots())

    def roots(self) -> tuple[str, ...]:
        return (self.abspath + os.sep, self.resolved + os.sep)

    def snapshot(self) -> Snapshot:
        """Stat every path of the model (not following links out of it) and its signature."""
        roots = [(self.abspath, self.is_dir)]
        if self.is_dir and self.resolved != self.abspath:
            roots.append((self.resolved, True))
        return take_snapshot([*roots, (self.sig_abspath, False)], self.roots())


@dataclass
class _Pending:
    first: float
    last: float
    paths: set[str]

    def deadline(self, debounce: float) -> float:
        return min(self.last + debounce, self.first + _MAX_DELAY * debounce)


class _Stopped(Exception):
    """Raised inside a verification (through its progress callback) to abandon it on stop."""


def _models_of(
    given: Sequence[str | os.PathLike[str]], signature: str | os.PathLike[str] | None
) -> list[_Model]:
    """The models to watch, each once (by absolute path), in the order given."""
    models: list[_Model] = []
    seen: set[str] = set()
    for p in given:
        path = os.fspath(p)
        if not os.path.lexists(path):
            raise InputError(f"no such file or folder: {path}", code=Code.NOT_FOUND, path=path)
        absolute = os.path.abspath(path)
        if absolute in seen:
            continue
        seen.add(absolute)
        sig = os.fspath(signature) if signature is not None else None
        models.append(
            _Model(
                index=len(models),
                path=path,
                abspath=absolute,
                signature=sig,
                sig_abspath=os.path.abspath(signature_location(path, signature=sig).signature),
                is_dir=os.path.isdir(path),
                resolved=os.path.realpath(absolute),
            )
        )
    return models


class Watcher:
    """Verify models, then re-verify on every change; report events.

    Trust is ``verifier`` (the caller's: a key, roots, a Sigstore identity),
    the signers ``policy`` lists, or both, as for :func:`modelsign.verify`;
    the policy's other rules judge each verification too.

    ``start()`` returns at once; the first verification of each model happens
    in the worker and is reported as ``verified`` or ``tampered`` (a missing
    signature too). An :class:`InputError` during that first round (an
    unreadable policy key) is a configuration error: the worker stops and
    ``check_now``, ``stop``, the context manager and :func:`watch` raise it.
    Later, every error is reported as ``tampered`` with its code and
    monitoring goes on — an error must not be a way to end the monitoring. An
    exception from ``on_event`` stops it.

    ``use_events=False`` relies on the periodic re-check alone.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        policy: Policy | None = None,
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
            raise InputError("give at least one model to watch", code=Code.USAGE)
        if signature is not None and len(given) > 1:
            raise InputError("--signature names the signature of one model only", code=Code.USAGE)
        if not interval > 0 or not debounce >= 0:
            raise InputError("the interval must be > 0 and the debounce >= 0", code=Code.USAGE)
        self._policy = policy
        resolve_trust(verifier, policy)  # a usage error now, not in the worker
        self._verifier = verifier  # the caller's, enforced on top of the policy's signers
        self._on_event = on_event
        self._interval = float(interval)
        self._debounce = float(debounce)
        self._jobs = jobs
        self._use_events = use_events
        self._models = _models_of(given, signature)
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
        self._folders = FolderWatches(self._on_fs_event, self._interval)

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
                self._folders.start()
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
        self._folders.stop()

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
            self._on_event(make_event("changed", m.path, paths=leaves(pending.paths)))
            self._verify(m, announced=True)

    def _tick(self) -> None:
        for m in self._models:
            self._compare(m)

    def _compare(self, m: _Model, *, always: bool = False) -> None:
        """Re-verify when the stat of any path differs from the last verification's."""
        snap = m.snapshot()
        changed = snap.changed_paths(m.baseline)
        if changed:
            self._on_event(make_event("changed", m.path, paths=leaves(changed)))
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
        snap: Snapshot | None = None,
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
        current = snap if snap is not None else m.snapshot()
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
                self._on_event(make_event("changed", m.path, paths=leaves(pending.paths)))
            announced = True
            state, result = self._outcome(m, initial)
            after = m.snapshot()
            during = after.changed_paths(current)
            if not during or attempt == _ATTEMPTS:
                break
            if not initial:  # the first event is the first outcome
                self._on_event(make_event("changed", m.path, paths=leaves(during)))
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
            result = verify_model(
                m.path,
                verifier=self._verifier,
                policy=self._policy,
                signature=m.signature,
                jobs=self._jobs,
                progress=self._cancel_point,
                on_failure="report",  # a failure is an event, not an exception
            )
        except InputError as exc:
            if exc.code == "NOT_FOUND":
                return "removed", None
            if initial and exc.code != "SIGNATURE_NOT_FOUND":
                raise  # a configuration error (with a policy, no signature is a failed rule)
            return "tampered", exc
        except ModelsignError as exc:
            return "tampered", exc
        except _Stopped:
            raise
        except Exception as exc:  # a model's content must not stop the monitor
            why = f"the model could not be checked ({exc.__class__.__name__}: {exc})"
            return "tampered", ModelsignError(why[:500], code=Code.UNREADABLE, path=m.path)
        return ("verified" if result.verdict == "verified" else "tampered"), result

    def _settle(
        self,
        m: _Model,
        state: _State,
        result: VerificationResult | ModelsignError | None,
    ) -> None:
        """Report a transition (or new problems while tampered); stay quiet otherwise."""
        problems, rules, signer = _findings(result)
        key = tuple(sorted((p.code, p.file, p.tensor) for p in problems)) + tuple(
            (r, None, None) for r in rules
        )
        previous, m.state = m.state, state
        name = _transition(previous, state, key != m.last_problems)
        m.last_problems = key
        if name is None:
            return
        verdict: Verdict | None = None
        if state != "removed":
            verdict = "verified" if state == "verified" else "failed"
        self._on_event(
            make_event(
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
        """Match the watches to the folders on disk; the folders newly watched."""
        if not self._folders.active:
            return []
        with self._cond:
            stale, self._stale = self._stale, set()
        return self._folders.sync(self._wanted_dirs(), stale)


def _findings(
    result: VerificationResult | ModelsignError | None,
) -> tuple[list[Problem], list[str], dict[str, Any] | None]:
    """An outcome's problems, the policy rules that failed and the signer (as JSON)."""
    if isinstance(result, VerificationResult):
        rules: list[str] = []
        if result.policy is not None:
            rules = [r.rule for r in result.policy.failed]
        signer = result.signer.model_dump(mode="json") if result.signer is not None else None
        return list(result.problems), rules, signer
    if result is not None:
        return [result.to_issue()], [], None
    return [], [], None


def _transition(previous: _State | None, state: _State, new_problems: bool) -> EventName | None:
    """The event a change of state calls for; None to stay quiet."""
    if state == "verified":
        return "verified" if previous is None else "restored" if previous != state else None
    if state == "tampered":
        return "tampered" if previous != state or new_problems else None
    return "removed" if previous != state else None


def watch(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    policy: Policy | None = None,
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
