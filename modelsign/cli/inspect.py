"""``modelsign inspect``: a model, a manifest or a signature as readable tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._internal._text import plural
from .._internal.manifest import Manifest, TensorEntry, WeightsInfo
from . import cli
from ._options import model_options
from .sbom import load_target

_MAX_NAMES = 8  # tensors named per storage in the storages table


@cli.command("inspect")
@click.argument("target", type=click.Path(exists=False))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as indented JSON.")
@click.option("--tensors", "show_tensors", is_flag=True, help="List every tensor.")
@click.option(
    "--short", is_flag=True, help="Digests cut to 16 hex digits in the tables (full by default)."
)
@model_options
def inspect_cmd(
    target: str,
    as_json: bool,
    show_tensors: bool,
    short: bool,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
) -> None:
    """Show a model, a manifest or a signature for a person.

    TARGET is a model (folder, file, cache snapshot), a manifest JSON file, or
    a signature (its manifest comes from the attestation in the claims file
    beside it, read but not verified). Files, formats, tensor counts, dtypes
    and quantization, licences with their sources, provenance and findings,
    as tables. GGUF shapes are listed as GGUF and llama.cpp list them:
    fastest-varying dimension first.
    """
    m, _, origin = load_target(target, ignore, allow_symlinks)
    if origin == "signature":
        click.echo(
            f"{target}: read from a signature, NOT verified (use `modelsign verify`)", err=True
        )
    if as_json:
        click.echo(json.dumps(m.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    render(m, show_tensors=show_tensors, short=short)


def human_size(n: int) -> str:
    """Bytes for a person: 512 B, 1.5 MiB, 3.2 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def render(
    m: Manifest,
    *,
    show_tensors: bool = False,
    short: bool = False,
    console: Console | None = None,
) -> None:
    """Print the manifest of one model as tables.

    Everything from the model (names, paths, licences, messages) is printed as
    plain text, never as rich markup, and nothing is highlighted: a digest is
    printed as it is, whatever it holds.
    """
    # Off a terminal (pipes, logs) tables would fold at 80 columns: use a wide page.
    out = console or Console(width=None if sys.stdout.isatty() else 200, highlight=False)

    def say(*parts: str | tuple[str, str]) -> None:
        out.print(Text.assemble(*parts), highlight=False)

    say((m.name, "bold"), f"  manifest {m.digest()}")
    total = sum(f.size for f in m.files)
    say(
        f"{plural(len(m.files), 'file')}, {human_size(total)}; file digests {m.hashing.file}, "
        f"tensor digests {m.hashing.tensor or 'none (--no-tensors)'}"
    )
    if m.weights_digest:
        say(f"weights digest: {m.weights_digest}")
    out.print(_files(m, short))
    out.print(_quantization(m))
    out.print(_licences(m))
    verdict = m.licence.spdx or "none found"
    say(f"licence: {verdict}", ("" if m.licence.agree else "  (sources disagree)", "red"))
    out.print(_provenance(m))
    if m.findings:
        out.print(_findings(m))
    if m.ignored.paths:
        say("ignored: " + ", ".join(m.ignored.paths))
    if show_tensors:
        for table in _tensors(m, short):
            out.print(table)


def _table(title: str, columns: Sequence[str], **options: Any) -> Table:
    """A table whose cells are plain text (``_row``): never markup, never highlighted."""
    table = Table(title=Text(title), title_justify="left", highlight=False, **options)
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def _row(table: Table, *cells: str) -> None:
    table.add_row(*(Text(c) for c in cells))


def _digest(hex_digest: str, short: bool) -> str:
    return hex_digest[:16] + "…" if short and len(hex_digest) > 16 else hex_digest


def _files(m: Manifest, short: bool) -> Table:
    files = _table(
        "Files", ("path", "size", "format", "tensors", "dtypes", "bits/w", "flags", "sha256")
    )
    for f in m.files:
        w = f.weights
        dtypes = (
            ", ".join(f"{k}×{v.tensors}" for k, v in w.quantization.dtypes.items()) if w else ""
        )
        bpw = w.quantization.bits_per_weight if w else None
        _row(
            files,
            f.path,
            human_size(f.size),
            f.format,
            str(w.tensor_count) if w else "",
            dtypes,
            f"{bpw:.2f}" if bpw is not None else "",
            ", ".join(f.flags),
            _digest(f.sha256, short),
        )
    return files


def _quantization(m: Manifest) -> Table:
    q = m.quantization
    quant = _table("Quantization", ("key", "value"), show_header=False)
    _row(quant, "quantized", "yes" if q.quantized else "no")
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
            _row(quant, key, str(value))
    return quant


def _licences(m: Manifest) -> Table:
    lic = _table("Licence", ("source", "value", "SPDX"))
    for s in m.licence.sources:
        _row(lic, s.source, s.value, s.spdx or "?")
    return lic


def _provenance(m: Manifest) -> Table:
    p = m.provenance
    prov = _table("Provenance", ("key", "value"), show_header=False)
    if p.source:
        source = f"{p.source.repository}@{p.source.revision or '?'} ({p.source.origin})"
        _row(prov, "source", source)
    for b in p.base_models:
        _row(prov, "base model", f"{b.name} ({b.relation or 'relation unknown'}; from {b.source})")
    if p.builder:
        _row(prov, "builder", p.builder.kind)
        for k, v in sorted(p.builder.fields.items()):
            _row(prov, f"  {k}", v)
    for parent in p.parents:
        _row(prov, "parent", f"{parent.name or ''} {parent.digest}")
    _row(prov, "tool", f"{m.tool.name} {m.tool.version}")
    return prov


def _findings(m: Manifest) -> Table:
    fnd = _table("Findings", ("severity", "code", "file", "message"))
    for finding in m.findings:
        where = finding.path or ""
        if finding.tensor:
            where += f" [{finding.tensor}]"
        _row(fnd, finding.severity, finding.code, where, finding.message)
    return fnd


def _tensors(m: Manifest, short: bool) -> Iterator[Table]:
    """One table per weight file, every tensor a row (GGUF shapes in GGUF's own order),
    and for an archive (torch checkpoint, ``.npz``, ``.keras``) a table of its storages."""
    hashed = m.hashing.tensor is not None
    for f in m.files:
        w = f.weights
        if w is None:
            continue
        stored = bool(w.storages)
        columns = ("name", "dtype", "shape", *(("storage",) * stored), "offset", "bytes", "digest")
        t = _table(f"Tensors of {f.path}", columns)
        for te in w.tensors:
            where = (te.storage or "",) if stored else ()
            digest = _tensor_digest(te, w.format, hashed, short)
            _row(
                t,
                te.name,
                te.dtype,
                shape_text(te.shape),
                *where,
                str(te.offset),
                str(te.length),
                digest,
            )
        yield t
        if stored:
            yield _storages(f.path, w, short)


def _tensor_digest(te: TensorEntry, fmt: str, hashed: bool, short: bool) -> str:
    """A tensor's digest; for one without a digest of its own, the storage that covers it."""
    if te.digest is not None:
        return _digest(te.digest, short)
    if te.storage is None or not hashed:
        return ""
    if fmt == "pytorch":  # not a contiguous range of its storage: a strided view
        return f"view of storage {te.storage} (no digest of its own: the storage's covers it)"
    return f"no digest of its own: storage {te.storage}'s covers it"


def _storages(path: str, w: WeightsInfo, short: bool) -> Table:
    """The storages of an archive: where each lies, its digest, the tensors in it."""
    table = _table(f"Storages of {path}", ("storage", "offset", "bytes", "digest", "tensors"))
    held: dict[str, list[str]] = {}
    for te in w.tensors:
        held.setdefault(te.storage or "", []).append(te.name)
    for s in w.storages:
        names = held.get(s.name, [])
        more = f" (+{len(names) - _MAX_NAMES} more)" if len(names) > _MAX_NAMES else ""
        _row(
            table,
            s.name,
            str(s.offset),
            str(s.length),
            _digest(s.digest or "", short),
            ", ".join(names[:_MAX_NAMES]) + more,
        )
    return table


def shape_text(shape: Sequence[int]) -> str:
    """``64×256``: a tensor's shape as its file records it (GGUF: fastest dimension first)."""
    return "×".join(map(str, shape)) or "scalar"
