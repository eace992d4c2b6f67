"""The model as a ``machine-learning-model`` component: files, licence, links, properties."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from cyclonedx.model import (
    ExternalReference,
    ExternalReferenceType,
    Property,
)
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.license import (
    DisjunctiveLicense,
    License,
    LicenseAcknowledgement,
    LicenseExpression,
)
from cyclonedx.spdx import fixup_id

from .._internal.formats.layout import MetadataValue
from .._internal.formats.onnx_layout import EXTERNAL_OF
from .._internal.manifest import FileEntry, Manifest
from .._internal.metadata.provenance import BaseModelRef
from ._fields import (
    HUB_URL,
    bounded_strings,
    hub_purl,
    hub_url,
    prop,
    ref_of,
    sha256_hash,
    web_url,
)

#: Where the manifest behind a BOM came from. ``signature`` means read from a
#: signature bundle *without* verifying it; ``verified-signature`` after a
#: successful ``modelsign verify``.
Origin = Literal["model", "manifest", "signature", "verified-signature"]

_OPSET: Final = "onnx.opset."  # the metadata keys of an ONNX model's opsets, by domain

_UNVERIFIED_NOTE: Final = (
    "the manifest was read from a signature bundle without verifying the signature; "
    "run `modelsign verify` before relying on it"
)


def model_ref(manifest: Manifest) -> str:
    """The model component's ``bom-ref``: unique per manifest, stable across runs."""
    return ref_of(manifest.digest())


def _licences(manifest: Manifest) -> list[License]:
    spdx = manifest.licence.spdx
    if spdx is None:
        return []
    declared = LicenseAcknowledgement.DECLARED
    single = fixup_id(spdx)
    if single is not None:
        links = {s.link for s in manifest.licence.sources if s.spdx == spdx and s.link}
        url = web_url(links.pop()) if len(links) == 1 else None
        return [DisjunctiveLicense(id=single, url=url, acknowledgement=declared)]
    # Compound expressions and LicenseRef-<hub id>: valid SPDX expressions that
    # the SPDX licence list (and so DisjunctiveLicense.id) does not hold.
    return [LicenseExpression(spdx, acknowledgement=declared)]


def _file_component(parent_ref: str, f: FileEntry) -> Component:
    props = [prop("file:format", f.format), prop("file:size", f.size)]
    props += [prop("file:flag", flag) for flag in f.flags]
    w = f.weights
    if w is not None:
        q = w.quantization
        props += [
            prop("tensor_count", w.tensor_count),
            prop("header:digest", w.header_digest),
            prop("file:dtypes", ",".join(f"{d}={s.tensors}" for d, s in q.dtypes.items())),
        ]
        if w.weights_digest is not None:
            props.append(prop("weights:digest", w.weights_digest))
        if q.bits_per_weight is not None:
            props.append(prop("quantization:bits_per_weight", q.bits_per_weight))
        if q.file_type is not None:
            props.append(prop("quantization:file_type", q.file_type))
        if q.scheme is not None:
            props.append(prop("quantization:scheme", q.scheme))
        if q.bits is not None:
            props.append(prop("quantization:bits", q.bits))
        if w.format == "onnx":
            props += _onnx_properties(w.metadata)
        if w.gguf_version is not None:
            props.append(prop("gguf:version", w.gguf_version))
        if w.kv_digest is not None:
            props.append(prop("gguf:kv_digest", w.kv_digest))
        if w.chat_template_digest is not None:
            props.append(prop("gguf:chat_template_digest", w.chat_template_digest))
    return Component(
        type=ComponentType.FILE,
        name=f.path,
        bom_ref=f"{parent_ref}#{f.path}",
        hashes=[sha256_hash(f.sha256)],
        properties=props,
    )


def _onnx_properties(meta: Mapping[str, MetadataValue]) -> list[Property]:
    """An ONNX model's IR version, producer, opsets and initializer count, as its manifest
    records them; for an external data file, the model(s) whose tensors it holds."""
    if EXTERNAL_OF in meta:
        return [prop("onnx:external_data_of", meta[EXTERNAL_OF])]
    props = [prop("onnx:ir_version", meta[k]) for k in ("onnx.ir_version",) if k in meta]
    producer = " ".join(
        str(meta[k]) for k in ("onnx.producer_name", "onnx.producer_version") if meta.get(k)
    )
    if producer:
        props.append(prop("onnx:producer", producer))
    opsets = sorted((k.removeprefix(_OPSET), v) for k, v in meta.items() if k.startswith(_OPSET))
    props += [prop("onnx:opset", f"{domain}={version}") for domain, version in opsets]
    if "onnx.initializers" in meta:
        props.append(prop("onnx:initializers", meta["onnx.initializers"]))
    return props


def _model_properties(manifest: Manifest, digest: str, origin: Origin | None) -> list[Property]:
    """What CycloneDX has no field for, as ``modelsign:`` properties (in a fixed order)."""
    return (
        _manifest_properties(manifest, digest, origin)
        + _quantization_properties(manifest)
        + _licence_properties(manifest)
        + _provenance_properties(manifest)
        + _flag_properties(manifest)
    )


def _manifest_properties(m: Manifest, digest: str, origin: Origin | None) -> list[Property]:
    props = [
        prop("manifest:digest", digest),
        prop("manifest:version", m.version),
        prop("manifest:tool", f"{m.tool.name} {m.tool.version}"),
        prop("single_file", m.single_file),
        prop("allow_symlinks", m.allow_symlinks),
        prop("hashing:file", m.hashing.file),
        prop("hashing:tensor", m.hashing.tensor or "none"),
        prop("hashing:header", m.hashing.header),
        prop("tensor_count", m.tensor_count),
    ]
    if origin is not None:
        props.append(prop("manifest:origin", origin))
    if origin == "signature":
        props += [prop("signature:verified", False), prop("signature:note", _UNVERIFIED_NOTE)]
    elif origin == "verified-signature":
        props.append(prop("signature:verified", True))
    if m.weights_digest is not None:
        props.append(prop("weights:digest", m.weights_digest))
    props += [prop("ignored:path", p) for p in m.ignored.paths]
    return props


def _quantization_properties(m: Manifest) -> list[Property]:
    q = m.quantization
    props = [prop("quantization:quantized", q.quantized)]
    for key in ("scheme", "method", "bits", "group_size", "format", "source", "bits_per_weight"):
        value = getattr(q, key)
        if value is not None:
            props.append(prop(f"quantization:{key}", value))
    props += [prop(f"quantization:detail:{k}", v) for k, v in q.details.items()]
    file_types = sorted(
        {
            f.weights.quantization.file_type
            for f in m.files
            if f.weights and f.weights.quantization.file_type
        }
    )
    props += [prop("quantization:file_type", ft) for ft in file_types]
    return props


def _licence_properties(m: Manifest) -> list[Property]:
    lic = m.licence
    props = [prop("licence:agree", lic.agree)]
    if lic.spdx is not None:
        props.append(prop("licence:spdx", lic.spdx))
    for s in lic.sources:
        props.append(prop("licence:source", f"{s.source} = {s.value!r} -> {s.spdx or '?'}"))
    return props


def _provenance_properties(m: Manifest) -> list[Property]:
    p = m.provenance
    props: list[Property] = []
    if p.source is not None:
        props += [
            prop("source:repository", p.source.repository),
            prop("source:origin", p.source.origin),
        ]
        if p.source.revision is not None:
            props.append(prop("source:revision", p.source.revision))
    for b in p.base_models:
        relation = f" ({b.relation})" if b.relation else ""
        props.append(prop("base_model", f"{b.name}{relation} from {b.source}"))
    for parent in p.parents:
        props.append(prop("parent", parent.digest + (f" {parent.name}" if parent.name else "")))
    if p.builder is not None:
        props.append(prop("builder:kind", p.builder.kind))
        props += [prop(f"builder:{k}", v) for k, v in p.builder.fields.items()]
    return props


def _flag_properties(m: Manifest) -> list[Property]:
    """Flagged files and findings."""
    props = [prop("flagged", f"{flag}: {f.path}") for f in m.files for flag in f.flags]
    for finding in m.findings:
        where = finding.path or ""
        if finding.tensor:
            where += f" [{finding.tensor}]"
        props.append(prop("finding", f"{finding.code}: {where}" if where else finding.code))
    return props


def _source_references(manifest: Manifest) -> list[ExternalReference]:
    src = manifest.provenance.source
    if src is None:
        return []
    repo_url = hub_url(src.repository)
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
    tree = hub_url(src.repository, "tree", rev) if rev else None
    if tree is not None:
        refs.append(
            ExternalReference(
                type=ExternalReferenceType.DISTRIBUTION,
                url=tree,
                comment="the files at the recorded revision",
            )
        )
    if manifest.file("README.md") is not None:
        card = hub_url(src.repository, "blob", rev or "main", "README.md")
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
    return model_component_of(manifest, manifest.digest(), card, origin)


def model_component_of(
    manifest: Manifest, digest: str, card: Mapping[str, object] | None, origin: Origin | None
) -> Component:
    ref = ref_of(digest)
    src = manifest.provenance.source
    hashes = [sha256_hash(manifest.files[0].sha256)] if manifest.single_file else []
    tags = bounded_strings(card.get("tags")) if card else []
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=manifest.name,
        version=src.revision if src is not None else None,
        bom_ref=ref,
        purl=hub_purl(src.repository, src.revision) if src is not None else None,
        hashes=hashes,
        licenses=_licences(manifest),
        external_references=_source_references(manifest),
        properties=_model_properties(manifest, digest, origin),
        components=[_file_component(ref, f) for f in manifest.files],
        tags=tags,
    )


def base_component(ref: BaseModelRef) -> Component:
    name = ref.name
    repo = name
    if ref.repo_url and (m := HUB_URL.fullmatch(ref.repo_url)):
        repo = m.group(1)
    refs: list[ExternalReference] = []
    hub = hub_url(repo)
    if hub is not None and "/" in repo:
        refs.append(ExternalReference(type=ExternalReferenceType.WEBSITE, url=hub))
    elif (url := web_url(ref.repo_url)) is not None:
        refs.append(ExternalReference(type=ExternalReferenceType.VCS, url=url))
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        name=name,
        bom_ref=f"base-model:{name}",
        purl=hub_purl(repo) if "/" in repo else None,
        manufacturer=OrganizationalEntity(name=ref.organization) if ref.organization else None,
        external_references=refs,
    )
