"""Model-level changes: the weights digest, quantization, licence, provenance and the signer."""

from __future__ import annotations

import re

from .._internal.manifest import Manifest
from .._internal.metadata.licence import Licence
from .._internal.metadata.provenance import BaseModelRef, Builder, Provenance, source_text
from .._internal.metadata.quantization import ModelQuantization
from ..codes import Code
from ._sides import Side
from .report import Change, SignerClaim


def model_changes(old: Side, new: Side, digests: bool) -> list[Change]:
    """``digests``: both sides' tensor digests use one algorithm, so weights digests compare."""
    om, nm = old.manifest, new.manifest
    out: list[Change] = []
    if om is not None and nm is not None:
        if digests:
            out += _weights_digest_changes(om, nm)
        out += _quant_changes(om.quantization, nm.quantization)
        out += _licence_changes(om.licence, nm.licence)
        # A model built here from disk carries no build-time claims to compare.
        claims = not (old.from_disk or new.from_disk)
        out += _provenance_changes(om.provenance, nm.provenance, claims)
    out += _signer_changes(old.info.signer, new.info.signer)
    return out


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    if ":" in value:
        alg, hexd = value.split(":", 1)
        return f"{alg}:{hexd[:12]}"
    return value[:12] if re.fullmatch(r"[0-9a-f]{16,}", value) else value


def _weights_digest_changes(om: Manifest, nm: Manifest) -> list[Change]:
    if om.weights_digest is None or nm.weights_digest is None:
        return []
    if om.weights_digest == nm.weights_digest:
        return []
    return [
        Change(
            code=Code.WEIGHTS_DIGEST_CHANGED,
            message=f"weights digest {_short(om.weights_digest)} → {_short(nm.weights_digest)}",
            field="weights_digest",
            expected=om.weights_digest,
            actual=nm.weights_digest,
        )
    ]


def _signer_changes(o: SignerClaim | None, n: SignerClaim | None) -> list[Change]:
    if o is None or n is None or o.identity_key() == n.identity_key():
        return []
    return [
        Change(
            code=Code.SIGNER_CHANGED,
            message=f"signer {o.describe()} → {n.describe()} (unverified)",
            field="signer",
            expected=o.describe(),
            actual=n.describe(),
        )
    ]


def _value(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return ", ".join(f"{k}={v[k]}" for k in sorted(v)) or None
    return str(v)


def _quant_changes(o: ModelQuantization, n: ModelQuantization) -> list[Change]:
    out: list[Change] = []
    keys = ("scheme", "quantized", "method", "bits", "group_size", "format", "details")
    for key in (*keys, "bits_per_weight"):
        ov, nv = _value(getattr(o, key)), _value(getattr(n, key))
        if key == "quantized" and o.scheme != n.scheme:
            continue  # follows from the scheme
        if ov != nv:
            out.append(
                Change(
                    code=Code.QUANTIZATION_CHANGED,
                    message=f"quantization {key.replace('_', ' ')} {ov or 'none'} → {nv or 'none'}",
                    field=f"quantization.{key}",
                    expected=ov,
                    actual=nv,
                )
            )
    return out


def _licence_changes(o: Licence, n: Licence) -> list[Change]:
    out: list[Change] = []
    if o.spdx != n.spdx:
        out.append(
            Change(
                code=Code.LICENCE_CHANGED,
                message=f"licence {o.spdx or 'unknown'} → {n.spdx or 'unknown'}",
                field="licence.spdx",
                expected=o.spdx,
                actual=n.spdx,
            )
        )
    olds = {s.source: f"{s.value} ({s.spdx or 'unrecognised'})" for s in o.sources}
    news = {s.source: f"{s.value} ({s.spdx or 'unrecognised'})" for s in n.sources}
    for src in sorted(set(olds) | set(news)):
        ov, nv = olds.get(src), news.get(src)
        if ov == nv:
            continue
        if ov is None:
            message = f"licence statement added: {nv}"
        elif nv is None:
            message = f"licence statement removed: {ov}"
        else:
            message = f"licence statement {ov} → {nv}"
        out.append(
            Change(
                code=Code.LICENCE_CHANGED,
                message=message,
                file=src,
                field="licence.source",
                expected=ov,
                actual=nv,
            )
        )
    return out


def _base_text(b: BaseModelRef) -> str:
    return b.full_name + (f" ({b.relation})" if b.relation else "")


def _builder_text(b: Builder | None) -> str | None:
    if b is None:
        return None
    f = b.fields
    repo = f.get("GITHUB_REPOSITORY") or f.get("CI_PROJECT_PATH") or "?"
    ref = f.get("GITHUB_WORKFLOW_REF") or f.get("CI_CONFIG_PATH") or ""
    sha = f.get("GITHUB_SHA") or f.get("CI_COMMIT_SHA") or ""
    return " ".join(x for x in (b.kind, repo, ref, sha[:12]) if x)


def _set_changes(field_name: str, label: str, old: set[str], new: set[str]) -> list[Change]:
    out = [
        Change(
            code=Code.PROVENANCE_CHANGED,
            message=f"{label} removed: {v}",
            field=field_name,
            expected=v,
        )
        for v in sorted(old - new)
    ]
    out += [
        Change(
            code=Code.PROVENANCE_CHANGED, message=f"{label} added: {v}", field=field_name, actual=v
        )
        for v in sorted(new - old)
    ]
    return out


def _provenance_changes(o: Provenance, n: Provenance, claims: bool) -> list[Change]:
    """``claims``: compare what only a build records (--source, builder, parents)."""
    out: list[Change] = []
    os_, ns = source_text(o.source), source_text(n.source)
    if os_ != ns and (claims or (o.source is not None and n.source is not None)):
        out.append(
            Change(
                code=Code.PROVENANCE_CHANGED,
                message=f"source {os_ or 'none'} → {ns or 'none'}",
                field="provenance.source",
                expected=os_,
                actual=ns,
            )
        )
    out += _set_changes(
        "provenance.base_model",
        "base model",
        {_base_text(b) for b in o.base_models},
        {_base_text(b) for b in n.base_models},
    )
    if claims:
        ob, nb = _builder_text(o.builder), _builder_text(n.builder)
        if o.builder != n.builder:
            out.append(
                Change(
                    code=Code.PROVENANCE_CHANGED,
                    message=f"builder {ob or 'none'} → {nb or 'none'}",
                    field="provenance.builder",
                    expected=ob,
                    actual=nb,
                )
            )
        out += _set_changes(
            "provenance.parent",
            "parent manifest",
            {p.digest for p in o.parents},
            {p.digest for p in n.parents},
        )
    return out
