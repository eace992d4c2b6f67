"""Files swapped between discovery and open: every open of a model file goes through one helper.

A FIFO renamed over a file after the folder was listed must be a clean
``SPECIAL_FILE`` error within a second — in verify, manifest building and the
loaders — never an ``open()`` that waits for a writer for ever. Each case runs
in a thread with a deadline, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import modelsign._internal.signature.own as manifest_module  # where build_manifest discovers
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.errors import ModelsignError, VerificationError
from modelsign.load import load_safetensors
from modelsign.sign import build_manifest
from modelsign.verify import verify
from tests.helpers.deadline import in_thread
from tests.helpers.signing import shared_key

KEY = shared_key()  # the key of the ``keypair`` fixture, which ``signed`` signs with
VERIFIER = KeyVerifier(KEY.public_key())
verify_module = importlib.import_module("modelsign._observe")  # walks a model: verify, loaders
WEIGHTS = "model.safetensors"
DEADLINE = 5.0  # generous on a loaded machine; the refusal itself takes milliseconds


def fifo_after_discovery(module: Any, monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make ``module``'s discover() rename a FIFO over ``target`` once it has listed the folder."""
    real = module.discover

    def discover_then_swap(*args: Any, **kw: Any) -> Any:
        tree = real(*args, **kw)
        fifo = target.with_name("swap.fifo")
        os.mkfifo(fifo)
        os.replace(fifo, target)
        return tree

    monkeypatch.setattr(module, "discover", discover_then_swap)


def within_deadline(action: Callable[[], object], fifo: Path) -> BaseException | None:
    """What ``action`` raised — or fail if it is still blocked at the deadline."""

    def release() -> None:  # the reader blocked in open() is let go, so the thread ends
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    exc, elapsed, finished = in_thread(action, DEADLINE, unblock=release)
    if not finished:
        pytest.fail(f"still blocked on the FIFO after {DEADLINE} s")
    assert elapsed < DEADLINE
    return exc


def special_file(exc: BaseException | None) -> bool:
    """Whether ``exc`` is modelsign's SPECIAL_FILE refusal of the swapped file."""
    if isinstance(exc, VerificationError):
        found = {(p.code, p.file) for p in exc.findings if hasattr(p, "code")}
        return exc.code == "SPECIAL_FILE" or ("SPECIAL_FILE", WEIGHTS) in found
    return isinstance(exc, ModelsignError) and exc.code == "SPECIAL_FILE"


def test_verify_refuses_a_fifo_swapped_in_after_discovery(
    signed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo_after_discovery(verify_module, monkeypatch, signed / WEIGHTS)
    exc = within_deadline(lambda: verify(signed, verifier=VERIFIER), signed / WEIGHTS)
    assert special_file(exc), exc


def test_manifest_refuses_a_fifo_swapped_in_after_discovery(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo_after_discovery(manifest_module, monkeypatch, tiny_model / WEIGHTS)
    exc = within_deadline(lambda: build_manifest(tiny_model), tiny_model / WEIGHTS)
    assert special_file(exc), exc


@pytest.mark.parametrize("memory", ["copy", "mapped", "auto"])
def test_loader_refuses_a_fifo_swapped_in_after_discovery(
    signed: Path, monkeypatch: pytest.MonkeyPatch, memory: str
) -> None:
    fifo_after_discovery(verify_module, monkeypatch, signed / WEIGHTS)
    exc = within_deadline(
        lambda: load_safetensors(signed, verifier=VERIFIER, memory=memory),  # type: ignore[arg-type]
        signed / WEIGHTS,
    )
    assert special_file(exc), exc
