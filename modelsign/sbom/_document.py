"""Whole BOMs: models and their base models collected, serialized with their model cards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion

from .._internal.manifest import Manifest
from .._version import __version__
from ..codes import Code
from ._card import model_card_of
from ._component import Origin, base_component, model_component_of
from ._fields import ref_of

#: UUIDv5 namespace of BOM serial numbers (the name is the manifest digest).
SERIAL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://modelsign.dev/cyclonedx/serial")


def _tool() -> Component:
    return Component(
        type=ComponentType.APPLICATION,
        name="modelsign",
        version=__version__,
        bom_ref="tool:modelsign",
    )


class BomBuilder:
    """Collects models (and their base models) into one CycloneDX 1.6 BOM.

    ``subject`` is what the BOM describes (``metadata.component``), e.g. a
    device for an inventory; it depends on every model added. A single model
    can be the subject itself (``add_model(..., subject=True)``), as
    :func:`ml_bom` does. Model cards are kept beside the library's ``Bom``
    and written by :meth:`to_json`.
    """

    def __init__(
        self, subject: Component | None = None, *, timestamp: datetime | None = None
    ) -> None:
        self._subject = subject
        self._timestamp = timestamp
        self._models: dict[str, Component] = {}
        self._bases: dict[str, Component] = {}
        self._depends: dict[str, set[str]] = {}
        self._cards: dict[str, dict[str, Any]] = {}
        self._digests: set[str] = set()

    def add_model(
        self,
        manifest: Manifest,
        *,
        card: Mapping[str, object] | None = None,
        origin: Origin | None = None,
        subject: bool = False,
    ) -> Component:
        """Add one model; returns its component (the same one for the same manifest)."""
        digest = manifest.digest()
        ref = ref_of(digest)
        if ref in self._models:
            return self._models[ref]
        if subject and self._subject is not None:
            raise ValueError("the BOM already has a subject")
        component = model_component_of(manifest, digest, card, origin)
        self._models[ref] = component
        self._digests.add(digest)
        if subject:
            self._subject = component
        bases = self._depends.setdefault(ref, set())
        for b in manifest.provenance.base_models:
            base = base_component(b)
            key = str(base.bom_ref)
            self._bases.setdefault(key, base)
            bases.add(key)
        mc = model_card_of(manifest, digest, card)
        if mc is not None:
            self._cards[ref] = mc
        return component

    def serial_number(self) -> uuid.UUID:
        """UUIDv5 of the manifest digests (and the subject, when it is not a model)."""
        names = sorted(self._digests)
        if self._subject is not None and str(self._subject.bom_ref) not in self._models:
            names.append(f"subject:{self._subject.bom_ref}")
        return uuid.uuid5(SERIAL_NAMESPACE, "\n".join(names))

    def bom(self) -> Bom:
        """The library object (everything but the model cards)."""
        metadata = BomMetaData(component=self._subject, tools=None)
        metadata.tools.components.add(_tool())
        metadata.timestamp = self._timestamp  # type: ignore[assignment]  # None: no timestamp
        subject_ref = str(self._subject.bom_ref) if self._subject is not None else None
        components = [c for r, c in self._models.items() if r != subject_ref]
        bom = Bom(
            serial_number=self.serial_number(),
            metadata=metadata,
            components=components + [b for r, b in self._bases.items() if r != subject_ref],
        )
        by_ref = {**self._bases, **self._models}
        for ref, deps in sorted(self._depends.items()):
            bom.register_dependency(by_ref[ref], [by_ref[d] for d in sorted(deps)])
        if self._subject is not None and subject_ref not in self._models:
            bom.register_dependency(self._subject, components)
        return bom

    def model_cards(self) -> dict[str, dict[str, Any]]:
        """The ``modelCard`` of each model component, by its ``bom-ref``."""
        return dict(self._cards)

    def to_json(self) -> str:
        """The complete BOM as CycloneDX 1.6 JSON (indented, newline-terminated)."""
        return bom_json(self.bom(), self._cards)


def bom_json(bom: Bom, model_cards: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Serialize ``bom`` as CycloneDX 1.6 JSON, adding ``modelCard`` objects by ``bom-ref``."""
    text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    doc = json.loads(text)
    if model_cards:
        for component in _components(doc):
            mc = model_cards.get(component.get("bom-ref", ""))
            if mc is not None and component.get("type") == "machine-learning-model":
                component["modelCard"] = dict(mc)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _components(doc: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    stack: list[dict[str, Any]] = []
    subject = doc.get("metadata", {}).get("component")
    if isinstance(subject, dict):
        stack.append(subject)
    stack += [c for c in doc.get("components", []) if isinstance(c, dict)]
    while stack:
        c = stack.pop()
        yield c
        stack += [s for s in c.get("components", []) if isinstance(s, dict)]


def _builder(
    manifest: Manifest,
    card: Mapping[str, object] | None,
    origin: Origin | None,
    timestamp: datetime | None,
) -> BomBuilder:
    builder = BomBuilder(timestamp=timestamp)
    builder.add_model(manifest, card=card, origin=origin, subject=True)
    return builder


def ml_bom(
    manifest: Manifest,
    *,
    card: Mapping[str, object] | None = None,
    origin: Origin | None = None,
    timestamp: datetime | None = None,
) -> Bom:
    """The ML-BOM of one model: the model is the subject, its base models components.

    The returned library object has no model card (cyclonedx-python-lib cannot
    hold one); :func:`ml_bom_json` writes the complete BOM.
    """
    return _builder(manifest, card, origin, timestamp).bom()


def ml_bom_json(
    manifest: Manifest,
    *,
    card: Mapping[str, object] | None = None,
    origin: Origin | None = None,
    timestamp: datetime | None = None,
) -> str:
    """The ML-BOM of one model as CycloneDX 1.6 JSON, model card included."""
    return _builder(manifest, card, origin, timestamp).to_json()


def signature_manifest(data: bytes, where: str) -> Manifest:
    """The modelsign manifest inside a signature bundle — NOT verified.

    The bundle and statement are parsed strictly (as ``verify`` does before it
    checks the signature), but nothing about the signer is checked.
    """
    from .._internal.signature.attestation import load_signature
    from ..errors import InputError, ModelsignError

    try:
        manifest = load_signature(where, data=data).statement.manifest
    except ModelsignError as exc:
        raise InputError(
            f"cannot read the signature: {exc.message}", code=exc.code, path=where
        ) from exc
    if manifest is None:
        raise InputError(
            "the signature carries no modelsign manifest (an OMS-only signature)",
            code=Code.SIGNATURE_NO_MANIFEST,
            path=where,
        )
    return manifest
