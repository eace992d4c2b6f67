"""Signers turn statement bytes into a signature bundle.

A signer is anything with ``sign_statement(statement) -> bundle bytes``; key
and certificate signing live here, Sigstore keyless signing beside it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ...codes import Code
from ...errors import InputError
from . import bundle, certs, keys, timestamps
from .keyrefs import NO_SECRETS, HeldKey, Secrets, open_held_key, sign_held


class Signer(Protocol):
    """What ``modelsign.sign`` needs from a signing method."""

    def sign_statement(self, statement: bytes) -> bytes:
        """Sign in-toto statement bytes; return the Sigstore bundle JSON."""


def sign_all(signer: Signer, statements: Sequence[bytes]) -> list[bytes]:
    """Sign several statements as one signer: in one session when the signer has one.

    A Sigstore signer signs them all under one identity token and one signing
    certificate (``sign_statements``); any other signer signs them in turn.
    """
    many = getattr(signer, "sign_statements", None)
    if callable(many):
        return list(many(statements))
    return [signer.sign_statement(s) for s in statements]


@dataclass
class KeySigner:
    """Sign with a local private key, optionally with its certificate chain.

    Without certificates the bundle names the key by its hint (SHA-256 of the
    public key PEM), as the OMS tool does; with them it carries the chain
    (leaf first) for verification against the verifier's trusted roots. The
    key is a PEM file's or one held in a token or KMS (:mod:`.keyrefs`).
    """

    key: keys.PrivateKey | HeldKey
    certificates: Sequence[x509.Certificate] = field(default_factory=list)
    tsa_url: str | None = None  # an RFC 3161 timestamp authority: a trusted signing time

    @classmethod
    def from_files(
        cls,
        key_path: str,
        *,
        password: bytes | None = None,
        cert: str | None = None,
        chain: Sequence[str] = (),
        tsa_url: str | None = None,
    ) -> KeySigner:
        key = keys.load_private_key(key_path, password)
        return cls(key, _certificates(key.public_key(), cert, chain), tsa_url)

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        secrets: Secrets = NO_SECRETS,
        cert: str | None = None,
        chain: Sequence[str] = (),
        tsa_url: str | None = None,
    ) -> KeySigner:
        """Sign with a held key; its certificates come from ``cert``, else from its holder."""
        key = open_held_key(uri, secrets=secrets)
        try:
            certificates = _certificates(key.public_key(), cert, chain)
            if cert is None:
                certificates = key.certificates()
        except BaseException:
            key.close()
            raise
        return cls(key, certificates, tsa_url)

    def material(self) -> dict[str, Any]:
        if self.certificates:
            der = [c.public_bytes(serialization.Encoding.DER) for c in self.certificates]
            return {
                "x509CertificateChain": {
                    "certificates": [{"rawBytes": base64.b64encode(d).decode()} for d in der]
                },
                "tlogEntries": [],
            }
        return {"publicKey": {"hint": keys.key_hint(self.key.public_key())}, "tlogEntries": []}

    def close(self) -> None:
        """End the session with a held key's token or KMS (nothing to do for a key file)."""
        if not isinstance(self.key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            self.key.close()

    def sign_statement(self, statement: bytes) -> bytes:
        data = bundle.pae(statement)
        if isinstance(self.key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            signature = keys.sign_bytes(self.key, data)
        else:
            signature = sign_held(self.key, data)
        material = self.material()
        if self.tsa_url is not None:
            token = timestamps.request_timestamp(self.tsa_url, signature)
            material["timestampVerificationData"] = timestamps.timestamp_material([token])
        return bundle.write_bundle(statement, signature, material)


def _certificates(
    public: keys.PublicKey, cert: str | None, chain: Sequence[str]
) -> list[x509.Certificate]:
    """The leaf certificate at ``cert`` (which must be the key's) and the ``chain`` files."""
    if cert is None:
        if chain:
            raise InputError("--cert-chain needs --cert (the leaf certificate)", code=Code.USAGE)
        return []
    leaf = certs.load_certificates(cert)
    if len(leaf) != 1:
        raise InputError(
            f"expected exactly one leaf certificate, found {len(leaf)}",
            code=Code.CERT_INVALID,
            path=cert,
        )
    if keys.public_key_pem(leaf[0].public_key()) != keys.public_key_pem(public):  # type: ignore[arg-type]
        raise InputError(
            "the certificate is not for this private key", code=Code.CERT_KEY_MISMATCH, path=cert
        )
    return leaf + [c for p in chain for c in certs.load_certificates(p)]
