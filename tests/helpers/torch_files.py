"""Real torch checkpoints for tests: a small model's state dict in many dtypes, and ZIP rewrites."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelsign._internal.formats.checkpoint import Checkpoint, read_checkpoint


class Small(nn.Module):
    """One of each common layer."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.conv = nn.Conv2d(2, 3, 3)
        self.ln = nn.LayerNorm(3)
        self.emb = nn.Embedding(5, 4)
        self.bn = nn.BatchNorm2d(3)


def state_dict() -> dict[str, torch.Tensor]:
    """A small model's state dict plus tensors of every common dtype, a 0-d and an empty one."""
    torch.manual_seed(0)
    sd: dict[str, torch.Tensor] = dict(Small().state_dict())
    sd["x.f16"] = torch.randn(2, 3).half()
    sd["x.bf16"] = torch.randn(3, 2).bfloat16()
    sd["x.i64"] = torch.arange(-3, 4, dtype=torch.int64)
    sd["x.i8"] = torch.arange(-4, 4, dtype=torch.int8).reshape(2, 4)
    sd["x.u8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["x.bool"] = torch.tensor([True, False, True])
    sd["x.scalar"] = torch.tensor(3.5)
    sd["x.empty"] = torch.zeros(0, 3)
    return sd


def read_file(path: Path) -> Checkpoint:
    data = path.read_bytes()
    found = read_checkpoint(lambda n, at: data[at : at + n], len(data), path.name)
    assert found is not None
    return found


def rewrite(
    path: Path, edit: Callable[[str, bytes], bytes | None], *, compress: set[str] | None = None
) -> None:
    """Rewrite the ZIP at ``path`` with Python's zipfile, each member through ``edit``
    (None: left out); members in ``compress`` deflated, the rest stored."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = edit(info.filename, src.read(info))
            if data is not None:
                method = zipfile.ZIP_DEFLATED if info.filename in (compress or set()) else 0
                z.writestr(info.filename, data, compress_type=method)
    path.write_bytes(out.getvalue())


def save(obj: Any, path: Path, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, **kw)
    return path
