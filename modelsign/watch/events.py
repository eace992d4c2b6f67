"""Watch events: the stable schema every event follows, and a hook that runs a command per event.

Events are plain dicts typed as :class:`Event` (a ``TypedDict``), so
``json.dumps(event)`` is the JSON line ``modelsign watch`` prints, keys in the
order declared here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Final, Literal, TypedDict

from ..codes import Code
from ..errors import InputError
from ..issues import Issue, Severity

EventName = Literal["verified", "changed", "tampered", "restored", "removed"]
#: None in ``changed`` and ``removed`` events.
Verdict = Literal["verified", "failed"]
ON_CHANGE_TIMEOUT: Final = 30.0


class EventProblem(TypedDict):
    """A problem as an event reports it: an :class:`~modelsign.issues.Issue` as JSON."""

    code: str
    severity: Severity
    message: str
    file: str | None
    tensor: str | None
    expected: str | None
    actual: str | None


def event_problem(issue: Issue) -> EventProblem:
    """``issue`` as an event lists it (``Issue.model_dump(mode="json")``, typed)."""
    return {
        "code": str(issue.code),
        "severity": issue.severity,
        "message": issue.message,
        "file": issue.file,
        "tensor": issue.tensor,
        "expected": issue.expected,
        "actual": issue.actual,
    }


class Event(TypedDict):
    """One event; every key always present."""

    event: EventName
    model: str  # the path as given
    time: str  # ISO 8601 UTC, milliseconds
    verdict: Verdict | None
    problems: list[EventProblem]
    failed_rules: list[str]  # policy rules that failed
    signer: dict[str, Any] | None  # VerificationResult.signer as JSON
    paths: list[str]  # absolute paths that changed: ``changed`` only


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(
    name: EventName,
    model: str,
    *,
    verdict: Verdict | None = None,
    problems: Sequence[Issue] = (),
    failed_rules: Sequence[str] = (),
    signer: dict[str, Any] | None = None,
    paths: Sequence[str] = (),
) -> Event:
    """One event, stamped now."""
    return {
        "event": name,
        "model": model,
        "time": _now(),
        "verdict": verdict,
        "problems": [event_problem(p) for p in problems],
        "failed_rules": list(failed_rules),
        "signer": signer,
        "paths": list(paths),
    }


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
        raise InputError("the on-change command is empty", code=Code.USAGE)
    if shutil.which(argv[0]) is None:
        raise InputError(f"on-change command not found: {argv[0]}", code=Code.USAGE)

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
