"""Where things are, for tests at any depth of ``tests/``."""

from __future__ import annotations

from pathlib import Path

#: The repository (the checkout holding ``modelsign/``, ``examples/``, ``policies/``, ``tools/``).
ROOT = Path(__file__).resolve().parents[2]
#: The shared conformance suites and vectors, beside the checkout (absent: those tests skip).
CONFORMANCE = ROOT.parent / "shared" / "conformance"
