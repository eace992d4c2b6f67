"""A file's signed size is compared before anything is read, hashed or allocated.

Sparse files (``truncate``: no disk used) of 4 to 40 GiB stand for a huge file
swapped into a signed model. verify, the loaders (copying and mapped) and the
inventory refuse them as ``FILE_SIZE_MISMATCH`` naming both byte counts, at
once and without a big allocation. Each call runs in a thread with a deadline,
so a regression fails instead of reading gigabytes for minutes.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from modelsign._internal.check.compare import Problem
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.errors import VerificationError
from modelsign.inventory import scan
from modelsign.load import load_safetensors
from modelsign.verify import verify
from tests.helpers.deadline import in_thread
from tests.helpers.signing import shared_key

KEY = shared_key()  # the key of the ``keypair`` fixture, which ``signed`` signs with
VERIFIER = KeyVerifier(KEY.public_key())
WEIGHTS = "model.safetensors"
GiB = 1 << 30
#: Refusing takes milliseconds; reading even the 4 GiB case takes seconds. Generous
#: for a loaded machine, tight enough that no regression reading the file passes.
FAST = 1.5


def quickly(action: Callable[[], object]) -> tuple[BaseException | None, float]:
    """(what ``action`` raised, seconds it took); fails if it runs past the deadline."""
    exc, elapsed, finished = in_thread(action, 30)
    if not finished:
        pytest.fail("still reading after 30 s")
    return exc, elapsed


def size_problem(exc: BaseException | None, name: str) -> Problem:
    assert isinstance(exc, VerificationError), exc
    found = [p for p in exc.findings if isinstance(p, Problem) and p.code == "FILE_SIZE_MISMATCH"]
    (p,) = [p for p in found if p.file == name]
    return p


@pytest.mark.parametrize("name", [WEIGHTS, "README.md"])
def test_verify_refuses_another_size_before_hashing(signed: Path, name: str) -> None:
    """A weight file (tensor-digest path) or any file (whole-file path) made 8 GiB."""
    path = signed / name
    size = path.stat().st_size
    os.truncate(path, 8 * GiB)
    exc, took = quickly(lambda: verify(signed, verifier=VERIFIER))
    p = size_problem(exc, name)
    assert (p.expected, p.actual) == (str(size), str(8 * GiB))
    assert str(size) in p.message and str(8 * GiB) in p.message
    assert took < FAST, took


@pytest.mark.parametrize("memory", ["copy", "mapped", "auto"])
@pytest.mark.parametrize("gib", [4, 40])
def test_loader_refuses_another_size_before_allocating(signed: Path, memory: str, gib: int) -> None:
    path = signed / WEIGHTS
    size = path.stat().st_size
    os.truncate(path, gib * GiB)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    exc, took = quickly(
        lambda: load_safetensors(signed, verifier=VERIFIER, memory=memory)  # type: ignore[arg-type]
    )
    assert isinstance(exc, VerificationError) and exc.code == "FILE_SIZE_MISMATCH", exc
    p = size_problem(exc, WEIGHTS)
    assert (p.expected, p.actual) == (str(size), str(gib * GiB))
    assert took < FAST, took
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
    assert grown < 256 * 1024, f"peak memory grew by {grown} KiB"


@pytest.mark.parametrize("verify_all", [False, True])
def test_inventory_refuses_another_size_before_hashing(signed: Path, verify_all: bool) -> None:
    """Compared with what the signature records before hashing (under --verify: everything)."""
    os.truncate(signed / WEIGHTS, 8 * GiB)
    inv, took = None, 0.0

    def run() -> None:
        nonlocal inv
        inv = scan([str(signed.parent)], env={}, verify=verify_all)

    exc, took = quickly(run)
    assert exc is None, exc
    assert inv is not None
    (m,) = [m for m in inv.models if m.name == signed.name]
    assert m.status == "tampered" and "FILE_SIZE_MISMATCH" in (m.reason or ""), m
    assert took < 2 * FAST, took
