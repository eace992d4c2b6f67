"""Signing keys: files on disk, loading errors, signatures, OMS compatibility."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelsign._internal.signature import keys
from modelsign.errors import InputError
from tests.helpers.paths import CONFORMANCE

OMS_CERT_KEYS = CONFORMANCE / "oms-vectors" / "keys" / "certificate"


def mode(path: str) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


@pytest.mark.parametrize("key_type", keys.KEY_TYPES)
@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_write_and_reload_each_type(
    tmp_path: Path, key_type: keys.KeyType, password: bytes | None
) -> None:
    key = keys.generate_key(key_type)
    key_path, pub_path = keys.write_keypair(str(tmp_path / "signer"), key, password=password)

    assert (key_path, pub_path) == (str(tmp_path / "signer.key"), str(tmp_path / "signer.pub"))
    assert mode(key_path) == 0o600
    assert mode(pub_path) == 0o644
    header = Path(key_path).read_bytes().splitlines()[0]
    expected = b"ENCRYPTED PRIVATE KEY" if password else b"PRIVATE KEY"
    assert header == b"-----BEGIN " + expected + b"-----"
    assert Path(pub_path).read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")

    loaded = keys.load_private_key(key_path, password)
    public = keys.load_public_key(pub_path)
    assert keys.key_type(loaded) == keys.key_type(public) == key_type
    assert keys.public_key_pem(loaded.public_key()) == keys.public_key_pem(public)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["signer.key", "signer.pub"]  # no temps


@pytest.mark.parametrize("key_type", keys.KEY_TYPES)
def test_sign_verify_round_trip(key_type: keys.KeyType) -> None:
    key = keys.generate_key(key_type)
    other = keys.generate_key(key_type)
    data = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
    signature = keys.sign_bytes(key, data)

    assert keys.verify_bytes(key.public_key(), signature, data)
    assert not keys.verify_bytes(key.public_key(), signature, data + b" ")
    assert not keys.verify_bytes(other.public_key(), signature, data)
    assert not keys.verify_bytes(key.public_key(), b"\x30\x02garbage", data)


@pytest.mark.parametrize(
    ("curve", "digest"),
    [
        (ec.SECP256R1(), hashes.SHA256()),
        (ec.SECP384R1(), hashes.SHA384()),
        (ec.SECP521R1(), hashes.SHA512()),
    ],
)
def test_ecdsa_uses_the_curve_matched_hash(
    curve: ec.EllipticCurve, digest: hashes.HashAlgorithm
) -> None:
    key = ec.generate_private_key(curve)
    signature = keys.sign_bytes(key, b"payload")
    # Raises if the hash differs: what the OMS tool's verifier would do.
    key.public_key().verify(signature, b"payload", ec.ECDSA(digest))


def test_key_hint_is_the_oms_hint() -> None:
    key = keys.generate_key("ec-p384").public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert keys.key_hint(key) == hashlib.sha256(pem).hexdigest()


def test_key_hint_matches_the_oms_tool(tmp_path: Path) -> None:
    sign_ec_key = pytest.importorskip("model_signing._signing.sign_ec_key")
    key = keys.generate_key("ec-p256")
    key_path, _ = keys.write_keypair(str(tmp_path / "k"), key, password=None)
    material = sign_ec_key.Signer(Path(key_path))._get_verification_material()
    assert material.public_key.hint == keys.key_hint(key.public_key())


def test_oms_compatibility() -> None:
    assert keys.oms_compatible(keys.generate_key("ec-p521"))
    assert keys.oms_compatible(keys.generate_key("ec-p256").public_key())
    assert not keys.oms_compatible(keys.generate_key("ed25519"))


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"conformance vectors absent: {CONFORMANCE}")
def test_conformance_keys_load() -> None:
    public = keys.load_public_key(str(OMS_CERT_KEYS / "signing-key-pub.pem"))
    assert keys.key_type(public) == "ec-p384"
    # certtool output: descriptive text before the PEM block, SEC1 "EC PRIVATE KEY".
    private = keys.load_private_key(str(OMS_CERT_KEYS / "signing-key.pem"), None)
    assert keys.public_key_pem(private.public_key()) == keys.public_key_pem(public)


def test_overwrite_refused_without_force(tmp_path: Path) -> None:
    prefix = str(tmp_path / "signer")
    first = keys.generate_key()
    keys.write_keypair(prefix, first, password=None)
    before = Path(prefix + ".key").read_bytes()

    with pytest.raises(InputError) as exc:
        keys.write_keypair(prefix, keys.generate_key(), password=None)
    assert exc.value.code == "OUTPUT_EXISTS"
    assert Path(prefix + ".key").read_bytes() == before

    Path(prefix + ".key").unlink()  # only the .pub is left: still refused
    with pytest.raises(InputError) as exc:
        keys.write_keypair(prefix, keys.generate_key(), password=None)
    assert exc.value.path == prefix + ".pub"
    assert not Path(prefix + ".key").exists()

    second = keys.generate_key()
    keys.write_keypair(prefix, second, password=None, force=True)
    reloaded = keys.load_private_key(prefix + ".key", None)
    assert keys.public_key_pem(reloaded.public_key()) == keys.public_key_pem(second.public_key())


def test_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "signer.pub").mkdir()  # the .pub cannot be replaced, even with force
    with pytest.raises(OSError):
        keys.write_keypair(str(tmp_path / "signer"), keys.generate_key(), password=None, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signer.pub"]


def test_empty_password_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=b"")
    assert exc.value.code == "KEY_PASSWORD_EMPTY"
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def encrypted_key(tmp_path: Path) -> str:
    key_path, _ = keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=b"secret")
    return key_path


def test_missing_password(encrypted_key: str) -> None:
    with pytest.raises(InputError) as exc:
        keys.load_private_key(encrypted_key, None)
    assert exc.value.code == "KEY_PASSWORD_REQUIRED"
    assert exc.value.path == encrypted_key


def test_wrong_password(encrypted_key: str) -> None:
    with pytest.raises(InputError) as exc:
        keys.load_private_key(encrypted_key, b"guess")
    assert exc.value.code == "KEY_WRONG_PASSWORD"
    assert encrypted_key in str(exc.value)


def test_legacy_encrypted_pem(tmp_path: Path) -> None:
    key = keys.generate_key("ec-p256")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    path = tmp_path / "legacy.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    assert b"Proc-Type: 4,ENCRYPTED" in path.read_bytes()
    assert keys.key_type(keys.load_private_key(str(path), b"secret")) == "ec-p256"
    for password, code in [(None, "KEY_PASSWORD_REQUIRED"), (b"nope", "KEY_WRONG_PASSWORD")]:
        with pytest.raises(InputError) as exc:
            keys.load_private_key(str(path), password)
        assert exc.value.code == code


def test_password_for_an_unencrypted_key_is_ignored(tmp_path: Path) -> None:
    key_path, _ = keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=None)
    assert keys.load_private_key(key_path, b"unneeded")


@pytest.mark.parametrize("encrypted", [False, True])
def test_truncated_key(tmp_path: Path, encrypted: bool) -> None:
    password = b"secret" if encrypted else None
    key_path, _ = keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=password)
    data = Path(key_path).read_bytes()
    Path(key_path).write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        keys.load_private_key(key_path, password)
    assert exc.value.code == "KEY_INVALID"
    assert key_path in str(exc.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key at all\n",
        b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_garbage_key(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.key"
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        keys.load_private_key(str(path), None)
    assert exc.value.code == "KEY_INVALID"


def test_public_and_private_files_swapped(tmp_path: Path) -> None:
    key_path, pub_path = keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=None)
    with pytest.raises(InputError) as exc:
        keys.load_private_key(pub_path, None)
    assert exc.value.code == "KEY_INVALID"
    assert "PUBLIC KEY" in exc.value.message
    with pytest.raises(InputError) as exc:
        keys.load_public_key(key_path)
    assert exc.value.code == "KEY_INVALID"


def test_missing_key_file(tmp_path: Path) -> None:
    for load in (lambda p: keys.load_private_key(p, None), keys.load_public_key):
        with pytest.raises(InputError) as exc:
            load(str(tmp_path / "absent.pem"))
        assert exc.value.code == "KEY_NOT_FOUND"


def test_unsupported_keys(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k1_key = ec.generate_private_key(ec.SECP256K1())
    cases: list[tuple[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]] = [
        ("rsa", rsa_key),
        ("secp256k1", k1_key),
    ]
    for name, key in cases:
        private = tmp_path / f"{name}.key"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (tmp_path / f"{name}.pub").write_bytes(public_pem)
        with pytest.raises(InputError) as exc:
            keys.load_private_key(str(private), None)
        assert exc.value.code == "KEY_UNSUPPORTED", name
        assert exc.value.path == str(private)
        with pytest.raises(InputError) as exc:
            keys.load_public_key(str(tmp_path / f"{name}.pub"))
        assert exc.value.code == "KEY_UNSUPPORTED", name
        with pytest.raises(InputError) as exc:
            keys.load_public_key_pem(public_pem, "policy.yaml: keys[0]")
        assert exc.value.path == "policy.yaml: keys[0]"


def test_inline_public_key_pem() -> None:
    key = keys.generate_key("ed25519").public_key()
    assert keys.load_public_key_pem(keys.public_key_pem(key), "inline") == key
    with pytest.raises(InputError) as exc:
        keys.load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "x")
    assert exc.value.code == "KEY_INVALID"


def test_unknown_key_type() -> None:
    with pytest.raises(InputError) as exc:
        keys.generate_key("rsa-2048")  # type: ignore[arg-type]
    assert exc.value.code == "KEY_UNSUPPORTED"


def test_private_key_is_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key bytes go into a file that is 0600 from creation to rename."""
    seen: list[int] = []
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    key_path, _ = keys.write_keypair(str(tmp_path / "k"), keys.generate_key(), password=None)
    assert seen[0] == 0o600  # the first temporary file holds the private key
    assert mode(key_path) == 0o600
