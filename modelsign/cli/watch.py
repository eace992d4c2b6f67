"""``modelsign watch``: a runtime integrity monitor, one JSON event per line on stdout."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from ..watch import ON_CHANGE_TIMEOUT, Event, command_hook, watch
from . import cli
from ._report import json_option
from ._trust_options import TrustOptions, trust_options


@cli.command("watch")
@json_option("Report a failure as a JSON line on stdout too (events always are JSON lines).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=False), metavar="PATH...")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    help="The policy every verification applies (its signers are trusted, on top of "
    "--key, --cert-chain or --identity).",
)
@click.option(
    "--signature",
    type=click.Path(dir_okay=False),
    help="The signature, for a single PATH (default: MODEL/model.sig, FILE.sig).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Also compare every file's stat this often and re-verify on a difference "
    "(for changes the OS reports no event for).",
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Re-verify this long after the last of a burst of changes.",
)
@click.option(
    "--on-change",
    metavar="CMD",
    help="Run CMD (split like a shell would, run without one) for every event but the "
    "initial 'verified': the event JSON on its stdin, MODELSIGN_EVENT and MODELSIGN_MODEL "
    f"set, killed after {ON_CHANGE_TIMEOUT:g} s; a failure is reported, never fatal.",
)
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Parallel hashing threads.")
@trust_options
def watch_cmd(
    paths: tuple[str, ...],
    policy_path: str | None,
    signature: str | None,
    interval: float,
    debounce: float,
    on_change: str | None,
    jobs: int | None,
    **trust: Any,
) -> None:
    """Verify each PATH, then re-verify it whenever it changes, until SIGINT or SIGTERM.

    Trust the signer as verify does: by --key, by --cert-chain, by
    --identity (or --identity-regex) and --issuer, or by the signers of
    --policy. Prints one JSON object per line: {"event": "verified" |
    "changed" | "tampered" | "restored" | "removed", "model", "time",
    "verdict", "problems", "failed_rules", "signer", "paths"}. A tampered
    model is an event, not an exit. Exit codes: 0 when stopped by a signal;
    1 when the monitor itself fails (its output closed); 2 for a usage or
    configuration error.
    """
    policy, verifier = TrustOptions(**trust).resolve(policy_path)
    hook = (
        command_hook(on_change, on_error=lambda msg: click.echo(f"warning: {msg}", err=True))
        if on_change is not None
        else None
    )

    def on_event(event: Event) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()  # a consumer reading the pipe sees each event as it happens
        if hook is not None and event["event"] != "verified":
            hook(event)

    def run(stop_when: Callable[[], bool]) -> None:
        watch(
            paths,
            policy=policy,
            verifier=verifier,
            on_event=on_event,
            signature=signature,
            interval=interval,
            debounce=debounce,
            jobs=jobs,
            stop_when=stop_when,
        )

    received = _until_signal(run)
    if received is not None:
        click.echo(f"stopped ({signal.Signals(received).name})", err=True)


def _until_signal(run: Callable[[Callable[[], bool]], None]) -> int | None:
    """``run(stop_when)`` until SIGINT or SIGTERM; the signal that stopped it, if one did.

    The handlers only record the signal: stopping (joining threads) happens
    in the normal flow, where taking locks is safe.
    """
    received: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run(lambda: bool(received))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0] if received else None
