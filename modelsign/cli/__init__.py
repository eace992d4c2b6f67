"""The ``modelsign`` command line: a thin layer over the library.

Exit codes: 0 success, 1 verification failed, 2 usage or input error. Errors
are printed as ``error[CODE]: file: message`` — never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from .._internal._atomic import write_atomic
from .._internal.hashing import TENSOR_HASHES
from .._internal.manifest import build_manifest, load_manifest
from .._internal.metadata.provenance import parse_source
from .._version import __version__
from ..errors import InputError, ModelsignError

F = TypeVar("F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns library errors into a one-line diagnostic and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelsignError as exc:
            click.echo(exc.diagnostics(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelsign")
def cli() -> None:
    """Model weights as a signed supply-chain artifact.

    Write a manifest of a model package (file and tensor digests, quantization,
    licence, provenance), inspect it, sign it and verify it.
    """


@contextmanager
def _progress(
    enabled: bool, label: str, *, counting: bool = False
) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal (stderr), nothing otherwise.

    It counts bytes, with a transfer speed; ``counting`` counts items (N of M).
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amount: tuple[ProgressColumn, ...] = (
        (MofNCompleteColumn(),) if counting else (DownloadColumn(), TransferSpeedColumn())
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        *amount,
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def model_options(func: F) -> F:
    """Options that decide which files are part of the model."""
    func = click.option(
        "--allow-symlinks",
        is_flag=True,
        help="Follow symlinks that stay inside the model (never outside it).",
    )(func)
    func = click.option(
        "--ignore",
        "ignore",
        multiple=True,
        metavar="PATTERN",
        help="Leave out files matching PATTERN (fnmatch; recorded as ignored). Repeatable.",
    )(func)
    return func


def origin_options(func: F) -> F:
    """Where the model comes from: --source and --parent."""
    func = click.option(
        "--parent",
        "parents",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="MANIFEST",
        help="Manifest of a model this one derives from (recorded by digest). Repeatable.",
    )(func)
    func = click.option(
        "--source",
        metavar="REPO@REV",
        help="Source repository and revision, e.g. org/name@<commit>.",
    )(func)
    return func


def _refuse_existing(output: str | None, force: bool) -> None:
    """Fail before any work when ``output`` exists and may not be replaced.

    ``write_atomic`` checks again at the end, against a file created meanwhile.
    """
    if output and os.path.lexists(output) and not force:
        raise InputError(
            "output exists; pass --force to overwrite", code="OUTPUT_EXISTS", path=output
        )


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
    The manifest's digest is printed on stderr.
    """
    _refuse_existing(output, force)
    parent_manifests = [load_manifest(p) for p in parents]
    with _progress(True, "hashing") as progress:
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


@cli.command("inspect")
@click.argument("target", type=click.Path(exists=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as indented JSON.")
@click.option("--tensors", "show_tensors", is_flag=True, help="List every tensor.")
@model_options
def inspect_cmd(
    target: str,
    as_json: bool,
    show_tensors: bool,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
) -> None:
    """Show a model, a manifest or a signature for a person.

    TARGET is a model (folder, file, cache snapshot), a manifest JSON file, or
    a signature (its manifest comes from the attestation in the claims file
    beside it, read but not verified). Files, formats, tensor counts, dtypes
    and quantization, licences with their sources, provenance and findings,
    as tables.
    """
    from .inspect import render
    from .sbom import load_target

    m, _, origin = load_target(target, ignore, allow_symlinks)
    if origin == "signature":
        click.echo(
            f"{target}: read from a signature, NOT verified (use `modelsign verify`)", err=True
        )
    if as_json:
        import json

        click.echo(json.dumps(m.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    render(m, show_tensors=show_tensors)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="modelsign")


# Register the other commands on the group (they import from this module).
from . import diff as _diff  # noqa: E402,F401
from . import inventory as _inventory  # noqa: E402,F401
from . import sbom as _sbom  # noqa: E402,F401
from . import signing as _signing  # noqa: E402,F401
from . import watch as _watch  # noqa: E402,F401
