"""keygen / sign / verify on the command line: passwords, exit codes, JSON output."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelsign.cli import cli
from tests.helpers.deep import make_deep, remove_deep
from tests.helpers.signing import flip_byte


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
