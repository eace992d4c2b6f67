"""``modelsign diff``: what changed between two models, manifests or signatures."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from .._internal._text import plural
from ..diff import Change, DiffSide, ModelDiff, diff_models
from . import cli
from ._options import model_options, progress_bar

#: Entries shown per section before "… and N more": the report stays on one screen.
MAX_SHOWN = 10


def _printable(text: str) -> str:
    """Control and format characters escaped: names come from files anyone can write."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _side(label: str, s: DiffSide) -> str:
    kind = s.kind
    where = s.path if s.path is not None else s.name
    counts = f"{plural(s.files, 'file')}, {plural(s.tensors, 'tensor')}"
    text = f"{label}: {where} ({kind} {s.name!r}: {counts}"
    if s.signer is not None:
        text += f"; signed by {s.signer.describe()}, unverified"
    return text + ")"


def _line(c: Change) -> str:
    where = c.file or ""
    if c.tensor is not None:
        where = f"{c.tensor} ({c.file})" if c.file else c.tensor
    elif c.code == "FILE_RENAMED":
        where = f"{c.old_path} → {c.file}"
    elif c.old_path is not None:
        where = f"{c.file} (was {c.old_path})"
    return f"  {c.code:24s} {where}{': ' if where else ''}{c.message}"


def _section(title: str, changes: Sequence[Change]) -> list[str]:
    if not changes:
        return []
    lines = [f"{title}:"] + [_line(c) for c in changes[:MAX_SHOWN]]
    if len(changes) > MAX_SHOWN:
        lines.append(f"  … and {len(changes) - MAX_SHOWN} more (--json lists all)")
    return lines


def render(d: ModelDiff) -> str:
    """The human report: both sides, the one-line summary, then the changes by kind."""
    lines = [_side("old", d.old), _side("new", d.new)]
    lines.append(("" if d.identical else "DIFFERENT: ") + d.summary)
    lines += _section("files", d.files)
    lines += _section("tensors", d.tensors)
    lines += _section("model", d.model)
    lines += [f"note: {n}" for n in d.notes]
    return "\n".join(_printable(line) for line in lines)


@cli.command("diff")
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON (stable schema).")
@model_options
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Parallel hashing threads.")
def diff_cmd(
    old: str,
    new: str,
    as_json: bool,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
    jobs: int | None,
) -> None:
    """Show what changed from OLD to NEW.

    Each of OLD and NEW is a model (folder, file, cache snapshot), a manifest
    JSON file, or a signature (*.sig): its signed manifest is read WITHOUT
    verifying the signature — run modelsign verify to trust it. Two manifests
    or signatures are enough: no weights are needed.

    Reports added, removed, changed and renamed files; added, removed,
    retyped and modified tensors, grouped by layer; header, metadata and chat
    template changes; quantization, licence, provenance and weights digest
    changes; and the signer when both are signatures.

    Exit codes, as diff(1): 0 identical, 1 different, 2 error.
    """
    with progress_bar(not as_json, "hashing") as progress:
        d = diff_models(
            old, new, ignore=ignore, allow_symlinks=allow_symlinks, jobs=jobs, progress=progress
        )
    if as_json:
        click.echo(json.dumps(d.model_dump(mode="json"), indent=2, sort_keys=True))
    else:
        click.echo(render(d))
    if not d.identical:
        click.get_current_context().exit(1)
