"""CycloneDX 1.6 ML-BOMs of model packages, built from their manifests.

A manifest becomes a ``machine-learning-model`` component: its files are
``file`` sub-components with their SHA-256, the licence an SPDX licence or
expression, the source repository an external reference and a purl, base
models separate components it depends on. What CycloneDX has no field for —
file formats, tensor counts, the weights digest, quantization, the licence
evidence, findings — is recorded as properties in the ``modelsign:``
namespace. The model card's front matter fills the component's ``modelCard``
(task, datasets, reported metrics).

The BOM is deterministic: every ``bom-ref`` is derived from the manifest, the
serial number is a UUIDv5 of the manifest digest, and there is no timestamp
unless one is asked for — the same model gives the same bytes.

cyclonedx-python-lib builds and serializes everything except ``modelCard``,
which it does not model yet (``Component.model_card`` is not implemented there); the
model card is added to the serialized JSON, so :meth:`BomBuilder.to_json` (and
:func:`ml_bom_json`) is the complete BOM and :func:`ml_bom` the library object
without it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import quote

from cyclonedx.exception.model import InvalidUriException
from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.license import (
    DisjunctiveLicense,
    License,
    LicenseAcknowledgement,
    LicenseExpression,
)
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.spdx import fixup_id
from packageurl import PackageURL

from ._internal.manifest import FileEntry, Manifest
from ._internal.metadata.provenance import BaseModelRef
from ._version import __version__

__all__ = [
    "NAMESPACE",
    "SERIAL_NAMESPACE",
    "BomBuilder",
    "Origin",
    "bom_json",
    "ml_bom",
    "ml_bom_json",
    "model_card",
    "model_component",
    "model_ref",
    "signature_manifest",
]

#: Prefix of every property name modelsign writes.
NAMESPACE: Final = "modelsign:"
#: UUIDv5 namespace of BOM serial numbers (the name is the manifest digest).
SERIAL_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://modelsign.dev/cyclonedx/serial")

#: Where the manifest behind a BOM came from. ``signature`` means read from a
#: signature bundle *without* verifying it; ``verified-signature`` after a
#: successful ``modelsign verify``.
Origin = Literal["model", "manifest", "signature", "verified-signature"]

_HUB: Final = "https://huggingface.co"
# A Hub repo id ("org/name" or a legacy "name"), as parse_source accepts it.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HUB_URL = re.compile(r"^https://huggingface\.co/([A-Za-z0-9][A-Za-z0-9._-]{0,95}/[^/?#\s]+)/?$")
# Links from untrusted files (card license_link, GGUF repo_url): plain http(s) only.
_WEB_URL = re.compile(r"^https?://[^\s<>\"{}|\\^`]+$")
# Untrusted card lists are cut here: a BOM is for people and scanners.
_MAX_ITEMS: Final = 256
_MAX_TEXT: Final = 1024

_CARD_PROPERTIES: Final = (
    "library_name",
    "language",
    "license_name",
    "license_link",
    "model_name",
    "model_type",
    "inference",
)
_UNVERIFIED_NOTE: Final = (
    "the manifest was read from a signature bundle without verifying the signature; "
    "run `modelsign verify` before relying on it"
)


# --- small helpers -----------------------------------------------------------


def _prop(name: str, value: object) -> Property:
    return Property(name=NAMESPACE + name, value=_text(value))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)[:_MAX_TEXT]


def _strings(value: object) -> list[str]:
    """A card field that is a string or a list of strings, as a bounded list."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item.strip() and item.strip() not in out:
            out.append(item.strip()[:_MAX_TEXT])
        if len(out) >= _MAX_ITEMS:
            break
    return out


def _web_url(text: str | None) -> XsUri | None:
    if text is None or len(text) > _MAX_TEXT or not _WEB_URL.fullmatch(text):
        return None
    try:
        return XsUri(text)
    except InvalidUriException:
        return None


def _hub_url(repo: str, *parts: str) -> XsUri | None:
    if not _HUB_ID.fullmatch(repo):
        return None
    tail = "".join("/" + quote(p, safe="") for p in parts)
    return XsUri(f"{_HUB}/{repo}{tail}")


def _hub_purl(repo: str, revision: str | None = None) -> PackageURL | None:
    """``pkg:huggingface/org/name@revision`` (purl spec: the revision lower-cased)."""
    if not _HUB_ID.fullmatch(repo):
        return None
    namespace, _, name = repo.rpartition("/")
    return PackageURL(
        type="huggingface",
        namespace=namespace or None,
        name=name,
        version=revision.lower() if revision else None,
    )


def _sha256(hex_digest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hex_digest)


def model_ref(manifest: Manifest) -> str:
    """The model component's ``bom-ref``: unique per manifest, stable across runs."""
    return _model_ref(manifest.digest())


# The manifest digest (canonical JSON of the whole manifest, tensors included) is
# worked out once per model and handed down: it names the component, its model
# card and the BOM's serial number.
def _model_ref(digest: str) -> str:
    return "model:" + digest


# --- the model component ------------------------------------------------------


def _licences(manifest: Manifest) -> list[License]:
    spdx = manifest.licence.spdx
    if spdx is None:
        return []
    declared = LicenseAcknowledgement.DECLARED
    single = fixup_id(spdx)
    if single is not None:
        links = {s.link for s in manifest.licence.sources if s.spdx == spdx and s.link}
        url = _web_url(links.pop()) if len(links) == 1 else None
        return [DisjunctiveLicense(id=single, url=url, acknowledgement=declared)]
    # Compound expressions and LicenseRef-<hub id>: valid SPDX expressions that
    # the SPDX licence list (and so DisjunctiveLicense.id) does not hold.
    return [LicenseExpression(spdx, acknowledgement=declared)]


def _file_component(parent_ref: str, f: FileEntry) -> Component:
    props = [_prop("file:format", f.format), _prop("file:size", f.size)]
    props += [_prop("file:flag", flag) for flag in f.flags]
    w = f.weights
    if w is not None:
        q = w.quantization
        props += [
            _prop("tensor_count", w.tensor_count),
            _prop("header:digest", w.header_digest),
            _prop("file:dtypes", ",".join(f"{d}={s.tensors}" for d, s in q.dtypes.items())),
        ]
        if w.weights_digest is not None:
            props.append(_prop("weights:digest", w.weights_digest))
        if q.bits_per_weight is not None:
            props.append(_prop("quantization:bits_per_weight", q.bits_per_weight))
        if q.file_type is not None:
            props.append(_prop("quantization:file_type", q.file_type))
        if w.gguf_version is not None:
            props.append(_prop("gguf:version", w.gguf_version))
        if w.kv_digest is not None:
            props.append(_prop("gguf:kv_digest", w.kv_digest))
        if w.chat_template_digest is not None:
            props.append(_prop("gguf:chat_template_digest", w.chat_template_digest))
    return Component(
        type=ComponentType.FILE,
        name=f.path,
        bom_ref=f"{parent_ref}#{f.path}",
        hashes=[_sha256(f.sha256)],
        properties=props,
    )


def _model_properties(manifest: Manifest, digest: str, origin: Origin | None) -> list[Property]:
    m = manifest
    props = [
        _prop("manifest:digest", digest),
        _prop("manifest:version", m.version),
        _prop("manifest:tool", f"{m.tool.name} {m.tool.version}"),
        _prop("single_file", m.single_file),
        _prop("allow_symlinks", m.allow_symlinks),
        _prop("hashing:file", m.hashing.file),
        _prop("hashing:tensor", m.hashing.tensor or "none"),
        _prop("hashing:header", m.hashing.header),
        _prop("tensor_count", m.tensor_count),
    ]
    if origin is not None:
        props.append(_prop("manifest:origin", origin))
    if origin == "signature":
        props += [_prop("signature:verified", False), _prop("signature:note", _UNVERIFIED_NOTE)]
    elif origin == "verified-signature":
        props.append(_prop("signature:verified", True))
    if m.weights_digest is not None:
        props.append(_prop("weights:digest", m.weights_digest))
    props += [_prop("ignored:path", p) for p in m.ignored.paths]

    q = m.quantization
    props.append(_prop("quantization:quantized", q.quantized))
    for key in ("scheme", "method", "bits", "group_size", "format", "source", "bits_per_weight"):
        value = getattr(q, key)
        if value is not None:
            props.append(_prop(f"quantization:{key}", value))
    props += [_prop(f"quantization:detail:{k}", v) for k, v in q.details.items()]
    file_types = sorted(
        {
            f.weights.quantization.file_type
            for f in m.files
            if f.weights and f.weights.quantization.file_type
        }
    )
    props += [_prop("quantization:file_type", ft) for ft in file_types]

    lic = m.licence
    props.append(_prop("licence:agree", lic.agree))
    if lic.spdx is not None:
        props.append(_prop("licence:spdx", lic.spdx))
    for s in lic.sources:
        props.append(_prop("licence:source", f"{s.source} = {s.value!r} -> {s.spdx or '?'}"))

    p = m.provenance
    if p.source is not None:
        props += [
            _prop("source:repository", p.source.repository),
            _prop("source:origin", p.source.origin),
        ]
        if p.source.revision is not None:
            props.append(_prop("source:revision", p.source.revision))
    for b in p.base_models:
        relation = f" ({b.relation})" if b.relation else ""
        props.append(_prop("base_model", f"{b.name}{relation} from {b.source}"))
    for parent in p.parents:
        props.append(_prop("parent", parent.digest + (f" {parent.name}" if parent.name else "")))
    if p.builder is not None:
        props.append(_prop("builder:kind", p.builder.kind))
        props += [_prop(f"builder:{k}", v) for k, v in p.builder.fields.items()]

    for f in m.files:
        props += [_prop("flagged", f"{flag}: {f.path}") for flag in f.flags]
    for finding in m.findings:
        where = finding.path or ""
        if finding.tensor:
            where += f" [{finding.tensor}]"
        props.append(_prop("finding", f"{finding.code}: {where}" if where else finding.code))
    return props


def _source_references(manifest: Manifest) -> list[ExternalReference]:
    src = manifest.provenance.source
    if src is None:
        return []
    repo_url = _hub_url(src.repository)
    if repo_url is None:
        return []
    rev = src.revision
    refs = [
        ExternalReference(
            type=ExternalReferenceType.VCS,
            url=repo_url,
            comment=f"Hugging Face repository, revision {rev}" if rev else None,
        )
    ]
    tree = _hub_url(src.repository, "tree", rev) if rev else None
    if tree is not None:
        refs.append(
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=tree,
                comment="the files at the recorded revision",
            )
        )
    if manifest.file("README.md") is not None:
        card = _hub_url(src.repository, "blob", rev or "main", "README.md")
        if card is not None:
            refs.append(ExternalReference(type=ExternalReferenceType.MODEL_CARD, url=card))
    return refs


def model_component(
    manifest: Manifest,
    *,
    card: Mapping[str, object] | None = None,
    origin: Origin | None = None,
) -> Component:
    """The model as a ``machine-learning-model`` component, its files as sub-components.

    Base models are not part of it (see :meth:`BomBuilder.add_model`), nor the
    model card, which the library cannot hold (see :func:`model_card`).
    """
    return _model_component(manifest, manifest.digest(), card, origin)


def _model_component(
    manifest: Manifest, digest: str, card: Mapping[str, object] | None, origin: Origin | None
) -> Component:
    ref = _model_ref(digest)
    src = manifest.provenance.source
    hashes = [_sha256(manifest.files[0].sha256)] if manifest.single_file else []
    tags = _strings(card.get("tags")) if card else []
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=manifest.name,
        version=src.revision if src is not None else None,
        bom_ref=ref,
        purl=_hub_purl(src.repository, src.revision) if src is not None else None,
        hashes=hashes,
        licenses=_licences(manifest),
        external_references=_source_references(manifest),
        properties=_model_properties(manifest, digest, origin),
        components=[_file_component(ref, f) for f in manifest.files],
        tags=tags,
    )


def _base_component(ref: BaseModelRef) -> Component:
    name = ref.name
    repo = name
    if ref.repo_url and (m := _HUB_URL.fullmatch(ref.repo_url)):
        repo = m.group(1)
    refs: list[ExternalReference] = []
    hub = _hub_url(repo)
    if hub is not None and "/" in repo:
        refs.append(ExternalReference(type=ExternalReferenceType.WEBSITE, url=hub))
    elif (url := _web_url(ref.repo_url)) is not None:
        refs.append(ExternalReference(type=ExternalReferenceType.VCS, url=url))
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=name,
        bom_ref=f"base-model:{name}",
        purl=_hub_purl(repo) if "/" in repo else None,
        manufacturer=OrganizationalEntity(name=ref.organization) if ref.organization else None,
        external_references=refs,
    )


# --- the model card -----------------------------------------------------------


def _dataset(name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "dataset", "name": name}
    if _HUB_ID.fullmatch(name):
        data["contents"] = {"url": f"{_HUB}/datasets/{name}"}
    return data


def _metrics(model_index: object) -> list[dict[str, str]]:
    """``model-index[].results[].metrics[]`` as CycloneDX performance metrics."""
    out: list[dict[str, str]] = []
    entries = model_index if isinstance(model_index, list) else []
    for entry in entries:
        results = entry.get("results") if isinstance(entry, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            ds = result.get("dataset")
            task = result.get("task")
            slice_parts = []
            if isinstance(task, dict) and isinstance(task.get("type"), str):
                slice_parts.append(task["type"])
            if isinstance(ds, dict):
                label = ds.get("name") or ds.get("type")
                if isinstance(label, str):
                    extras = [str(ds[k]) for k in ("config", "split") if isinstance(ds.get(k), str)]
                    slice_parts.append(label + (f" ({', '.join(extras)})" if extras else ""))
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if not isinstance(metric, dict) or "value" not in metric:
                    continue
                kind = metric.get("type") or metric.get("name")
                value = metric["value"]
                if not isinstance(kind, str) or isinstance(value, (dict, list)) or value is None:
                    continue
                item = {"type": kind[:_MAX_TEXT], "value": _text(value)}
                if slice_parts:
                    item["slice"] = ": ".join(slice_parts)[:_MAX_TEXT]
                out.append(item)
                if len(out) >= _MAX_ITEMS:
                    return out
    return out


def _architecture(manifest: Manifest) -> str | None:
    for f in manifest.files:
        if f.weights is not None and f.weights.format == "gguf":
            arch = f.weights.metadata.get("general.architecture")
            if isinstance(arch, str) and arch:
                return arch
    return None


def model_card(
    manifest: Manifest, card: Mapping[str, object] | None = None
) -> dict[str, Any] | None:
    """The CycloneDX 1.6 ``modelCard`` of a model, or None when nothing is known.

    ``card`` is the front matter of the model card (``parse_model_card``):
    ``pipeline_tag`` becomes the task, ``datasets`` the datasets (linked to
    the Hub), ``model-index`` results the performance metrics, and a few
    descriptive keys properties. GGUF ``general.architecture`` gives the
    architecture family.
    """
    return _model_card(manifest, manifest.digest(), card)


def _model_card(
    manifest: Manifest, digest: str, card: Mapping[str, object] | None
) -> dict[str, Any] | None:
    card = card or {}
    params: dict[str, Any] = {}
    task = card.get("pipeline_tag")
    if isinstance(task, str) and task.strip():
        params["task"] = task.strip()[:_MAX_TEXT]
    arch = _architecture(manifest)
    if arch is not None:
        params["architectureFamily"] = arch[:_MAX_TEXT]
    datasets = _strings(card.get("datasets"))
    if datasets:
        params["datasets"] = [_dataset(d) for d in datasets]
    out: dict[str, Any] = {"bom-ref": "model-card:" + digest}
    if params:
        out["modelParameters"] = params
    metrics = _metrics(card.get("model-index"))
    if metrics:
        out["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    co2 = card.get("co2_eq_emissions")
    if co2 is not None:
        fields = co2.items() if isinstance(co2, dict) else [("emissions", co2)]
        env = [
            {"name": f"{NAMESPACE}card:co2_eq_emissions.{k}", "value": _text(v)}
            for k, v in sorted(fields, key=lambda kv: str(kv[0]))
            if not isinstance(v, (dict, list))
        ][:_MAX_ITEMS]
        if env:
            out["considerations"] = {"environmentalConsiderations": {"properties": env}}
    props = [
        {"name": f"{NAMESPACE}card:{key}", "value": value}
        for key in _CARD_PROPERTIES
        for value in _strings(card.get(key))
    ]
    if props:
        out["properties"] = props
    return out if len(out) > 1 else None


# --- whole BOMs ---------------------------------------------------------------


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
        ref = _model_ref(digest)
        if ref in self._models:
            return self._models[ref]
        if subject and self._subject is not None:
            raise ValueError("the BOM already has a subject")
        component = _model_component(manifest, digest, card, origin)
        self._models[ref] = component
        self._digests.add(digest)
        if subject:
            self._subject = component
        bases = self._depends.setdefault(ref, set())
        for b in manifest.provenance.base_models:
            base = _base_component(b)
            key = str(base.bom_ref)
            self._bases.setdefault(key, base)
            bases.add(key)
        mc = _model_card(manifest, digest, card)
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
    from ._internal.signature.attestation import load_signature
    from .errors import InputError, ModelsignError

    try:
        manifest = load_signature(where, data=data).statement.manifest
    except ModelsignError as exc:
        raise InputError(
            f"cannot read the signature: {exc.message}", code=exc.code, path=where
        ) from exc
    if manifest is None:
        raise InputError(
            "the signature carries no modelsign manifest (an OMS-only signature)",
            code="SIGNATURE_NO_MANIFEST",
            path=where,
        )
    return manifest
