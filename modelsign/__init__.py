"""modelsign: model weights as a signed supply-chain artifact.

The public API is what ``__all__`` lists; everything else may change.
"""

__version__ = "0.1.0"

from .errors import (
    DiscoveryError,
    FormatError,
    InputError,
    ManifestError,
    ModelsignError,
)
from .findings import Finding
from .manifest import Manifest, build_manifest, load_manifest

__all__ = [
    "DiscoveryError",
    "Finding",
    "FormatError",
    "InputError",
    "Manifest",
    "ManifestError",
    "ModelsignError",
    "__version__",
    "build_manifest",
    "load_manifest",
]
