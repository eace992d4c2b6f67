"""modelsign: model weights as a signed supply-chain artifact.

The public API is what ``__all__`` lists; everything else may change.
"""

__version__ = "0.1.0"

from .compare import Problem  # noqa: E402
from .errors import (  # noqa: E402
    DiscoveryError,
    FormatError,
    InputError,
    ManifestError,
    ModelsignError,
    SignatureError,
    VerificationError,
)
from .findings import Finding  # noqa: E402
from .manifest import Manifest, build_manifest, load_manifest  # noqa: E402
from .sign import SignResult, sign  # noqa: E402
from .signature.signers import KeySigner, Signer  # noqa: E402
from .signature.sigstore import SigstoreSigner, SigstoreVerifier, load_trusted_root  # noqa: E402
from .signature.verifiers import (  # noqa: E402
    CertificateVerifier,
    KeyVerifier,
    SignerInfo,
    Verifier,
)
from .verify import VerificationResult, verify  # noqa: E402

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
    "Problem",
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
