"""How to trust a signer: the options ``verify``, ``watch`` and ``inventory`` share."""

from __future__ import annotations

from dataclasses import dataclass

import click

from .._internal.signature.keyrefs import refuse_secret_in_argument
from .._internal.signature.sigstore import SigstoreVerifier, load_trusted_root
from .._internal.signature.timestamps import TimestampAuthority
from .._internal.signature.verifiers import CertificateVerifier, KeyVerifier, Verifier
from ..codes import Code
from ..errors import InputError
from ..policy import Policy
from ._options import options

#: How to trust the signer: a key, root certificates, or a Sigstore identity.
trust_options = options(
    click.option(
        "--key",
        metavar="PATH|URI",
        help="Trusted public key: a PEM file, or a held key's URI "
        "(pkcs11:…, awskms://…, gcpkms://…, azurekms://…) whose public half is read.",
    ),
    click.option(
        "--tsa-cert-chain",
        "tsa_chains",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="With --key or --cert-chain: a trusted RFC 3161 timestamp authority's certificates "
        "(PEM, TSA certificate first, root last); its timestamps give the signing time. "
        "Repeatable.",
    ),
    click.option(
        "--cert-chain",
        "cert_chain",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Trusted root certificate(s) (PEM). Repeatable.",
    ),
    click.option("--identity", help="Sigstore: the signer's identity (certificate SAN), exactly."),
    click.option(
        "--identity-regex",
        metavar="RE",
        help="Sigstore: the signer's identity, as a full-match regex.",
    ),
    click.option(
        "--issuer",
        metavar="URL",
        help="Sigstore: the OIDC issuer of the identity (required with --identity).",
    ),
    click.option(
        "--github-repository",
        metavar="OWNER/REPO",
        help="Sigstore: the GitHub repository the signing workflow ran in.",
    ),
    click.option(
        "--github-ref", metavar="REF", help="Sigstore: the git ref it ran for, e.g. refs/tags/v1.0."
    ),
    click.option(
        "--github-workflow",
        metavar="PATH",
        help="Sigstore: the workflow file, e.g. .github/workflows/release.yml.",
    ),
    click.option(
        "--trusted-root",
        type=click.Path(dir_okay=False),
        help="Sigstore trusted root JSON (a private instance).",
    ),
    click.option(
        "--offline",
        is_flag=True,
        help="Sigstore: no network; use the trusted root shipped with sigstore.",
    ),
    click.option("--staging", is_flag=True, help="Sigstore: trust the staging instance."),
)


@dataclass(frozen=True)
class TrustOptions:
    """The values of :data:`trust_options` (a command takes them as ``**trust``)."""

    key: str | None
    tsa_chains: tuple[str, ...]
    cert_chain: tuple[str, ...]
    identity: str | None
    identity_regex: str | None
    issuer: str | None
    github_repository: str | None
    github_ref: str | None
    github_workflow: str | None
    trusted_root: str | None
    offline: bool
    staging: bool

    def resolve(
        self, policy_file: str | None, *, required: bool = True
    ) -> tuple[Policy | None, Verifier | None]:
        """The policy and the caller's verifier, in the order every command checks them.

        The options are checked before the policy is read, and both before any trust
        material is loaded (which may go online); ``required``: see :meth:`refuse_ambiguous`.
        """
        self.refuse_stray()
        policy = Policy.load(policy_file) if policy_file else None
        self.refuse_ambiguous(policy, required=required)
        return policy, self.verifier()

    @property
    def sigstore(self) -> bool:
        return bool(self.identity or self.identity_regex or self.issuer)

    def refuse_stray(self) -> None:
        """Refuse Sigstore-only options without a Sigstore identity."""
        sigstore_only = {
            "--github-repository": self.github_repository,
            "--github-ref": self.github_ref,
            "--github-workflow": self.github_workflow,
            "--trusted-root": self.trusted_root,
            "--offline": self.offline,
            "--staging": self.staging,
        }
        stray = [flag for flag, value in sigstore_only.items() if value]
        if stray and not self.sigstore:
            # Refused rather than ignored: a claim the user asked for must never go unchecked.
            raise InputError(
                f"{', '.join(stray)} only apply to Sigstore verification (--identity/--issuer)",
                code=Code.USAGE,
            )

    def refuse_ambiguous(self, policy: Policy | None, *, required: bool = True) -> None:
        """One way to trust the signer at most, and one unless the policy lists signers.

        ``required=False`` (the inventory): none at all is fine, signatures are then
        reported and not believed.
        """
        ways = [bool(self.key), bool(self.cert_chain), self.sigstore].count(True)
        missing = required and ways == 0 and (policy is None or policy.signers is None)
        if ways > 1 or missing:
            raise InputError(
                "give one way to trust the signer: --key, --cert-chain, --identity/--issuer, "
                "or a --policy that lists signers",
                code=Code.USAGE,
            )
        if self.tsa_chains and not (self.key or self.cert_chain):
            raise InputError("--tsa-cert-chain goes with --key or --cert-chain", code=Code.USAGE)

    def verifier(self) -> Verifier | None:
        """The verifier they describe; None leaves trust to the policy's signers."""
        tsa = [TimestampAuthority.from_file(p) for p in self.tsa_chains]
        if self.key:
            refuse_secret_in_argument(self.key)
            return KeyVerifier.from_file(self.key, tsa=tsa)
        if self.cert_chain:
            return CertificateVerifier.from_files(self.cert_chain, tsa=tsa)
        if not self.sigstore:
            return None
        # Options are checked before the trusted root is fetched (which may go online).
        verifier = SigstoreVerifier(
            None,
            issuer=self.issuer or "",
            identity=self.identity,
            identity_regex=self.identity_regex,
            github_repository=self.github_repository,
            github_ref=self.github_ref,
            github_workflow=self.github_workflow,
        )
        verifier.trusted_root = load_trusted_root(
            self.trusted_root,
            offline=self.offline,
            staging=self.staging,
            warn=lambda m: click.echo(f"warning: {m}", err=True),
        )
        return verifier
