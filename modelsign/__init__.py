"""modelsign: model weights as a signed supply-chain artifact.

The public API is what ``__all__`` lists; everything else may change.
"""

from typing import TYPE_CHECKING

from ._internal.check.compare import Problem
from ._internal.findings import Finding
from ._internal.manifest import Manifest, build_manifest, load_manifest
from ._internal.signature.signers import KeySigner, Signer
from ._internal.signature.sigstore import SigstoreSigner, SigstoreVerifier, load_trusted_root
from ._internal.signature.verifiers import (
    CertificateVerifier,
    KeyVerifier,
    SignerInfo,
    Verifier,
)
from ._version import __version__
from .diff import ModelDiff, diff_models
from .errors import (
    DiscoveryError,
    FormatError,
    InputError,
    ManifestError,
    ModelsignError,
    SignatureError,
    VerificationError,
)
from .inventory import Inventory, InventoryEntry
from .load import (
    LoadReport,
    ModelsignWarning,
    VerifiedGGUF,
    VerifiedTensors,
    load_safetensors,
    load_transformers,
    open_gguf,
    snapshot_path,
    verify_hf_snapshot,
)
from .policy import Policy, PolicyReport, RuleResult
from .sign import SignResult, sign
from .verify import VerificationResult, verify
from .watch import Watcher

if TYPE_CHECKING:
    from .sbom import ml_bom, ml_bom_json


def __getattr__(name: str) -> object:
    # The ML-BOM builders import cyclonedx (a quarter second): only when asked for.
    if name in ("ml_bom", "ml_bom_json"):
        from . import sbom

        return getattr(sbom, name)
    raise AttributeError(f"module 'modelsign' has no attribute {name!r}")


__all__ = [
    "CertificateVerifier",
    "DiscoveryError",
    "Finding",
    "FormatError",
    "InputError",
    "Inventory",
    "InventoryEntry",
    "KeySigner",
    "KeyVerifier",
    "LoadReport",
    "Manifest",
    "ManifestError",
    "ModelDiff",
    "ModelsignError",
    "ModelsignWarning",
    "Policy",
    "PolicyReport",
    "Problem",
    "RuleResult",
    "SignResult",
    "SignatureError",
    "Signer",
    "SignerInfo",
    "SigstoreSigner",
    "SigstoreVerifier",
    "VerificationError",
    "VerificationResult",
    "VerifiedGGUF",
    "VerifiedTensors",
    "Verifier",
    "Watcher",
    "__version__",
    "build_manifest",
    "diff_models",
    "load_manifest",
    "load_safetensors",
    "load_transformers",
    "load_trusted_root",
    "ml_bom",
    "ml_bom_json",
    "open_gguf",
    "sign",
    "snapshot_path",
    "verify",
    "verify_hf_snapshot",
]
