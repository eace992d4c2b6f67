"""keygen / sign / verify / policies with held keys on the command line.

A SoftHSM2 token (a real PKCS#11 module) and moto's KMS server on 127.0.0.1
hold the keys. What is checked here is what a user meets: the PIN never from
the command line, exit codes, nothing written when signing fails, no traceback.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelsign.cli import cli
from tests.helpers import kms_standins
from tests.helpers.examples import build_example
from tests.helpers.json_output import validate
from tests.helpers.kms_standins import MotoKms
from tests.helpers.signing import flip_byte
from tests.helpers.softhsm import PIN, SoftHsm


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in r.stderr, r.stderr
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_example(tmp_path / "m")[0]


def keygen_on_token(hsm: SoftHsm, tmp_path: Path, key_type: str = "ec-p256") -> tuple[str, Path]:
    uri = hsm.uri("release-key")
    prefix = tmp_path / "release"
    code, out, err = run(
        "keygen", "--pkcs11", uri, "--type", key_type, "-o", str(prefix), "--json",
        "--password-env", "PIN", env={"PIN": PIN},
    )  # fmt: skip
    assert code == 0, err
    made = json.loads(out)
    validate(made, "keygen")
    assert made["held"] is True and made["private_key"] == uri and made["algorithm"] == key_type
    assert "sign with: modelsign sign MODEL --key" in err
    return uri, Path(f"{prefix}.pub")


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "ec-p521"])
def test_a_token_key_signs_and_verifies_by_uri_and_by_its_exported_pem(
    hsm: SoftHsm, model: Path, tmp_path: Path, key_type: str
) -> None:
    uri, pub = keygen_on_token(hsm, tmp_path, key_type)
    code, _, err = run("sign", str(model), "--key", uri, env={"MODELSIGN_PKCS11_PIN": PIN})
    assert code == 0, err
    for trusted in (uri, str(pub)):  # the public half read from the token: no PIN needed
        code, out, err = run("verify", str(model), "--key", trusted, "--json")
        assert code == 0, err
        assert json.loads(out)["signer"]["key_type"] == key_type
    flip_byte(model / "model.safetensors", tensor="model.layers.0.input_layernorm.weight")
    code, out, _ = run("verify", str(model), "--key", uri)
    assert code == 1 and "TENSOR_MODIFIED" in out and "model.layers.0.input_layernorm.weight" in out


def test_the_pin_comes_from_password_env_and_never_the_command_line(
    hsm: SoftHsm, model: Path, tmp_path: Path
) -> None:
    uri, _ = keygen_on_token(hsm, tmp_path)
    sig = model / "model.sig"
    code, _, err = run("sign", str(model), "--key", f"{uri}&pin-value={PIN}")
    assert (code, "PKCS11_PIN_IN_ARGUMENTS" in err) == (2, True), err
    assert PIN not in err and not sig.exists()
    code, _, err = run("verify", str(model), "--key", f"{uri}&pin-value={PIN}")
    assert (code, "PKCS11_PIN_IN_ARGUMENTS" in err) == (2, True), err
    code, _, err = run("sign", str(model), "--key", uri)  # no PIN, no terminal to ask
    assert (code, "PKCS11_PIN_REQUIRED" in err) == (2, True), err
    code, _, err = run("sign", str(model), "--key", uri, "--password-env", "P", env={"P": "0000"})
    assert (code, "PKCS11_PIN_INCORRECT" in err) == (2, True), err
    assert not sig.exists() and not (model / "claims.jsonl").exists()  # nothing written
    pin_file = tmp_path / "pin"
    pin_file.write_text(f"{PIN}\n")
    code, _, err = run("sign", str(model), "--key", f"{uri}&pin-source=file:{pin_file}")
    assert code == 0, err


def test_keygen_on_a_token_refuses_what_it_cannot_make(hsm: SoftHsm, tmp_path: Path) -> None:
    uri, _ = keygen_on_token(hsm, tmp_path)
    again = ("keygen", "--pkcs11", uri, "-o", str(tmp_path / "other"), "--password-env", "PIN")
    code, _, err = run(*again, env={"PIN": PIN})
    assert (code, "OUTPUT_EXISTS" in err) == (2, True), err  # the token has that key already
    code, _, err = run(
        "keygen", "--pkcs11", hsm.uri("new"), "-o", str(tmp_path / "release"),
        "--password-env", "PIN", env={"PIN": PIN},
    )  # fmt: skip
    assert (code, "OUTPUT_EXISTS" in err) == (2, True), err  # release.pub is there
    code, _, err = run(
        "keygen", "--pkcs11", hsm.uri("ed"), "--type", "ed25519", "-o", str(tmp_path / "ed"),
        "--password-env", "PIN", env={"PIN": PIN},
    )  # fmt: skip
    assert (code, "KEY_UNSUPPORTED" in err) == (2, True), err
    code, _, err = run("keygen", "--pkcs11", hsm.uri("x", token="nope"), "-o", str(tmp_path / "x"))
    assert (code, "PKCS11_TOKEN_NOT_FOUND" in err) == (2, True), err
    assert not (tmp_path / "x.pub").exists() and not (tmp_path / "ed.pub").exists()


def test_a_policy_trusts_a_token_key_by_uri_and_pinned_fingerprint(
    hsm: SoftHsm, model: Path, tmp_path: Path
) -> None:
    uri, _ = keygen_on_token(hsm, tmp_path)
    code, _, err = run("sign", str(model), "--key", uri, env={"MODELSIGN_PKCS11_PIN": PIN})
    assert code == 0, err
    code, out, _ = run("verify", str(model), "--key", uri, "--json")
    hint = json.loads(out)["signer"]["key_hint"]
    policy = tmp_path / "policy.yaml"
    pinned = "version: 1\nsigners:\n  keys: [{{uri: '{}', fingerprint: '{}'}}]\n"
    policy.write_text(pinned.format(uri, hint))
    code, out, err = run("verify", str(model), "--policy", str(policy))
    assert code == 0, err + out
    policy.write_text(pinned.format(uri, "0" * 64))
    code, out, err = run("verify", str(model), "--policy", str(policy))
    assert code != 0 and "POLICY_INVALID" in err + out and hint in err + out
    code, out, err = run("policy", "check", str(policy))
    assert code != 0 and "signers.keys.0.fingerprint" in err + out


def test_a_kms_key_signs_and_verifies_by_uri(
    kms: MotoKms, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms_standins.isolate_aws(monkeypatch, tmp_path)
    kms.create_key("ECC_NIST_P384", alias="alias/cli-release")
    uri = f"awskms://{kms.authority}/alias/cli-release"
    code, out, err = run("sign", str(model), "--key", uri, "--json")
    assert code == 0, err
    validate(json.loads(out), "signing")
    code, out, err = run("verify", str(model), "--key", uri, "--json")
    assert code == 0, err
    assert json.loads(out)["signer"]["key_type"] == "ec-p384"
    flip_byte(model / "model.safetensors", tensor="model.layers.0.input_layernorm.weight")
    code, out, _ = run("verify", str(model), "--key", uri)
    assert code == 1 and "model.layers.0.input_layernorm.weight" in out


def test_a_kms_that_cannot_be_reached_or_refuses_writes_nothing(
    kms: MotoKms, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kms_standins.isolate_aws(monkeypatch, tmp_path)
    denied = kms.create_key(policy=kms_standins.deny_policy("kms:Sign"))
    cases = {
        f"awskms://{kms.authority}/{denied}": "KMS_PERMISSION_DENIED",
        f"awskms://{kms.authority}/alias/none": "KMS_KEY_NOT_FOUND",
        "awskms://127.0.0.1:9/alias/x": "KMS_UNREACHABLE",  # the discard port: nothing there
        "awskms://[::1/alias/x": "KEY_URI_INVALID",
    }
    for uri, wanted in cases.items():
        code, _, err = run("sign", str(model), "--key", uri)
        assert (code, wanted in err) == (2, True), (uri, err)
        assert not (model / "model.sig").exists()


def test_the_pin_is_asked_on_a_terminal_hidden(hsm: SoftHsm, model: Path, tmp_path: Path) -> None:
    """The real command in a pseudo-terminal: it asks once, and the PIN is not echoed."""
    uri, _ = keygen_on_token(hsm, tmp_path)
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "modelsign", "sign", str(model), "--key", uri]
    with subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower) as proc:
        os.close(follower)
        seen = _read_until(leader, b"PIN for PKCS#11 token 'release': ")
        os.write(leader, f"{PIN}\r".encode())
        seen += _read_until(leader, b"wrote ")
        assert proc.wait(timeout=60) == 0, seen
    os.close(leader)
    assert seen.count(b"PIN for") == 1 and b"': :" not in seen and PIN.encode() not in seen
    assert (model / "model.sig").is_file()


def _read_until(fd: int, wanted: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {wanted!r} in {seen!r}"
        seen += os.read(fd, 4096)
    return seen
