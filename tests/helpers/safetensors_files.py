"""Builders for safetensors test files: real ones written by the safetensors
library (numpy and torch), sharded checkpoints laid out like transformers
writes them, and hand-made byte strings for malformed cases."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import save_file as _np_save_file

if TYPE_CHECKING:
    import torch

PathLike = str | Path


def write_safetensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write ``tensors`` with ``safetensors.numpy.save_file``; return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _np_save_file(
        {k: np.require(v, requirements="C") for k, v in tensors.items()},  # keeps 0-d shapes
        str(p),
        metadata=dict(metadata) if metadata is not None else None,
    )
    return p


def write_safetensors_torch(
    path: PathLike,
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write torch tensors (BF16, F8_E4M3, F8_E5M2, …) with ``safetensors.torch.save_file``."""
    from safetensors.torch import save_file

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(p),
        metadata=dict(metadata) if metadata is not None else None,
    )
    return p


def torch_tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw little-endian bytes safetensors stores for ``t`` (any dtype)."""
    import torch

    flat = t.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def write_sharded(
    directory: PathLike,
    tensors: Mapping[str, np.ndarray],
    n_shards: int,
    *,
    prefix: str = "model",
) -> tuple[Path, list[Path]]:
    """Write a sharded checkpoint the way transformers does.

    Tensors are split in order into ``n_shards`` files named
    ``{prefix}-0000k-of-0000N.safetensors`` (metadata ``{"format": "pt"}``) plus
    ``{prefix}.safetensors.index.json`` with ``metadata.total_size`` and a sorted
    ``weight_map``. Returns the index path and the shard paths.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    per = -(-len(names) // n_shards) if names else 0
    shards: list[Path] = []
    weight_map: dict[str, str] = {}
    total = 0
    for k in range(n_shards):
        part = names[k * per : (k + 1) * per]
        shard_name = f"{prefix}-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        shards.append(
            write_safetensors(d / shard_name, {n: tensors[n] for n in part}, {"format": "pt"})
        )
        for n in part:
            weight_map[n] = shard_name
            total += int(tensors[n].nbytes)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    index_path = d / f"{prefix}.safetensors.index.json"
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return index_path, shards


def raw_safetensors(header_bytes: bytes, buffer: bytes = b"", *, size: int | None = None) -> bytes:
    """``u64 LE size`` + ``header_bytes`` + ``buffer``; ``size`` overrides the declared size."""
    n = len(header_bytes) if size is None else size
    return struct.pack("<Q", n) + header_bytes + buffer


def header_json(header: Mapping[str, Any], *, pad: bool = True) -> bytes:
    """Compact JSON for a header dict, space-padded so that 8 + N is a multiple of 8."""
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if pad:
        raw += b" " * (-len(raw) % 8)
    return raw


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    """One tensor entry of a safetensors header."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def split_safetensors(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Parse a well-formed file's bytes into (header dict, data buffer), to build variants."""
    (n,) = struct.unpack_from("<Q", data)
    return json.loads(data[8 : 8 + n]), data[8 + n :]
