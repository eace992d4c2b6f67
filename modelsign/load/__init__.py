"""Verified loading: the runtime gets exactly the bytes that were verified."""

from ..errors import ModelsignWarning
from ._context import LoadReport
from ._mapped import is_guarded
from .gguf import VerifiedGGUF, open_gguf
from .hf import load_transformers, snapshot_path, verify_hf_snapshot
from .safetensors import VerifiedTensors, load_safetensors

__all__ = [
    "LoadReport",
    "ModelsignWarning",
    "VerifiedGGUF",
    "VerifiedTensors",
    "is_guarded",
    "load_safetensors",
    "load_transformers",
    "open_gguf",
    "snapshot_path",
    "verify_hf_snapshot",
]
