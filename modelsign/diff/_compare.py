"""Comparing two sides: files, inside weight files, and tensors across files.

Model-level attributes are compared in :mod:`._attributes`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._internal.check.compare import Problem, diff_weights, without_digests
from .._internal.manifest import Manifest, StorageEntry, TensorEntry, WeightsInfo
from .._internal.metadata.quantization import FileQuantization
from ..codes import Code
from ._attributes import model_changes
from ._sides import File, Side
from .report import Change, DiffCounts, ModelDiff, TensorChange, layer_index, plural, summary

_TENSOR_CODES = frozenset({"TENSOR_ADDED", "TENSOR_REMOVED", "TENSOR_MODIFIED", "TENSOR_RETYPED"})


def _algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def _shape_text(dtype: str | None, shape: Sequence[int] | None) -> str:
    return f"{dtype}[{','.join(map(str, shape or []))}]"


def _logical_shape(shape: Sequence[int], fmt: str) -> list[int]:
    """Outermost dimension first, in any format: how shapes are compared across formats."""
    return list(reversed(shape)) if fmt == "gguf" else list(shape)


#: Said of a tensor whose shape reads differently in a safetensors and a GGUF file only
#: because GGUF lists dimensions fastest first (as gguf-py and llama.cpp's gguf-dump do).
SAME_SHAPE_NOTE = "same shape: GGUF lists dimensions fastest first"


@dataclass(frozen=True)
class _Tensor:
    path: str  # the file, named as on the new side when the file is paired
    entry: TensorEntry
    shape: list[int]  # outermost first: compared across formats, never shown
    fmt: str  # the format of its file
    storage: str | None = None  # its archive storage, "<file>!<member>" (file as on the new side)
    storage_digest: str | None = None

    @property
    def text(self) -> str:
        """dtype[shape], the shape as the file records it (GGUF: fastest dimension first)."""
        return _shape_text(self.entry.dtype, self.entry.shape)


def _pool(files: Mapping[str, File], rename: Mapping[str, str]) -> dict[str, _Tensor]:
    """Every tensor of a side by name (a name in several files is keyed by file too)."""
    weights = [(f.path, f.weights) for f in files.values() if f.weights is not None]
    seen = Counter(t.name for _, w in weights for t in w.tensors)
    out: dict[str, _Tensor] = {}
    for path, w in sorted(weights, key=lambda x: x[0]):
        stored = {s.name: s.digest for s in w.storages}
        for t in w.tensors:
            key = t.name if seen[t.name] == 1 else f"{rename.get(path, path)}:{t.name}"
            storage = f"{rename.get(path, path)}!{t.storage}" if t.storage else None
            shape = _logical_shape(t.shape, w.format)
            out[key] = _Tensor(path, t, shape, w.format, storage, stored.get(t.storage or ""))
    return out


_NO_QUANT = FileQuantization(
    dtypes={}, tensors=0, elements=0, bytes=0, bits_per_weight=None, file_type=None
)


def _pooled_info(tensors: Mapping[str, _Tensor], digests: bool) -> WeightsInfo:
    """All tensors of a side as one synthetic weight file, for :func:`diff_weights`.

    Archive storages come along, so a view with no digest of its own is judged by
    its storage's, as verify judges it.
    """
    entries = [
        TensorEntry(
            name=key,
            dtype=t.entry.dtype,
            shape=t.shape,
            offset=0,
            length=t.entry.length,
            digest=t.entry.digest if digests else None,
            storage=t.storage,
        )
        for key, t in tensors.items()
    ]
    storages = {
        t.storage: StorageEntry(
            name=t.storage, offset=0, length=0, digest=t.storage_digest if digests else None
        )
        for t in tensors.values()
        if t.storage is not None
    }
    return WeightsInfo(
        format="safetensors",
        header_size=0,
        header_digest="",
        tensor_count=len(entries),
        tensors=entries,
        quantization=_NO_QUANT,
        storages=list(storages.values()),
    )


def _tensor_change(
    p: Problem, old: Mapping[str, _Tensor], new: Mapping[str, _Tensor], rename: Mapping[str, str]
) -> TensorChange:
    key = p.tensor or ""
    o, n = old.get(key), new.get(key)
    either = n or o
    name = either.entry.name if either is not None else key
    old_text = o.text if o else None
    new_text = n.text if n else None
    if p.code == "TENSOR_ADDED":
        message = f"added {new_text}"
    elif p.code == "TENSOR_REMOVED":
        message = f"removed {old_text}"
    elif p.code == "TENSOR_RETYPED":
        message = f"retyped {old_text} → {new_text}"
        if o and n and o.fmt != n.fmt and o.shape == n.shape and o.entry.shape != n.entry.shape:
            message += f" ({SAME_SHAPE_NOTE})"
    else:
        message = f"data changed ({new_text})"
    old_file = rename.get(o.path, o.path) if o else None
    path = n.path if n else old_file
    return TensorChange(
        code=p.code,
        message=message,
        file=path,
        old_path=o.path if o and o.path != path else None,
        tensor=name,
        expected=p.expected,
        actual=p.actual,
        layer=layer_index(name),
        old_dtype=o.entry.dtype if o else None,
        new_dtype=n.entry.dtype if n else None,
        old_shape=list(o.entry.shape) if o else None,
        new_shape=list(n.entry.shape) if n else None,
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
    if not headers:  # header (and storage) digests made with different algorithms say nothing
        o, n = without_digests(o, tensors=False), without_digests(n, tensors=False)
    out: list[Change] = []
    for p in diff_weights(path, o, n):
        if p.code in _TENSOR_CODES:
            continue  # tensors are compared model-wide, across files
        out.append(
            Change(
                code=p.code,
                message=p.message,
                file=path,
                old_path=old_path,
                expected=p.expected,
                actual=p.actual,
            )
        )
    ol, nl = _file_quant_label(o.quantization), _file_quant_label(n.quantization)
    for key in ("file_type", "dtypes", "bits_per_weight"):
        if ol[key] != nl[key]:
            out.append(
                Change(
                    code=Code.QUANTIZATION_CHANGED,
                    message=f"{key.replace('_', ' ')} {ol[key] or 'none'} → {nl[key] or 'none'}",
                    file=path,
                    old_path=old_path,
                    field=f"quantization.{key}",
                    expected=ol[key],
                    actual=nl[key],
                )
            )
    return out


def compare(old: Side, new: Side) -> ModelDiff:
    notes = [*old.notes, *new.notes]
    om, nm = old.manifest, new.manifest
    found = _file_changes(old, new)
    if found.not_compared:
        notes.append(
            f"{plural(found.not_compared, 'common file')} not compared: the two sides digest "
            "files with different algorithms"
        )
    headers = om is not None and nm is not None and om.hashing.header == nm.hashing.header
    files = found.changes
    for path, old_path, ow, nw in found.pairs:
        files += _weight_file_changes(path, old_path, ow, nw, headers=headers)
    files.sort(key=lambda c: (c.file or "", c.code, c.field or ""))
    digests = _same_tensor_hash(om, nm)
    tensors = _tensor_changes(old, new, found.rename, digests, notes)
    model = model_changes(old, new, digests)
    counts = _counts(old, new, files, tensors, model, found.not_compared)
    return ModelDiff(
        identical=not (files or tensors or model or found.not_compared),
        summary=summary(om, nm, files, tensors, model, counts),
        old=old.info,
        new=new.info,
        tensor_digests_compared=digests,
        counts=counts,
        files=files,
        tensors=tensors,
        model=model,
        notes=notes,
    )


# --- files ----------------------------------------------------------------------

#: A weight file to compare inside: new path, old path if another, old, new.
_Pair = tuple[str, str | None, WeightsInfo, WeightsInfo]


@dataclass
class _Files:
    """What comparing the file lists found, and what the weight and tensor steps need from it."""

    changes: list[Change] = field(default_factory=list)
    pairs: list[_Pair] = field(default_factory=list)
    rename: dict[str, str] = field(default_factory=dict)  # old path → new path
    not_compared: int = 0  # common files whose digests use different algorithms


def _file_changes(old: Side, new: Side) -> _Files:
    found = _Files()
    # A single-file model is its one file, whatever its name.
    if old.single_file and new.single_file and len(old.files) == 1 and len(new.files) == 1:
        (op,), (np_,) = old.files, new.files
        if op != np_:
            found.rename[op] = np_
    ofiles = {found.rename.get(p, p): f for p, f in old.files.items()}
    for path in sorted(set(ofiles) & set(new.files)):
        _common_file(path, ofiles[path], new.files[path], found)
    removed = sorted(set(ofiles) - set(new.files))
    added = sorted(set(new.files) - set(ofiles))
    gone, arrived = _moved(removed, added, ofiles, new.files, found.changes)
    for p in gone:
        found.changes.append(
            Change(code=Code.FILE_REMOVED, message="removed", file=p, expected=ofiles[p].digest)
        )
    for p in sorted(arrived):
        found.changes.append(
            Change(code=Code.FILE_ADDED, message="added", file=p, actual=new.files[p].digest)
        )
    # One weight file replaced by another (a re-quantization under a new name): compare them.
    gone_w = [p for p in gone if ofiles[p].weights is not None]
    arrived_w = [p for p in arrived if new.files[p].weights is not None]
    if len(gone_w) == 1 and len(arrived_w) == 1:
        ow, nw = ofiles[gone_w[0]].weights, new.files[arrived_w[0]].weights
        assert ow is not None and nw is not None
        found.pairs.append((arrived_w[0], gone_w[0], ow, nw))
        found.rename[gone_w[0]] = arrived_w[0]
    return found


def _common_file(path: str, o: File, n: File, found: _Files) -> None:
    """A file on both sides (``o`` may be another name paired with it)."""
    old_path = o.path if o.path != path else None
    if _algorithm(o.digest) != _algorithm(n.digest):
        found.not_compared += 1
        return
    if o.weights is not None and n.weights is not None:
        found.pairs.append((path, old_path, o.weights, n.weights))
    if o.digest == n.digest:
        if old_path is not None:
            found.changes.append(
                Change(
                    code=Code.FILE_RENAMED,
                    message=f"renamed from {old_path}",
                    file=path,
                    old_path=old_path,
                    expected=o.digest,
                    actual=n.digest,
                )
            )
        return
    size = ""
    if o.size is not None and n.size is not None and o.size != n.size:
        size = f": {o.size} → {n.size} bytes"
    found.changes.append(
        Change(
            code=Code.FILE_MODIFIED,
            message="content changed" + size,
            file=path,
            old_path=old_path,
            expected=o.digest,
            actual=n.digest,
        )
    )


def _moved(
    removed: Sequence[str],
    added: Sequence[str],
    ofiles: Mapping[str, File],
    nfiles: Mapping[str, File],
    changes: list[Change],
) -> tuple[list[str], list[str]]:
    """Report a removed file whose content arrived under another name as renamed.

    Returns the files removed and the files added that are not renames.
    """
    by_digest: dict[str, list[str]] = {}
    for p in added:
        by_digest.setdefault(nfiles[p].digest, []).append(p)
    gone: list[str] = []
    for p in removed:
        twins = by_digest.get(ofiles[p].digest)
        if twins:
            target = twins.pop(0)
            changes.append(
                Change(
                    code=Code.FILE_RENAMED,
                    message=f"renamed from {p}",
                    file=target,
                    old_path=p,
                    expected=ofiles[p].digest,
                    actual=nfiles[target].digest,
                )
            )
        else:
            gone.append(p)
    return gone, [p for ps in by_digest.values() for p in ps]


# --- tensors, across files (re-sharding moves none) --------------------------------


def _same_tensor_hash(om: Manifest | None, nm: Manifest | None) -> bool:
    return (
        om is not None
        and nm is not None
        and om.hashing.tensor is not None
        and om.hashing.tensor == nm.hashing.tensor
    )


def _tensor_changes(
    old: Side, new: Side, rename: Mapping[str, str], digests: bool, notes: list[str]
) -> list[TensorChange]:
    om, nm = old.manifest, new.manifest
    if om is None or nm is None:
        return []
    opool = _pool(old.files, rename)
    npool = _pool(new.files, {})
    if not digests and (opool or npool):
        notes.append(
            f"tensor digests not compared ({om.hashing.tensor or 'none'} in old, "
            f"{nm.hashing.tensor or 'none'} in new): only dtypes and shapes are"
        )
    problems = diff_weights("", _pooled_info(opool, digests), _pooled_info(npool, digests))
    return [_tensor_change(p, opool, npool, rename) for p in problems]


def _counts(
    old: Side,
    new: Side,
    files: Sequence[Change],
    tensors: Sequence[TensorChange],
    model: Sequence[Change],
    not_compared: int,
) -> DiffCounts:
    count = Counter(c.code for c in [*files, *tensors])
    return DiffCounts(
        files_old=len(old.files),
        files_new=len(new.files),
        files_added=count["FILE_ADDED"],
        files_removed=count["FILE_REMOVED"],
        files_changed=count["FILE_MODIFIED"],
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
