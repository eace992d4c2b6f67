"""The ML-BOM of a device: one CycloneDX component per model, with the inventory's verdict."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .._internal.findings import Finding
from .._internal.manifest import Hashing, Ignored, Manifest, Tool
from .._internal.metadata.licence import Licence
from .._internal.metadata.provenance import Provenance
from .._internal.metadata.quantization import model_quantization
from .._version import __version__
from ..codes import Code
from .jobs import Job
from .report import Inventory, InventoryEntry, entry_key

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component


def empty_manifest(name: str, reason: str | None, location: str) -> Manifest:
    """A manifest with nothing but why, so an unreadable model still has its BOM component.

    The reason is its one finding, named by location: two unreadable models of
    the same name elsewhere stay two components.
    """
    return Manifest(
        name=name,
        single_file=False,
        tool=Tool(version=__version__),
        hashing=Hashing(tensor=None, header="sha256"),
        allow_symlinks=False,
        ignored=Ignored(patterns=[], paths=[]),
        files=[],
        weights_digest=None,
        quantization=model_quantization({}, None, None)[0],  # of no files: none
        licence=Licence(spdx=None, sources=[], agree=True),
        provenance=Provenance(),
        findings=[Finding(code=Code.INVENTORY_NO_MANIFEST, message=reason or "", file=location)],
    )


def bom_name(job: Job, tree_name: str) -> str:
    return tree_name if job.store == "huggingface" else job.name


def cyclonedx_json(inventory: Inventory, *, timestamp: datetime | None = None) -> str:
    """The device's CycloneDX 1.6 ML-BOM: the host is the subject, one component per model.

    Each model component comes from :class:`~modelsign.sbom.BomBuilder` with
    its manifest — the verified signed one, the fully hashed one under
    ``verify``, or the header-only one — and carries the inventory's verdict as
    ``modelsign:inventory:*`` properties. File hashes are given only for bytes
    that were hashed; a header-only manifest's own digest properties are left
    out, since that manifest is not one anybody signed or could check.
    """
    # Imported here: cyclonedx is only needed when a BOM is asked for.
    from cyclonedx.model.component import Component, ComponentType

    from ..sbom import NAMESPACE, BomBuilder

    device = Component(
        type=ComponentType.DEVICE,
        name=inventory.host,
        bom_ref=f"device:{inventory.host}",
        properties=[_prop("scanned_at", inventory.scanned_at)]
        + [_prop("store", f"{s.kind} {s.path}") for s in inventory.stores if s.present],
    )
    builder = BomBuilder(subject=device, timestamp=timestamp)
    added: set[str] = set()
    for entry in inventory.models:
        manifest, origin = inventory._manifests.get(
            entry_key(entry), (empty_manifest(entry.name, entry.reason, entry.location), None)
        )
        component = builder.add_model(manifest, origin=origin)
        ref = str(component.bom_ref)
        props = [
            _prop("location", entry.location),
            _prop("status", f"{entry.status}: {entry.location}"),
        ]
        if ref in added:  # the same model at a second place: record that place
            component.properties = [*component.properties, *props]
            continue
        added.add(ref)
        header_only = origin is None
        drop = (f"{NAMESPACE}manifest:", f"{NAMESPACE}hashing:")
        kept = [p for p in component.properties if not (header_only and p.name.startswith(drop))]
        component.properties = [*kept, *props, *_verdict(entry)]
        _keep_hashed(component)
    return builder.to_json()


def _prop(name: str, value: str) -> Property:
    from cyclonedx.model import Property

    from ..sbom import NAMESPACE

    return Property(name=f"{NAMESPACE}inventory:{name}", value=value)


def _verdict(entry: InventoryEntry) -> list[Property]:
    """What the inventory found, beyond where: recorded once per model component."""
    props = [
        _prop("name", entry.name),
        _prop("store", entry.store),
        _prop("checked", entry.checked),
    ]
    if entry.reason:
        props.append(_prop("reason", entry.reason))
    if entry.signature:
        props.append(_prop("signature", entry.signature))
    if entry.signer:
        props.append(_prop("signer", entry.signer))
    props += [_prop("policy", f"{r.rule}: {r.status}") for r in entry.policy or []]
    return props


def _keep_hashed(component: Component) -> None:
    """Drops the hashes of bytes that were not hashed (left empty by a header-only manifest)."""
    component.hashes = [h for h in component.hashes if h.content]
    subs = list(component.components)
    for sub in subs:
        sub.hashes = [h for h in sub.hashes if h.content]
    component.components = subs  # re-sorted: hashes are part of a component's order
