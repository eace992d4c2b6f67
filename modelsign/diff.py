"""What changed between two versions of a model: files, tensors, quantization, licence, origin.

Each side is a model on disk (its manifest is built), a manifest file, a
signature (the modelsign manifest inside its statement, or only the OMS file
list of a foreign signature) or a :class:`~modelsign.manifest.Manifest`. Two
manifests are enough: a reviewer needs no weights.

Signatures are read, never verified: what a signature claims (its manifest and
its signer) is reported as a claim, and :attr:`ModelDiff.notes` says so.
Tensor-level differences come from :func:`modelsign.compare.diff_weights`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from ._atomic import open_regular
from .compare import Problem, diff_weights
from .errors import InputError, SignatureError, VerificationError
from .hashing import TensorHash
from .manifest import (
    Manifest,
    TensorEntry,
    WeightsInfo,
    build_manifest,
    looks_like_manifest,
    parse_manifest,
)
from .metadata.licence import Licence
from .metadata.provenance import BaseModelRef, Builder, Provenance, SourceRepo
from .metadata.quantization import FileQuantization, ModelQuantization
from .sign import SIGNATURE_FILES
from .signature.attestation import load_signature
from .signature.bundle import KNOWN_MEDIA_TYPES, MAX_SIGNATURE_BYTES, Envelope
from .signature.certs import certificate_identity, load_der_certificate
from .signature.sigstore import fulcio_identity
from .signature.statement import SINGLE_FILE_RESOURCE, SignedStatement

__all__ = [
    "UNVERIFIED_NOTE",
    "Change",
    "ChangeCode",
    "DiffCounts",
    "DiffSide",
    "ModelDiff",
    "SignerClaim",
    "TensorChange",
    "diff_models",
    "layer_index",
    "layer_ranges",
]

DIFF_KIND: Final = "modelsign.diff"
DIFF_VERSION: Final = 1
UNVERIFIED_NOTE: Final = "unverified signature — run modelsign verify to trust it"

ChangeCode = Literal[
    # files
    "FILE_ADDED",
    "FILE_REMOVED",
    "FILE_CHANGED",
    "FILE_RENAMED",
    # inside a weight file (from diff_weights)
    "FORMAT_CHANGED",
    "HEADER_MODIFIED",
    "METADATA_MODIFIED",
    "GGUF_KV_MODIFIED",
    "CHAT_TEMPLATE_MODIFIED",
    # tensors (from diff_weights)
    "TENSOR_ADDED",
    "TENSOR_REMOVED",
    "TENSOR_MODIFIED",
    "TENSOR_RETYPED",
    # per file (with a path) and model-wide (without)
    "QUANTIZATION_CHANGED",
    # the model
    "LICENCE_CHANGED",
    "PROVENANCE_CHANGED",
    "WEIGHTS_DIGEST_CHANGED",
    "SIGNER_CHANGED",
]

_TENSOR_CODES = frozenset({"TENSOR_ADDED", "TENSOR_REMOVED", "TENSOR_MODIFIED", "TENSOR_RETYPED"})
_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|blk|blocks|block|h)\.(\d+)\.")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(_Model):
    """One difference, with a stable code.

    ``path`` is the file on the new side (the old side for a removal),
    ``old_path`` the file on the old side when it is another one (a rename, a
    replaced weight file). ``field`` names the model-level attribute
    (``quantization.scheme``, ``licence.spdx``, ``provenance.source``, …).
    ``old`` and ``new`` are digests as hex (``algorithm:hex`` for files) or the
    attribute's values; None where a side has none.
    """

    code: ChangeCode
    message: str
    path: str | None = None
    old_path: str | None = None
    tensor: str | None = None
    field: str | None = None
    old: str | None = None
    new: str | None = None


class TensorChange(Change):
    """A tensor added, removed, retyped (dtype or shape) or modified (data).

    Shapes are outermost first, as numpy and safetensors give them (GGUF
    dimensions are reversed), so tensors compare across formats. ``layer`` is
    the index in a ``layers.N.`` / ``blk.N.`` / ``h.N.`` name. ``old`` and
    ``new`` are the tensor digests.
    """

    layer: int | None = None
    old_dtype: str | None = None
    new_dtype: str | None = None
    old_shape: list[int] | None = None
    new_shape: list[int] | None = None


class SignerClaim(_Model):
    """Who a signature says signed it, read from the bundle and NOT verified."""

    kind: Literal["key", "certificate", "sigstore"]
    key_hint: str | None = None
    subject: str | None = None  # certificate subject (RFC 4514)
    issuer: str | None = None  # certificate issuer
    fingerprint: str | None = None  # SHA-256 of the leaf certificate, hex
    identity: str | None = None  # Sigstore: the certificate's SAN
    oidc_issuer: str | None = None

    def describe(self) -> str:
        """One line for a person."""
        if self.kind == "key":
            return f"key {self.key_hint or '(no hint)'}"
        if self.kind == "certificate":
            return f"certificate {self.subject} (issuer {self.issuer})"
        return f"sigstore {self.identity} via {self.oidc_issuer}"

    def identity_key(self) -> tuple[str | None, ...]:
        """What names the signer (certificate serials and fingerprints change on renewal)."""
        if self.kind == "key":
            return (self.kind, self.key_hint)
        if self.kind == "certificate":
            return (self.kind, self.subject, self.issuer)
        return (self.kind, self.identity, self.oidc_issuer)


class DiffSide(_Model):
    """One side of the diff and how it was read."""

    kind: Literal["model", "manifest", "signature"]
    path: str | None  # None for a Manifest object
    name: str
    manifest_digest: str | None  # None for a signature without a modelsign manifest
    weights_digest: str | None
    tensor_hash: str | None
    files: int
    tensors: int
    verified: Literal[False] = False  # a signature is read, not verified
    signer: SignerClaim | None = None  # signatures only
    predicate_type: str | None = None  # signatures only


class DiffCounts(_Model):
    files_old: int
    files_new: int
    files_added: int
    files_removed: int
    files_changed: int
    files_renamed: int
    files_not_compared: int  # common files whose digests use different algorithms
    tensors_old: int
    tensors_new: int
    tensors_added: int
    tensors_removed: int
    tensors_modified: int
    tensors_retyped: int
    model_changes: int


class ModelDiff(_Model):
    """The differences between two models (stable JSON schema, ``kind`` / ``version``)."""

    kind: Literal["modelsign.diff"] = DIFF_KIND
    version: Literal[1] = DIFF_VERSION
    identical: bool
    summary: str
    old: DiffSide
    new: DiffSide
    tensor_digests_compared: bool
    counts: DiffCounts
    files: list[Change]
    tensors: list[TensorChange]
    model: list[Change]
    notes: list[str]

    @property
    def changes(self) -> list[Change]:
        """Every change: files, tensors, then model-level."""
        return [*self.files, *self.tensors, *self.model]


# --- reading the two sides -----------------------------------------------------


@dataclass(frozen=True)
class _File:
    path: str
    digest: str  # "<algorithm>:<hex>"
    size: int | None
    weights: WeightsInfo | None


@dataclass
class _Side:
    info: DiffSide
    manifest: Manifest | None
    files: dict[str, _File]
    single_file: bool
    from_disk: bool  # built here from the model: it carries no build-time claims
    ignore_paths: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Pending:
    """A model on disk, built once the other side says which tensor hash to use."""

    path: str


Target = str | os.PathLike[str] | Manifest


def _files_of(m: Manifest) -> dict[str, _File]:
    return {f.path: _File(f.path, f"sha256:{f.sha256}", f.size, f.weights) for f in m.files}


def _side_of_manifest(
    m: Manifest,
    kind: Literal["model", "manifest", "signature"],
    path: str | None,
    *,
    signer: SignerClaim | None = None,
    predicate_type: str | None = None,
) -> _Side:
    info = DiffSide(
        kind=kind,
        path=path,
        name=m.name,
        manifest_digest=m.digest(),
        weights_digest=m.weights_digest,
        tensor_hash=m.hashing.tensor,
        files=len(m.files),
        tensors=m.tensor_count,
        signer=signer,
        predicate_type=predicate_type,
    )
    return _Side(info, m, _files_of(m), m.single_file, from_disk=kind == "model")


def _looks_like_bundle(data: bytes) -> bool:
    try:
        obj = json.loads(data)
    except ValueError:
        return False
    return isinstance(obj, dict) and (
        obj.get("mediaType") in KNOWN_MEDIA_TYPES or "dsseEnvelope" in obj
    )


def _read_small(path: str) -> bytes | None:
    """The bytes of a file that may be a manifest or a signature, else None."""
    if not os.path.isfile(path):
        return None
    is_sig = path.endswith(".sig")
    try:
        size = os.path.getsize(path)
        if size > MAX_SIGNATURE_BYTES:
            if is_sig:
                raise SignatureError(
                    f"signature file is larger than {MAX_SIGNATURE_BYTES} bytes",
                    code="BUNDLE_INVALID",
                    path=path,
                )
            return None
        with open_regular(path) as fh:
            head = fh.read(64)
            if not is_sig and not head.lstrip().startswith(b"{"):
                return None  # a weight file or other model file: never read whole here
            return head + fh.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", code="UNREADABLE", path=path) from exc


def _classify(target: Target) -> _Side | _Pending:
    if isinstance(target, Manifest):
        return _side_of_manifest(target, "manifest", None)
    path = os.fspath(target)
    if not os.path.lexists(path):
        raise InputError(f"no such file or folder: {path}", code="NOT_FOUND", path=path)
    data = _read_small(path)
    if data is None:
        return _Pending(path)
    if looks_like_manifest(data):
        return _side_of_manifest(parse_manifest(data, path), "manifest", path)
    if path.endswith(".sig") or _looks_like_bundle(data):
        return _side_of_signature(data, path)
    return _Pending(path)


def _signer_claim(envelope: Envelope) -> SignerClaim:
    """Who the bundle names, without checking anything."""
    if not envelope.certificates:
        return SignerClaim(kind="key", key_hint=envelope.key_hint)
    leaf = load_der_certificate(envelope.certificates[0], "the signing certificate")
    if envelope.method == "sigstore":
        identity, issuer, _ = fulcio_identity(leaf)
        return SignerClaim(kind="sigstore", identity=identity, oidc_issuer=issuer)
    ident = certificate_identity(leaf)
    return SignerClaim(
        kind="certificate",
        subject=ident.get("subject"),
        issuer=ident.get("issuer"),
        fingerprint=ident.get("fingerprint"),
    )


def _oms_files(st: SignedStatement) -> dict[str, _File]:
    """Files of a signature without a modelsign manifest: names and digests only."""
    if st.method == "files":
        out: dict[str, _File] = {}
        for r in st.resources:
            name = st.subject_name if r.name == SINGLE_FILE_RESOURCE else r.name
            out[name] = _File(name, f"{r.algorithm}:{r.digest}", None, None)
        return out
    # Shards ("name:start:end"): one digest per file over its shard digests in order.
    shards: dict[str, list[tuple[int, str, str]]] = {}
    for r in st.resources:
        name, start, _end = r.name.rsplit(":", 2)
        name = st.subject_name if name == SINGLE_FILE_RESOURCE else name
        shards.setdefault(name, []).append((int(start), r.algorithm, r.digest))
    files = {}
    for name, parts in shards.items():
        parts.sort()
        h = hashlib.sha256(b"".join(bytes.fromhex(d) for _, _, d in parts)).hexdigest()
        files[name] = _File(name, f"{parts[0][1]}:{h}", None, None)
    return files


def _side_of_signature(data: bytes, path: str) -> _Side:
    try:
        signed = load_signature(path, data=data)
        envelope, st = signed.envelope, signed.statement
        signer = _signer_claim(envelope)
    except VerificationError as exc:
        raise SignatureError(
            f"cannot read the signature: {exc.message}",
            code=exc.code,
            path=path,
            expected=exc.expected,
            actual=exc.actual,
        ) from exc
    notes = [f"{path}: {UNVERIFIED_NOTE}"]
    if st.manifest is not None:
        side = _side_of_manifest(
            st.manifest, "signature", path, signer=signer, predicate_type=st.predicate_type
        )
        side.ignore_paths, side.notes = st.ignore_paths, notes
        return side
    files = _oms_files(st)
    names = st.files
    notes.append(
        f"{path}: an OMS signature without a modelsign manifest: files are compared by digest only"
    )
    info = DiffSide(
        kind="signature",
        path=path,
        name=st.subject_name or os.path.basename(path),
        manifest_digest=None,
        weights_digest=None,
        tensor_hash=None,
        files=len(files),
        tensors=0,
        signer=signer,
        predicate_type=st.predicate_type,
    )
    single = names == {SINGLE_FILE_RESOURCE}
    return _Side(info, None, files, single, False, st.ignore_paths, notes)


@dataclass(frozen=True)
class _BuildOptions:
    ignore: Sequence[str]
    allow_symlinks: bool
    jobs: int | None
    progress: Callable[[int, int], None] | None


def _build(pending: _Pending, other: _Side | _Pending, opts: _BuildOptions) -> _Side:
    """Build the manifest of a model on disk, comparable with ``other``."""
    tensor_hash: TensorHash | None = "blake3"
    ignore = list(opts.ignore)
    exclude: list[str] = []
    if isinstance(other, _Side):
        # The other side's digests decide the algorithm (None: it has no tensor digests).
        tensor_hash = other.manifest.hashing.tensor if other.manifest is not None else None
        # Leave out what the other side left out, so both describe the same files.
        exclude += other.ignore_paths
        if other.manifest is not None:
            ignore += other.manifest.ignored.patterns
            exclude += other.manifest.ignored.paths
    if os.path.isdir(pending.path):
        # A signature (and its claims) is never part of what it signs.
        exclude += [n for n in SIGNATURE_FILES if os.path.isfile(os.path.join(pending.path, n))]
    m = build_manifest(
        pending.path,
        tensor_hash=tensor_hash,
        ignore=sorted(set(ignore)),
        exclude=sorted(set(exclude)),
        allow_symlinks=opts.allow_symlinks,
        env={},  # the differ's own CI is not the model's builder
        jobs=opts.jobs,
        progress=opts.progress,
    )
    return _side_of_manifest(m, "model", pending.path)


# --- layers ---------------------------------------------------------------------


def layer_index(tensor: str) -> int | None:
    """The layer a tensor belongs to by its name (``layers.N.``, ``blk.N.``, ``h.N.``, …)."""
    m = _LAYER.search(tensor)
    return int(m.group(1)) if m else None


def layer_ranges(layers: Iterable[int]) -> str:
    """``"layer 3"``, ``"layers 1, 3–5"``: indices grouped into ranges."""
    items = sorted(set(layers))
    parts: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        parts.append(str(items[i]) if i == j else f"{items[i]}–{items[j]}")
        i = j + 1
    return ("layer " if len(items) == 1 else "layers ") + ", ".join(parts)


# --- comparing ------------------------------------------------------------------


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


def _pool(files: Mapping[str, _File], rename: Mapping[str, str]) -> dict[str, _Tensor]:
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


# --- summary --------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _names(names: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", +{len(names) - limit} more" if len(names) > limit else "")


def _quant_label(m: Manifest) -> str:
    q = m.quantization
    if q.scheme is not None:
        label = q.scheme.removeprefix("MOSTLY_")
        return (
            f"{label} {q.bits}-bit"
            if q.bits is not None and not q.scheme.startswith("MOSTLY_")
            else label
        )
    dtypes: Counter[str] = Counter()
    for f in m.files:
        if f.weights is not None:
            for d, s in f.weights.quantization.dtypes.items():
                dtypes[d] += s.bytes
    return dtypes.most_common(1)[0][0] if dtypes else "none"


def _tensor_summary(tensors: Sequence[TensorChange], total: int) -> list[str]:
    parts: list[str] = []
    changed = [t for t in tensors if t.code in ("TENSOR_MODIFIED", "TENSOR_RETYPED")]
    if changed:
        text = f"{len(changed)} of {total} tensors changed"
        layers = {t.layer for t in changed if t.layer is not None}
        others = [t.tensor or "" for t in changed if t.layer is None]
        if layers and not others:
            text += f", all in {layer_ranges(layers)}"
        elif layers:
            rest = _names(others, 2) if len(others) <= 2 else _plural(len(others), "other tensor")
            text += f" ({layer_ranges(layers)}, {rest})"
        else:
            text += f" ({_names(others)})"
        moves = Counter(
            f"{t.old_dtype} → {t.new_dtype}"
            for t in changed
            if t.code == "TENSOR_RETYPED" and t.old_dtype != t.new_dtype
        )
        if moves:
            text += "; retyped " + ", ".join(
                m if len(moves) == 1 else f"{m} ×{k}" for m, k in moves.most_common()
            )
        parts.append(text)
    added = sum(t.code == "TENSOR_ADDED" for t in tensors)
    removed = sum(t.code == "TENSOR_REMOVED" for t in tensors)
    if added or removed:
        bits = []
        if added:
            bits.append(f"{added} added")
        if removed:
            bits.append(f"{removed} removed")
        parts.append("tensors " + ", ".join(bits))
    return parts


def _summary(
    old: _Side,
    new: _Side,
    files: Sequence[Change],
    tensors: Sequence[TensorChange],
    model: Sequence[Change],
    counts: DiffCounts,
) -> str:
    if counts.files_not_compared == 0 and not (files or tensors or model):
        what = _plural(counts.files_new, "file")
        if new.manifest is not None and old.manifest is not None:
            what += ", " + _plural(counts.tensors_new, "tensor")
        return f"identical: {what}"
    parts = _tensor_summary(tensors, counts.tensors_new)
    formats = [c for c in files if c.code == "FORMAT_CHANGED"]
    if formats:
        parts.append(f"format {formats[0].old} → {formats[0].new}")
    if (
        old.manifest is not None
        and new.manifest is not None
        and any(c.field == "quantization.scheme" for c in model)
    ):
        parts.append(f"quantization {_quant_label(old.manifest)} → {_quant_label(new.manifest)}")
    by_code: dict[str, list[str]] = {}
    for c in files:
        by_code.setdefault(c.code, []).append(
            f"{c.old_path} → {c.path}" if c.code == "FILE_RENAMED" else c.path or ""
        )
    file_parts = []
    if by_code.get("FILE_CHANGED"):
        names = by_code["FILE_CHANGED"]
        total = _plural(counts.files_new, "file")
        file_parts.append(f"{len(names)} of {total} changed ({_names(names)})")
    for code, word in (
        ("FILE_ADDED", "added"),
        ("FILE_REMOVED", "removed"),
        ("FILE_RENAMED", "renamed"),
    ):
        if by_code.get(code):
            names = by_code[code]
            file_parts.append(f"{_plural(len(names), 'file')} {word} ({_names(names)})")
    parts += file_parts
    if counts.files_not_compared:
        parts.append(
            f"{_plural(counts.files_not_compared, 'file')} not compared (different digest "
            "algorithms)"
        )
    spdx = [c for c in model if c.field == "licence.spdx"]
    if spdx:
        parts.append(f"licence {spdx[0].old or 'unknown'} → {spdx[0].new or 'unknown'}")
    elif any(c.code == "LICENCE_CHANGED" for c in model):
        parts.append("licence statements changed")
    prov = sorted(
        {
            (c.field or "").removeprefix("provenance.")
            for c in model
            if c.code == "PROVENANCE_CHANGED"
        }
    )
    if prov:
        parts.append("provenance changed (" + ", ".join(prov) + ")")
    signer = [c for c in model if c.code == "SIGNER_CHANGED"]
    if signer:
        parts.append(f"signer {signer[0].old} → {signer[0].new} (unverified)")
    if not tensors and any(c.code == "WEIGHTS_DIGEST_CHANGED" for c in model):
        parts.append("weights digest changed")
    if not parts:
        parts.append(_plural(len(model), "model-level change"))
    return "; ".join(parts)


# --- the diff ---------------------------------------------------------------------


def diff_models(
    old: Target,
    new: Target,
    *,
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelDiff:
    """Compare two models; each a model path, a manifest file, a signature or a Manifest.

    A model on disk is built with BLAKE3 tensor digests, or with the other
    side's algorithm when that is a manifest or a signature (no tensor digests
    against a signature without a modelsign manifest), leaving out what the
    other side left out and any ``model.sig`` in the folder. ``ignore`` and
    ``allow_symlinks`` apply to models on disk. Signatures are read, never
    verified. Raises :class:`~modelsign.errors.ModelsignError` subclasses
    (exit code 2) for unreadable inputs; a difference is not an error.
    """
    opts = _BuildOptions(ignore, allow_symlinks, jobs, progress)
    a, b = _classify(old), _classify(new)
    if isinstance(a, _Pending):
        a = _build(a, b, opts)
    if isinstance(b, _Pending):
        b = _build(b, a, opts)
    return _compare(a, b)


def _compare(old: _Side, new: _Side) -> ModelDiff:
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
            f"{_plural(not_compared, 'common file')} not compared: the two sides digest "
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
        summary=_summary(old, new, files, tensors, model, counts),
        old=old.info,
        new=new.info,
        tensor_digests_compared=digests,
        counts=counts,
        files=files,
        tensors=tensors,
        model=model,
        notes=notes,
    )
