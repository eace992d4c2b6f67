"""``modelsign inventory``: which models are on this device, and are they the ones we signed?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .._internal._atomic import write_atomic
from .._internal._text import plural
from . import cli
from ._inventory_table import BLOCKED, Row, print_table, terminal_width, wrap_units
from ._options import progress_bar, refuse_existing
from ._trust_options import TrustOptions, trust_options
from .inspect import human_size

if TYPE_CHECKING:
    from ..inventory import Inventory, InventoryEntry

_STYLES: dict[str, str] = {
    "verified": "green",
    "policy-failed": "red",
    "signed-untrusted": "yellow",
    "unsigned": "yellow",
    "tampered": "bold red",
    "unsafe-format": "red",
    "unreadable": "magenta",
}


def _display_name(m: InventoryEntry) -> str:
    if m.revision is None:
        return m.name
    repo = m.name.rsplit("@", 1)[0]
    at = m.refs[0] if m.refs else m.revision[:12]
    return f"{repo}@{at}" + (f" ({m.revision[:12]})" if m.refs else "")


def _rows(models: list[InventoryEntry]) -> list[Row]:
    rows = []
    for m in models:
        weights = [f for f in m.formats if f != "opaque"] or m.formats
        q = m.quantization
        cells = {
            "store": m.store,
            "size": human_size(m.size),
            "format": ",".join(weights),
            "quant": (q.scheme or ("quantized" if q.quantized else "none")) if q else "",
            "licence": m.licence or "",
            "signed": "yes" if m.signature else "no",
            "checked": m.checked,
        }
        # Text, never markup: names and reasons come from files on disk.
        rows.append(Row(m.status, _STYLES[m.status], m.blocked, _display_name(m), cells, m.reason))
    return rows


def _render(inventory: Inventory, models: list[InventoryEntry]) -> None:
    from rich.console import Console
    from rich.text import Text

    width = terminal_width()
    console = Console(width=width or 80, soft_wrap=width is None, highlight=False)
    if not models:
        console.print("no models found")
        for s in inventory.stores:
            origin = "" if s.origin in ("default", "root") else f", {s.origin}"
            where = "scanned" if s.present else "absent"
            console.print(Text(f"  {where:8} {s.path} ({s.kind}{origin})"))
        return
    lay = print_table(console, _rows(models), width)
    counts = [f"{n} {s}" for s, n in inventory.counts().items()]
    blocked = sum(1 for m in models if m.blocked)
    tail = [f"{blocked} blocked ({BLOCKED})"] if blocked else []
    if inventory.policy and not blocked:
        tail = ["none blocked by the policy"]
    units = [f"{plural(len(models), 'model')}:", *[c + "," for c in counts[:-1]], counts[-1]]
    if tail:
        units[-1] += ";"
    for line in wrap_units(units + tail, width):
        console.print(Text(line))
    if lay.hidden:
        left_out = f"({', '.join(lay.hidden)} left out at {width} columns; --json has every field)"
        for line in wrap_units(left_out.split(), width):
            console.print(Text(line, style="dim"))


def _warn_missing_stores(inventory: Inventory) -> None:
    """A store an environment variable names but that is not there: no models, and said so."""
    for s in inventory.stores:
        if not s.present and s.origin not in ("default", "root"):
            click.echo(f"warning: {s.origin}={s.path} does not exist; no models there", err=True)


@cli.command("inventory")
@click.argument("roots", nargs=-1, type=click.Path(exists=False), metavar="[ROOT]...")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(dir_okay=False),
    help="Judge every model by this policy (its signers are trusted); signed models are "
    "verified in full, as they are with --key, --cert-chain or --identity.",
)
@click.option(
    "--verify",
    "verify_all",
    is_flag=True,
    help="Hash every file: every content address and every signature's content is checked.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the inventory as JSON.")
@click.option(
    "--cyclonedx",
    "bom_out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write a CycloneDX 1.6 ML-BOM of the device to FILE.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing --cyclonedx FILE.")
@click.option(
    "--sort",
    "sort_by",
    type=click.Choice(["status", "size", "name"]),
    default="status",
    show_default=True,
    help="Order of the table and the JSON: worst status, largest, or by name first.",
)
@click.option(
    "--no-default-stores",
    is_flag=True,
    help="Scan only the ROOTs, not the runtimes' default stores.",
)
@click.option(
    "--require-signed",
    is_flag=True,
    help="Block (exit 1) every model without a signature, and every unreadable one.",
)
@trust_options
@click.pass_context
def inventory_cmd(
    ctx: click.Context,
    /,
    roots: tuple[str, ...],
    policy_file: str | None,
    verify_all: bool,
    as_json: bool,
    bom_out: str | None,
    force: bool,
    sort_by: str,
    no_default_stores: bool,
    require_signed: bool,
    **trust: Any,
) -> None:
    """List the models on this machine and whether they are the ones you signed.

    Scans the Hugging Face cache (HF_HUB_CACHE, HF_HOME), Ollama's store
    (OLLAMA_MODELS), LM Studio's models folder (LMSTUDIO_MODELS), the llama.cpp
    cache (LLAMA_CACHE) and every ROOT for safetensors, GGUF and pickle models.
    Each gets a status: verified, policy-failed, signed-untrusted, unsigned,
    tampered, unsafe-format or unreadable. Weights are never loaded; without
    --verify only headers and small files are read. Trust signers by --key,
    --cert-chain or --identity/--issuer (as verify does), or by the signers
    of --policy; without either, signatures are reported, not believed.

    Exit codes: 0 when no model is blocked; 1 when one is (marked ✗):
    tampered (with or without a policy), signed but not verified by the
    trust given, failing an enforced rule of --policy, or unsigned or
    unreadable under --require-signed; 2 on a usage or input error (a ROOT
    that does not exist, a policy or key that cannot be read).
    """
    from ..inventory import scan

    if as_json and bom_out:
        raise click.UsageError("give --json or --cyclonedx, not both")
    if no_default_stores and not roots:
        raise click.UsageError("nothing to scan: give a ROOT, or leave out --no-default-stores")
    refuse_existing(bom_out, force)
    policy, verifier = TrustOptions(**trust).resolve(policy_file, required=False)
    with progress_bar(True, "scanning models", counting=True) as progress:
        inventory = scan(
            roots,
            default_stores=not no_default_stores,
            policy=policy,
            verify=verify_all,
            progress=progress,
            verifier=verifier,
            require_signed=require_signed,
        )
    _warn_missing_stores(inventory)
    _output(inventory, sort_by, as_json, bom_out, force)
    if inventory.blocked:
        ctx.exit(1)


def _output(
    inventory: Inventory, sort_by: str, as_json: bool, bom_out: str | None, force: bool
) -> None:
    """The table or the JSON on stdout, and the ML-BOM to ``bom_out``."""
    from ..inventory import cyclonedx_json, sort_models
    from .sbom import build_time

    models = sort_models(inventory.models, sort_by)  # type: ignore[arg-type]
    if as_json:
        shown: Any = inventory.model_copy(update={"models": models})
        click.echo(shown.model_dump_json(indent=2))
    else:
        _render(inventory, models)
    if bom_out:
        text = cyclonedx_json(inventory, timestamp=build_time())
        write_atomic(bom_out, text.encode("utf-8"), force=force)
        click.echo(f"wrote {bom_out}", err=True)
