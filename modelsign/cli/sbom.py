"""``modelsign sbom``: a CycloneDX 1.6 ML-BOM of a model, a manifest or a signature."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import click

from .._internal._atomic import open_regular, write_atomic
from ..codes import Code
from ..errors import InputError
from . import cli
from ._options import model_options, progress_bar, refuse_existing
from ._report import json_option

if TYPE_CHECKING:
    from .._internal.manifest import Manifest
    from ..sbom import Origin

_CARD = "README.md"
_JSON_LIMIT = 256 << 20  # a manifest or signature of a very large model still fits


def _read_json_input(path: str) -> bytes | None:
    """The bytes of ``path`` when it looks like JSON (a manifest or signature candidate).

    Only the first bytes of anything else (a single-file model) are read.
    """
    try:
        with open_regular(path) as fh:
            if os.fstat(fh.fileno()).st_size > _JSON_LIMIT:
                return None
            head = fh.read(64)
            if head.lstrip()[:1] != b"{":
                return None
            data = head + fh.read(_JSON_LIMIT + 1 - len(head))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", code=Code.UNREADABLE, path=path) from exc
    return data if len(data) <= _JSON_LIMIT else None


def _json_kind(data: bytes) -> str | None:
    """``manifest``, ``signature`` (a Sigstore bundle) or None for any other JSON."""
    from .._internal.manifest import MANIFEST_KIND

    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("kind") == MANIFEST_KIND:
        return "manifest"
    if "dsseEnvelope" in obj or str(obj.get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        return "signature"
    return None


def load_target(
    target: str, ignore: tuple[str, ...], allow_symlinks: bool
) -> tuple[Manifest, bytes | None, Origin]:
    """TARGET's manifest, its model card's bytes as hashed (a model's only) and its origin."""
    from .._internal.manifest import parse_manifest
    from .._internal.manifest.build import hash_tree, manifest_from_digests
    from .._internal.signature.own import model_tree
    from ..sbom import signature_manifest

    data = _read_json_input(target) if os.path.isfile(target) else None
    if data is not None:
        kind = _json_kind(data)
        if kind == "manifest":
            return parse_manifest(data, target), None, "manifest"
        if kind == "signature":
            return signature_manifest(data, target), None, "signature"
    # modelsign's own signatures are never part of a model: the manifest (and
    # its digest) of a signed model is the one `sign` made.
    tree, _ = model_tree(target, ignore=ignore, allow_symlinks=allow_symlinks)
    with progress_bar(True, "hashing") as progress:
        digests = hash_tree(tree, tensor_hash="blake3", progress=progress)
    m = manifest_from_digests(tree, digests, tensor_hash="blake3")
    # The card's bytes were captured as they were hashed: never read a second time.
    card = next((d.captured for d in digests if d.file.path == _CARD), None)
    return m, card, "model"


def build_time() -> datetime:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else the current time."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError) as exc:
            raise InputError(
                f"SOURCE_DATE_EPOCH is not a Unix time: {epoch!r}", code=Code.BAD_SOURCE_DATE_EPOCH
            ) from exc
    return datetime.now(tz=timezone.utc).replace(microsecond=0)


@cli.command("sbom")
@click.argument("model", type=click.Path(exists=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (else stdout).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option(
    "--timestamp",
    is_flag=True,
    help="Record when the BOM was made (SOURCE_DATE_EPOCH if set); "
    "without it the same model gives the same bytes.",
)
@model_options
@json_option("Report errors as JSON (modelsign.error) on stdout; the BOM is JSON already.")
def sbom_cmd(
    model: str,
    output: str | None,
    force: bool,
    timestamp: bool,
    ignore: tuple[str, ...],
    allow_symlinks: bool,
) -> None:
    """Write a CycloneDX 1.6 ML-BOM (JSON) of MODEL.

    MODEL is a model (folder, single file, Hugging Face cache snapshot), a
    manifest JSON file, or a signature bundle — whose manifest is used without
    verifying the signature, which the BOM records. Files with SHA-256 hashes,
    licence, source repository, base models, model card data; formats, tensor
    counts, weights digest, quantization and findings as modelsign: properties.
    """
    from .._internal.metadata.card import parse_model_card
    from ..sbom import ml_bom_json

    refuse_existing(output, force)
    m, card_bytes, origin = load_target(model, ignore, allow_symlinks)
    card = parse_model_card(card_bytes, _CARD)[0] if card_bytes is not None else None
    if origin == "signature":
        click.echo(
            "warning: the signature was not verified; the BOM says so "
            "(run `modelsign verify` to check it)",
            err=True,
        )
    text = ml_bom_json(m, card=card, origin=origin, timestamp=build_time() if timestamp else None)
    if output:
        write_atomic(output, text.encode("utf-8"), force=force)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
    click.echo(f"manifest digest: {m.digest()}", err=True)
