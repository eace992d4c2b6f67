"""The signers rule as a :class:`~modelsign._internal.signature.verifiers.Verifier`.

Below :mod:`.schema` (``Policy.verifier()`` builds one), so it sees the policy
only through :class:`SignersSource`: the signers rule and where its paths resolve.
"""

from __future__ import annotations

from functools import cached_property
from typing import Protocol

from cryptography import x509

from .._internal.signature import keys
from .._internal.signature.bundle import Envelope
from .._internal.signature.certs import load_certificates
from .._internal.signature.timestamps import TimestampAuthority, trusted_root_authorities
from .._internal.signature.verifiers import CertificateVerifier, KeyVerifier, SignerInfo
from ..errors import InputError, VerificationError
from .specs import SignersRule


class SignersSource(Protocol):
    """What a :class:`PolicyVerifier` needs of a policy (a :class:`~.schema.Policy` is one)."""

    @property
    def signers(self) -> SignersRule | None: ...

    def _path(self, p: str) -> str: ...


class PolicyVerifier:
    """Tries every signer the policy trusts that fits the bundle; the first that verifies wins.

    The trust material (keys, roots, TSAs) is read from the policy's files at
    first need and kept: one verifier checks several envelopes (the OMS bundle
    and the attestation) and, with keys, tries several of them.
    """

    def __init__(self, policy: SignersSource) -> None:
        assert policy.signers is not None
        self.policy = policy
        self.spec = policy.signers

    @cached_property
    def _keys(self) -> list[keys.PublicKey]:
        out = []
        for k in self.spec.keys:
            key = (
                keys.load_public_key(self.policy._path(k.file))
                if k.file is not None
                else keys.load_public_key_pem((k.pem or "").encode(), "the policy's inline key")
            )
            if k.fingerprint is not None and keys.key_hint(key) != k.fingerprint:
                raise InputError(
                    f"policy key {k.file or 'inline'} does not have fingerprint {k.fingerprint}",
                    code="POLICY_INVALID",
                )
            out.append(key)
        return out

    @cached_property
    def _tsa(self) -> list[TimestampAuthority]:
        """The TSAs listed, and those of the policy's Sigstore trusted root, if it names one."""
        tsa = [
            TimestampAuthority.from_file(self.policy._path(p))
            for p in self.spec.timestamp_authorities
        ]
        if self.spec.trusted_root is not None:
            tsa += trusted_root_authorities(self.policy._path(self.spec.trusted_root))
        return tsa

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        # Each attempt that fails adds why; with none verifying, all the reasons are told.
        reasons: list[str] = []
        if envelope.method == "sigstore":
            info = self._by_identity(envelope, reasons)
        elif envelope.certificates and self.spec.certificate_roots:
            info = self._by_certificate(envelope, reasons)
        else:
            info = self._by_key(envelope, reasons)
        if info is not None:
            return info
        raise VerificationError(
            "no signer the policy trusts verifies this signature: " + "; ".join(reasons),
            code="SIGNER_NOT_TRUSTED",
        )

    def _by_identity(self, envelope: Envelope, reasons: list[str]) -> SignerInfo | None:
        """A Sigstore signature: each listed identity in turn."""
        if not self.spec.sigstore:
            raise VerificationError(
                "a Sigstore signature, but the policy trusts no Sigstore identity",
                code="SIGNER_NOT_TRUSTED",
            )
        from .._internal.signature.sigstore import SigstoreVerifier

        for s in self.spec.sigstore:
            v = SigstoreVerifier(
                self._sigstore_root,
                issuer=s.issuer,
                identity=s.identity,
                identity_regex=s.identity_regex,
                github_repository=s.github_repository,
                github_ref=s.github_ref,
                github_workflow=s.github_workflow,
            )
            try:
                return v.verify_envelope(envelope)
            except VerificationError as exc:
                reasons.append(f"{s.identity or s.identity_regex}: {exc.message}")
        return None

    @cached_property
    def _sigstore_root(self) -> object:
        """The Sigstore trusted root (``offline: false``: refreshed over TUF, once)."""
        from .._internal.signature.sigstore import load_trusted_root

        return load_trusted_root(
            self.policy._path(self.spec.trusted_root) if self.spec.trusted_root else None,
            offline=self.spec.offline,
        )

    @cached_property
    def _certificate_roots(self) -> list[x509.Certificate]:
        return [
            c for p in self.spec.certificate_roots for c in load_certificates(self.policy._path(p))
        ]

    def _by_certificate(self, envelope: Envelope, reasons: list[str]) -> SignerInfo | None:
        """A certificate chain: to any of the listed roots."""
        try:
            return CertificateVerifier(self._certificate_roots, tsa=self._tsa).verify_envelope(
                envelope
            )
        except VerificationError as exc:
            reasons.append(f"certificate roots: {exc.message}")
        return None

    def _by_key(self, envelope: Envelope, reasons: list[str]) -> SignerInfo | None:
        """A bare key (or a certificate with no roots listed): the listed keys its hint fits."""
        for key in self._keys:
            hint = keys.key_hint(key)
            if envelope.key_hint is not None and envelope.key_hint != hint:
                continue
            try:
                return KeyVerifier(key, tsa=self._tsa).verify_envelope(envelope)
            except VerificationError as exc:
                reasons.append(f"key {hint[:16]}: {exc.message}")
        if not reasons:
            reasons.append(
                f"signed by key {envelope.key_hint or '(no hint)'}, which the policy does not list"
                if not envelope.certificates
                else "signed with a certificate, but the policy lists no certificate roots"
            )
        return None
