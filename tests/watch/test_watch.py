"""The integrity monitor: real file changes under a running watcher, asserted event by event.

Every scenario changes files on disk (rewrite in place, rename over, delete,
re-create) and waits — polling, never sleeping a fixed time — for the events
the change must produce: a ``changed`` event naming the path first (whether
the filesystem event or the periodic re-check noticed it), then exactly the
expected outcomes (``tampered``, ``restored``, ``removed``), in order.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from watchdog.observers.api import BaseObserver

from modelsign._internal.signature import keys
from modelsign.cli import cli
from modelsign.errors import InputError
from modelsign.issues import Issue
from modelsign.load import ModelsignWarning
from modelsign.policy import Policy
from modelsign.sign import sign
from modelsign.watch import Event, Watcher, _snapshot, _watcher, command_hook
from modelsign.watch.events import EventProblem, make_event
from tests.helpers.deep import make_deep, remove_deep
from tests.helpers.paths import ROOT
from tests.helpers.signing import KeyPair, flip_byte
from tests.helpers.watch_cli import cli_watch

TIMEOUT = 10.0
TENSOR = "lm_head.weight"
WEIGHTS = "model.safetensors"
OUTCOMES = ("verified", "tampered", "restored", "removed")
SCHEMA = {"event", "model", "time", "verdict", "problems", "failed_rules", "signer", "paths"}


class Events:
    """A thread-safe record of the events a watcher emits, with waits on what comes next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self.mark = 0

    def __call__(self, event: Event) -> None:
        assert set(event) == SCHEMA, event
        with self._lock:
            self._events.append(event)

    def all(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def since_mark(self) -> list[Event]:
        return self.all()[self.mark :]

    def _poll(self, ready: Callable[[list[Event]], int | None], what: str) -> int:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            found = ready(self.since_mark())
            if found is not None:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {what} within {TIMEOUT} s; got {self.since_mark()}")

    def wait_for(self, name: str) -> Event:
        """The first event ``name`` after the mark (which stays)."""
        at = self._poll(
            lambda events: next((i for i, e in enumerate(events) if e["event"] == name), None),
            repr(name),
        )
        return self.since_mark()[at]

    def expect(self, *outcomes: str, path: Path | None = None) -> list[Event]:
        """The next outcome events, which must be exactly these; the mark moves past them.

        With ``path``, the first event must be a ``changed`` naming it.
        """

        def ready(events: list[Event]) -> int | None:
            found = [i for i, e in enumerate(events) if e["event"] in OUTCOMES]
            if len(found) < len(outcomes):
                return None
            if path is not None and not any(str(path) in e["paths"] for e in events):
                return None
            return found[len(outcomes) - 1]

        at = self._poll(ready, f"{outcomes} after a change of {path}")
        events = self.since_mark()[: at + 1]
        self.mark += at + 1
        assert [e["event"] for e in events if e["event"] in OUTCOMES] == list(outcomes), events
        if path is not None:
            assert events[0]["event"] == "changed" and str(path) in events[0]["paths"], events
        return [e for e in events if e["event"] in OUTCOMES]


def problems(event: Event) -> list[tuple[str, str | None, str | None]]:
    return [(p["code"], p["file"], p["tensor"]) for p in event["problems"]]


def test_the_typed_event_is_the_schema_in_its_order() -> None:
    """``Event`` declares exactly the keys an event has, in the order the JSON line has them.

    A problem is an ``Issue`` as JSON: it gained ``expected`` and ``actual``.
    """
    event = make_event("changed", "m", paths=["/m/a"])
    assert list(Event.__annotations__) == list(event)
    assert set(event) == SCHEMA
    assert list(EventProblem.__annotations__) == [
        "code", "severity", "message", "file", "tensor", "expected", "actual"
    ]  # fmt: skip
    assert list(EventProblem.__annotations__) == list(Issue.model_fields)
    issue = Issue(code="TENSOR_MODIFIED", message="m", file="w", tensor="t", expected="a")
    (problem,) = make_event("tampered", "m", problems=[issue])["problems"]
    assert problem == issue.model_dump(mode="json") and type(problem["code"]) is str


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    """Every watcher stops its observer and worker, joined, by the end of each test."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert left == []


@pytest.fixture
def policy_file(tmp_path: Path, keypair: KeyPair) -> Path:
    pem = keypair.pem
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "signers": {"keys": [{"pem": pem}]}}))
    return path


@pytest.fixture
def policy(policy_file: Path) -> Policy:
    return Policy.load(policy_file)


@pytest.fixture
def model(tiny_model: Path, keypair: KeyPair) -> Path:
    """The example model, signed (``model.sig`` inside)."""
    sign(tiny_model, signer=keypair.signer, env={})
    return tiny_model


@pytest.fixture
def pristine(model: Path, tmp_path: Path) -> Path:
    """An untouched copy of the signed model, to restore from."""
    return Path(shutil.copytree(model, tmp_path / "pristine"))


@pytest.fixture
def single(tiny_model: Path, tmp_path: Path, keypair: KeyPair) -> Path:
    """A single-file model, signed beside it (``weights.safetensors.sig``)."""
    folder = tmp_path / "single"
    folder.mkdir()
    path = folder / "weights.safetensors"
    shutil.copy(tiny_model / WEIGHTS, path)
    sign(path, signer=keypair.signer, env={})
    return path


@contextmanager
def watching(
    paths: Path | Sequence[Path],
    policy: Policy | None,
    on_event: Callable[[Event], None],
    *,
    interval: float = 1.0,
    **kw: Any,
) -> Iterator[Watcher]:
    """A started watcher (debounce 0.1 s, re-check every second), always stopped."""
    targets = [paths] if isinstance(paths, Path) else list(paths)
    watcher = Watcher(
        [str(p) for p in targets],
        policy=policy,
        on_event=on_event,
        interval=interval,
        debounce=0.1,
        **kw,
    )
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


def tampered_copy(source: Path, dest: Path) -> Path:
    shutil.copy(source, dest)
    flip_byte(dest, tensor=TENSOR)
    return dest


# -- scenarios ---------------------------------------------------------------------------


def test_rewrite_in_place_then_restore(model: Path, policy: Policy) -> None:
    events = Events()
    weights = model / WEIGHTS
    original = weights.read_bytes()
    with watching(model, policy, events):
        (verified,) = events.expect("verified")
        assert verified["verdict"] == "verified" and verified["problems"] == []
        assert verified["signer"]["kind"] == "key" and verified["model"] == str(model)

        flip_byte(weights, tensor=TENSOR)
        (tampered,) = events.expect("tampered", path=weights)
        assert tampered["verdict"] == "failed"
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(tampered)
        assert tampered["failed_rules"] == ["signers"]

        weights.write_bytes(original)
        (restored,) = events.expect("restored", path=weights)
        assert restored["verdict"] == "verified" and restored["problems"] == []


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_rename_over(kind: str, model: Path, single: Path, policy: Policy, tmp_path: Path) -> None:
    events = Events()
    target, weights = (model, model / WEIGHTS) if kind == "folder" else (single, single)
    good = Path(shutil.copy(weights, tmp_path / "good.safetensors"))
    with watching(target, policy, events):
        events.expect("verified")
        os.replace(tampered_copy(good, tmp_path / "evil.safetensors"), weights)
        (tampered,) = events.expect("tampered", path=weights)
        assert ("TENSOR_MODIFIED", weights.name, TENSOR) in problems(tampered)

        os.replace(good, weights)
        events.expect("restored", path=weights)


def test_delete_a_file_the_folder_and_recreate_it(
    model: Path, pristine: Path, policy: Policy
) -> None:
    events = Events()
    with watching(model, policy, events):
        events.expect("verified")
        (model / "config.json").unlink()
        (tampered,) = events.expect("tampered", path=model / "config.json")
        assert problems(tampered) == [("FILE_MISSING", "config.json", None)]

        shutil.rmtree(model)
        (removed,) = events.expect("removed")
        assert removed["verdict"] is None and removed["problems"] == []

        # Copied back file by file: a verification may catch it half copied.
        shutil.copytree(pristine, model)
        events.wait_for("restored")
        outcomes = [e["event"] for e in events.since_mark() if e["event"] in OUTCOMES]
        assert outcomes[-1] == "restored" and set(outcomes) <= {"tampered", "restored"}


def test_signature_deleted_then_put_back(model: Path, pristine: Path, policy: Policy) -> None:
    events = Events()
    with watching(model, policy, events):
        events.expect("verified")
        (model / "model.sig").unlink()
        (tampered,) = events.expect("tampered", path=model / "model.sig")
        assert [p[0] for p in problems(tampered)] == ["SIGNATURE_NOT_FOUND"]
        shutil.copy(pristine / "model.sig", model / "model.sig")
        events.expect("restored", path=model / "model.sig")


def test_a_symlinked_folder_is_followed_and_retargeted(
    model: Path, policy: Policy, tmp_path: Path, keypair: KeyPair
) -> None:
    """``current -> release`` as deployments do: the watch follows the link to its folder."""
    current = tmp_path / "current"
    current.symlink_to(model)
    sign(current, signer=keypair.signer, env={}, allow_symlinks=True, force=True)
    release2 = Path(shutil.copytree(model, tmp_path / "release2"))
    events = Events()
    with watching(current, policy, events):
        events.expect("verified")
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        events.expect("tampered", path=model / WEIGHTS)

        (tmp_path / "next").symlink_to(release2)
        os.replace(tmp_path / "next", current)
        events.expect("restored", path=current)

        flip_byte(release2 / WEIGHTS, tensor=TENSOR)
        events.expect("tampered", path=release2 / WEIGHTS)


def test_periodic_recheck_catches_what_no_event_reports(model: Path, policy: Policy) -> None:
    events = Events()
    weights = model / WEIGHTS
    with watching(model, policy, events, use_events=False) as watcher:
        assert watcher._folders.observer is None
        events.expect("verified")
        flip_byte(weights, tensor=TENSOR)
        (tampered,) = events.expect("tampered", path=weights)
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(tampered)


def test_a_recheck_with_nothing_changed_verifies_nothing(
    model: Path, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic re-check compares stat only: unchanged (and not racy), nothing is read."""
    monkeypatch.setattr(_snapshot, "_RACY_NS", 0)  # the files just written are not "racy"
    calls = []
    real = _watcher.verify_model

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(_watcher, "verify_model", counted)
    events = Events()
    with watching(model, policy, events, interval=0.05, use_events=False) as watcher:
        events.expect("verified")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # ten re-checks
            time.sleep(0.05)
        assert len(calls) == 1 and [e["event"] for e in events.all()] == ["verified"]
        watcher.check_now()  # a check asked for verifies whatever stat says
        assert len(calls) == 2


def test_an_unexpected_error_is_reported_and_the_monitor_goes_on(
    model: Path, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check failing with something other than a ModelsignError (a bug, the OS) is an
    UNREADABLE outcome naming the error, never the end of the monitor."""
    broken = threading.Event()
    real = _watcher.verify_model

    def verify(*args: Any, **kw: Any) -> Any:
        if broken.is_set():
            raise RuntimeError("disk on fire")
        return real(*args, **kw)

    monkeypatch.setattr(_watcher, "verify_model", verify)
    events = Events()
    with watching(model, policy, events, interval=60, use_events=False) as watcher:
        events.expect("verified")
        broken.set()
        watcher.check_now()
        (tampered,) = events.expect("tampered")
        (problem,) = tampered["problems"]
        assert problem["code"] == "UNREADABLE"
        assert problem["message"] == "the model could not be checked (RuntimeError: disk on fire)"
        broken.clear()
        watcher.check_now()
        events.expect("restored")


def test_a_refused_watch_is_reported_and_the_recheck_covers_it(
    model: Path, policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kw: Any) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(BaseObserver, "schedule", refuse)
    events = Events()
    with pytest.warns(ModelsignWarning, match="inotify watch limit reached"):
        watcher = Watcher([str(model)], policy=policy, on_event=events, interval=1, debounce=0.1)
        watcher.start()
    try:
        events.expect("verified")
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        events.expect("tampered", path=model / WEIGHTS)
    finally:
        watcher.stop()


def test_check_now_reverifies_at_once(model: Path, policy: Policy) -> None:
    events = Events()
    with watching(model, policy, events, interval=60, use_events=False) as watcher:
        events.expect("verified")
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        watcher.check_now()  # returns when done: no waiting
        changed, tampered = events.since_mark()
        assert (changed["event"], changed["paths"]) == ("changed", [str(model / WEIGHTS)])
        assert tampered["event"] == "tampered"


def test_a_burst_of_changes_is_one_reverification(model: Path, policy: Policy) -> None:
    events = Events()
    extra = [model / f"extra{i}.bin" for i in range(3)]
    with watching(model, policy, events, interval=60) as watcher:
        events.expect("verified")
        (model.parent / "beside-the-model.txt").write_text("not part of the model")
        for path in extra:
            path.write_bytes(b"x")
        (tampered,) = events.expect("tampered")
        watcher.check_now()  # anything still pending is handled by now
    changed = [e for e in events.all() if e["event"] == "changed"]
    assert len(changed) == 1 and changed[0]["paths"] == [str(p) for p in extra]
    assert problems(tampered) == [("FILE_EXTRA", p.name, None) for p in extra]
    assert tampered["failed_rules"] == ["signers"]


def test_tampered_before_start(model: Path, policy: Policy) -> None:
    flip_byte(model / WEIGHTS, tensor=TENSOR)
    events = Events()
    with watching(model, policy, events):
        (first,) = events.expect("tampered")
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(first)


def test_two_models_are_reported_apart(model: Path, single: Path, policy: Policy) -> None:
    events = Events()
    with watching([model, single], policy, events):
        events.expect("verified", "verified")
        flip_byte(single, tensor=TENSOR)
        (tampered,) = events.expect("tampered", path=single)
        assert tampered["model"] == str(single)
    assert {e["model"] for e in events.all() if e["event"] == "verified"} == {
        str(model),
        str(single),
    }


# -- configuration -----------------------------------------------------------------------


def test_usage_errors(model: Path, single: Path, policy: Policy, tmp_path: Path) -> None:
    def codes(**kw: Any) -> str:
        kw.setdefault("paths", [model])
        kw.setdefault("policy", policy)
        with pytest.raises(InputError) as info:
            Watcher(on_event=Events(), **kw)
        return info.value.code

    assert codes(paths=[model, single], signature=tmp_path / "x.sig") == "USAGE"
    assert codes(paths=[tmp_path / "nothing"]) == "NOT_FOUND"
    assert codes(paths=[]) == "USAGE"
    assert codes(interval=0) == "USAGE"
    assert codes(policy=Policy.model_validate({"version": 1})) == "USAGE"  # no signers


def test_configuration_error_in_the_first_round_is_raised(
    model: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    _, pub = keys.write_keypair(str(tmp_path / "k"), keypair.private, password=None)
    policy_path = tmp_path / "by-file.yaml"
    policy_path.write_text(yaml.safe_dump({"version": 1, "signers": {"keys": [{"file": pub}]}}))
    policy = Policy.load(policy_path)
    os.remove(pub)  # the key file is read at verification time
    events = Events()
    with pytest.raises(InputError), Watcher([model], policy=policy, on_event=events) as watcher:
        assert watcher.wait(TIMEOUT)
    assert events.all() == []


def test_a_key_alone_is_trust_enough(model: Path, keypair: KeyPair, make_keypair: Any) -> None:
    """No policy: the caller's key decides, as ``verify --key`` does."""
    events = Events()
    weights = model / WEIGHTS
    original = weights.read_bytes()
    with watching(model, None, events, verifier=keypair.verifier):
        (verified,) = events.expect("verified")
        assert verified["signer"]["key_hint"] == keypair.hint
        assert verified["failed_rules"] == []
        flip_byte(weights, tensor=TENSOR)
        (tampered,) = events.expect("tampered", path=weights)
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(tampered)
        assert tampered["failed_rules"] == []  # no policy, no rules
        weights.write_bytes(original)
        events.expect("restored", path=weights)
    # Another key: the first verification fails, and the monitor goes on.
    events = Events()
    with watching(model, None, events, verifier=make_keypair("stranger").verifier):
        (tampered,) = events.expect("tampered")
        assert [p[0] for p in problems(tampered)] == ["KEY_HINT_MISMATCH"]


def test_an_unsigned_model_is_tampered_until_it_is_signed(
    tiny_model: Path, keypair: KeyPair
) -> None:
    """Without a policy a missing signature is not a configuration error: it is reported."""
    events = Events()
    with watching(tiny_model, None, events, verifier=keypair.verifier):
        (tampered,) = events.expect("tampered")
        assert [p[0] for p in problems(tampered)] == ["SIGNATURE_NOT_FOUND"]
        sign(tiny_model, signer=keypair.signer, env={})
        events.expect("restored", path=tiny_model / "model.sig")


def test_neither_a_verifier_nor_a_policy_is_a_usage_error(model: Path) -> None:
    with pytest.raises(InputError) as info:
        Watcher([model], on_event=Events())
    assert info.value.code == "USAGE"


# -- --on-change -------------------------------------------------------------------------

RECORDER = """\
import json, os, sys
event = json.loads(sys.stdin.read())
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps([os.environ["MODELSIGN_EVENT"], os.environ["MODELSIGN_MODEL"], event]))
    fh.write("\\n")
"""


def recorded(path: Path, count: int) -> list[Any]:
    """The first ``count`` records the on-change script wrote (waiting for them)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} records in {path}")


def test_on_change_gets_each_event_on_stdin(model: Path, policy: Policy, tmp_path: Path) -> None:
    script, log = tmp_path / "recorder.py", tmp_path / "log.jsonl"
    script.write_text(RECORDER)
    hook = command_hook(f"{sys.executable} {script} {log}", on_error=pytest.fail)
    events = Events()

    def on_event(event: Event) -> None:
        events(event)
        if event["event"] != "verified":
            hook(event)

    with watching(model, policy, on_event):
        events.expect("verified")
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        events.expect("tampered", path=model / WEIGHTS)
    records = recorded(log, 2)
    assert [(r[0], r[1], r[2]["event"]) for r in records][-1] == (
        "tampered",
        str(model),
        "tampered",
    )
    assert records[0][0] == "changed"
    assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(records[-1][2])


def test_on_change_failures_are_reported_never_fatal(
    model: Path, policy: Policy, tmp_path: Path
) -> None:
    errors: list[str] = []
    failing = command_hook(
        [sys.executable, "-c", "import sys; sys.exit(3)"], on_error=errors.append
    )
    hanging = command_hook(
        [sys.executable, "-c", "import time; time.sleep(30)"], on_error=errors.append, timeout=0.5
    )
    events = Events()

    def on_event(event: Event) -> None:
        events(event)
        if event["event"] in ("tampered", "restored"):
            failing(event)
        if event["event"] == "restored":
            hanging(event)

    weights = model / WEIGHTS
    original = weights.read_bytes()
    with watching(model, policy, on_event):
        events.expect("verified")
        flip_byte(weights, tensor=TENSOR)
        events.expect("tampered", path=weights)
        weights.write_bytes(original)
        events.expect("restored", path=weights)
    assert f"on-change command failed with exit code 3 (tampered of {model})" in errors
    assert f"on-change command killed after 0.5 s (restored of {model})" in errors
    with pytest.raises(InputError) as info:
        command_hook("no-such-command-anywhere --x", on_error=errors.append)
    assert info.value.code == "USAGE"


# -- the command line --------------------------------------------------------------------


def next_event(lines: queue.Queue[str], name: str) -> Event:
    deadline = time.monotonic() + TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        event: Event = json.loads(lines.get(timeout=left))
        assert set(event) == SCHEMA
        if event["event"] == name:
            return event
    raise AssertionError(f"no {name!r} event")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_reports_tampering_and_stops_cleanly(
    signum: int, model: Path, policy_file: Path, tmp_path: Path
) -> None:
    script, log = tmp_path / "recorder.py", tmp_path / "log.jsonl"
    script.write_text(RECORDER)
    args = [str(model), "--policy", str(policy_file), "--interval", "1", "--debounce", "0.1"]
    args += ["--on-change", f"{sys.executable} {script} {log}"]
    with cli_watch(*args) as (proc, lines):
        assert next_event(lines, "verified")["model"] == str(model)
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        tampered = next_event(lines, "tampered")
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(tampered)
        records = recorded(log, 2)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
    assert f"stopped ({signal.Signals(signum).name})" in err
    assert [r[0] for r in records] == ["changed", "tampered"]
    assert records[1][2]["problems"] == tampered["problems"]


def test_cli_usage_error_exits_2(policy_file: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelsign",
            "watch",
            str(tmp_path / "x"),
            "--policy",
            str(policy_file),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "error[NOT_FOUND]" in proc.stderr


@pytest.mark.slow
def test_cli_watches_with_a_key_and_no_policy(model: Path, keypair: KeyPair) -> None:
    args = [str(model), "--key", str(keypair.pub_path), "--interval", "1", "--debounce", "0.1"]
    with cli_watch(*args) as (proc, lines):
        verified = next_event(lines, "verified")
        assert verified["signer"]["key_hint"] == keypair.hint
        flip_byte(model / WEIGHTS, tensor=TENSOR)
        tampered = next_event(lines, "tampered")
        assert ("TENSOR_MODIFIED", WEIGHTS, TENSOR) in problems(tampered)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err


@pytest.mark.slow
def test_cli_exits_1_when_its_output_is_closed(model: Path, keypair: KeyPair) -> None:
    """The monitor cannot report any more: that is a failure, not a quiet exit."""
    args = [str(model), "--key", str(keypair.pub_path), "--interval", "1", "--debounce", "0.1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelsign", "watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "verified"
        proc.stdout.close()  # the consumer went away
        flip_byte(model / WEIGHTS, tensor=TENSOR)  # the next event has nowhere to go
        assert proc.wait(timeout=TIMEOUT) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_cli_trust_options_are_verify_s(model: Path, keypair: KeyPair, tmp_path: Path) -> None:
    """Usage and configuration errors: exit 2 before anything is watched."""
    key = str(keypair.pub_path)
    cases = [
        ((), "give one way to trust the signer"),
        (("--key", key, "--identity", "a@example.com", "--issuer", "https://x"), "one way"),
        (("--offline",), "only apply to Sigstore"),
        (("--tsa-cert-chain", key, "--identity", "a@b", "--issuer", "https://x"), "--tsa-cert"),
        (("--key", str(tmp_path / "missing.pem")), "error["),
    ]
    for args, expected in cases:
        r = CliRunner().invoke(cli, ["watch", str(model), *args])
        assert r.exit_code == 2, (args, r.output)
        assert r.stdout == "" and expected in r.stderr, (args, r.stderr)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:modelsign. cannot watch")  # the observer recurses too
def test_a_model_nested_too_deep_never_stops_the_monitor(
    model: Path, policy: Policy, tmp_path: Path
) -> None:
    """~1,100 nested folders in one model: it is reported, and the others are still watched."""
    deep = Path(shutil.copytree(model, tmp_path / "deep"))
    make_deep(deep)
    events = Events()
    try:
        with watching([model, deep], policy, events):
            first = events.expect("verified", "tampered")
            assert first[1]["model"] == str(deep)
            assert [p[0] for p in problems(first[1])] == ["TOO_DEEP"]
            flip_byte(model / WEIGHTS, tensor=TENSOR)
            (tampered,) = events.expect("tampered", path=model / WEIGHTS)
            assert tampered["model"] == str(model)
    finally:
        remove_deep(deep)
