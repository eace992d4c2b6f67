"""``modelsign verify``: a model against its signature, a summary or JSON out."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import click

from .._internal._text import plural
from .._internal.signature.sigstore import SigstoreVerifier, load_trusted_root
from .._internal.signature.timestamps import TimestampAuthority
from .._internal.signature.verifiers import CertificateVerifier, KeyVerifier, Verifier
from ..codes import Code
from ..errors import InputError, VerificationError
from ..policy import Policy
from ..verify import VerificationResult, verify
from . import cli
from ._options import options, progress_bar

#: How to trust the signer: a key, root certificates, or a Sigstore identity.
trust_options = options(
    click.option("--key", type=click.Path(dir_okay=False), help="Trusted public key (PEM)."),
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
    """The values of :data:`trust_options` (``verify`` takes them as ``**trust``)."""

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

    def refuse_ambiguous(self, policy: Policy | None) -> None:
        """Exactly one way to trust the signer (or none, when the policy lists signers)."""
        ways = [bool(self.key), bool(self.cert_chain), self.sigstore].count(True)
        if ways > 1 or (ways == 0 and (policy is None or policy.signers is None)):
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


@cli.command("verify")
@click.argument("model", type=click.Path())
@click.option(
    "--signature",
    type=click.Path(dir_okay=False),
    help="Signature file (default MODEL/model.sig, or FILE.sig).",
)
@click.option(
    "--claims",
    type=click.Path(dir_okay=False),
    help="The claims file with modelsign's attestation (default: beside the signature).",
)
@click.option(
    "--expect-name",
    metavar="NAME",
    help="Fail unless the signed manifest names this model (another model signed by the "
    "same signer and copied here carries another name).",
)
@click.option(
    "--expect-source",
    metavar="ORG/NAME[@REV]",
    help="Fail unless the signed source repository is this one (and this revision, if given).",
)
@trust_options
@click.option(
    "--provenance",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="FILE",
    help="Also verify the SLSA provenance attestation (default MODEL/model.provenance.sig).",
)
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Judge the model by this policy (it may supply the trusted signers).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (stable schema).")
@click.option(
    "--ignore",
    multiple=True,
    metavar="PATTERN",
    help="Excuse unsigned extra files matching PATTERN (signed files are always checked).",
)
@click.option("-j", "--jobs", type=click.IntRange(1, 256))
def verify_cmd(
    model: str,
    signature: str | None,
    claims: str | None,
    expect_name: str | None,
    expect_source: str | None,
    policy_file: str | None,
    provenance: str | None,
    as_json: bool,
    ignore: tuple[str, ...],
    jobs: int | None,
    **trust: Any,
) -> None:
    """Verify MODEL against its signature.

    Trust the signer by --key, by --cert-chain (root certificates), or, for
    Sigstore bundles, by --identity (or --identity-regex) and --issuer, with
    optional GitHub workflow claims. Exit codes: 0 verified, 1 verification
    failed, 2 usage or input error.
    """
    how = TrustOptions(**trust)
    how.refuse_stray()
    policy = Policy.load(policy_file) if policy_file else None
    how.refuse_ambiguous(policy)
    verifier = how.verifier()
    try:
        with progress_bar(not as_json, "verifying") as progress:
            result = verify(
                model,
                verifier=verifier,
                policy=policy,
                provenance=(provenance or True) if provenance is not None else None,
                signature=signature,
                claims=claims,
                expect_name=expect_name,
                expect_source=expect_source,
                ignore=ignore,
                jobs=jobs,
                progress=progress,
            )
    except VerificationError as exc:
        if exc.result is None:
            raise
        _emit(exc.result, as_json)
        sys.exit(1)
    _emit(result, as_json)


def _emit(result: VerificationResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        click.echo(summary(result))


def summary(r: VerificationResult) -> str:
    """The result for a person: the verdict, the signer, each problem, the policy's rules."""
    who = _signer(r)
    lines = _verified(r, who) if r.verdict == "verified" else _failed(r, who)
    for p in r.problems:
        if p.severity != "error":
            where = f"{p.file}: " if p.file else ""
            lines.append(f"  {p.severity} {p.code}: {where}{p.message}")
    if r.provenance is not None:
        pv = r.provenance
        lines.append(
            f"provenance: built by {pv.builder_id}" + (f" from {pv.source}" if pv.source else "")
        )
    if r.policy is not None:
        lines.append("policy:")
        for rule in r.policy.rules:
            lines.append(f"  {rule.rule:13s} {rule.status:5s} ({rule.mode})")
            lines += [f"      {reason}" for reason in rule.reasons]
    return "\n".join(lines)


def _signer(r: VerificationResult) -> str:
    s = r.signer
    if s is None:
        return ""
    if s.kind == "key":
        return f"key {s.key_type} {s.key_hint}"
    if s.kind == "certificate":
        return f"certificate {s.subject} (issuer {s.issuer})"
    return f"{s.identity} via {s.oidc_issuer}"


def _verified(r: VerificationResult, who: str) -> list[str]:
    lines = [
        f"verified {r.model}: {plural(r.files_verified, 'file')} "
        f"({r.files_by_tensor_digests} by tensor digests), "
        f"{plural(r.tensors_verified, 'tensor')}",
        f"signed by {who}" if who else "no trusted signature (warn-mode policy)",
    ]
    if r.manifest_digest:
        lines.append(f"manifest digest: {r.manifest_digest}")
    named = [f"model {r.model_name}"] if r.model_name else []
    named += [f"from {r.source}"] if r.source else []
    named += [f"release {r.release}"] if r.release else []
    if named:
        lines.append("signed as " + ", ".join(named))
    return lines


def _failed(r: VerificationResult, who: str) -> list[str]:
    errors = r.errors
    failed = [x.rule for x in r.policy.rules if x.status == "fail"] if r.policy else []
    why = [plural(len(errors), "problem")] if errors or not failed else []
    rules = "policy rule" if len(failed) == 1 else "policy rules"
    why += [f"{rules} failed: {', '.join(failed)}"] if failed else []
    lines = [f"FAILED {r.model}: {'; '.join(why)}"]
    if who:
        lines.append(f"signature valid, signed by {who}")
    for p in errors:
        where = p.file or ""
        if p.tensor:
            where += f" [tensor {p.tensor}]"
        lines.append(f"  {p.code}: {where}{': ' if where else ''}{p.message}")
        if p.expected is not None:
            lines.append(f"    expected: {p.expected}")
        if p.actual is not None:
            lines.append(f"    actual:   {p.actual}")
    return lines
