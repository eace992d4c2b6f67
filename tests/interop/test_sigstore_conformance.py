"""The Sigstore client conformance suite's verification cases, through ``verify-bundle``.

Every case folder of ``../shared/conformance/sigstore-bundle-verify`` runs twice:
with the artifact as a file and as ``sha256:DIGEST``. Key mode's own checks
(which the suite exercises only lightly) are also run on bundles forged here,
with a throwaway transparency log.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from modelsign._internal.signature.bundle import pae
from tests.helpers.paths import CONFORMANCE, ROOT
from tools.sigstore_conformance import main

REPO = ROOT
SUITE = CONFORMANCE / "sigstore-bundle-verify"
if not SUITE.is_dir():
    pytest.skip(f"conformance suite not found at {SUITE}", allow_module_level=True)

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
CASES = sorted(p.name for p in SUITE.iterdir() if p.is_dir())
#: case name -> why we fail it (strict xfail, so a fix shows up). None at present.
KNOWN_FAILURES: dict[str, str] = {}


def suite_argv(case: str, form: str) -> list[str]:
    """The ``verify-bundle`` command line the suite's README describes for ``case``."""
    d = SUITE / case
    artifact = d / "artifact" if (d / "artifact").exists() else SUITE / "a.txt"
    argv = ["verify-bundle", "--bundle", str(d / "bundle.sigstore.json")]
    if (d / "key.pub").exists():
        argv += ["--key", str(d / "key.pub")]
    else:
        identity = d / "identity"
        issuer = d / "issuer"
        argv += [
            "--certificate-identity",
            identity.read_text().strip() if identity.exists() else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            issuer.read_text().strip() if issuer.exists() else DEFAULT_ISSUER,
        ]
    if (d / "trusted_root.json").exists():
        argv += ["--trusted-root", str(d / "trusted_root.json")]
    if form == "digest":
        argv.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    else:
        argv.append(str(artifact))
    return argv


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks = []
        if case in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[case]))
        for form in ("path", "digest"):
            out.append(pytest.param(case, form, marks=marks, id=f"{case}-{form}"))
    return out


@pytest.mark.parametrize(("case", "form"), _params())
def test_suite_case(case: str, form: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(suite_argv(case, form), capsys)
    if case.endswith("_fail"):
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("FAIL: "), err  # no traceback
    else:
        assert code == 0, err


def test_suite_has_all_cases() -> None:
    assert len(CASES) == 70  # 73 entries: 70 case folders, README.md, a.txt, statement.json


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "form", "expected"),
    [
        ("happy-path-v0.3", "path", 0),
        ("rekor2-dsse-happy-path", "digest", 0),
        ("managed-key-happy-path", "digest", 0),
        ("signature-mismatch_fail", "path", 1),
    ],
)
def test_subprocess(case: str, form: str, expected: int) -> None:
    proc = subprocess.run(
        [sys.executable, "tools/sigstore_conformance.py", *suite_argv(case, form)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == expected, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify-bundle", "--bundle", "b.json", "a.txt"],  # neither key nor identity
        ["verify-bundle", "--bundle", "b", "--key", "k", "--certificate-identity", "i", "a"],
        ["verify-bundle", "--bundle", "b", "--certificate-identity", "i", "a"],  # no issuer
        ["sign-bundle", "--bundle", "b", "a"],
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv, capsys)[0] == 2


def test_missing_files_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = suite_argv("managed-key-happy-path", "path")
    for i, missing in [(2, "bundle"), (4, "key"), (-1, "artifact")]:
        bad = list(argv)
        bad[i] = str(tmp_path / missing)
        code, err = run(bad, capsys)
        assert code == 1 and err.startswith("FAIL: ") and "Traceback" not in err, err


# -- key mode on the suite's managed-key bundle, altered ------------------------------


def _altered(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], case: str = "managed-key-happy-path"
) -> list[str]:
    bundle = json.loads((SUITE / case / "bundle.sigstore.json").read_text())
    change(bundle)
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    argv = suite_argv(case, "path")
    argv[2] = str(path)
    return argv


def _entry(b: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = b["verificationMaterial"]["tlogEntries"][0]
    return entry


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _set_sig(b: dict[str, Any]) -> None:
    b["messageSignature"]["signature"] = _flip_b64(b["messageSignature"]["signature"])


def _set_proof(b: dict[str, Any]) -> None:
    proof = _entry(b)["inclusionProof"]
    proof["hashes"][0] = _flip_b64(proof["hashes"][0])


def _set_set(b: dict[str, Any]) -> None:
    promise = _entry(b)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip_b64(promise["signedEntryTimestamp"])


def _drop_set_and_tsa(b: dict[str, Any]) -> None:
    del _entry(b)["inclusionPromise"]
    del b["verificationMaterial"]["timestampVerificationData"]


def _unknown_log(b: dict[str, Any]) -> None:
    _entry(b)["logId"]["keyId"] = base64.b64encode(bytes(32)).decode()


def _two_entries(b: dict[str, Any]) -> None:
    b["verificationMaterial"]["tlogEntries"] *= 2


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_set_sig, "signature does not verify"),
        (_set_proof, "invalid log entry: inclusion proof"),
        (_set_set, "invalid log entry: SET"),
        (_drop_set_and_tsa, "no verified time"),
        (_unknown_log, "not in the trusted root"),
        (_two_entries, "exactly one log entry"),
    ],
)
def test_managed_key_altered(
    change: Callable[[dict[str, Any]], None],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(_altered(tmp_path, change), capsys)
    assert code == 1 and reason in err, err


def test_managed_key_time_from_tsa_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the SET, the bundle's RFC 3161 timestamp is the verified time."""
    code, err = run(_altered(tmp_path, lambda b: _entry(b).pop("inclusionPromise")), capsys)
    assert code == 0, err


def test_managed_key_other_digest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = suite_argv("managed-key-happy-path", "digest")
    argv[-1] = "sha256:" + "00" * 32
    code, err = run(argv, capsys)
    assert code == 1 and "message digest does not match" in err, err


def test_key_on_a_certificate_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    argv = suite_argv("happy-path-v0.3", "path")
    i = argv.index("--certificate-identity")
    argv[i : i + 4] = ["--key", str(SUITE / "managed-key-happy-path" / "key.pub")]
    code, err = run(argv, capsys)
    assert code == 1 and "carries a certificate" in err, err


def test_log_key_validity_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The production log key, ended before the entry's integrated time, must not verify it."""
    store = importlib.resources.files("sigstore._store")
    shipped = store / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"
    root = json.loads(shipped.read_text())
    log_id = _entry(
        json.loads((SUITE / "managed-key-happy-path" / "bundle.sigstore.json").read_text())
    )
    for log in root["tlogs"]:
        if log["logId"]["keyId"] == log_id["logId"]["keyId"]:
            log["publicKey"]["validFor"]["end"] = "2025-01-01T00:00:00Z"
    path = tmp_path / "root.json"
    path.write_text(json.dumps(root))
    argv = suite_argv("managed-key-happy-path", "path")
    code, err = run([*argv[:-1], "--trusted-root", str(path), argv[-1]], capsys)
    assert code == 1 and "not valid at" in err, err


# -- key mode on forged bundles: DSSE, hashedrekord 0.0.1 / 0.0.2, a throwaway log ----------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


SIGNER = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
LOG = ec.generate_private_key(ec.SECP256R1())
ARTIFACT = b"a model, or any artifact\n"
NOW = 1_750_000_000  # 2025-06-15


def forge(
    tmp_path: Path,
    kind: str,
    *,
    artifact: bytes = ARTIFACT,
    body_key: ec.EllipticCurvePrivateKey = SIGNER,
    body_sig: bytes | None = None,
    set_key: ec.EllipticCurvePrivateKey = LOG,
    checkpoint_key: ec.EllipticCurvePrivateKey = LOG,
    integrated_time: int = NOW,
    with_set: bool = True,
    log_start: str = "2020-01-01T00:00:00Z",
) -> list[str]:
    """A key-signed bundle logged (tree of one) in a throwaway log, and its command line."""
    digest = hashlib.sha256(ARTIFACT).digest()
    logged_key = body_key.public_key()
    bundle: dict[str, Any] = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}
    if kind == "dsse/0.0.1":
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": digest.hex()}}],
            "predicateType": "https://example.com/p",
            "predicate": {},
        }
        payload = json.dumps(statement).encode()
        sig = SIGNER.sign(pae(payload), ec.ECDSA(hashes.SHA256()))
        bundle["dsseEnvelope"] = {
            "payload": _b64(payload),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": _b64(sig), "keyid": ""}],
        }
        spec: dict[str, Any] = {
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [
                {"signature": _b64(body_sig or sig), "verifier": _b64(_pem(logged_key))}
            ],
        }
    else:
        sig = SIGNER.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        bundle["messageSignature"] = {
            "messageDigest": {"algorithm": "SHA2_256", "digest": _b64(digest)},
            "signature": _b64(sig),
        }
        if kind == "hashedrekord/0.0.1":
            spec = {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": _b64(body_sig or sig),
                    "publicKey": {"content": _b64(_pem(logged_key))},
                },
            }
        else:
            spec = {
                "hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                    "signature": {
                        "content": _b64(body_sig or sig),
                        "verifier": {
                            "publicKey": {"rawBytes": _b64(_spki(logged_key))},
                            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        },
                    },
                }
            }
    name, version = kind.split("/")
    body = json.dumps({"apiVersion": version, "kind": name, "spec": spec}).encode()

    log_id = hashlib.sha256(_spki(LOG.public_key())).digest()
    root_hash = hashlib.sha256(b"\x00" + body).digest()  # RFC 6962 leaf = root of a 1-tree
    note = f"fake.log - 1\n1\n{_b64(root_hash)}\n"
    note_sig = checkpoint_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
    entry: dict[str, Any] = {
        "logIndex": "0",
        "logId": {"keyId": _b64(log_id)},
        "kindVersion": {"kind": name, "version": version},
        "integratedTime": str(integrated_time),
        "inclusionProof": {
            "logIndex": "0",
            "rootHash": _b64(root_hash),
            "treeSize": "1",
            "hashes": [],
            "checkpoint": {"envelope": f"{note}\n— fake.log {_b64(log_id[:4] + note_sig)}\n"},
        },
        "canonicalizedBody": _b64(body),
    }
    if with_set:
        promise = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": log_id.hex(),
                "logIndex": 0,
            }
        )
        set_sig = set_key.sign(promise, ec.ECDSA(hashes.SHA256()))
        entry["inclusionPromise"] = {"signedEntryTimestamp": _b64(set_sig)}
    bundle["verificationMaterial"] = {"publicKey": {"hint": ""}, "tlogEntries": [entry]}

    root = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://fake.log",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(_spki(LOG.public_key())),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": log_start},
                },
                "logId": {"keyId": _b64(log_id)},
            }
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
    }
    files = {"bundle.json": json.dumps(bundle).encode(), "root.json": json.dumps(root).encode()}
    files |= {"key.pub": _pem(SIGNER.public_key()), "artifact": artifact}
    for file, data in files.items():
        (tmp_path / file).write_bytes(data)
    return [
        "verify-bundle",
        "--bundle",
        str(tmp_path / "bundle.json"),
        "--key",
        str(tmp_path / "key.pub"),
        "--trusted-root",
        str(tmp_path / "root.json"),
        str(tmp_path / "artifact"),
    ]


KINDS = ["dsse/0.0.1", "hashedrekord/0.0.1", "hashedrekord/0.0.2"]


@pytest.mark.parametrize("kind", KINDS)
def test_forged_good(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(forge(tmp_path, kind), capsys)
    assert code == 0, err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("tweak", "reason"),
    [
        ({"artifact": b"another artifact"}, "artifact"),
        ({"body_key": OTHER}, "records a different public key"),
        ({"body_sig": b"0" * 70}, "records a different signature"),
        ({"set_key": OTHER}, "invalid log entry: SET"),
        ({"checkpoint_key": OTHER}, "invalid log entry: checkpoint"),
        ({"with_set": False}, "no verified time"),
        ({"log_start": "2026-01-01T00:00:00Z"}, "not valid at"),
        ({"integrated_time": 4_000_000_000}, "in the future"),
    ],
)
def test_forged_bad(
    kind: str,
    tweak: dict[str, Any],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(forge(tmp_path, kind, **tweak), capsys)
    assert code == 1 and reason in err, err


def test_forged_wrong_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = forge(tmp_path, "dsse/0.0.1")
    (tmp_path / "key.pub").write_bytes(_pem(OTHER.public_key()))
    code, err = run(argv, capsys)
    assert code == 1 and "does not verify with the given key" in err, err
