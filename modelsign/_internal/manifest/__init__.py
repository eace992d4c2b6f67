"""Step 5 of the data flow: the manifest — what a model package is, byte for byte.

- ``schema``: the versioned pydantic schema, serialized canonically (RFC 8785),
  and reading it back;
- ``entries``: a file's entry from one read of it;
- ``build``: discover → hash → entries → model metadata (card, licence,
  quantization, provenance).
"""

from .build import manifest_for_tree, metadata_manifest
from .entries import weights_info
from .schema import (
    MANIFEST_KIND,
    MANIFEST_VERSION,
    FileEntry,
    Hashing,
    Ignored,
    Manifest,
    Part,
    StorageEntry,
    TensorEntry,
    Tool,
    WeightsInfo,
    covering_parts,
    load_manifest,
    looks_like_manifest,
    manifest_from_json,
    parse_manifest,
)

__all__ = [
    "MANIFEST_KIND",
    "MANIFEST_VERSION",
    "FileEntry",
    "Hashing",
    "Ignored",
    "Manifest",
    "Part",
    "StorageEntry",
    "TensorEntry",
    "Tool",
    "WeightsInfo",
    "covering_parts",
    "load_manifest",
    "looks_like_manifest",
    "manifest_for_tree",
    "manifest_from_json",
    "metadata_manifest",
    "parse_manifest",
    "weights_info",
]
