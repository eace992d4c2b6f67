"""``modelsign inspect``: a model, a manifest or a signature as readable tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click
from rich.console import Console
from rich.table import Table

from .._internal.manifest import FileEntry, Manifest
from . import cli
from ._options import model_options
from .sbom import load_target


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
    m, _, origin = load_target(target, ignore, allow_symlinks)
    if origin == "signature":
        click.echo(
            f"{target}: read from a signature, NOT verified (use `modelsign verify`)", err=True
        )
    if as_json:
        click.echo(json.dumps(m.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    render(m, show_tensors=show_tensors)


def human_size(n: int) -> str:
    """Bytes for a person: 512 B, 1.5 MiB, 3.2 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def render(m: Manifest, *, show_tensors: bool = False, console: Console | None = None) -> None:
    """Print the manifest of one model as tables."""
    # Off a terminal (pipes, logs) tables would fold at 80 columns: use a wide page.
    out = console or Console(width=None if sys.stdout.isatty() else 200)
    out.print(f"[bold]{m.name}[/bold]  manifest {m.digest()}")
    total = sum(f.size for f in m.files)
    out.print(
        f"{len(m.files)} files, {human_size(total)}; file digests {m.hashing.file}, "
        f"tensor digests {m.hashing.tensor or 'none (--no-tensors)'}"
    )
    if m.weights_digest:
        out.print(f"weights digest: {m.weights_digest}")
    out.print(_files(m))
    out.print(_quantization(m))
    out.print(_licences(m))
    verdict = m.licence.spdx or "none found"
    out.print(
        f"licence: {verdict}" + ("" if m.licence.agree else "  [red](sources disagree)[/red]")
    )
    out.print(_provenance(m))
    if m.findings:
        out.print(_findings(m))
    if m.ignored.paths:
        out.print("ignored: " + ", ".join(m.ignored.paths))
    if show_tensors:
        for table in _tensors(m.files):
            out.print(table)


def _files(m: Manifest) -> Table:
    files = Table(title="Files", title_justify="left")
    for col in ("path", "size", "format", "tensors", "dtypes", "bits/w", "flags", "sha256"):
        files.add_column(col, overflow="fold")
    for f in m.files:
        w = f.weights
        dtypes = (
            ", ".join(f"{k}×{v.tensors}" for k, v in w.quantization.dtypes.items()) if w else ""
        )
        bpw = w.quantization.bits_per_weight if w else None
        files.add_row(
            f.path,
            human_size(f.size),
            f.format,
            str(w.tensor_count) if w else "",
            dtypes,
            f"{bpw:.2f}" if bpw is not None else "",
            ", ".join(f.flags),
            f.sha256[:16] + "…",
        )
    return files


def _quantization(m: Manifest) -> Table:
    q = m.quantization
    quant = Table(title="Quantization", title_justify="left", show_header=False)
    quant.add_column("key")
    quant.add_column("value")
    quant.add_row("quantized", "yes" if q.quantized else "no")
    for key, value in (
        ("scheme", q.scheme),
        ("method", q.method),
        ("bits", q.bits),
        ("group size", q.group_size),
        ("format", q.format),
        ("bits per weight", q.bits_per_weight),
        ("from", q.source),
    ):
        if value is not None:
            quant.add_row(key, str(value))
    return quant


def _licences(m: Manifest) -> Table:
    lic = Table(title="Licence", title_justify="left")
    lic.add_column("source")
    lic.add_column("value")
    lic.add_column("SPDX")
    for s in m.licence.sources:
        lic.add_row(s.source, s.value, s.spdx or "?")
    return lic


def _provenance(m: Manifest) -> Table:
    p = m.provenance
    prov = Table(title="Provenance", title_justify="left", show_header=False)
    prov.add_column("key")
    prov.add_column("value", overflow="fold")
    if p.source:
        prov.add_row(
            "source", f"{p.source.repository}@{p.source.revision or '?'} ({p.source.origin})"
        )
    for b in p.base_models:
        prov.add_row(
            "base model", f"{b.name} ({b.relation or 'relation unknown'}; from {b.source})"
        )
    if p.builder:
        prov.add_row("builder", p.builder.kind)
        for k, v in sorted(p.builder.fields.items()):
            prov.add_row(f"  {k}", v)
    for parent in p.parents:
        prov.add_row("parent", f"{parent.name or ''} {parent.digest}")
    prov.add_row("tool", f"{m.tool.name} {m.tool.version}")
    return prov


def _findings(m: Manifest) -> Table:
    fnd = Table(title="Findings", title_justify="left")
    for col in ("severity", "code", "file", "message"):
        fnd.add_column(col, overflow="fold")
    for finding in m.findings:
        where = finding.path or ""
        if finding.tensor:
            where += f" [{finding.tensor}]"
        fnd.add_row(finding.severity, finding.code, where, finding.message)
    return fnd


def _tensors(files: list[FileEntry]) -> Iterator[Table]:
    """One table per weight file, every tensor a row."""
    for f in files:
        if f.weights is None:
            continue
        t = Table(title=f"Tensors of {f.path}", title_justify="left")
        for col in ("name", "dtype", "shape", "offset", "bytes", "digest"):
            t.add_column(col, overflow="fold")
        for te in f.weights.tensors:
            t.add_row(
                te.name,
                te.dtype,
                "×".join(map(str, te.shape)) or "scalar",
                str(te.offset),
                str(te.length),
                (te.digest or "")[:16],
            )
        yield t
