"""Trust: how one verification checks a signature — the caller's verifier and the policy's signers.

The policy only judges (``modelsign.policy``); the verifiers its ``signers``
rule calls for are built here, by the verbs that verify: ``verify()``, the
loaders, the guard, the inventory and ``watch`` each make a :class:`Trust`
per verification (:func:`resolve_trust`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial

from cryptography import x509

from ._internal.signature import keys
from ._internal.signature.bundle import Envelope
from ._internal.signature.certs import load_certificates
from ._internal.signature.keyrefs import held_public_key
from ._internal.signature.timestamps import TimestampAuthority, trusted_root_authorities
from ._internal.signature.verifiers import CertificateVerifier, KeyVerifier, SignerInfo, Verifier
from .codes import Code
from .errors import InputError, ModelsignError, VerificationError
from .issues import Issue
from .policy import KeySpec, Policy


class PolicyVerifier:
    """Tries every signer the policy trusts that fits the bundle; the first that verifies wins.

    The trust material (keys, roots, TSAs) is read from the policy's files at
    first need and kept: one verifier checks several envelopes (the OMS bundle
    and the attestation) and, with keys, tries several of them.
    """

    def __init__(self, policy: Policy) -> None:
        assert policy.signers is not None
        self.policy = policy
        self.spec = policy.signers

    @cached_property
    def _keys(self) -> list[keys.PublicKey]:
        return [_policy_key(self.policy, k) for k in self.spec.keys]

    @cached_property
    def _tsa(self) -> list[TimestampAuthority]:
        """The TSAs listed, and those of the policy's Sigstore trusted root, if it names one."""
        tsa = [
            TimestampAuthority.from_file(self.policy.path_of(p))
            for p in self.spec.timestamp_authorities
        ]
        if self.spec.trusted_root is not None:
            tsa += trusted_root_authorities(self.policy.path_of(self.spec.trusted_root))
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
            code=Code.SIGNER_NOT_TRUSTED,
        )

    def _by_identity(self, envelope: Envelope, reasons: list[str]) -> SignerInfo | None:
        """A Sigstore signature: each listed identity in turn."""
        if not self.spec.sigstore:
            raise VerificationError(
                "a Sigstore signature, but the policy trusts no Sigstore identity",
                code=Code.SIGNER_NOT_TRUSTED,
            )
        from ._internal.signature.sigstore import SigstoreVerifier

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
        from ._internal.signature.sigstore import load_trusted_root

        return load_trusted_root(
            self.policy.path_of(self.spec.trusted_root) if self.spec.trusted_root else None,
            offline=self.spec.offline,
        )

    @cached_property
    def _certificate_roots(self) -> list[x509.Certificate]:
        return [
            c
            for p in self.spec.certificate_roots
            for c in load_certificates(self.policy.path_of(p))
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


def _policy_key(policy: Policy, k: KeySpec) -> keys.PublicKey:
    """A key the policy lists: its file (relative to the policy), inline PEM or a held key's
    URI (its public half read from the token or KMS), pinned or not."""
    if k.file is not None:
        key = keys.load_public_key(policy.path_of(k.file))
    elif k.uri is not None:
        key = held_public_key(k.uri)
    else:
        key = keys.load_public_key_pem((k.pem or "").encode(), "the policy's inline key")
    if k.fingerprint is not None and keys.key_hint(key) != k.fingerprint:
        raise InputError(
            f"policy key {k.file or k.uri or 'inline'} does not have fingerprint "
            f"{k.fingerprint} (it has {keys.key_hint(key)})",
            code=Code.POLICY_INVALID,
            path=policy.path_of(k.file) if k.file is not None else None,
        )
    return key


@dataclass(frozen=True)
class TrustFileError:
    """Trust material a policy names that cannot be used: the field, and why."""

    field: tuple[str | int, ...]  # ("signers", "keys", 1, "file")
    error: ModelsignError


def check_trust_files(policy: Policy) -> list[TrustFileError]:
    """Load every key, certificate root, trusted root and TSA chain the policy names.

    Each is read as a verification reads it (relative paths from the policy's
    folder); every one that cannot be used is returned, not only the first.
    """
    failed = []
    for where, load in _trust_material(policy):
        try:
            load()
        except ModelsignError as exc:
            if exc.code == Code.POLICY_INVALID and where[:2] == ("signers", "keys"):
                where = (*where[:3], "fingerprint")  # the key loaded, but is not the one pinned
            failed.append(TrustFileError(where, exc))
    return failed


def _trust_material(policy: Policy) -> Iterator[tuple[tuple[str | int, ...], Callable[[], object]]]:
    """Each piece of trust material the signers rule names: its field, and how it is loaded."""
    spec = policy.signers
    if spec is None:
        return
    for i, k in enumerate(spec.keys):
        field = "file" if k.file is not None else "uri" if k.uri is not None else "pem"
        yield ("signers", "keys", i, field), partial(_policy_key, policy, k)
    for i, p in enumerate(spec.certificate_roots):
        yield ("signers", "certificate_roots", i), partial(_roots, policy.path_of(p))
    if spec.trusted_root is not None:
        root = policy.path_of(spec.trusted_root)
        yield ("signers", "trusted_root"), partial(_trusted_root, root, spec.offline)
    for i, p in enumerate(spec.timestamp_authorities):
        tsa = policy.path_of(p)
        yield ("signers", "timestamp_authorities", i), partial(TimestampAuthority.from_file, tsa)


def _roots(path: str) -> list[x509.Certificate]:
    roots = load_certificates(path)
    if not roots:
        raise InputError("no certificate in the file", code=Code.CERT_INVALID, path=path)
    return roots


def _trusted_root(path: str, offline: bool) -> object:
    from ._internal.signature.sigstore import load_trusted_root

    root = load_trusted_root(path, offline=offline)
    trusted_root_authorities(path)  # its TSAs date key and certificate signatures too
    return root


class Trust:
    """How one verification checks a signature, and how it judges a failure.

    The one rule, shared by ``verify()``, the CLI, the loaders, the guard, the
    inventory and ``watch``: trust the caller gives (``--key``, a verifier
    object) is always enforced; a policy's ``signers``, when listed, must also
    verify, failing as the signers rule's mode says. A policy never loosens
    what the caller demands: its warn mode only softens its own signer list.
    Make one per verification (it collects that verification's warnings).
    """

    def __init__(self, caller: Verifier | None, policy: Policy | None) -> None:
        if caller is None and (policy is None or policy.signers is None):
            raise InputError(
                "give a verifier, or a policy that lists signers (--key, --cert-chain, "
                "--identity, or signers in the policy)",
                code=Code.USAGE,
            )
        self.caller = caller
        self.policy = policy
        # One for the whole verification: it reads the policy's trust files once.
        self.listed = (
            PolicyVerifier(policy) if policy is not None and policy.signers is not None else None
        )
        self.warnings: list[str] = []  # the policy's warn-mode signers that did not verify

    @property
    def caller_given(self) -> bool:
        return self.caller is not None

    @property
    def enforce(self) -> bool:
        """Whether a signature or content failure blocks (else it is only reported)."""
        return (
            self.caller is not None
            or self.policy is None
            or self.policy.mode_of("signers") == "enforce"
        )

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        """The caller's verifier, then the policy's signers (a Verifier itself)."""
        info = self.caller.verify_envelope(envelope) if self.caller is not None else None
        if self.listed is None:
            assert info is not None  # __init__: no policy signers means a caller verifier
            return info
        try:
            listed = self.listed.verify_envelope(envelope)
        except VerificationError as exc:
            # Without the caller's trust, or under an enforced signers rule, this blocks.
            assert self.policy is not None  # self.listed comes from its signers
            if info is None or self.policy.mode_of("signers") == "enforce":
                raise
            # (PolicyVerifier's failures are all SIGNER_NOT_TRUSTED.)
            if exc.message not in self.warnings:  # the OMS bundle and the attestation: once
                self.warnings.append(exc.message)
            return info
        return info if info is not None else listed

    def warn_reasons(self) -> list[Issue]:
        """The warnings as signers-rule reasons that never block (severity ``warning``)."""
        return [
            Issue(code=Code.SIGNER_NOT_TRUSTED, severity="warning", message=w)
            for w in self.warnings
        ]


def resolve_trust(verifier: Verifier | None, policy: Policy | None) -> Trust:
    """The trust for one verification (a usage error when neither gives a signer)."""
    return Trust(verifier, policy)
