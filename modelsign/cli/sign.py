"""``modelsign sign``: an OMS v1.0 bundle, and the manifest as an attestation beside it."""

from __future__ import annotations

import json
from typing import Any, Final

import click

from .._internal._text import plural
from .._internal.hashing import TENSOR_HASHES
from .._internal.manifest import load_manifest
from .._internal.metadata.provenance import parse_source
from ..sign import SignResult, sign
from . import cli
from ._options import model_options, origin_options, progress_bar
from ._signer import SignerOptions, signer_options

SIGNING_KIND: Final = "modelsign.signing"


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
    help="Re-hash only files changed since OLD_SIGNATURE (or the signature it is a copy of) "
    "was made on this machine; says how many files were reused and read.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what was signed as JSON (schema modelsign.signing) on stdout.",
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
    as_json: bool,
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
    --key (and optionally --cert/--cert-chain) the signature is made with a key
    file, or by the token or KMS holding the key a URI names; with --sigstore
    it is keyless: a short-lived certificate for your OIDC
    identity and an entry in the transparency log.
    """
    with SignerOptions(**how).opened() as signer, progress_bar(True, "signing") as progress:
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
    counts = f"{plural(len(m.files), 'file')}, {plural(m.tensor_count, 'tensor')}"
    click.echo(f"signed {m.name}: {counts}", err=True)
    if reuse is not None:
        click.echo(reuse_text(res), err=True)
    click.echo(f"manifest digest: {m.digest()}", err=True)
    click.echo(f"wrote {res.signature} and {res.claims}", err=True)
    if as_json:
        click.echo(json.dumps(signing_json(res), indent=2, sort_keys=True))


def reuse_text(res: SignResult) -> str:
    """How much ``--reuse`` saved: "reused 3 files, read 1"."""
    text = f"reused {plural(res.reused, 'file')}, read {res.read}"
    shard_only = res.reused + res.read - len(res.manifest.files)
    if shard_only > 0:  # --shard-size: reused files are read for their shard digests
        text += f" ({shard_only} of them for their shard digests only)"
    return text


def signing_json(res: SignResult) -> dict[str, Any]:
    """What ``sign --json`` prints: where the signature went, what it covers, what was read."""
    m = res.manifest
    return {
        "kind": SIGNING_KIND,
        "version": 1,
        "model": m.name,
        "signature": res.signature,
        "claims": res.claims,
        "manifest_digest": m.digest(),
        "weights_digest": m.weights_digest,
        "files": len(m.files),
        "tensors": m.tensor_count,
        "reused": res.reused,
        "read": res.read,
    }
