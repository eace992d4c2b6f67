"""``modelsign verify``: a model against its signature, a summary or JSON out."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .._internal._text import plural
from ..errors import VerificationError
from ..verify import VerificationResult, verify
from . import cli
from ._options import progress_bar
from ._trust_options import TrustOptions, trust_options


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
    policy, verifier = TrustOptions(**trust).resolve(policy_file)
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
    failed = [x.rule for x in r.policy.failed] if r.policy else []
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
