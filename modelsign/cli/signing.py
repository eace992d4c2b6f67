"""``modelsign keygen``, ``sign`` and ``verify``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TypeVar

import click

from .._internal.hashing import TENSOR_HASHES
from .._internal.manifest import load_manifest
from .._internal.metadata.provenance import parse_source
from .._internal.signature import keys
from .._internal.signature.signers import KeySigner, Signer
from .._internal.signature.sigstore import (
    TOKEN_ENV,
    SigstoreSigner,
    SigstoreVerifier,
    load_trusted_root,
)
from .._internal.signature.timestamps import TimestampAuthority
from .._internal.signature.verifiers import CertificateVerifier, KeyVerifier, Verifier
from ..errors import InputError, VerificationError
from ..policy import Policy, explain
from ..provenance import attest_provenance, builder_id
from ..sign import sign
from ..verify import VerificationResult, verify
from . import _progress, cli, model_options, origin_options

F = TypeVar("F", bound=Any)


def signer_options(func: F) -> F:
    """How to sign: --key (with --cert/--cert-chain) or --sigstore."""
    for option in reversed(_SIGNER_OPTIONS):
        func = option(func)
    return func


_SIGNER_OPTIONS = [
    click.option("--key", type=click.Path(dir_okay=False), help="Private key (PEM)."),
    click.option(
        "--sigstore",
        "use_sigstore",
        is_flag=True,
        help="Sign keylessly with Sigstore (OIDC identity).",
    ),
    click.option(
        "--identity-token",
        metavar="TOKEN",
        help=f"OIDC token for --sigstore (or env {TOKEN_ENV}); "
        "else CI ambient credentials, else a browser sign-in.",
    ),
    click.option("--staging", is_flag=True, help="Use Sigstore's staging instance."),
    click.option(
        "--trust-config",
        type=click.Path(dir_okay=False),
        help="Sigstore ClientTrustConfig JSON (a private instance).",
    ),
    click.option(
        "--oauth-force-oob",
        is_flag=True,
        help="Interactive sign-in prints a URL and asks for the code.",
    ),
    click.option(
        "--password-env",
        metavar="VAR",
        help="Read the key's password from environment variable VAR.",
    ),
    click.option(
        "--cert", type=click.Path(dir_okay=False), help="Leaf certificate for the key (PEM)."
    ),
    click.option(
        "--cert-chain",
        "cert_chain",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="Intermediate certificates (PEM) to include. Repeatable.",
    ),
    click.option(
        "--tsa-url",
        metavar="URL",
        help="With --key: have this RFC 3161 timestamp authority date the signature "
        "(a trusted signing time, for freshness and rollback rules).",
    ),
]


def _password_from_env(var: str | None) -> bytes | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise InputError(f"--password-env names {var}, which is not set", code="PASSWORD_ENV_UNSET")
    return value.encode("utf-8")


@cli.command("keygen")
@click.option(
    "--type",
    "key_type",
    type=click.Choice(keys.KEY_TYPES),
    default="ec-p256",
    show_default=True,
    help="Key type. EC P-256 is what OMS verifiers accept; they reject Ed25519.",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Encrypt the key with the password in environment variable VAR. "
    "Without it, a terminal is asked (empty = unencrypted).",
)
@click.option(
    "-o",
    "--output",
    "prefix",
    required=True,
    metavar="PREFIX",
    help="Writes PREFIX.key and PREFIX.pub.",
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen_cmd(key_type: keys.KeyType, password_env: str | None, prefix: str, force: bool) -> None:
    """Generate a signing key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub."""
    password = _password_from_env(password_env)
    if password is None and sys.stdin.isatty():
        typed = click.prompt(
            "Password for the private key (empty for none)",
            default="",
            hide_input=True,
            confirmation_prompt=True,
            show_default=False,
        )
        password = typed.encode("utf-8") or None
    if key_type == "ed25519":
        click.echo(
            "warning: OMS verifiers (model_signing) reject Ed25519 signatures; "
            "use ec-p256 for signatures others must verify",
            err=True,
        )
    key_path, pub_path = keys.write_keypair(
        prefix, keys.generate_key(key_type), password=password, force=force
    )
    if password is None:
        click.echo(f"warning: {key_path} is not encrypted", err=True)
    click.echo(f"wrote {key_path} and {pub_path}", err=True)
    click.echo(f"key hint: {keys.key_hint(keys.load_public_key(pub_path))}", err=True)


def _signer_from(
    *,
    key: str | None,
    use_sigstore: bool,
    identity_token: str | None,
    staging: bool,
    trust_config: str | None,
    oauth_force_oob: bool,
    password_env: str | None,
    cert: str | None,
    cert_chain: tuple[str, ...],
    tsa_url: str | None,
) -> Signer:
    if use_sigstore == bool(key):
        raise InputError("give exactly one of --key or --sigstore", code="USAGE")
    if use_sigstore:
        if cert or cert_chain or password_env or tsa_url:
            raise InputError(
                "--cert, --cert-chain, --password-env and --tsa-url go with --key "
                "(Sigstore's own timestamp authorities come with its trust configuration)",
                code="USAGE",
            )
        return SigstoreSigner.create(
            identity_token=identity_token,
            staging=staging,
            trust_config=trust_config,
            oauth_force_oob=oauth_force_oob,
        )
    assert key is not None
    return _load_signer(key, password_env, cert, cert_chain, tsa_url)


def _load_signer(
    key: str,
    password_env: str | None,
    cert: str | None,
    chain: tuple[str, ...],
    tsa_url: str | None,
) -> KeySigner:
    password = _password_from_env(password_env)
    try:
        return KeySigner.from_files(key, password=password, cert=cert, chain=chain, tsa_url=tsa_url)
    except InputError as exc:
        if exc.code != "KEY_PASSWORD_REQUIRED" or password is not None or not sys.stdin.isatty():
            raise
    typed = click.prompt(f"Password for {key}", hide_input=True)
    return KeySigner.from_files(
        key, password=typed.encode("utf-8"), cert=cert, chain=chain, tsa_url=tsa_url
    )


@cli.command("sign")
@click.argument("model", type=click.Path())
@click.option(
    "--signature",
    type=click.Path(dir_okay=False),
    help="Where to write the signature (default MODEL/model.sig, or FILE.sig).",
)
@click.option(
    "--claims",
    type=click.Path(dir_okay=False),
    help="Where modelsign's attestation goes (default: claims.jsonl beside model.sig, "
    "else NAME.claims.jsonl beside NAME.sig); other lines in it are kept.",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    metavar="BYTES",
    help="OMS shard serialization: digest every BYTES-long range of each file "
    "(all cores, even for one file); the spec's default is 1000000000.",
)
@click.option(
    "--release",
    metavar="VERSION",
    help="The release this signature speaks for (e.g. v1.4), signed into the attestation: "
    "verifiers and policies can refuse an older one put back in place.",
)
@click.option(
    "--single-file-name",
    type=click.Choice(["oms-tool", "spec"]),
    default="oms-tool",
    show_default=True,
    help="A single file's resource name: '.' as model_signing 1.1.1 writes and requires, "
    "or the file's name as the OMS v1.0 spec says.",
)
@signer_options
@click.option("--force", is_flag=True, help="Replace an existing signature.")
@click.option("--no-tensors", is_flag=True, help="Skip tensor digests.")
@click.option(
    "--reuse",
    type=click.Path(dir_okay=False),
    metavar="OLD_SIGNATURE",
    help="Re-hash only files changed since OLD_SIGNATURE was made on this machine.",
)
@click.option(
    "--tensor-hash", type=click.Choice(TENSOR_HASHES), default="blake3", show_default=True
)
@model_options
@origin_options
@click.option("-j", "--jobs", type=click.IntRange(1, 256))
def sign_cmd(
    model: str,
    signature: str | None,
    claims: str | None,
    shard_size: int | None,
    release: str | None,
    single_file_name: str,
    force: bool,
    no_tensors: bool,
    reuse: str | None,
    tensor_hash: str,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    source: str | None,
    parents: tuple[str, ...],
    jobs: int | None,
    **how: Any,
) -> None:
    """Sign MODEL: an OMS v1.0 bundle, and its manifest as an attestation beside it.

    model.sig is a plain OMS v1.0 signature (what model_signing verifies); the
    full manifest (tensor digests, quantization, licence, provenance) is a
    second statement signed by the same signer, a line of claims.jsonl. With
    --key (and optionally --cert/--cert-chain) the signature is made locally;
    with --sigstore it is keyless: a short-lived certificate for your OIDC
    identity and an entry in the transparency log.
    """
    signer = _signer_from(**how)
    with _progress(True, "signing") as progress:
        res = sign(
            model,
            signer=signer,
            signature=signature,
            force=force,
            tensor_hash=None if no_tensors else tensor_hash,  # type: ignore[arg-type]
            ignore=ignore,
            allow_symlinks=allow_symlinks,
            source=parse_source(source) if source else None,
            parents=[load_manifest(p) for p in parents],
            jobs=jobs,
            progress=progress,
            reuse=reuse,
            claims=claims,
            shard_size=shard_size,
            single_file_name=single_file_name,  # type: ignore[arg-type]
            release=release,
        )
    m = res.manifest
    click.echo(f"signed {m.name}: {len(m.files)} files, {m.tensor_count} tensors", err=True)
    click.echo(f"manifest digest: {m.digest()}", err=True)
    click.echo(f"wrote {res.signature} and {res.claims}", err=True)


def _summary(r: VerificationResult) -> str:
    lines = []
    who = ""
    if r.signer is not None:
        s = r.signer
        if s.kind == "key":
            who = f"key {s.key_type} {s.key_hint}"
        elif s.kind == "certificate":
            who = f"certificate {s.subject} (issuer {s.issuer})"
        else:
            who = f"{s.identity} via {s.oidc_issuer}"
    if r.verdict == "verified":
        lines.append(
            f"verified {r.model}: {r.files_verified} files "
            f"({r.files_by_tensor_digests} by tensor digests), {r.tensors_verified} tensors"
        )
        lines.append(f"signed by {who}" if who else "no trusted signature (warn-mode policy)")
        if r.manifest_digest:
            lines.append(f"manifest digest: {r.manifest_digest}")
        named = [f"model {r.model_name}"] if r.model_name else []
        named += [f"from {r.source}"] if r.source else []
        named += [f"release {r.release}"] if r.release else []
        if named:
            lines.append("signed as " + ", ".join(named))
    else:
        errors = r.errors
        failed = [x.rule for x in r.policy.rules if x.status == "fail"] if r.policy else []
        why = [f"{len(errors)} problem(s)"] if errors or not failed else []
        why += [f"policy rule(s) failed: {', '.join(failed)}"] if failed else []
        lines.append(f"FAILED {r.model}: {'; '.join(why)}")
        if who:
            lines.append(f"signature valid, signed by {who}")
        for p in errors:
            where = p.file or ""
            if p.tensor:
                where += f" [tensor {p.tensor}]"
            lines.append(f"  {p.code}: {where}{': ' if where else ''}{p.message}")
            if p.expected or p.actual:
                lines.append(f"    expected: {p.expected}")
                lines.append(f"    actual:   {p.actual}")
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
@click.option("--key", type=click.Path(dir_okay=False), help="Trusted public key (PEM).")
@click.option(
    "--tsa-cert-chain",
    "tsa_chains",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="With --key or --cert-chain: a trusted RFC 3161 timestamp authority's certificates "
    "(PEM, TSA certificate first, root last); its timestamps give the signing time. Repeatable.",
)
@click.option(
    "--cert-chain",
    "cert_chain",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Trusted root certificate(s) (PEM). Repeatable.",
)
@click.option("--identity", help="Sigstore: the signer's identity (certificate SAN), exactly.")
@click.option(
    "--identity-regex", metavar="RE", help="Sigstore: the signer's identity, as a full-match regex."
)
@click.option(
    "--issuer",
    metavar="URL",
    help="Sigstore: the OIDC issuer of the identity (required with --identity).",
)
@click.option(
    "--github-repository",
    metavar="OWNER/REPO",
    help="Sigstore: the GitHub repository the signing workflow ran in.",
)
@click.option(
    "--github-ref", metavar="REF", help="Sigstore: the git ref it ran for, e.g. refs/tags/v1.0."
)
@click.option(
    "--github-workflow",
    metavar="PATH",
    help="Sigstore: the workflow file, e.g. .github/workflows/release.yml.",
)
@click.option(
    "--trusted-root",
    type=click.Path(dir_okay=False),
    help="Sigstore trusted root JSON (a private instance).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Sigstore: no network; use the trusted root shipped with sigstore.",
)
@click.option("--staging", is_flag=True, help="Sigstore: trust the staging instance.")
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
    key: str | None,
    tsa_chains: tuple[str, ...],
    cert_chain: tuple[str, ...],
    identity: str | None,
    identity_regex: str | None,
    issuer: str | None,
    github_repository: str | None,
    github_ref: str | None,
    github_workflow: str | None,
    trusted_root: str | None,
    offline: bool,
    staging: bool,
    policy_file: str | None,
    provenance: str | None,
    as_json: bool,
    ignore: tuple[str, ...],
    jobs: int | None,
) -> None:
    """Verify MODEL against its signature.

    Trust the signer by --key, by --cert-chain (root certificates), or, for
    Sigstore bundles, by --identity (or --identity-regex) and --issuer, with
    optional GitHub workflow claims. Exit codes: 0 verified, 1 verification
    failed, 2 usage or input error.
    """
    sigstore = bool(identity or identity_regex or issuer)
    sigstore_only = {
        "--github-repository": github_repository,
        "--github-ref": github_ref,
        "--github-workflow": github_workflow,
        "--trusted-root": trusted_root,
    }
    stray = (
        [flag for flag, value in sigstore_only.items() if value]
        + (["--offline"] if offline else [])
        + (["--staging"] if staging else [])
    )
    if stray and not sigstore:
        # Refused rather than ignored: a claim the user asked for must never go unchecked.
        raise InputError(
            f"{', '.join(stray)} only apply to Sigstore verification (--identity/--issuer)",
            code="USAGE",
        )
    ways = [bool(key), bool(cert_chain), sigstore].count(True)
    policy = Policy.load(policy_file) if policy_file else None
    if ways > 1 or (ways == 0 and (policy is None or policy.signers is None)):
        raise InputError(
            "give one way to trust the signer: --key, --cert-chain, --identity/--issuer, "
            "or a --policy that lists signers",
            code="USAGE",
        )
    if tsa_chains and not (key or cert_chain):
        raise InputError("--tsa-cert-chain goes with --key or --cert-chain", code="USAGE")
    tsa = [TimestampAuthority.from_file(p) for p in tsa_chains]
    verifier: Verifier | None
    if ways == 0:
        verifier = None  # the policy's signers
    elif key:
        verifier = KeyVerifier.from_file(key, tsa=tsa)
    elif cert_chain:
        verifier = CertificateVerifier.from_files(cert_chain, tsa=tsa)
    else:
        # Options are checked before the trusted root is fetched (which may go online).
        verifier = SigstoreVerifier(
            None,
            issuer=issuer or "",
            identity=identity,
            identity_regex=identity_regex,
            github_repository=github_repository,
            github_ref=github_ref,
            github_workflow=github_workflow,
        )
        verifier.trusted_root = load_trusted_root(
            trusted_root,
            offline=offline,
            staging=staging,
            warn=lambda m: click.echo(f"warning: {m}", err=True),
        )
    try:
        with _progress(not as_json, "verifying") as progress:
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
        click.echo(_summary(result))


@cli.group("policy")
def policy_group() -> None:
    """Check and explain policy files."""


@policy_group.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False))
def policy_check_cmd(policy_file: str) -> None:
    """Validate POLICY_FILE (exit 0 valid, 2 invalid, naming the field and line)."""
    policy = Policy.load(policy_file)
    rules = ", ".join(policy.rules()) or "no rules"
    click.echo(f"{policy_file}: valid policy (version {policy.version}; {rules})")


@policy_group.command("explain")
@click.argument("policy_file", type=click.Path(dir_okay=False))
def policy_explain_cmd(policy_file: str) -> None:
    """Say what POLICY_FILE requires, in plain words."""
    click.echo(explain(Policy.load(policy_file)))


@cli.group("attest")
def attest_group() -> None:
    """Signed attestations about a model release."""


@attest_group.command("provenance")
@click.argument("model", type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Where to write it (default MODEL/model.provenance.sig, or FILE.provenance.sig).",
)
@signer_options
@click.option("--force", is_flag=True, help="Replace an existing attestation.")
@click.option(
    "--tensor-hash", type=click.Choice(TENSOR_HASHES), default="blake3", show_default=True
)
@model_options
@origin_options
def attest_provenance_cmd(
    model: str,
    output: str | None,
    force: bool,
    tensor_hash: str,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    source: str | None,
    parents: tuple[str, ...],
    **how: Any,
) -> None:
    """Write a signed SLSA Provenance v1 statement for MODEL.

    Subjects are the model's files (SHA-256); the builder (in CI: the workflow,
    run and commit, from runner-set variables only), the build type and the
    resolved dependencies (source repository and revision, base models, parent
    manifests) come from the manifest. It is signed like a model (--key or
    --sigstore); check it with `modelsign verify MODEL --provenance`.
    """
    signer = _signer_from(**how)
    with _progress(True, "attesting") as progress:
        res = attest_provenance(
            model,
            signer=signer,
            output=output,
            force=force,
            tensor_hash=tensor_hash,  # type: ignore[arg-type]
            ignore=ignore,
            allow_symlinks=allow_symlinks,
            source=parse_source(source) if source else None,
            parents=tuple(load_manifest(p) for p in parents),
            progress=progress,
        )
    click.echo(f"builder: {builder_id(res.manifest.provenance.builder)}", err=True)
    click.echo(f"wrote {res.path}", err=True)
