"""Verifiers check a bundle's signature and say who signed it.

A verifier is anything with ``verify_envelope(envelope) -> SignerInfo`` that
raises :class:`~modelsign.errors.VerificationError` when the signature is not
valid for its trust material. It never looks at the model: that is the
statement check's job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict

from ...codes import Code
from ...errors import InputError, VerificationError
from . import certs, keys
from .bundle import Envelope, pae, pae_legacy
from .keyrefs import load_public_key_ref
from .statement import PREDICATE_LEGACY
from .timestamps import TimestampAuthority, verified_time


class SignerInfo(BaseModel):
    """Who signed, as established by the verifier (part of the result JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["key", "certificate", "sigstore"]
    key_type: str | None = None
    key_hint: str | None = None
    subject: str | None = None
    issuer: str | None = None
    fingerprint: str | None = None  # SHA-256 of the leaf certificate, hex
    chain: list[str] = []  # subjects, leaf to root
    identity: str | None = None  # Sigstore: SAN of the Fulcio certificate
    oidc_issuer: str | None = None
    extensions: dict[str, str] = {}
    signed_at: str | None = None  # trusted signing time (ISO 8601), when the bundle proves one


class Verifier(Protocol):
    """What ``modelsign.verify`` needs from a verification method."""

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        """Check the envelope's signature; return the signer or raise VerificationError."""


def _is_legacy(payload: bytes) -> bool:
    try:
        return bool(json.loads(payload).get("predicateType") == PREDICATE_LEGACY)
    except (ValueError, AttributeError):
        return False


def _ecdsa_sha256(key: ec.EllipticCurvePublicKey, envelope: Envelope, data: bytes) -> bool:
    try:
        key.verify(envelope.signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _check_signature(key: keys.PublicKey, envelope: Envelope) -> None:
    if keys.verify_bytes(key, envelope.signature, pae(envelope.payload)):
        return
    # Pre-1.0 OMS signatures signed a mangled encoding, and certificate ones
    # always with SHA-256; accept that only for statements of that era.
    if _is_legacy(envelope.payload):
        legacy = pae_legacy(envelope.payload)
        if keys.verify_bytes(key, envelope.signature, legacy):
            return
        if isinstance(key, ec.EllipticCurvePublicKey) and _ecdsa_sha256(key, envelope, legacy):
            return
    raise VerificationError(
        "the signature does not verify with this key: the statement or signature was "
        "altered, or it was signed by another key",
        code=Code.BAD_SIGNATURE,
    )


_HOW = {
    "key": "--key PUBLIC_KEY",
    "certificate": "--cert-chain ROOT_PEM",
    "sigstore": "--identity/--issuer",
}


def _require_method(envelope: Envelope, method: str, flag: str) -> None:
    """OMS §11.1: the verification material must be the one of the verifier's method."""
    if envelope.method != method:
        raise VerificationError(
            f"the bundle is signed with the {envelope.method} method, not {method} ({flag}): "
            f"verify it with {_HOW[envelope.method]}",
            code=Code.METHOD_MISMATCH,
            expected=method,
            actual=envelope.method,
        )


class KeyVerifier:
    """Verify with a trusted public key (PEM)."""

    def __init__(
        self, public_key: keys.PublicKey, *, tsa: Sequence[TimestampAuthority] = ()
    ) -> None:
        self.key = public_key
        self.tsa = tuple(tsa)  # authorities whose timestamps give a trusted signing time

    @classmethod
    def from_file(cls, path: str, *, tsa: Sequence[TimestampAuthority] = ()) -> KeyVerifier:
        """Trust the public key in a PEM file, or the public half of a held key's URI."""
        return cls(load_public_key_ref(path), tsa=tsa)

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        _require_method(envelope, "key", "--key")
        hint = keys.key_hint(self.key)
        if envelope.key_hint is not None and envelope.key_hint != hint:
            raise VerificationError(
                "the signature names another public key (key hint differs)",
                code=Code.KEY_HINT_MISMATCH,
                expected=hint,
                actual=envelope.key_hint,
            )
        _check_signature(self.key, envelope)
        when = verified_time(envelope.timestamps, envelope.signature, self.tsa)
        return SignerInfo(
            kind="key",
            key_type=keys.key_type(self.key),
            key_hint=hint,
            signed_at=when.isoformat() if when is not None else None,
        )


class CertificateVerifier:
    """Verify a certificate-chain signature up to trusted root certificates.

    The chain is checked at the bundle's trusted signing time when it has one;
    key and certificate bundles have none, so at the current time: an expired
    certificate fails (the OMS tool checks at the leaf's notBefore instead).
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        *,
        at: datetime | None = None,
        tsa: Sequence[TimestampAuthority] = (),
    ):
        if not roots:
            raise InputError("no trusted root certificates given", code=Code.NO_TRUST_ROOT)
        self.roots = list(roots)
        self.at = at
        self.tsa = tuple(tsa)

    @classmethod
    def from_files(
        cls, paths: Sequence[str], *, tsa: Sequence[TimestampAuthority] = ()
    ) -> CertificateVerifier:
        return cls([c for p in paths for c in certs.load_certificates(p)], tsa=tsa)

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        if envelope.certificates:
            _require_method(envelope, "certificate", "--cert-chain")
        if not envelope.certificates:
            raise VerificationError(
                "the signature carries no certificate chain (was it signed with a bare key?)",
                code=Code.NO_CERTIFICATE,
            )
        chain = [
            certs.load_der_certificate(d, f"certificate {i} of the bundle")
            for i, d in enumerate(envelope.certificates)
        ]
        # A trusted timestamp dates the signature: the chain must hold then (as
        # Sigstore checks a short-lived certificate); without one, it must hold now.
        when = verified_time(envelope.timestamps, envelope.signature, self.tsa)
        at = self.at or when or datetime.now(timezone.utc)
        path = certs.verify_chain(chain[0], chain[1:], self.roots, at=at)
        key = certs.leaf_public_key(chain[0])
        _check_signature(key, envelope)
        ident = certs.certificate_identity(chain[0])
        return SignerInfo(
            kind="certificate",
            key_type=keys.key_type(key),
            subject=ident.get("subject"),
            issuer=ident.get("issuer"),
            fingerprint=ident.get("fingerprint"),
            chain=[c.subject.rfc4514_string() for c in path],
            signed_at=when.isoformat() if when is not None else None,
        )
