"""`make demo`: the main job on the bundled example, as a user would run it.

Builds the example models (``examples/build_tiny_model.py``), writes the
manifest of the safetensors model, writes the manifest of its Q8_0 GGUF
derivative with the first manifest as its parent, and shows both with
``modelsign inspect``. Every step is a real ``modelsign`` command, printed
before it runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"


def run(*args: str) -> None:
    shown = " ".join(shlex.quote(a) for a in ("modelsign", *args))
    print(f"\n$ {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "modelsign", *args], check=True)


def main(build_dir: Path = BUILD) -> None:
    sys.path.insert(0, str(HERE))
    from build_tiny_model import build

    model, quant = build(build_dir)
    print(f"built {model} and {quant}")
    first = build_dir / "tiny-model.manifest.json"
    second = build_dir / "tiny-model-gguf.manifest.json"
    run("manifest", str(model), "-o", str(first), "--force")
    run("inspect", str(first))
    run("manifest", str(quant), "-o", str(second), "--force", "--parent", str(first))
    run("inspect", str(second))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD)
