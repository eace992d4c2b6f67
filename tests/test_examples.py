"""The examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelsign._internal.manifest import load_manifest
from tests.helpers.paths import ROOT


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    first = load_manifest(tmp_path / "tiny-model.manifest.json")
    second = load_manifest(tmp_path / "tiny-model-gguf.manifest.json")
    assert second.provenance.parents[0].digest == first.digest()
    assert "$ modelsign inspect" in r.stdout and "MOSTLY_Q8_0" in r.stdout
    assert "verified " in r.stdout
    assert "TENSOR_MODIFIED: model.safetensors [tensor model.layers.1.mlp.down_proj.weight]" in (
        r.stdout
    )


def test_example_build_is_deterministic(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    from build_tiny_model import build

    a = build(tmp_path / "a")
    b = build(tmp_path / "b")
    for x, y in zip(a, b, strict=False):
        for f in sorted(x.iterdir()):
            assert f.read_bytes() == (y / f.name).read_bytes(), f.name
