"""Differences between what was signed and what is there, file by file and tensor by tensor.

Each difference is a :class:`Problem` — an :class:`~modelsign.issues.Issue` — with a
stable code, the file, the tensor and hex digests; verification reports them,
and release diffs reuse them.
"""

from __future__ import annotations

from ...codes import Code
from ...issues import Issue, Severity
from ..manifest import WeightsInfo

#: A verification's finding is an :class:`~modelsign.issues.Issue` (the names stay for callers).
Problem = Issue
ProblemSeverity = Severity


def tensor_modified(
    path: str, tensor: str, expected: str | None, actual: str | None, message: str = ""
) -> Problem:
    """The finding for a tensor whose bytes differ from the signed digest."""
    return Problem(
        code=Code.TENSOR_MODIFIED,
        message=message or "tensor data changed",
        file=path,
        tensor=tensor,
        expected=expected,
        actual=actual,
    )


def header_modified(
    path: str, expected: str | None, actual: str | None, message: str = "the header bytes changed"
) -> Problem:
    """The finding for a weight file whose header bytes differ from the signed digest."""
    return Problem(
        code=Code.HEADER_MODIFIED, message=message, file=path, expected=expected, actual=actual
    )


def _shape(dtype: str, shape: list[int]) -> str:
    return f"{dtype}[{','.join(map(str, shape))}]"


def diff_weights(path: str, expected: WeightsInfo, actual: WeightsInfo) -> list[Problem]:
    """What changed inside a weight file: header, metadata, chat template, tensors."""
    if expected.format != actual.format:
        return [
            Problem(
                code=Code.FORMAT_CHANGED,
                message=f"file was {expected.format}, is now {actual.format}",
                file=path,
                expected=expected.format,
                actual=actual.format,
            )
        ]
    return _header_changes(path, expected, actual) + _tensor_changes(path, expected, actual)


def _header_changes(path: str, expected: WeightsInfo, actual: WeightsInfo) -> list[Problem]:
    """The header bytes, metadata, GGUF key-values and chat template."""
    out: list[Problem] = []
    if expected.header_digest != actual.header_digest:
        out.append(header_modified(path, expected.header_digest, actual.header_digest))
    keys = sorted(set(expected.metadata) | set(actual.metadata))
    changed = [k for k in keys if expected.metadata.get(k) != actual.metadata.get(k)]
    if changed:
        out.append(
            Problem(
                code=Code.METADATA_MODIFIED,
                message="metadata changed: "
                + ", ".join(changed[:20])
                + (f" (+{len(changed) - 20} more)" if len(changed) > 20 else ""),
                file=path,
            )
        )
    if expected.kv_digest != actual.kv_digest and not changed:
        out.append(
            Problem(
                code=Code.GGUF_KV_MODIFIED,
                message="GGUF key-value metadata changed (arrays such as the vocabulary)",
                file=path,
                expected=expected.kv_digest,
                actual=actual.kv_digest,
            )
        )
    if expected.chat_template_digest != actual.chat_template_digest:
        out.append(
            Problem(
                code=Code.CHAT_TEMPLATE_MODIFIED,
                message="the chat template changed (a Jinja template runtimes execute)",
                file=path,
                expected=expected.chat_template_digest,
                actual=actual.chat_template_digest,
            )
        )
    return out


def _tensor_changes(path: str, expected: WeightsInfo, actual: WeightsInfo) -> list[Problem]:
    """Tensors removed, added, retyped or with other bytes, by name."""
    out: list[Problem] = []
    mine = {t.name: t for t in expected.tensors}
    theirs = {t.name: t for t in actual.tensors}
    for name in sorted(set(mine) | set(theirs)):
        e, a = mine.get(name), theirs.get(name)
        if a is None and e is not None:
            out.append(
                Problem(
                    code=Code.TENSOR_REMOVED,
                    message=f"tensor {_shape(e.dtype, e.shape)} is gone",
                    file=path,
                    tensor=name,
                    expected=e.digest,
                )
            )
        elif e is None and a is not None:
            out.append(
                Problem(
                    code=Code.TENSOR_ADDED,
                    message=f"tensor {_shape(a.dtype, a.shape)} was not signed",
                    file=path,
                    tensor=name,
                    actual=a.digest,
                )
            )
        elif e is not None and a is not None:
            if (e.dtype, e.shape) != (a.dtype, a.shape):
                out.append(
                    Problem(
                        code=Code.TENSOR_RETYPED,
                        message=f"tensor was {_shape(e.dtype, e.shape)}, "
                        f"is now {_shape(a.dtype, a.shape)}",
                        file=path,
                        tensor=name,
                        expected=e.digest,
                        actual=a.digest,
                    )
                )
            elif e.digest != a.digest:
                out.append(
                    tensor_modified(
                        path,
                        name,
                        e.digest,
                        a.digest,
                        f"tensor {_shape(e.dtype, e.shape)} data changed",
                    )
                )
    return out + _storage_changes(path, expected, actual)


def _storage_changes(path: str, expected: WeightsInfo, actual: WeightsInfo) -> list[Problem]:
    """Tensors with no digest of their own (views that are no contiguous range of their
    storage) are judged by their storage's digest: changed when it changed. A storage
    no tensor lies in (a Keras archive's HDF5 weights) is named itself."""
    mine = {s.name: s.digest for s in expected.storages}
    theirs = {s.name: s.digest for s in actual.storages}
    now = {t.name: t for t in actual.tensors}
    out = _bare_storage_changes(path, expected, theirs)
    for e in expected.tensors:
        a = now.get(e.name)
        if e.digest is not None or e.storage is None or a is None or a.digest is not None:
            continue
        was, got = mine.get(e.storage), theirs.get(a.storage or "")
        if (e.dtype, e.shape, e.storage) == (a.dtype, a.shape, a.storage) and was != got:
            message = f"tensor {_shape(e.dtype, e.shape)}: its storage {e.storage} changed"
            out.append(tensor_modified(path, e.name, was, got, message))
    return out


def _bare_storage_changes(
    path: str, expected: WeightsInfo, theirs: dict[str, str | None]
) -> list[Problem]:
    """Storages holding no recorded tensor whose digest changed: their bytes are not parsed."""
    held = {t.storage for t in expected.tensors}
    out: list[Problem] = []
    for s in expected.storages:
        got = theirs.get(s.name)
        gone = s.name not in theirs
        if s.name in held or s.digest is None or s.digest == got or (got is None and not gone):
            continue  # (no digest taken of it now: nothing to compare)
        change = "is gone" if gone else "changed"
        out.append(
            Problem(
                code=Code.STORAGE_MODIFIED,
                message=f"storage {s.name} {change} (it holds no tensor modelsign reads: "
                "its bytes are digested whole)",
                file=path,
                expected=s.digest,
                actual=got,
            )
        )
    return out


def without_digests(w: WeightsInfo, *, tensors: bool = True) -> WeightsInfo:
    """``w`` with the digests that cannot be compared left out: header, key-value and
    storage digests, and (``tensors``) the tensors' own.

    Storage digests go with the rest: kept alone, every view with no digest of
    its own would be judged by its storage's.
    """
    update: dict[str, object] = {
        "header_digest": "",
        "kv_digest": None,
        "storages": [s.model_copy(update={"digest": None}) for s in w.storages],
    }
    if tensors:
        update["tensors"] = [t.model_copy(update={"digest": None}) for t in w.tensors]
    return w.model_copy(update=update)


def diff_layouts(path: str, expected: WeightsInfo, actual: WeightsInfo) -> list[Problem]:
    """:func:`diff_weights` for a file whose tensor bytes were not read.

    A file refused for its size is looked at through its header alone: the
    tensor names, types and shapes and the metadata still say what changed;
    digests (of bytes not read, or taken with another hash) are left out
    (:func:`without_digests`).
    """
    return diff_weights(path, without_digests(expected), without_digests(actual))
