"""keygen / sign / verify on the command line: passwords, exit codes, JSON output."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from modelsign.cli import cli
from tests.helpers.deep import make_deep, remove_deep
from tests.helpers.hf_cache import make_hf_cache
from tests.helpers.json_output import validate
from tests.helpers.keras_files import WEIGHTS, dense, keras_archive
from tests.helpers.onnx_files import gemm_model, save_external
from tests.helpers.signing import KeyPair, flip_byte


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def keygen_prefix(tmp_path: Path) -> Path:
    prefix = tmp_path / "k"
    code, _, err = run("keygen", "-o", str(prefix), "--password-env", "PW", env={"PW": "s3cret"})
    assert code == 0, err
    return prefix


def test_keygen_files_and_modes(keygen_prefix: Path, tmp_path: Path) -> None:
    key = Path(f"{keygen_prefix}.key")
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert Path(f"{keygen_prefix}.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    code, _, err = run("keygen", "-o", str(keygen_prefix))
    assert code == 2 and "OUTPUT_EXISTS" in err
    code, _, err = run("keygen", "-o", str(tmp_path / "ed"), "--type", "ed25519")
    assert code == 0 and "reject Ed25519" in err and "not encrypted" in err


def test_sign_and_verify_exit_codes(tiny_model: Path, keygen_prefix: Path) -> None:
    key, pub = f"{keygen_prefix}.key", f"{keygen_prefix}.pub"
    code, _, err = run("sign", str(tiny_model), "--key", key)
    assert code == 2 and "KEY_PASSWORD_REQUIRED" in err
    code, _, err = run(
        "sign", str(tiny_model), "--key", key, "--password-env", "PW", env={"PW": "no"}
    )
    assert code == 2 and "KEY_WRONG_PASSWORD" in err and "Traceback" not in err
    code, _, err = run(
        "sign", str(tiny_model), "--key", key, "--password-env", "PW", env={"PW": "s3cret"}
    )
    assert code == 0, err
    assert "signed tiny-model: 4 files, 21 tensors" in err
    code, out, _ = run("verify", str(tiny_model), "--key", pub)
    assert code == 0 and out.startswith("verified ") and "1 by tensor digests" in out
    code, out, _ = run("verify", str(tiny_model), "--key", pub, "--json")
    result = json.loads(out)
    assert result["verdict"] == "verified" and result["kind"] == "modelsign.verification"
    assert result["signer"]["kind"] == "key" and result["problems"] == []

    flip_byte(tiny_model / "model.safetensors", tensor="lm_head.weight")
    code, out, _ = run("verify", str(tiny_model), "--key", pub)
    assert code == 1 and "TENSOR_MODIFIED: model.safetensors [tensor lm_head.weight]" in out
    code, out, _ = run("verify", str(tiny_model), "--key", pub, "--json")
    result = json.loads(out)
    assert code == 1 and result["verdict"] == "failed"
    tensor = next(p for p in result["problems"] if p["code"] == "TENSOR_MODIFIED")
    assert set(tensor) == {"code", "severity", "message", "file", "tensor", "expected", "actual"}


def test_usage_errors(tiny_model: Path, keygen_prefix: Path, tmp_path: Path) -> None:
    pub = f"{keygen_prefix}.pub"
    code, _, err = run("verify", str(tiny_model), "--key", pub, "--cert-chain", pub)
    assert code == 2 and "USAGE" in err
    code, _, err = run("verify", str(tiny_model), "--key", pub)
    assert code == 2 and "SIGNATURE_NOT_FOUND" in err
    truncated = tmp_path / "t.key"
    truncated.write_bytes(Path(f"{keygen_prefix}.key").read_bytes()[:100])
    code, _, err = run("sign", str(tiny_model), "--key", str(truncated))
    assert code == 2 and "KEY_INVALID" in err and str(truncated) in err
    code, _, err = run("sign", str(tiny_model), "--key", pub)
    assert code == 2 and "KEY_" in err
    code, _, err = run(
        "sign", str(tiny_model), "--key", f"{keygen_prefix}.key", "--password-env", "NOPE"
    )
    assert code == 2 and "PASSWORD_ENV_UNSET" in err
    assert not (tiny_model / "model.sig").exists()
    assert not [p for p in os.listdir(tiny_model) if p.startswith(".modelsign-")]


@pytest.mark.slow
def test_folders_nested_too_deep_are_one_line_errors(
    tiny_model: Path, keygen_prefix: Path, tmp_path: Path
) -> None:
    """manifest, sign and verify of ~1,100 nested folders: TOO_DEEP, exit 2, no traceback."""
    key, pub = f"{keygen_prefix}.key", f"{keygen_prefix}.pub"
    env = {"PW": "s3cret"}
    code, _, err = run("sign", str(tiny_model), "--key", key, "--password-env", "PW", env=env)
    assert code == 0, err
    make_deep(tiny_model)  # added after signing: verify must refuse it, not crash
    try:
        for args in (
            ("manifest", str(tiny_model)),
            ("sign", str(tiny_model), "--key", key, "--password-env", "PW", "--force"),
            ("verify", str(tiny_model), "--key", pub),
        ):
            code, _, err = run(*args, env=env)
            assert code == 2, (args, err)
            assert err.startswith("error[TOO_DEEP]: d/d/d/") and "256 levels" in err, args
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, args
    finally:
        remove_deep(tiny_model)


def test_sign_reuse_says_what_it_reused_and_read(
    tiny_model: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    old = time.time() - 3600
    for p in tiny_model.iterdir():
        os.utime(p, (old, old))  # untouched for an hour, as a downloaded model is
    key = str(keypair.key_path)
    code, out, err = run("sign", str(tiny_model), "--key", key, "--json")
    assert code == 0, err
    first = json.loads(out)
    validate(first, "signing")  # the shipped modelsign/schemas/signing.schema.json
    assert first["kind"] == "modelsign.signing" and first["version"] == 1
    assert (first["files"], first["tensors"], first["reused"], first["read"]) == (4, 21, 0, 4)
    assert first["signature"] == str(tiny_model / "model.sig")
    assert "reused" not in err  # nothing was asked to be reused
    alone = tmp_path / "alone.sig"  # a copy elsewhere: found by its content, not its path
    alone.write_bytes((tiny_model / "model.sig").read_bytes())
    kept = tmp_path / "v1.sig"  # one kept with its claims
    kept.write_bytes((tiny_model / "model.sig").read_bytes())
    (tmp_path / "v1.claims.jsonl").write_bytes((tiny_model / "claims.jsonl").read_bytes())
    (tiny_model / "README.md").write_text("a new card\n")
    code, out, err = run("sign", str(tiny_model), "--key", key, "--force", "--reuse", str(alone))
    assert code == 0, err
    assert "signed tiny-model: 4 files, 21 tensors\nreused 1 file, read 3\n" in err
    # The model's claims.jsonl now holds the new attestation: a copy needs its own claims.
    code, out, err = run("sign", str(tiny_model), "--key", key, "--force", "--reuse", str(alone))
    assert code == 2 and "REUSE_INVALID" in err
    assert f"keep its claims file beside it ({tmp_path / 'alone.claims.jsonl'})" in err
    code, out, err = run(
        "sign", str(tiny_model), "--key", key, "--force", "--reuse", str(kept), "--json"
    )
    assert code == 0, err
    again = json.loads(out)
    assert (again["reused"], again["read"]) == (1, 3)
    assert again["manifest_digest"] != first["manifest_digest"]  # README.md changed


# A model of one format: the folder to sign, the file to tamper with, a byte of it inside a
# tensor's data (a storage's, for Keras), and the problem verify must then report: its code,
# file and tensor, and its line in the text output.
Built = tuple[Path, Path, int, tuple[str, str, str | None], str]


def _npz(tmp_path: Path) -> Built:
    w = np.arange(64, dtype=np.float32).reshape(8, 8)
    np.savez(tmp_path / "m" / "w.npz", w=w, b=np.ones(8, np.float32))  # stored members
    path = tmp_path / "m" / "w.npz"
    problem = ("TENSOR_MODIFIED", "w.npz", "w")
    return path.parent, path, path.read_bytes().index(w.tobytes()) + 5, problem, "w.npz [tensor w]"


def _keras(tmp_path: Path) -> Built:
    path = keras_archive(tmp_path / "m" / "model.keras", dense("a"))
    at = path.read_bytes().index(WEIGHTS) + 20
    # HDF5 is not parsed into tensors: the weights member is named
    problem = ("STORAGE_MODIFIED", "model.keras", None)
    return path.parent, path, at, problem, "model.keras: storage model.weights.h5 changed"


def _onnx(tmp_path: Path) -> Built:
    save_external(gemm_model(), tmp_path / "m" / "m.onnx")
    problem = ("TENSOR_MODIFIED", "w.bin", "W")
    return tmp_path / "m", tmp_path / "m" / "w.bin", 10, problem, "w.bin [tensor W]"


def _onnx_in_a_cache(tmp_path: Path) -> Built:
    files = save_external(gemm_model(), tmp_path / "src" / "model.onnx", "model.onnx_data")
    repo = make_hf_cache(tmp_path / "cache", {f"onnx/{k}": v for k, v in files.items()})
    blob = (repo / "snapshots" / ("a" * 40) / "onnx" / "model.onnx_data").resolve()
    problem = ("TENSOR_MODIFIED", "onnx/model.onnx_data", "W")
    return repo, blob, 10, problem, "onnx/model.onnx_data [tensor W]"


@pytest.mark.parametrize("build", [_npz, _keras, _onnx, _onnx_in_a_cache])
def test_a_flipped_byte_is_named_in_every_format(
    build: Callable[[Path], Built], keygen_prefix: Path, tmp_path: Path
) -> None:
    (tmp_path / "m").mkdir()
    model, target, at, problem, line = build(tmp_path)
    key, pub, env = f"{keygen_prefix}.key", f"{keygen_prefix}.pub", {"PW": "s3cret"}
    code, _, err = run("sign", str(model), "--key", key, "--password-env", "PW", env=env)
    assert code == 0, err
    code, out, err = run("verify", str(model), "--key", pub)
    assert code == 0 and out.startswith("verified "), out + err
    flip_byte(target, at)
    code, out, _ = run("verify", str(model), "--key", pub)
    assert code == 1 and f"{problem[0]}: {line}" in out, out
    code, out, _ = run("verify", str(model), "--key", pub, "--json")
    found = {(p["code"], p["file"], p["tensor"]) for p in json.loads(out)["problems"]}
    assert code == 1 and problem in found, found
