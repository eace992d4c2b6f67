"""``modelsign manifest``: the manifest (canonical JSON) of a model."""

from __future__ import annotations

import click

from .._internal._atomic import write_atomic
from .._internal.hashing import TENSOR_HASHES
from .._internal.manifest import load_manifest
from .._internal.metadata.provenance import parse_source
from ..sign import build_manifest
from . import cli
from ._options import model_options, origin_options, progress_bar, refuse_existing
from ._report import json_option


@cli.command("manifest")
@click.argument("model", type=click.Path(exists=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (else stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--no-tensors", is_flag=True, help="Skip tensor digests (file digests only).")
@click.option(
    "--tensor-hash",
    type=click.Choice(TENSOR_HASHES),
    default="blake3",
    show_default=True,
    help="Tensor digest algorithm; sha256 for FIPS-bound users.",
)
@model_options
@json_option("Report errors as JSON (modelsign.error) on stdout; the manifest is JSON already.")
@origin_options
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Parallel hashing threads.")
def manifest_cmd(
    model: str,
    output: str | None,
    force: bool,
    no_tensors: bool,
    tensor_hash: str,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    source: str | None,
    parents: tuple[str, ...],
    jobs: int | None,
) -> None:
    """Write the manifest (canonical JSON) of MODEL.

    MODEL is a folder, a single file, or a Hugging Face cache snapshot
    (models--org--name/snapshots/<commit>, or models--org--name via refs/main).
    The manifest's digest is printed on stderr: for a signed model, the one
    `sign` printed (modelsign's own signatures are never part of a model).
    """
    refuse_existing(output, force)
    parent_manifests = [load_manifest(p) for p in parents]
    with progress_bar(True, "hashing") as progress:
        m = build_manifest(
            model,
            tensor_hash=None if no_tensors else tensor_hash,  # type: ignore[arg-type]
            ignore=ignore,
            allow_symlinks=allow_symlinks,
            source=parse_source(source) if source else None,
            parents=parent_manifests,
            jobs=jobs,
            progress=progress,
        )
    data = m.canonical_bytes()
    if output:
        write_atomic(output, data + b"\n", force=force)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(data.decode("utf-8"))
    click.echo(f"manifest digest: {m.digest()}", err=True)
