"""``load_safetensors``: verified tensors from the very bytes that were verified."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping, Sequence
from datetime import datetime
from typing import Any, Literal

from .._internal.check.compare import Problem
from .._internal.check.judge import parts_problems
from .._internal.hashing import hash_ranges
from .._internal.manifest import TensorEntry
from .._internal.signature.verifiers import Verifier
from ..codes import Code
from ..errors import InputError
from ..policy import Policy
from ._context import (
    Context,
    LoadReport,
    Memory,
    check_memory,
    map_signed,
    open_context,
    open_signed,
    read_verified,
    verify_jobs,
)

Framework = Literal["numpy", "torch"]

_NUMPY = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "F16": "float16", "I32": "int32", "U32": "uint32", "F32": "float32", "I64": "int64",
    "U64": "uint64", "F64": "float64", "C64": "complex64",
}  # fmt: skip
_TORCH = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32",
    "I64": "int64", "U64": "uint64", "F64": "float64", "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz",
}  # fmt: skip


class VerifiedTensors(dict[str, Any]):
    """Tensors by name, with ``report`` saying what was verified and by whom."""

    report: LoadReport


def tensor_from_buffer(framework: Framework, t: TensorEntry, buf: Any, offset: int) -> Any:
    """A tensor over ``buf`` (no copy); ``offset`` is where its bytes start in ``buf``."""
    if framework == "numpy":
        import numpy as np

        if t.dtype not in _NUMPY:
            raise InputError(
                f"numpy cannot hold {t.dtype}; load with framework='torch'",
                code=Code.UNSUPPORTED_DTYPE,
                tensor=t.name,
            )
        dtype = np.dtype(_NUMPY[t.dtype]).newbyteorder("<")
        count = t.length // dtype.itemsize
        return np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(t.shape)
    import torch

    name = _TORCH.get(t.dtype)
    if name is None or not hasattr(torch, name):
        raise InputError(
            f"this torch has no dtype for {t.dtype}", code=Code.UNSUPPORTED_DTYPE, tensor=t.name
        )
    tdtype = getattr(torch, name)
    if t.length == 0:
        return torch.empty(t.shape, dtype=tdtype)
    count = t.length // torch.empty((), dtype=tdtype).element_size()
    return torch.frombuffer(buf, dtype=tdtype, count=count, offset=offset).reshape(t.shape)


def _shard_names(ctx: Context, path: str) -> list[str]:
    """The safetensors files to load: one file, the shards of an index, or all at the top."""
    if ctx.single_file is not None:
        return [ctx.single_file]
    if os.path.isfile(path):
        return [os.path.basename(path)]
    index_names = sorted(
        n for n in ctx.files if n.endswith(".safetensors.index.json") and "/" not in n
    )
    if index_names:
        names: set[str] = set()
        for index in index_names:
            data = json.loads(bytes(read_verified(ctx, index)))
            weight_map = data.get("weight_map", {}) if isinstance(data, dict) else {}
            names.update(v for v in weight_map.values() if isinstance(v, str))
        unsigned = sorted(n for n in names if ctx.signed_digest(n) is None)
        if unsigned:
            ctx.fail(
                "the shard index names files the signature does not cover",
                [
                    Problem(code=Code.FILE_UNSIGNED, message="shard not signed", file=n)
                    for n in unsigned
                ],
                "FILE_UNSIGNED",
            )
        return sorted(names)
    # The signed top-level files, not whatever is on disk: a deleted signed
    # file is then reported missing instead of silently loading fewer tensors.
    if ctx.statement is not None:
        signed = [r.name for r in ctx.statement.resources]
    else:
        signed = list(ctx.files)
    return sorted(n for n in signed if n.endswith(".safetensors") and "/" not in n)


def load_safetensors(
    path_or_model_dir: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    verifier: Verifier | None = None,
    framework: Framework = "numpy",
    tensors: Sequence[str] | None = None,
    memory: Memory = "copy",
    now: datetime | None = None,
) -> VerifiedTensors:
    """Load safetensors weights whose bytes match the signed manifest, or nothing.

    Each file is read once into memory, checked there (header, tensor and
    padding digests in parallel when the signed manifest covers every byte,
    else the file SHA-256) and the tensors are built over that same buffer —
    the path is never opened again. A sharded model is read through its
    (signed) index. With ``tensors=[...]`` only those tensors (and each file's
    header) are read and checked against their signed digests: a
    tensor-parallel rank loading its slice.

    ``memory`` says where the verified bytes live. ``"copy"`` (the default):
    in private memory, which nothing outside the process can change.
    ``"mapped"``: zero-copy, the file's page cache mapped under a Linux read
    lease, so processes share it and loading costs little more than hashing;
    a writer that shows up later is held by the kernel until the bytes are
    copied out, so the tensors never change. ``open(path, O_RDONLY|O_TRUNC)``
    is not held back: only files no one but their owner can write are mapped,
    and after such a truncation ``is_guarded`` is False and touching the
    tensors faults (they are lost, never replaced). It raises
    ``MAPPING_UNAVAILABLE`` where that cannot be guaranteed (not Linux, a
    network/FUSE/overlay filesystem, the file open for writing, writable by
    group or others, not the file's owner, SIGURG taken by the application);
    ``"auto"`` copies there instead and says why in ``report.not_mapped``.
    A partial load maps too, and reads only what it checks.

    Trust comes from ``verifier`` or from ``policy``'s signers; the policy is
    judged before any weight is read. On any failure :class:`VerificationError`
    is raised and nothing is returned (a warn-mode policy warns instead).
    """
    check_memory(memory)
    path = os.fspath(path_or_model_dir)
    ctx = open_context(path, signature=signature, verifier=verifier, policy=policy, now=now)
    names = _shard_names(ctx, path)
    out = VerifiedTensors()
    out.report = ctx.report
    if tensors is not None:
        _load_partial(ctx, names, list(tensors), framework, out, memory)
        return out
    for name in names:
        _load_file(ctx, name, framework, out, memory)
    return out


def _load_file(
    ctx: Context, name: str, framework: Framework, out: VerifiedTensors, memory: Memory
) -> None:
    """Every tensor of one verified file, over the buffer that was verified."""
    add_tensors(ctx, name, read_verified(ctx, name, memory), framework, out)


def add_tensors(
    ctx: Context, name: str, buf: Any, framework: Framework, out: MutableMapping[str, Any]
) -> None:
    """Every tensor of verified safetensors file ``name`` into ``out``, as views over ``buf``.

    A tensor already in ``out`` (from another shard) is refused.
    """
    for t in tensor_entries(ctx, name, buf):
        if t.name in out:
            duplicate = Problem(
                code=Code.DUPLICATE_TENSOR, message="in two shards", file=name, tensor=t.name
            )
            ctx.fail(f"tensor {t.name} appears in two files", [duplicate], "DUPLICATE_TENSOR")
        out[t.name] = tensor_from_buffer(framework, t, buf, t.offset)


def tensor_entries(ctx: Context, name: str, buf: Any) -> list[TensorEntry]:
    """The tensors of safetensors file ``name``: as signed, else read from the verified buffer.

    A file signed only by its digest (an OMS signature) has its bytes verified;
    its layout comes from the strict reader over the buffer.
    """
    entry = ctx.entry(name)
    if entry is not None and entry.weights is not None:
        return entry.weights.tensors
    return layout_from_buffer(name, buf)


def layout_from_buffer(name: str, buf: Any) -> list[TensorEntry]:
    from .._internal.formats import parse_weights_bytes

    layout = parse_weights_bytes("safetensors", memoryview(buf), name)
    return [
        TensorEntry(
            name=t.name, dtype=t.dtype, shape=list(t.shape), offset=t.start, length=t.nbytes
        )
        for t in layout.tensors
    ]


def _load_partial(
    ctx: Context,
    names: list[str],
    wanted: list[str],
    framework: Framework,
    out: VerifiedTensors,
    memory: Memory,
) -> None:
    m = ctx.manifest
    if m is None or m.hashing.tensor is None:
        raise InputError(
            "partial loading needs a signature with tensor digests (signed by modelsign)",
            code=Code.NO_TENSOR_DIGESTS,
        )
    where: dict[str, tuple[str, TensorEntry]] = {}
    for name in names:
        entry = ctx.entry(name)
        if entry is not None and entry.weights is not None:
            for t in entry.weights.tensors:
                where[t.name] = (name, t)
    missing = [w for w in wanted if w not in where]
    if missing:
        raise InputError(
            f"not in the signed model: {', '.join(missing[:10])}", code=Code.NO_SUCH_TENSOR
        )
    ctx.report.partial = True
    by_file: dict[str, list[TensorEntry]] = {}
    for w in wanted:
        name, t = where[w]
        by_file.setdefault(name, []).append(t)
    for name, entries in by_file.items():
        for t, b in zip(entries, _read_tensors(ctx, name, entries, memory), strict=True):
            out[t.name] = tensor_from_buffer(framework, t, b, 0)
        ctx.report.files.append(name)


def _read_tensors(ctx: Context, name: str, entries: list[TensorEntry], memory: Memory) -> list[Any]:
    """The header and the ``entries`` of one file read (copied, or mapped) and checked.

    Only those are read and hashed, in parallel; each tensor's bytes are returned.
    """
    m, entry = ctx.manifest, ctx.entry(name)
    assert m is not None and m.hashing.tensor is not None
    assert entry is not None and entry.weights is not None
    changed = [Problem(code=Code.FILE_MODIFIED, message="size changed", file=name)]
    fd = open_signed(ctx, name)
    try:
        if os.fstat(fd).st_size != entry.size:
            ctx.fail(f"{name} has another size than signed", changed, "FILE_MODIFIED")
        mapped = map_signed(ctx, fd, name, entry.size, memory)
        if mapped is not None and len(mapped) != entry.size:
            # Shrank or grew before the lease: nothing to load.
            ctx.fail(f"{name} has another size than signed", changed, "FILE_MODIFIED", fatal=True)
        spans = [(0, entry.weights.header_size, m.hashing.header)]
        spans += [(t.offset, t.offset + t.length, m.hashing.tensor) for t in entries]
        jobs, arrays = verify_jobs(fd, spans, mapped, mapped is not None)
        got = hash_ranges(jobs)
    finally:
        os.close(fd)
    problems = parts_problems(name, entry.weights, entries, got)
    if problems:
        ctx.fail(f"{name} does not match the signature", problems, problems[-1].code)
    else:
        ctx.report.tensors += [t.name for t in entries]
        ctx.report.bytes_verified += sum(t.length for t in entries)
    return arrays[1:]
