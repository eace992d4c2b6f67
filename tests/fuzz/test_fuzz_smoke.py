"""Every parser of untrusted bytes: parses, or raises a ModelsignError; never else, never slowly.

The smoke test replays the generated seeds and a fixed number of random
mutations of them (a few seconds per parser). ``-m fuzz`` runs a
coverage-guided atheris run per parser instead (``FUZZ_SECONDS``, default 30).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modelsign.errors import ModelsignError
from tests.helpers.paths import ROOT

from .targets import TARGETS, make_seeds, mutate, write_corpus

SMOKE_SECONDS = 2.0  # per parser
SLOWEST_INPUT = 1.0  # seconds: a hang, for inputs of a few KB


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[bytes]]:
    return make_seeds()


def _check(name: str, data: bytes) -> None:
    start = time.perf_counter()
    try:
        TARGETS[name](data)
    except ModelsignError:
        pass
    except Exception as exc:  # a finding: show the input that caused it
        raise AssertionError(
            f"{name}: {type(exc).__name__}: {exc} on input {data[:200]!r}"
        ) from exc
    took = time.perf_counter() - start
    assert took < SLOWEST_INPUT, f"{name}: {took:.1f} s on input {data[:200]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_and_random_mutations(name: str, seeds: dict[str, list[bytes]]) -> None:
    rng = np.random.default_rng(20240601)
    for seed in seeds[name]:
        _check(name, seed)
    deadline = time.monotonic() + SMOKE_SECONDS
    while time.monotonic() < deadline:
        data = seeds[name][int(rng.integers(0, len(seeds[name])))]
        for _ in range(int(rng.integers(1, 4))):  # stacked mutations reach further
            data = mutate(data, rng)
        _check(name, data)


@pytest.mark.fuzz
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_atheris(name: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = write_corpus(tmp_path / "corpus")[name]
    seconds = int(os.environ.get("FUZZ_SECONDS", "30"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            name,
            str(corpus),
            f"-max_total_time={seconds}",
            "-timeout=5",
            "-rss_limit_mb=2048",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
