"""Comparing two sides: files, weight files, tensors across files, and the model's attributes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..compare import Problem, diff_weights
from ..manifest import TensorEntry, WeightsInfo
from ..metadata.licence import Licence
from ..metadata.provenance import BaseModelRef, Builder, Provenance, SourceRepo
from ..metadata.quantization import FileQuantization, ModelQuantization
from ._sides import File, Side
from .report import Change, DiffCounts, ModelDiff, TensorChange, layer_index, plural, summary

_TENSOR_CODES = frozenset({"TENSOR_ADDED", "TENSOR_REMOVED", "TENSOR_MODIFIED", "TENSOR_RETYPED"})


def _algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    if ":" in value:
        alg, hexd = value.split(":", 1)
        return f"{alg}:{hexd[:12]}"
    return value[:12] if re.fullmatch(r"[0-9a-f]{16,}", value) else value


def _shape_text(dtype: str | None, shape: Sequence[int] | None) -> str:
    return f"{dtype}[{','.join(map(str, shape or []))}]"


def _logical_shape(shape: Sequence[int], fmt: str) -> list[int]:
    return list(reversed(shape)) if fmt == "gguf" else list(shape)


@dataclass(frozen=True)
class _Tensor:
    path: str  # the file, named as on the new side when the file is paired
    entry: TensorEntry
    shape: list[int]  # outermost first


def _pool(files: Mapping[str, File], rename: Mapping[str, str]) -> dict[str, _Tensor]:
    """Every tensor of a side by name (a name in several files is keyed by file too)."""
    weights = [(f.path, f.weights) for f in files.values() if f.weights is not None]
    seen = Counter(t.name for _, w in weights for t in w.tensors)
    out: dict[str, _Tensor] = {}
    for path, w in sorted(weights, key=lambda x: x[0]):
        for t in w.tensors:
            key = t.name if seen[t.name] == 1 else f"{rename.get(path, path)}:{t.name}"
            out[key] = _Tensor(path, t, _logical_shape(t.shape, w.format))
    return out


_NO_QUANT = FileQuantization(
    dtypes={}, tensors=0, elements=0, bytes=0, bits_per_weight=None, file_type=None
)


def _pooled_info(tensors: Mapping[str, _Tensor], digests: bool) -> WeightsInfo:
    """All tensors of a side as one synthetic weight file, for :func:`diff_weights`."""
    entries = [
        TensorEntry(
            name=key,
            dtype=t.entry.dtype,
            shape=t.shape,
            offset=0,
            length=t.entry.length,
            digest=t.entry.digest if digests else None,
        )
        for key, t in tensors.items()
    ]
    return WeightsInfo(
        format="safetensors",
        header_size=0,
        header_digest="",
        tensor_count=len(entries),
        tensors=entries,
        quantization=_NO_QUANT,
    )


def _tensor_change(
    p: Problem, old: Mapping[str, _Tensor], new: Mapping[str, _Tensor], rename: Mapping[str, str]
) -> TensorChange:
    key = p.tensor or ""
    o, n = old.get(key), new.get(key)
    either = n or o
    name = either.entry.name if either is not None else key
    old_text = _shape_text(o.entry.dtype, o.shape) if o else None
    new_text = _shape_text(n.entry.dtype, n.shape) if n else None
    if p.code == "TENSOR_ADDED":
        message = f"added {new_text}"
    elif p.code == "TENSOR_REMOVED":
        message = f"removed {old_text}"
    elif p.code == "TENSOR_RETYPED":
        message = f"retyped {old_text} → {new_text}"
    else:
        message = f"data changed ({new_text})"
    old_file = rename.get(o.path, o.path) if o else None
    path = n.path if n else old_file
    return TensorChange(
        code=p.code,  # type: ignore[arg-type]
        message=message,
        path=path,
        old_path=o.path if o and o.path != path else None,
        tensor=name,
        old=p.expected,
        new=p.actual,
        layer=layer_index(name),
        old_dtype=o.entry.dtype if o else None,
        new_dtype=n.entry.dtype if n else None,
        old_shape=o.shape if o else None,
        new_shape=n.shape if n else None,
    )


def _file_quant_label(fq: FileQuantization) -> dict[str, str | None]:
    return {
        "file_type": fq.file_type,
        "dtypes": ", ".join(f"{d}:{s.tensors}" for d, s in fq.dtypes.items()) or None,
        "bits_per_weight": None if fq.bits_per_weight is None else f"{fq.bits_per_weight:g}",
    }


def _weight_file_changes(
    path: str, old_path: str | None, o: WeightsInfo, n: WeightsInfo, *, headers: bool
) -> list[Change]:
    """Header, metadata, chat template and quantization changes of one weight file."""
    if not headers:  # header digests made with different algorithms say nothing
        o = o.model_copy(update={"header_digest": "", "kv_digest": None})
        n = n.model_copy(update={"header_digest": "", "kv_digest": None})
    out: list[Change] = []
    for p in diff_weights(path, o, n):
        if p.code in _TENSOR_CODES:
            continue  # tensors are compared model-wide, across files
        out.append(
            Change(
                code=p.code,  # type: ignore[arg-type]
                message=p.message,
                path=path,
                old_path=old_path,
                old=p.expected,
                new=p.actual,
            )
        )
    ol, nl = _file_quant_label(o.quantization), _file_quant_label(n.quantization)
    for key in ("file_type", "dtypes", "bits_per_weight"):
        if ol[key] != nl[key]:
            out.append(
                Change(
                    code="QUANTIZATION_CHANGED",
                    message=f"{key.replace('_', ' ')} {ol[key] or 'none'} → {nl[key] or 'none'}",
                    path=path,
                    old_path=old_path,
                    field=f"quantization.{key}",
                    old=ol[key],
                    new=nl[key],
                )
            )
    return out


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
                    code="QUANTIZATION_CHANGED",
                    message=f"quantization {key.replace('_', ' ')} {ov or 'none'} → {nv or 'none'}",
                    field=f"quantization.{key}",
                    old=ov,
                    new=nv,
                )
            )
    return out


def _licence_changes(o: Licence, n: Licence) -> list[Change]:
    out: list[Change] = []
    if o.spdx != n.spdx:
        out.append(
            Change(
                code="LICENCE_CHANGED",
                message=f"licence {o.spdx or 'unknown'} → {n.spdx or 'unknown'}",
                field="licence.spdx",
                old=o.spdx,
                new=n.spdx,
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
                code="LICENCE_CHANGED",
                message=message,
                path=src,
                field="licence.source",
                old=ov,
                new=nv,
            )
        )
    return out


def _source_text(s: SourceRepo | None) -> str | None:
    if s is None:
        return None
    return s.repository + (f"@{s.revision}" if s.revision else "")


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
            code="PROVENANCE_CHANGED",
            message=f"{label} removed: {v}",
            field=field_name,
            old=v,
        )
        for v in sorted(old - new)
    ]
    out += [
        Change(code="PROVENANCE_CHANGED", message=f"{label} added: {v}", field=field_name, new=v)
        for v in sorted(new - old)
    ]
    return out


def _provenance_changes(o: Provenance, n: Provenance, claims: bool) -> list[Change]:
    """``claims``: compare what only a build records (--source, builder, parents)."""
    out: list[Change] = []
    os_, ns = _source_text(o.source), _source_text(n.source)
    if os_ != ns and (claims or (o.source is not None and n.source is not None)):
        out.append(
            Change(
                code="PROVENANCE_CHANGED",
                message=f"source {os_ or 'none'} → {ns or 'none'}",
                field="provenance.source",
                old=os_,
                new=ns,
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
                    code="PROVENANCE_CHANGED",
                    message=f"builder {ob or 'none'} → {nb or 'none'}",
                    field="provenance.builder",
                    old=ob,
                    new=nb,
                )
            )
        out += _set_changes(
            "provenance.parent",
            "parent manifest",
            {p.digest for p in o.parents},
            {p.digest for p in n.parents},
        )
    return out


def compare(old: Side, new: Side) -> ModelDiff:
    notes = [*old.notes, *new.notes]
    om, nm = old.manifest, new.manifest

    # Files: a single-file model is its one file, whatever its name.
    rename: dict[str, str] = {}
    if old.single_file and new.single_file and len(old.files) == 1 and len(new.files) == 1:
        (op,), (np_,) = old.files, new.files
        if op != np_:
            rename[op] = np_
    ofiles = {rename.get(p, p): f for p, f in old.files.items()}
    files: list[Change] = []
    not_compared = 0
    # Weight files to compare inside: (new path, old path if another, old, new).
    pairs: list[tuple[str, str | None, WeightsInfo, WeightsInfo]] = []
    for path in sorted(set(ofiles) & set(new.files)):
        o, n = ofiles[path], new.files[path]
        old_path = o.path if o.path != path else None
        if _algorithm(o.digest) != _algorithm(n.digest):
            not_compared += 1
            continue
        if o.weights is not None and n.weights is not None:
            pairs.append((path, old_path, o.weights, n.weights))
        if o.digest == n.digest:
            if old_path is not None:
                files.append(
                    Change(
                        code="FILE_RENAMED",
                        message=f"renamed from {old_path}",
                        path=path,
                        old_path=old_path,
                        old=o.digest,
                        new=n.digest,
                    )
                )
            continue
        size = ""
        if o.size is not None and n.size is not None and o.size != n.size:
            size = f": {o.size} → {n.size} bytes"
        files.append(
            Change(
                code="FILE_CHANGED",
                message="content changed" + size,
                path=path,
                old_path=old_path,
                old=o.digest,
                new=n.digest,
            )
        )
    removed = sorted(set(ofiles) - set(new.files))
    added = sorted(set(new.files) - set(ofiles))
    by_digest: dict[str, list[str]] = {}
    for p in added:
        by_digest.setdefault(new.files[p].digest, []).append(p)
    gone: list[str] = []
    for p in removed:
        twins = by_digest.get(ofiles[p].digest)
        if twins:
            target = twins.pop(0)
            files.append(
                Change(
                    code="FILE_RENAMED",
                    message=f"renamed from {p}",
                    path=target,
                    old_path=p,
                    old=ofiles[p].digest,
                    new=new.files[target].digest,
                )
            )
        else:
            gone.append(p)
    arrived = [p for ps in by_digest.values() for p in ps]
    for p in gone:
        files.append(Change(code="FILE_REMOVED", message="removed", path=p, old=ofiles[p].digest))
    for p in sorted(arrived):
        files.append(Change(code="FILE_ADDED", message="added", path=p, new=new.files[p].digest))
    # One weight file replaced by another (a re-quantization under a new name): compare them.
    gone_w = [p for p in gone if ofiles[p].weights is not None]
    arrived_w = [p for p in arrived if new.files[p].weights is not None]
    if len(gone_w) == 1 and len(arrived_w) == 1:
        ow, nw = ofiles[gone_w[0]].weights, new.files[arrived_w[0]].weights
        assert ow is not None and nw is not None
        pairs.append((arrived_w[0], gone_w[0], ow, nw))
        rename[gone_w[0]] = arrived_w[0]
    if not_compared:
        notes.append(
            f"{plural(not_compared, 'common file')} not compared: the two sides digest "
            "files with different algorithms"
        )

    # Weight files: header, metadata, chat template, per-file quantization.
    headers = om is not None and nm is not None and om.hashing.header == nm.hashing.header
    for path, old_path, ow, nw in pairs:
        files += _weight_file_changes(path, old_path, ow, nw, headers=headers)
    files.sort(key=lambda c: (c.path or "", c.code, c.field or ""))

    # Tensors, across files (re-sharding moves none).
    tensors: list[TensorChange] = []
    digests = (
        om is not None
        and nm is not None
        and om.hashing.tensor is not None
        and om.hashing.tensor == nm.hashing.tensor
    )
    opool = _pool(old.files, rename)
    npool = _pool(new.files, {})
    if om is not None and nm is not None:
        if not digests and (opool or npool):
            notes.append(
                f"tensor digests not compared ({om.hashing.tensor or 'none'} in old, "
                f"{nm.hashing.tensor or 'none'} in new): only dtypes and shapes are"
            )
        problems = diff_weights("", _pooled_info(opool, digests), _pooled_info(npool, digests))
        tensors = [_tensor_change(p, opool, npool, rename) for p in problems]

    # The model.
    model: list[Change] = []
    if om is not None and nm is not None:
        if (
            digests
            and om.weights_digest is not None
            and nm.weights_digest is not None
            and om.weights_digest != nm.weights_digest
        ):
            model.append(
                Change(
                    code="WEIGHTS_DIGEST_CHANGED",
                    message=f"weights digest {_short(om.weights_digest)} → "
                    f"{_short(nm.weights_digest)}",
                    field="weights_digest",
                    old=om.weights_digest,
                    new=nm.weights_digest,
                )
            )
        model += _quant_changes(om.quantization, nm.quantization)
        model += _licence_changes(om.licence, nm.licence)
        claims = not (old.from_disk or new.from_disk)
        model += _provenance_changes(om.provenance, nm.provenance, claims)
    os_, ns = old.info.signer, new.info.signer
    if os_ is not None and ns is not None and os_.identity_key() != ns.identity_key():
        model.append(
            Change(
                code="SIGNER_CHANGED",
                message=f"signer {os_.describe()} → {ns.describe()} (unverified)",
                field="signer",
                old=os_.describe(),
                new=ns.describe(),
            )
        )

    count = Counter(c.code for c in [*files, *tensors])
    counts = DiffCounts(
        files_old=len(old.files),
        files_new=len(new.files),
        files_added=count["FILE_ADDED"],
        files_removed=count["FILE_REMOVED"],
        files_changed=count["FILE_CHANGED"],
        files_renamed=count["FILE_RENAMED"],
        files_not_compared=not_compared,
        tensors_old=old.info.tensors,
        tensors_new=new.info.tensors,
        tensors_added=count["TENSOR_ADDED"],
        tensors_removed=count["TENSOR_REMOVED"],
        tensors_modified=count["TENSOR_MODIFIED"],
        tensors_retyped=count["TENSOR_RETYPED"],
        model_changes=len(model),
    )
    return ModelDiff(
        identical=not (files or tensors or model or not_compared),
        summary=summary(old.manifest, new.manifest, files, tensors, model, counts),
        old=old.info,
        new=new.info,
        tensor_digests_compared=digests,
        counts=counts,
        files=files,
        tensors=tensors,
        model=model,
        notes=notes,
    )
