"""The result of a diff: changes with stable codes, the two sides, counts and the one-line summary.

:class:`ModelDiff` is the stable JSON schema (``kind`` / ``version``) that
``modelsign diff --json`` prints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator

from .._internal._text import plural
from .._internal.manifest import Manifest
from ..codes import Code
from ..issues import Issue, Severity

__all__ = [
    "CHANGE_CODES",
    "DIFF_KIND",
    "DIFF_VERSION",
    "UNVERIFIED_NOTE",
    "Change",
    "ChangeCode",
    "DiffCounts",
    "DiffSide",
    "ModelDiff",
    "SignerClaim",
    "TensorChange",
    "layer_index",
    "layer_ranges",
    "plural",
    "summary",
]

DIFF_KIND: Final = "modelsign.diff"
DIFF_VERSION: Final = 2  # 2: changes are issues (file, expected, actual, severity)
UNVERIFIED_NOTE: Final = "unverified signature — run modelsign verify to trust it"

ChangeCode = Literal[
    # files
    "FILE_ADDED",
    "FILE_REMOVED",
    "FILE_MODIFIED",
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
    # a storage holding no tensor modelsign reads (from diff_weights)
    "STORAGE_MODIFIED",
    # per file (with a path) and model-wide (without)
    "QUANTIZATION_CHANGED",
    # the model
    "LICENCE_CHANGED",
    "PROVENANCE_CHANGED",
    "WEIGHTS_DIGEST_CHANGED",
    "SIGNER_CHANGED",
]
#: The codes a change may have.
CHANGE_CODES: Final = frozenset(Code(c) for c in get_args(ChangeCode))

_LAYER = re.compile(r"(?:^|\.)(?:layers|layer|blk|blocks|block|h)\.(\d+)\.")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Change(Issue):
    """One difference: an :class:`~modelsign.issues.Issue` (severity ``info``) with a stable code.

    ``file`` is the file on the new side (the old side for a removal),
    ``old_path`` the file on the old side when it is another one (a rename, a
    replaced weight file). ``field`` names the model-level attribute
    (``quantization.scheme``, ``licence.spdx``, ``provenance.source``, …).
    ``expected`` and ``actual`` are the old and the new side's digests as hex
    (``algorithm:hex`` for files) or the attribute's values; None where a side
    has none. ``path``, ``old`` and ``new`` are the names diff version 1 used.
    """

    severity: Severity = "info"
    old_path: str | None = None
    field: str | None = None

    @field_validator("code")
    @classmethod
    def _a_change_code(cls, code: Code) -> Code:
        if code not in CHANGE_CODES:
            raise ValueError(f"{code} is not a diff change code")
        return code

    @property
    def path(self) -> str | None:
        """The file (``file``)."""
        return self.file

    @property
    def old(self) -> str | None:
        """The old side's value (``expected``)."""
        return self.expected

    @property
    def new(self) -> str | None:
        """The new side's value (``actual``)."""
        return self.actual


class TensorChange(Change):
    """A tensor added, removed, retyped (dtype or shape) or modified (data).

    Shapes are as each file records them — the order ``inspect`` and the
    manifest show: outermost first in safetensors, fastest first in GGUF (as
    gguf-py and llama.cpp's gguf-dump list them). Tensors are compared across
    formats by their outermost-first shapes: a safetensors tensor ``[1536, 576]``
    and its GGUF conversion ``[576, 1536]`` have the same shape. ``layer`` is
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
    version: Literal[2] = DIFF_VERSION
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


# --- summary --------------------------------------------------------------------


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
        text = f"{len(changed)} of {plural(total, 'tensor')} changed"
        layers = {t.layer for t in changed if t.layer is not None}
        others = [t.tensor or "" for t in changed if t.layer is None]
        if layers and not others:
            text += f", all in {layer_ranges(layers)}"
        elif layers:
            rest = _names(others, 2) if len(others) <= 2 else plural(len(others), "other tensor")
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


def summary(
    old: Manifest | None,
    new: Manifest | None,
    files: Sequence[Change],
    tensors: Sequence[TensorChange],
    model: Sequence[Change],
    counts: DiffCounts,
) -> str:
    """One line for a person: tensors, format, quantization, files, then the model."""
    if counts.files_not_compared == 0 and not (files or tensors or model):
        what = plural(counts.files_new, "file")
        if new is not None and old is not None:
            what += ", " + plural(counts.tensors_new, "tensor")
        return f"identical: {what}"
    parts = _tensor_summary(tensors, counts.tensors_new)
    formats = [c for c in files if c.code == "FORMAT_CHANGED"]
    if formats:
        parts.append(f"format {formats[0].expected} → {formats[0].actual}")
    if old is not None and new is not None and any(c.field == "quantization.scheme" for c in model):
        parts.append(f"quantization {_quant_label(old)} → {_quant_label(new)}")
    parts += _file_summary(files, counts)
    parts += _model_summary(model, tensors)
    if not parts:
        parts.append(plural(len(model), "model-level change"))
    return "; ".join(parts)


def _file_summary(files: Sequence[Change], counts: DiffCounts) -> list[str]:
    by_code: dict[str, list[str]] = {}
    for c in files:
        by_code.setdefault(c.code, []).append(
            f"{c.old_path} → {c.file}" if c.code == "FILE_RENAMED" else c.file or ""
        )
    parts = []
    if by_code.get("FILE_MODIFIED"):
        names = by_code["FILE_MODIFIED"]
        total = plural(counts.files_new, "file")
        parts.append(f"{len(names)} of {total} changed ({_names(names)})")
    for code, word in (
        ("FILE_ADDED", "added"),
        ("FILE_REMOVED", "removed"),
        ("FILE_RENAMED", "renamed"),
    ):
        if by_code.get(code):
            names = by_code[code]
            parts.append(f"{plural(len(names), 'file')} {word} ({_names(names)})")
    if counts.files_not_compared:
        parts.append(
            f"{plural(counts.files_not_compared, 'file')} not compared (different digest "
            "algorithms)"
        )
    return parts


def _model_summary(model: Sequence[Change], tensors: Sequence[TensorChange]) -> list[str]:
    parts = []
    spdx = [c for c in model if c.field == "licence.spdx"]
    if spdx:
        parts.append(f"licence {spdx[0].expected or 'unknown'} → {spdx[0].actual or 'unknown'}")
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
        parts.append(f"signer {signer[0].expected} → {signer[0].actual} (unverified)")
    # Tensor changes already say the weights changed.
    if not tensors and any(c.code == "WEIGHTS_DIGEST_CHANGED" for c in model):
        parts.append("weights digest changed")
    return parts
