"""Verified loading: the runtime gets exactly the bytes that were verified."""

from ._context import LoadReport, ModelsignWarning
from .gguf import VerifiedGGUF, open_gguf
from .safetensors import VerifiedTensors, load_safetensors

__all__ = [
    "LoadReport",
    "ModelsignWarning",
    "VerifiedGGUF",
    "VerifiedTensors",
    "load_safetensors",
    "open_gguf",
]
