"""The examples run as documented."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelsign._internal.manifest import load_manifest
from modelsign._internal.signature import keys
from tests.helpers.examples import build_example
from tests.helpers.paths import ROOT
from tests.helpers.softhsm import MODULE as SOFTHSM_MODULE


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


@pytest.mark.slow
def test_the_hsm_release_example_signs_with_a_token_key(tmp_path: Path) -> None:
    """examples/hsm-release/release.sh, as documented: keygen on a SoftHSM2 token, sign,
    verify by URI, by PEM, under a pinning policy, and with model_signing."""
    if not SOFTHSM_MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 is not installed ({SOFTHSM_MODULE}; apt-get install softhsm2)")
    model = build_example(tmp_path / "model")[0]
    bin_dir = str(Path(sys.executable).parent)  # modelsign and model_signing of this venv
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    script = ROOT / "examples" / "hsm-release" / "release.sh"
    r = subprocess.run(
        ["bash", str(script), str(model), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "Verification succeeded" in r.stdout  # model_signing verify key
    assert "signers       pass" in r.stdout and r.stdout.count("verified ") == 3
    assert "--key 'pkcs11:" in r.stderr and "246810\n" not in r.stderr
    hint = r.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]
    assert hint == keys.key_hint(keys.load_public_key(str(tmp_path / "work" / "release.pub")))
