"""`make demo`: the main job on the bundled example, as a user would run it.

Builds the example models (``examples/build_tiny_model.py``), writes and
shows the manifest of the safetensors model and of its Q8_0 GGUF derivative
(with the first manifest as its parent), then generates a key, signs the
model, verifies it, changes one tensor and shows the failed verification
naming that tensor. Every step is a real ``modelsign`` command, printed
before it runs.
"""

from __future__ import annotations

import json
import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"


def run(*args: str, expect: int = 0) -> None:
    shown = " ".join(shlex.quote(a) for a in ("modelsign", *args))
    print(f"\n$ {shown}", flush=True)
    env = dict(os.environ, MODELSIGN_DEMO_PASSWORD="correct horse battery staple")
    code = subprocess.run([sys.executable, "-m", "modelsign", *args], env=env).returncode
    if code != expect:
        raise SystemExit(f"demo: expected exit code {expect}, got {code}")


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

    key = build_dir / "demo-key"
    pw = ("--password-env", "MODELSIGN_DEMO_PASSWORD")
    run("keygen", "-o", str(key), "--force", *pw)
    run("sign", str(model), "--key", f"{key}.key", *pw, "--force")
    run("verify", str(model), "--key", f"{key}.pub")
    tensor = "model.layers.1.mlp.down_proj.weight"
    print(f"\n# changing one byte of tensor {tensor} in {model / 'model.safetensors'}")
    flip_tensor_byte(model / "model.safetensors", tensor)
    run("verify", str(model), "--key", f"{key}.pub", expect=1)
    print("\ndemo: the signed model verified, and the changed tensor was named.")


def flip_tensor_byte(path: Path, tensor: str) -> None:
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    begin = json.loads(raw[8 : 8 + n])[tensor]["data_offsets"][0]
    raw[8 + n + begin] ^= 0x01
    path.write_bytes(bytes(raw))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else BUILD)
