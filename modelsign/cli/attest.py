"""``modelsign attest provenance``: a signed SLSA provenance statement for a model."""

from __future__ import annotations

import json
from typing import Any, Final

import click

from .._internal.hashing import TENSOR_HASHES
from .._internal.manifest import load_manifest
from .._internal.metadata.provenance import parse_source
from ..provenance import AttestResult, attest_provenance, builder_id
from . import cli
from ._options import model_options, origin_options, progress_bar
from ._signer import SignerOptions, signer_options

ATTESTATION_KIND: Final = "modelsign.attestation"


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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print what was attested as JSON (schema modelsign.attestation) on stdout.",
)
def attest_provenance_cmd(
    model: str,
    output: str | None,
    force: bool,
    tensor_hash: str,
    as_json: bool,
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
    with SignerOptions(**how).opened() as signer, progress_bar(True, "attesting") as progress:
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
    if as_json:
        click.echo(json.dumps(attestation_json(res), indent=2, sort_keys=True))


def attestation_json(res: AttestResult) -> dict[str, Any]:
    """What ``attest provenance --json`` prints: where it went, the builder, the model."""
    m = res.manifest
    return {
        "kind": ATTESTATION_KIND,
        "version": 1,
        "attestation": res.path,
        "model": m.name,
        "builder": builder_id(m.provenance.builder),
        "manifest_digest": m.digest(),
    }
