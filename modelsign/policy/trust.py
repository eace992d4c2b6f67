"""Trust: the one rule for how a verification checks a signature and judges a failure."""

from __future__ import annotations

from .._internal.signature.bundle import Envelope
from .._internal.signature.verifiers import SignerInfo, Verifier
from ..errors import InputError, VerificationError
from ..issues import Issue
from .schema import Policy
from .signers import PolicyVerifier


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
                code="USAGE",
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
            Issue(code="SIGNER_NOT_TRUSTED", severity="warning", message=w) for w in self.warnings
        ]


def resolve_trust(verifier: Verifier | None, policy: Policy | None) -> Trust:
    """The trust for one verification (a usage error when neither gives a signer)."""
    return Trust(verifier, policy)
