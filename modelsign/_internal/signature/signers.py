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

from ...codes import Code
from ...errors import InputError
from . import bundle, certs, keys, timestamps


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
    (leaf first) for verification against the verifier's trusted roots.
    """

    key: keys.PrivateKey
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
        certificates: list[x509.Certificate] = []
        if cert is not None:
            leaf = certs.load_certificates(cert)
            if len(leaf) != 1:
                raise InputError(
                    f"expected exactly one leaf certificate, found {len(leaf)}",
                    code=Code.CERT_INVALID,
                    path=cert,
                )
            if keys.public_key_pem(leaf[0].public_key()) != keys.public_key_pem(  # type: ignore[arg-type]
                key.public_key()
            ):
                raise InputError(
                    "the certificate is not for this private key",
                    code=Code.CERT_KEY_MISMATCH,
                    path=cert,
                )
            certificates = leaf + [c for p in chain for c in certs.load_certificates(p)]
        elif chain:
            raise InputError("--cert-chain needs --cert (the leaf certificate)", code=Code.USAGE)
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

    def sign_statement(self, statement: bytes) -> bytes:
        signature = keys.sign_bytes(self.key, bundle.pae(statement))
        material = self.material()
        if self.tsa_url is not None:
            token = timestamps.request_timestamp(self.tsa_url, signature)
            material["timestampVerificationData"] = timestamps.timestamp_material([token])
        return bundle.write_bundle(statement, signature, material)
