"""Signing keys: generate, store, load, sign and verify.

Supported: ECDSA on P-256 / P-384 / P-521 (what the OMS tool accepts, hashed
with the curve-matched SHA-2) and Ed25519 (modelsign only). Keys are PEM on
disk: private keys PKCS#8, public keys SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ...codes import Code
from ...errors import InputError
from .._atomic import open_regular, write_atomic

KeyType = Literal["ec-p256", "ec-p384", "ec-p521", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("ec-p256", "ec-p384", "ec-p521", "ed25519")

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_CURVES: dict[str, tuple[KeyType, ec.EllipticCurve, hashes.HashAlgorithm]] = {
    "secp256r1": ("ec-p256", ec.SECP256R1(), hashes.SHA256()),
    "secp384r1": ("ec-p384", ec.SECP384R1(), hashes.SHA384()),
    "secp521r1": ("ec-p521", ec.SECP521R1(), hashes.SHA512()),
}

# One PEM block: label, optional RFC 1421 headers (legacy encrypted keys), base64 body.
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def generate_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    """A fresh private key of ``key_type``."""
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    for name, curve, _ in _CURVES.values():
        if name == key_type:
            return ec.generate_private_key(curve)
    raise InputError(
        f"unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}",
        code=Code.KEY_UNSUPPORTED,
    )


def write_keypair(
    prefix: str, key: PrivateKey, *, password: bytes | None, force: bool = False
) -> tuple[str, str]:
    """Write ``PREFIX.key`` (PKCS#8, 0600) and ``PREFIX.pub`` (SPKI, 0644).

    Each file is written atomically and the private key is 0600 from the
    moment it exists. Neither file is replaced without ``force``; if the
    second write fails the first is removed, so a failure leaves no half pair.
    """
    key_path, pub_path = f"{prefix}.key", f"{prefix}.pub"
    if password is not None and not password:
        raise InputError("the key password is empty", code=Code.KEY_PASSWORD_EMPTY, path=key_path)
    if not force:
        for path in (key_path, pub_path):
            if os.path.lexists(path):
                raise InputError(
                    "output exists; pass --force to overwrite", code=Code.OUTPUT_EXISTS, path=path
                )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    write_atomic(key_path, private_pem, force=force, mode=0o600)
    try:
        write_atomic(pub_path, public_key_pem(key.public_key()), force=force, mode=0o644)
    except BaseException:
        os.unlink(key_path)
        raise
    return key_path, pub_path


def load_private_key(path: str, password: bytes | None) -> PrivateKey:
    """Load a PEM private key (PKCS#8, SEC1 or legacy encrypted PEM)."""
    label, block = _read_block(path, lambda label: label.endswith(b"PRIVATE KEY"), "private key")
    encrypted = label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and password is None:
        raise InputError(
            "the private key is encrypted; give its password",
            code=Code.KEY_PASSWORD_REQUIRED,
            path=path,
        )
    try:
        # A password for an unencrypted key is not an error worth stopping for.
        key = serialization.load_pem_private_key(block, password if encrypted else None)
    except UnsupportedAlgorithm as exc:
        raise InputError(
            f"unsupported private key algorithm: {exc}", code=Code.KEY_UNSUPPORTED, path=path
        ) from exc
    except ValueError as exc:
        if encrypted:
            raise InputError(
                "cannot decrypt the private key: wrong password (or a damaged file)",
                code=Code.KEY_WRONG_PASSWORD,
                path=path,
            ) from exc
        raise InputError(
            f"not a valid PEM private key: {exc}", code=Code.KEY_INVALID, path=path
        ) from exc
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        _curve_entry(key.curve, path)
        return key
    raise InputError(_unsupported_message(key), code=Code.KEY_UNSUPPORTED, path=path)


def load_public_key(path: str) -> PublicKey:
    """Load a PEM public key (SubjectPublicKeyInfo); certificates are not accepted."""
    _, block = _read_block(path, lambda label: label.endswith(b"PUBLIC KEY"), "public key")
    return load_public_key_pem(block, path)


def load_public_key_pem(data: bytes, where: str) -> PublicKey:
    """Load a public key from PEM bytes; ``where`` names their origin in errors."""
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm as exc:
        raise InputError(
            f"unsupported public key algorithm: {exc}", code=Code.KEY_UNSUPPORTED, path=where
        ) from exc
    except ValueError as exc:
        raise InputError(
            f"not a valid PEM public key: {exc}", code=Code.KEY_INVALID, path=where
        ) from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        _curve_entry(key.curve, where)
        return key
    raise InputError(_unsupported_message(key), code=Code.KEY_UNSUPPORTED, path=where)


def public_key_pem(key: PublicKey) -> bytes:
    """The SubjectPublicKeyInfo PEM text of ``key``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hint(key: PublicKey) -> str:
    """SHA-256 hex of the key's PEM: the OMS ``verificationMaterial.publicKey.hint``."""
    return hashlib.sha256(public_key_pem(key)).hexdigest()


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data``: DER ECDSA with the curve's SHA-2, or raw Ed25519."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(_curve_entry(key.curve, None)[2]))


def hash_for(key: ec.EllipticCurvePublicKey, where: str | None = None) -> hashes.HashAlgorithm:
    """The SHA-2 an EC key signs with: SHA-256 on P-256, SHA-384 on P-384, SHA-512 on P-521."""
    return _curve_entry(key.curve, where)[2]


def verify_bytes(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key``; malformed means False."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(_curve_entry(key.curve, None)[2]))
    except InvalidSignature:
        return False
    return True


def key_type(key: PublicKey | PrivateKey) -> KeyType:
    """The ``KeyType`` name of ``key``."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    return _curve_entry(key.curve, None)[0]


def oms_compatible(key: PublicKey | PrivateKey) -> bool:
    """Whether the OMS tool (``model_signing``) can sign or verify with ``key``: EC only."""
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey)


def _curve_entry(
    curve: ec.EllipticCurve, where: str | None
) -> tuple[KeyType, ec.EllipticCurve, hashes.HashAlgorithm]:
    entry = _CURVES.get(curve.name)
    if entry is None:
        raise InputError(
            f"unsupported elliptic curve {curve.name}; use P-256, P-384, P-521 or Ed25519",
            code=Code.KEY_UNSUPPORTED,
            path=where,
        )
    return entry


def _unsupported_message(key: object) -> str:
    kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")
    return f"unsupported key type {kind}; use EC P-256, P-384, P-521 or Ed25519"


def _read_block(path: str, wanted: Callable[[bytes], bool], what: str) -> tuple[bytes, bytes]:
    """Read ``path`` and return the label and bytes of its first PEM block of the wanted kind.

    Checking the framing here (both markers, a base64 body) tells a truncated or
    non-PEM file (KEY_INVALID) apart from a wrong password, which cryptography
    reports with the same exception.
    """
    try:
        with open_regular(path) as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise InputError(f"{what} file not found", code=Code.KEY_NOT_FOUND, path=path) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the {what} file: {exc.strerror}", code=Code.KEY_UNREADABLE, path=path
        ) from exc
    found: list[str] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        if not wanted(label):
            found.append(label.decode("ascii"))
            continue
        # Legacy encrypted PEM has RFC 1421 header lines ("Proc-Type: ...") before the body.
        body = b"".join(ln.strip() for ln in match.group(2).splitlines() if b":" not in ln)
        try:
            base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise InputError(
                f"the PEM {label.decode('ascii')} block is not valid base64 (damaged file?)",
                code=Code.KEY_INVALID,
                path=path,
            ) from exc
        return label, match.group(0)
    detail = f" (it holds: {', '.join(found)})" if found else " (not PEM, or truncated)"
    raise InputError(f"no PEM {what} found{detail}", code=Code.KEY_INVALID, path=path)
