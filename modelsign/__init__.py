"""modelsign: model weights as a signed supply-chain artifact.

The public API is what ``__all__`` lists; everything else may change.
"""

__version__ = "0.1.0"

from .compare import Problem
from .errors import (
    DiscoveryError,
    FormatError,
    InputError,
    ManifestError,
    ModelsignError,
    SignatureError,
    VerificationError,
)
from .findings import Finding
from .manifest import Manifest, build_manifest, load_manifest
from .policy import Policy, PolicyReport, RuleResult
from .sign import SignResult, sign
from .signature.signers import KeySigner, Signer
from .signature.sigstore import SigstoreSigner, SigstoreVerifier, load_trusted_root
from .signature.verifiers import (
    CertificateVerifier,
    KeyVerifier,
    SignerInfo,
    Verifier,
)
from .verify import VerificationResult, verify

__all__ = [
    "CertificateVerifier",
    "DiscoveryError",
    "Finding",
    "FormatError",
    "InputError",
    "KeySigner",
    "KeyVerifier",
    "Manifest",
    "ManifestError",
    "ModelsignError",
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
    "Verifier",
    "__version__",
    "build_manifest",
    "load_manifest",
    "load_trusted_root",
    "sign",
    "verify",
]
