"""modelsign: model weights as a signed supply-chain artifact.

The public API is what ``__all__`` lists, plus the public subpackages, each
with its own ``__all__``: :mod:`modelsign.load` (verified loaders),
:mod:`modelsign.guard` (the pre-load hook), :mod:`modelsign.policy`,
:mod:`modelsign.inventory`, :mod:`modelsign.watch`, :mod:`modelsign.diff`,
:mod:`modelsign.sbom` and :mod:`modelsign.provenance`. Everything under
``modelsign._internal`` may change without notice.
"""

from __future__ import annotations

import importlib
import warnings

from ._internal.manifest import Manifest, load_manifest
from ._internal.signature.signers import KeySigner, Signer
from ._internal.signature.sigstore import SigstoreSigner, SigstoreVerifier, load_trusted_root
from ._internal.signature.verifiers import (
    CertificateVerifier,
    KeyVerifier,
    SignerInfo,
    Verifier,
)
from ._version import __version__
from .codes import Code
from .errors import (
    DiscoveryError,
    FormatError,
    InputError,
    ManifestError,
    ModelsignError,
    ModelsignWarning,
    SignatureError,
    VerificationError,
)
from .issues import Issue
from .policy import Policy, load_policy
from .sign import SignResult, build_manifest, sign
from .verify import VerificationResult, verify

__all__ = [
    "CertificateVerifier",
    "Code",
    "DiscoveryError",
    "FormatError",
    "InputError",
    "Issue",
    "KeySigner",
    "KeyVerifier",
    "Manifest",
    "ManifestError",
    "ModelsignError",
    "ModelsignWarning",
    "Policy",
    "SignResult",
    "SignatureError",
    "Signer",
    "SignerInfo",
    "SigstoreSigner",
    "SigstoreVerifier",
    "VerificationError",
    "VerificationResult",
    "Verifier",
    "__version__",
    "build_manifest",
    "load_manifest",
    "load_policy",
    "load_trusted_root",
    "sign",
    "verify",
]

#: Names that were top-level before 0.2 and now live in a public subpackage:
#: still importable from here, with a DeprecationWarning naming the new home.
_MOVED: dict[str, str] = {
    "Finding": "modelsign._internal.findings",
    "Problem": "modelsign._internal.check.compare",
    "Inventory": "modelsign.inventory",
    "InventoryEntry": "modelsign.inventory",
    "LoadReport": "modelsign.load",
    "VerifiedGGUF": "modelsign.load",
    "VerifiedTensors": "modelsign.load",
    "load_safetensors": "modelsign.load",
    "load_transformers": "modelsign.load",
    "open_gguf": "modelsign.load",
    "snapshot_path": "modelsign.load",
    "verify_hf_snapshot": "modelsign.load",
    "ModelDiff": "modelsign.diff",
    "diff_models": "modelsign.diff",
    "PolicyReport": "modelsign.policy",
    "RuleResult": "modelsign.policy",
    "Watcher": "modelsign.watch",
    "ml_bom": "modelsign.sbom",
    "ml_bom_json": "modelsign.sbom",
}


def __getattr__(name: str) -> object:
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'modelsign' has no attribute {name!r}")
    public = home if not home.startswith("modelsign._internal") else "modelsign"
    warnings.warn(
        f"modelsign.{name} moved: import it from {public}"
        if public != "modelsign"
        else f"modelsign.{name} is deprecated: use modelsign.Issue",
        DeprecationWarning,
        stacklevel=2,
    )
    # The subpackage is imported only when asked for (sbom loads cyclonedx, a quarter second).
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*__all__, *_MOVED])
