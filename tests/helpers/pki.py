"""A small but realistic PKI for certificate tests: root CA → intermediate CA → leaf.

Certificates carry what real code-signing PKIs carry (critical BasicConstraints
and KeyUsage, SKI/AKI, EKU codeSigning and an e-mail SAN on the leaf); knobs
break one property at a time. ``issue`` is the general builder behind them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ec-p256", "ec-p384", "rsa", "ed25519"]
AnyKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
Validity = Literal["valid", "expired", "not-yet-valid"]
LeafUsage = Literal["digital-signature", "key-cert-sign", "none"]

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
DAY = dt.timedelta(days=1)

_CA_USAGE = dict(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: AnyKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass
class Pki:
    root: Issued
    intermediate: Issued
    leaf: Issued


@dataclass
class PkiFiles:
    root: Path  # the trust anchor
    chain: Path  # the intermediate, as a signer ships it
    leaf: Path
    leaf_key: Path


def make_key(kind: KeyKind) -> AnyKey:
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "modelsign tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(
    subject: str | x509.Name,
    key: AnyKey,
    issuer: Issued | None,
    *,
    ca: bool,
    path_length: int | None = None,
    key_usage: x509.KeyUsage | None = None,
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    san_email: str | None = None,
    not_before: dt.datetime = NOW - 365 * DAY,
    not_after: dt.datetime = NOW + 3650 * DAY,
    issuer_name: x509.Name | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """Issue a certificate for ``key``; ``issuer=None`` makes it self-signed.

    ``issuer_name`` overrides the issuer name written into the certificate
    (to forge a certificate that claims an issuer whose key did not sign it).
    """
    subject_name = name(subject) if isinstance(subject, str) else subject
    signer_key = key if issuer is None else issuer.key
    signer_name = subject_name if issuer is None else issuer.cert.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name or signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if san_email is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(san_email)]), critical=False
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return Issued(builder.sign(signer_key, algorithm), key)


def ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(**_CA_USAGE)


def leaf_usage(kind: LeafUsage = "digital-signature") -> x509.KeyUsage | None:
    if kind == "none":
        return None
    flags = {k: False for k in _CA_USAGE}
    flags["digital_signature" if kind == "digital-signature" else "key_cert_sign"] = True
    return x509.KeyUsage(**flags)


def validity(kind: Validity) -> tuple[dt.datetime, dt.datetime]:
    """A leaf validity window relative to ``NOW``."""
    if kind == "expired":
        return NOW - 30 * DAY, NOW - DAY
    if kind == "not-yet-valid":
        return NOW + DAY, NOW + 30 * DAY
    return NOW - DAY, NOW + 30 * DAY


def build_pki(
    *,
    root_key: KeyKind = "ec-p256",
    intermediate_key: KeyKind = "ec-p256",
    leaf_key: KeyKind = "ec-p256",
    leaf_validity: Validity = "valid",
    leaf_eku: bool = True,
    leaf_key_usage: LeafUsage = "digital-signature",
    leaf_ca: bool = False,
    intermediate_ca: bool = True,
    intermediate_path_length: int | None = 0,
    root_common_name: str = "Test Root CA",
) -> Pki:
    """Root CA → intermediate CA → code-signing leaf, with one knob per defect."""
    root = issue(
        root_common_name, make_key(root_key), None, ca=True, path_length=1, key_usage=ca_usage()
    )
    intermediate = issue(
        "Test Intermediate CA",
        make_key(intermediate_key),
        root,
        ca=intermediate_ca,
        path_length=intermediate_path_length if intermediate_ca else None,
        key_usage=ca_usage() if intermediate_ca else leaf_usage(),
    )
    not_before, not_after = validity(leaf_validity)
    leaf = issue(
        "Model Publisher",
        make_key(leaf_key),
        intermediate,
        ca=leaf_ca,
        key_usage=leaf_usage(leaf_key_usage),
        eku=[ExtendedKeyUsageOID.CODE_SIGNING] if leaf_eku else None,
        san_email="publisher@example.com",
        not_before=not_before,
        not_after=not_after,
    )
    return Pki(root, intermediate, leaf)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_pki(pki: Pki, folder: Path) -> PkiFiles:
    """Write the PKI as a signer and a verifier would hold it."""
    folder.mkdir(parents=True, exist_ok=True)
    leaf_key = folder / "leaf.key"
    leaf_key.write_bytes(pki.leaf.key_pem())
    leaf_key.chmod(0o600)
    return PkiFiles(
        root=write_pem(folder / "root.pem", pki.root.cert),
        chain=write_pem(folder / "chain.pem", pki.intermediate.cert),
        leaf=write_pem(folder / "leaf.pem", pki.leaf.cert),
        leaf_key=leaf_key,
    )
