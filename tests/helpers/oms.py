"""Driving the two command lines, modelsign and the OMS tool (``model_signing``), from tests.

Both run as real subprocesses of the test interpreter. ``Credentials`` holds
one signing identity (a bare EC key, or a leaf certificate with its
intermediate and root) and spells the matching arguments for each tool.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .pki import Pki, write_pki
from .signing import payload_of

MODEL_SIGNING = Path(sys.executable).with_name("model_signing")
TIMEOUT = 120  # seconds per command: generous for a loaded 2-core machine

Method = Literal["key", "certificate"]
Proc = subprocess.CompletedProcess[str]


def modelsign(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "modelsign", *map(str, args)]


def model_signing(*args: str | Path) -> list[str]:
    return [str(MODEL_SIGNING), *map(str, args)]


def run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run one command without a terminal; never raises on a non-zero exit."""
    return subprocess.run(
        list(cmd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def run_all(cmds: Sequence[Sequence[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands two at a time (the machine has 2 cores), results in order."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(run, cmds))


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Assert a command succeeded, showing its output when it did not."""
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def output(proc: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr; backslashes dropped, as model_signing prints its messages repr()ed."""
    return (proc.stdout + proc.stderr).replace("\\", "")


def errors(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """The error problems of a ``modelsign verify --json`` that failed (exit 1)."""
    assert proc.returncode == 1, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    result = json.loads(proc.stdout)
    assert result["verdict"] == "failed"
    return [p for p in result["problems"] if p["severity"] == "error"]


def codes(proc: subprocess.CompletedProcess[str]) -> list[tuple[str, str | None, str | None]]:
    """``(code, file, tensor)`` of every error of a failed ``modelsign verify --json``."""
    return sorted((p["code"], p["file"], p["tensor"]) for p in errors(proc))


def bundle_of(sig: Path) -> dict[str, Any]:
    return json.loads(sig.read_bytes())  # type: ignore[no-any-return]


def resource_names(sig: Path) -> list[str]:
    return [r["name"] for r in payload_of(sig)["predicate"]["resources"]]


def component_order(names: Sequence[str]) -> list[str]:
    """How model_signing 1.1.1 orders resources: by path component."""
    return sorted(names, key=lambda n: n.split("/"))


def write_ec_key(
    folder: Path,
    curve: ec.EllipticCurve,
    *,
    name: str = "signing",
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
) -> tuple[Path, Path]:
    """A fresh EC key pair made with cryptography: ``NAME.key`` and ``NAME.pub`` (PEM)."""
    key = ec.generate_private_key(curve)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / f"{name}.key", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@dataclass(frozen=True)
class Credentials:
    """One signer, as each tool's command line takes it."""

    method: Method
    private_key: Path
    public_key: Path | None = None  # key method: what verifiers trust
    leaf: Path | None = None  # certificate method: the signing certificate
    chain: Path | None = None  # the intermediate, shipped in the bundle
    root: Path | None = None  # the trust anchor

    @classmethod
    def for_key(cls, private_key: Path, public_key: Path) -> Credentials:
        return cls("key", private_key, public_key=public_key)

    @classmethod
    def for_pki(cls, pki: Pki, folder: Path) -> Credentials:
        f = write_pki(pki, folder)
        return cls("certificate", f.leaf_key, leaf=f.leaf, chain=f.chain, root=f.root)

    def ms_sign(self, model: Path, *extra: str | Path, signature: Path | None = None) -> list[str]:
        args: list[str | Path] = ["sign", model, "--key", self.private_key]
        if self.method == "certificate":
            assert self.leaf and self.chain
            args += ["--cert", self.leaf, "--cert-chain", self.chain]
        if signature is not None:
            args += ["--signature", signature]
        return modelsign(*args, *extra)

    def ms_verify(
        self, model: Path, *extra: str | Path, signature: Path | None = None
    ) -> list[str]:
        args: list[str | Path] = ["verify", model, "--json"]
        if self.method == "key":
            assert self.public_key
            args += ["--key", self.public_key]
        else:
            assert self.root
            args += ["--cert-chain", self.root]
        if signature is not None:
            args += ["--signature", signature]
        return modelsign(*args, *extra)

    def oms_sign(self, model: Path, signature: Path, *extra: str | Path) -> list[str]:
        args: list[str | Path] = ["sign", self.method, model, "--signature", signature]
        args += ["--private_key", self.private_key]
        if self.method == "certificate":
            assert self.leaf and self.chain
            args += ["--signing_certificate", self.leaf, "--certificate_chain", self.chain]
        return model_signing(*args, *extra)

    def oms_verify(self, model: Path, signature: Path, *extra: str | Path) -> list[str]:
        args: list[str | Path] = ["verify", self.method, model, "--signature", signature]
        if self.method == "key":
            assert self.public_key
            args += ["--public_key", self.public_key]
        else:
            assert self.root
            args += ["--certificate_chain", self.root]
        return model_signing(*args, *extra)


def safetensors_tensor_at(path: Path, offset: int) -> str:
    """The name of the safetensors tensor whose data holds byte ``offset`` of the file."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if 8 + n + start <= offset < 8 + n + end:
            return str(name)
    raise AssertionError(f"byte {offset} of {path} is not tensor data")
