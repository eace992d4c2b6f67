"""Verified loading: the runtime gets exactly the bytes that were verified."""

from ._context import LoadReport, ModelsignWarning
from .safetensors import VerifiedTensors, load_safetensors

__all__ = ["LoadReport", "ModelsignWarning", "VerifiedTensors", "load_safetensors"]
