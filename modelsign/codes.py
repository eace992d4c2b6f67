"""Every code modelsign reports, with its category and the exit code it stands for.

Codes are a public interface: scripts match on them, and the README's error
code table lists exactly these (a test checks it). ``Code`` is a ``str``, so
``code == "FILE_MODIFIED"``, ``f"{code}"``, ``json.dumps`` and pydantic's JSON
mode all give the plain code string.

A code's category says what kind of thing went wrong (or was found), and the
category gives the exit code of a command that stops on it:

- 2 — the job could not be done: ``usage``, ``input``, ``config``,
  ``service``, ``discovery``, ``format``, ``manifest``, ``load``;
- 1 — a verification failed (``signature``, ``content``, ``policy``), or
  ``diff`` found a ``change``;
- 0 — never a failure: ``note`` (information in a verification result) and
  ``finding`` (recorded in a manifest);
- 3 — ``internal``: an unexpected exception, a bug in modelsign;
- 130 — ``interrupted``: stopped by Ctrl-C (SIGINT), as a shell reports it.

A verification (``verify``, the loaders, the guard) always fails with exit
code 1, whatever its first problem's code: a symlink the signer did not sign
is ``SYMLINK_REFUSED`` (discovery) there too. Reading a signature without
verifying it (``inspect``, ``diff``, ``sbom``) fails with exit code 2.

Only this module defines codes; it imports nothing from modelsign.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Category(str, Enum):
    """What kind of thing a code reports; :attr:`exit_code` follows from it."""

    USAGE = "usage"  # bad, missing or conflicting arguments and options
    INPUT = "input"  # a path given cannot be read or written, or is not what is needed
    CONFIG = "config"  # the caller's trust material and policy: keys, certificates, roots
    SERVICE = "service"  # signing services: identity tokens, Sigstore, timestamp authorities
    DISCOVERY = "discovery"  # the model folder cannot be walked safely
    FORMAT = "format"  # a file breaks a rule of its format
    MANIFEST = "manifest"  # a manifest cannot be read
    LOAD = "load"  # a verified loader cannot do what was asked
    SIGNATURE = "signature"  # the signature, statement, certificates or attestations fail
    CONTENT = "content"  # the model on disk is not what was signed
    POLICY = "policy"  # a policy rule fails
    CHANGE = "change"  # a difference between two models (modelsign diff)
    NOTE = "note"  # information in a verification result; never fails
    FINDING = "finding"  # recorded in a manifest; never fails
    INTERNAL = "internal"  # an unexpected exception: a bug in modelsign
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C (SIGINT)

    def __str__(self) -> str:
        return self.value

    @property
    def exit_code(self) -> int:
        """The exit code of a command that stops on a code of this category."""
        return _EXIT_CODES.get(self, 2)


_EXIT_CODES: Final = {
    Category.SIGNATURE: 1,
    Category.CONTENT: 1,
    Category.POLICY: 1,
    Category.CHANGE: 1,
    Category.NOTE: 0,
    Category.FINDING: 0,
    Category.INTERNAL: 3,
    Category.INTERRUPTED: 130,
}

_U = Category.USAGE
_I = Category.INPUT
_C = Category.CONFIG
_SV = Category.SERVICE
_D = Category.DISCOVERY
_F = Category.FORMAT
_M = Category.MANIFEST
_L = Category.LOAD
_S = Category.SIGNATURE
_CT = Category.CONTENT
_P = Category.POLICY
_CH = Category.CHANGE
_N = Category.NOTE
_FD = Category.FINDING
_X = Category.INTERNAL
_INT = Category.INTERRUPTED


class Code(str, Enum):
    """A stable code; ``.category`` and ``.exit_code`` say what it means for a command.

    ``Code("X")`` raises ``ValueError`` for a string that is not a code: a
    code nobody registered here is a programming error.
    """

    _value_: str
    category: Category

    def __new__(cls, value: str, category: Category | None = None) -> Code:
        # Runs once per member, as the class is made; afterwards Code("X") only looks up.
        assert category is not None
        member = str.__new__(cls, value)
        member._value_ = value
        member.category = category
        return member

    def __str__(self) -> str:
        return self._value_

    def __format__(self, spec: str) -> str:
        return format(self._value_, spec)

    @property
    def exit_code(self) -> int:
        """The exit code of a command that stops on this code (see the module docstring)."""
        return self.category.exit_code

    # -- the error classes' own codes (used when no specific code is given) --------------
    MODELSIGN_ERROR = ("MODELSIGN_ERROR", _I)
    INPUT_ERROR = ("INPUT_ERROR", _I)
    DISCOVERY_ERROR = ("DISCOVERY_ERROR", _D)
    FORMAT_ERROR = ("FORMAT_ERROR", _F)
    MANIFEST_ERROR = ("MANIFEST_ERROR", _M)
    SIGNATURE_ERROR = ("SIGNATURE_ERROR", _SV)
    VERIFICATION_FAILED = ("VERIFICATION_FAILED", _S)

    # -- usage ---------------------------------------------------------------------------
    USAGE = ("USAGE", _U)
    BAD_REGEX = ("BAD_REGEX", _U)
    BAD_SOURCE = ("BAD_SOURCE", _U)
    BAD_ALGORITHM = ("BAD_ALGORITHM", _U)
    BAD_SHARD_SIZE = ("BAD_SHARD_SIZE", _U)
    BAD_SHARDS = ("BAD_SHARDS", _U)
    BAD_SOURCE_DATE_EPOCH = ("BAD_SOURCE_DATE_EPOCH", _U)
    IGNORE_PATH_GLOB = ("IGNORE_PATH_GLOB", _U)

    # -- input ---------------------------------------------------------------------------
    NOT_FOUND = ("NOT_FOUND", _I)
    UNREADABLE = ("UNREADABLE", _I)
    OUTPUT_EXISTS = ("OUTPUT_EXISTS", _I)
    OUTPUT_UNWRITABLE = ("OUTPUT_UNWRITABLE", _I)
    SIGNATURE_NOT_FOUND = ("SIGNATURE_NOT_FOUND", _I)
    PROVENANCE_NOT_FOUND = ("PROVENANCE_NOT_FOUND", _I)
    CLAIMS_UNREADABLE = ("CLAIMS_UNREADABLE", _I)
    REUSE_INVALID = ("REUSE_INVALID", _I)
    SIGNATURE_NO_MANIFEST = ("SIGNATURE_NO_MANIFEST", _I)

    # -- config: keys, passwords, certificates, trust roots, the policy file ------------
    KEY_NOT_FOUND = ("KEY_NOT_FOUND", _C)
    KEY_UNREADABLE = ("KEY_UNREADABLE", _C)
    KEY_INVALID = ("KEY_INVALID", _C)
    KEY_UNSUPPORTED = ("KEY_UNSUPPORTED", _C)
    KEY_PASSWORD_REQUIRED = ("KEY_PASSWORD_REQUIRED", _C)
    KEY_WRONG_PASSWORD = ("KEY_WRONG_PASSWORD", _C)
    KEY_PASSWORD_EMPTY = ("KEY_PASSWORD_EMPTY", _C)
    PASSWORD_ENV_UNSET = ("PASSWORD_ENV_UNSET", _C)
    CERT_NOT_FOUND = ("CERT_NOT_FOUND", _C)
    CERT_UNREADABLE = ("CERT_UNREADABLE", _C)
    CERT_INVALID = ("CERT_INVALID", _C)
    CERT_KEY_MISMATCH = ("CERT_KEY_MISMATCH", _C)
    NO_TRUST_ROOT = ("NO_TRUST_ROOT", _C)
    TRUST_ROOT_NOT_FOUND = ("TRUST_ROOT_NOT_FOUND", _C)
    TRUST_ROOT_INVALID = ("TRUST_ROOT_INVALID", _C)
    TRUST_CONFIG_NOT_FOUND = ("TRUST_CONFIG_NOT_FOUND", _C)
    TRUST_CONFIG_INVALID = ("TRUST_CONFIG_INVALID", _C)
    TSA_CHAIN_INVALID = ("TSA_CHAIN_INVALID", _C)
    POLICY_NOT_FOUND = ("POLICY_NOT_FOUND", _C)
    POLICY_INVALID = ("POLICY_INVALID", _C)
    # keys named by URI: a PKCS#11 token, a cloud KMS
    KEY_URI_INVALID = ("KEY_URI_INVALID", _C)
    KEY_BACKEND_MISSING = ("KEY_BACKEND_MISSING", _C)
    PKCS11_MODULE_NOT_FOUND = ("PKCS11_MODULE_NOT_FOUND", _C)
    PKCS11_TOKEN_NOT_FOUND = ("PKCS11_TOKEN_NOT_FOUND", _C)
    PKCS11_OBJECT_NOT_FOUND = ("PKCS11_OBJECT_NOT_FOUND", _C)
    PKCS11_PIN_REQUIRED = ("PKCS11_PIN_REQUIRED", _C)
    PKCS11_PIN_INCORRECT = ("PKCS11_PIN_INCORRECT", _C)
    PKCS11_PIN_LOCKED = ("PKCS11_PIN_LOCKED", _C)
    PKCS11_PIN_IN_ARGUMENTS = ("PKCS11_PIN_IN_ARGUMENTS", _C)
    KMS_KEY_NOT_FOUND = ("KMS_KEY_NOT_FOUND", _C)

    # -- service: signing needs an identity, Sigstore, a TSA ----------------------------
    NO_IDENTITY_TOKEN = ("NO_IDENTITY_TOKEN", _SV)
    BAD_IDENTITY_TOKEN = ("BAD_IDENTITY_TOKEN", _SV)
    SIGSTORE_SIGNIN_FAILED = ("SIGSTORE_SIGNIN_FAILED", _SV)
    SIGSTORE_UNREACHABLE = ("SIGSTORE_UNREACHABLE", _SV)
    SIGSTORE_SIGNING_FAILED = ("SIGSTORE_SIGNING_FAILED", _SV)
    TSA_UNREACHABLE = ("TSA_UNREACHABLE", _SV)
    TSA_BAD_RESPONSE = ("TSA_BAD_RESPONSE", _SV)
    PKCS11_ERROR = ("PKCS11_ERROR", _SV)
    KMS_PERMISSION_DENIED = ("KMS_PERMISSION_DENIED", _SV)
    KMS_UNREACHABLE = ("KMS_UNREACHABLE", _SV)
    KMS_ERROR = ("KMS_ERROR", _SV)
    HELD_KEY_BAD_SIGNATURE = ("HELD_KEY_BAD_SIGNATURE", _SV)

    # -- discovery -----------------------------------------------------------------------
    BAD_NAME = ("BAD_NAME", _D)
    SYMLINK_REFUSED = ("SYMLINK_REFUSED", _D)
    SYMLINK_ESCAPE = ("SYMLINK_ESCAPE", _D)
    SYMLINK_DANGLING = ("SYMLINK_DANGLING", _D)
    SYMLINK_NOT_FILE = ("SYMLINK_NOT_FILE", _D)
    SPECIAL_FILE = ("SPECIAL_FILE", _D)
    TOO_DEEP = ("TOO_DEEP", _D)
    EMPTY_MODEL = ("EMPTY_MODEL", _D)
    FILE_CHANGED = ("FILE_CHANGED", _D)
    HF_CACHE_NO_REF = ("HF_CACHE_NO_REF", _D)
    HF_CACHE_BAD_REF = ("HF_CACHE_BAD_REF", _D)
    HF_CACHE_NO_SNAPSHOT = ("HF_CACHE_NO_SNAPSHOT", _D)
    HF_BLOB_DIGEST_MISMATCH = ("HF_BLOB_DIGEST_MISMATCH", _D)

    # -- format: any weight file ---------------------------------------------------------
    TRUNCATED = ("TRUNCATED", _F)
    HEADER_TOO_LARGE = ("HEADER_TOO_LARGE", _F)
    LAYOUT_GAP = ("LAYOUT_GAP", _F)
    ZIP_MALFORMED = ("ZIP_MALFORMED", _F)
    ZIP_TRUNCATED = ("ZIP_TRUNCATED", _F)
    ZIP_TOO_LARGE = ("ZIP_TOO_LARGE", _F)
    ZIP_EXTRA_DATA = ("ZIP_EXTRA_DATA", _F)
    ZIP_DUPLICATE_NAME = ("ZIP_DUPLICATE_NAME", _F)
    ZIP_ENCRYPTED = ("ZIP_ENCRYPTED", _F)
    ZIP_HEADER_MISMATCH = ("ZIP_HEADER_MISMATCH", _F)
    ZIP_OVERLAP = ("ZIP_OVERLAP", _F)
    ZIP_COMPRESSED_STORAGE = ("ZIP_COMPRESSED_STORAGE", _F)
    ZIP_CRC_MISMATCH = ("ZIP_CRC_MISMATCH", _F)
    TORCH_BAD_CHECKPOINT = ("TORCH_BAD_CHECKPOINT", _F)
    PICKLE_MALFORMED = ("PICKLE_MALFORMED", _F)
    PICKLE_TRUNCATED = ("PICKLE_TRUNCATED", _F)
    PICKLE_TOO_LARGE = ("PICKLE_TOO_LARGE", _F)
    PICKLE_TOO_DEEP = ("PICKLE_TOO_DEEP", _F)
    # NumPy, Keras
    NUMPY_BAD_MAGIC = ("NUMPY_BAD_MAGIC", _F)
    NUMPY_BAD_HEADER = ("NUMPY_BAD_HEADER", _F)
    NUMPY_TRAILING_DATA = ("NUMPY_TRAILING_DATA", _F)
    NUMPY_BAD_ARCHIVE = ("NUMPY_BAD_ARCHIVE", _F)
    KERAS_BAD_ARCHIVE = ("KERAS_BAD_ARCHIVE", _F)
    KERAS_BAD_CONFIG = ("KERAS_BAD_CONFIG", _F)
    # safetensors
    SAFETENSORS_BAD_HEADER_SIZE = ("SAFETENSORS_BAD_HEADER_SIZE", _F)
    SAFETENSORS_BAD_UTF8 = ("SAFETENSORS_BAD_UTF8", _F)
    SAFETENSORS_BAD_HEADER_START = ("SAFETENSORS_BAD_HEADER_START", _F)
    SAFETENSORS_BAD_HEADER_END = ("SAFETENSORS_BAD_HEADER_END", _F)
    SAFETENSORS_BAD_JSON = ("SAFETENSORS_BAD_JSON", _F)
    SAFETENSORS_DUPLICATE_KEY = ("SAFETENSORS_DUPLICATE_KEY", _F)
    SAFETENSORS_TOO_MANY_TENSORS = ("SAFETENSORS_TOO_MANY_TENSORS", _F)
    SAFETENSORS_BAD_NAME = ("SAFETENSORS_BAD_NAME", _F)
    SAFETENSORS_BAD_METADATA = ("SAFETENSORS_BAD_METADATA", _F)
    SAFETENSORS_BAD_ENTRY = ("SAFETENSORS_BAD_ENTRY", _F)
    SAFETENSORS_UNKNOWN_DTYPE = ("SAFETENSORS_UNKNOWN_DTYPE", _F)
    SAFETENSORS_SIZE_MISMATCH = ("SAFETENSORS_SIZE_MISMATCH", _F)
    SAFETENSORS_OFFSET_GAP = ("SAFETENSORS_OFFSET_GAP", _F)
    SAFETENSORS_OFFSET_OVERLAP = ("SAFETENSORS_OFFSET_OVERLAP", _F)
    SAFETENSORS_TRAILING_BYTES = ("SAFETENSORS_TRAILING_BYTES", _F)
    # GGUF
    GGUF_BAD_MAGIC = ("GGUF_BAD_MAGIC", _F)
    GGUF_BAD_VERSION = ("GGUF_BAD_VERSION", _F)
    GGUF_COUNT_TOO_LARGE = ("GGUF_COUNT_TOO_LARGE", _F)
    GGUF_BAD_STRING = ("GGUF_BAD_STRING", _F)
    GGUF_STRING_TOO_LARGE = ("GGUF_STRING_TOO_LARGE", _F)
    GGUF_BAD_KEY = ("GGUF_BAD_KEY", _F)
    GGUF_DUPLICATE_KEY = ("GGUF_DUPLICATE_KEY", _F)
    GGUF_BAD_VALUE = ("GGUF_BAD_VALUE", _F)
    GGUF_BAD_VALUE_TYPE = ("GGUF_BAD_VALUE_TYPE", _F)
    GGUF_ARRAY_TOO_LARGE = ("GGUF_ARRAY_TOO_LARGE", _F)
    GGUF_ARRAY_TOO_DEEP = ("GGUF_ARRAY_TOO_DEEP", _F)
    GGUF_BAD_ALIGNMENT = ("GGUF_BAD_ALIGNMENT", _F)
    GGUF_BAD_TENSOR_NAME = ("GGUF_BAD_TENSOR_NAME", _F)
    GGUF_DUPLICATE_TENSOR = ("GGUF_DUPLICATE_TENSOR", _F)
    GGUF_BAD_DIMS = ("GGUF_BAD_DIMS", _F)
    GGUF_BAD_SHAPE = ("GGUF_BAD_SHAPE", _F)
    GGUF_UNKNOWN_TYPE = ("GGUF_UNKNOWN_TYPE", _F)
    GGUF_BAD_OFFSET = ("GGUF_BAD_OFFSET", _F)
    GGUF_NONZERO_PADDING = ("GGUF_NONZERO_PADDING", _F)
    GGUF_TRAILING_DATA = ("GGUF_TRAILING_DATA", _F)
    # ONNX
    ONNX_MALFORMED = ("ONNX_MALFORMED", _F)
    ONNX_TRUNCATED = ("ONNX_TRUNCATED", _F)
    ONNX_TOO_LARGE = ("ONNX_TOO_LARGE", _F)
    ONNX_TOO_DEEP = ("ONNX_TOO_DEEP", _F)
    ONNX_BAD_TENSOR = ("ONNX_BAD_TENSOR", _F)
    ONNX_DUPLICATE_TENSOR = ("ONNX_DUPLICATE_TENSOR", _F)
    ONNX_EXTERNAL_EMPTY = ("ONNX_EXTERNAL_EMPTY", _F)
    ONNX_EXTERNAL_NUL = ("ONNX_EXTERNAL_NUL", _F)
    ONNX_EXTERNAL_ABSOLUTE = ("ONNX_EXTERNAL_ABSOLUTE", _F)
    ONNX_EXTERNAL_BACKSLASH = ("ONNX_EXTERNAL_BACKSLASH", _F)
    ONNX_EXTERNAL_PARENT = ("ONNX_EXTERNAL_PARENT", _F)
    ONNX_EXTERNAL_ESCAPE = ("ONNX_EXTERNAL_ESCAPE", _F)
    ONNX_EXTERNAL_MISSING = ("ONNX_EXTERNAL_MISSING", _F)
    ONNX_EXTERNAL_RANGE = ("ONNX_EXTERNAL_RANGE", _F)
    # sharded safetensors: the index and its shards
    SHARD_INDEX_BAD_JSON = ("SHARD_INDEX_BAD_JSON", _F)
    SHARD_INDEX_BAD_ENTRY = ("SHARD_INDEX_BAD_ENTRY", _F)
    SHARD_INDEX_BAD_PATH = ("SHARD_INDEX_BAD_PATH", _F)
    SHARD_INDEX_MISSING_SHARD = ("SHARD_INDEX_MISSING_SHARD", _F)
    SHARD_INDEX_MISSING_TENSOR = ("SHARD_INDEX_MISSING_TENSOR", _F)
    SHARD_INDEX_UNMAPPED_TENSOR = ("SHARD_INDEX_UNMAPPED_TENSOR", _F)

    # -- manifest ------------------------------------------------------------------------
    MANIFEST_INVALID = ("MANIFEST_INVALID", _M)
    MANIFEST_VERSION = ("MANIFEST_VERSION", _M)

    # -- load: the verified loaders and the guard ---------------------------------------
    NOTHING_TO_LOAD = ("NOTHING_TO_LOAD", _L)
    NO_GGUF = ("NO_GGUF", _L)
    AMBIGUOUS_MODEL = ("AMBIGUOUS_MODEL", _L)
    NO_WEIGHTS = ("NO_WEIGHTS", _L)
    NO_SUCH_TENSOR = ("NO_SUCH_TENSOR", _L)
    NO_TENSOR_DIGESTS = ("NO_TENSOR_DIGESTS", _L)
    UNSUPPORTED_DTYPE = ("UNSUPPORTED_DTYPE", _L)
    UNSUPPORTED_FRAMEWORK = ("UNSUPPORTED_FRAMEWORK", _L)
    UNSUPPORTED_PLATFORM = ("UNSUPPORTED_PLATFORM", _L)
    UNKNOWN_MODEL_TYPE = ("UNKNOWN_MODEL_TYPE", _L)
    BAD_JSON = ("BAD_JSON", _L)
    CODE_NOT_COVERED = ("CODE_NOT_COVERED", _L)
    HF_NOT_CACHED = ("HF_NOT_CACHED", _L)
    MAPPING_UNAVAILABLE = ("MAPPING_UNAVAILABLE", _L)
    SEALING_UNAVAILABLE = ("SEALING_UNAVAILABLE", _L)
    CLOSED = ("CLOSED", _L)

    # -- signature: the bundle, the statement, the signer --------------------------------
    MALFORMED_JSON = ("MALFORMED_JSON", _S)
    DUPLICATE_JSON_KEY = ("DUPLICATE_JSON_KEY", _S)
    BUNDLE_INVALID = ("BUNDLE_INVALID", _S)
    BUNDLE_MEDIA_TYPE = ("BUNDLE_MEDIA_TYPE", _S)
    BUNDLE_NOT_DSSE = ("BUNDLE_NOT_DSSE", _S)
    BAD_BASE64 = ("BAD_BASE64", _S)
    PAYLOAD_TYPE = ("PAYLOAD_TYPE", _S)
    KEY_HINT_MISMATCH = ("KEY_HINT_MISMATCH", _S)
    BAD_SIGNATURE = ("BAD_SIGNATURE", _S)
    METHOD_MISMATCH = ("METHOD_MISMATCH", _S)
    NO_CERTIFICATE = ("NO_CERTIFICATE", _S)
    CERT_MALFORMED = ("CERT_MALFORMED", _S)
    CERT_UNTRUSTED = ("CERT_UNTRUSTED", _S)
    CERT_EXPIRED = ("CERT_EXPIRED", _S)
    CERT_NOT_YET_VALID = ("CERT_NOT_YET_VALID", _S)
    CERT_BAD_CA = ("CERT_BAD_CA", _S)
    CERT_BAD_USAGE = ("CERT_BAD_USAGE", _S)
    CERT_UNSUPPORTED_CRITICAL = ("CERT_UNSUPPORTED_CRITICAL", _S)
    CERT_UNSUPPORTED_KEY = ("CERT_UNSUPPORTED_KEY", _S)
    CERT_REJECTED = ("CERT_REJECTED", _S)
    SIGSTORE_BUNDLE_INVALID = ("SIGSTORE_BUNDLE_INVALID", _S)
    SIGSTORE_VERIFICATION_FAILED = ("SIGSTORE_VERIFICATION_FAILED", _S)
    TIMESTAMP_INVALID = ("TIMESTAMP_INVALID", _S)
    TIMESTAMP_UNTRUSTED = ("TIMESTAMP_UNTRUSTED", _S)
    SIGNER_NOT_TRUSTED = ("SIGNER_NOT_TRUSTED", _S)
    # the signed statement (OMS v1.0)
    STATEMENT_INVALID = ("STATEMENT_INVALID", _S)
    STATEMENT_SCHEMA = ("STATEMENT_SCHEMA", _S)
    STATEMENT_TYPE = ("STATEMENT_TYPE", _S)
    PREDICATE_TYPE = ("PREDICATE_TYPE", _S)
    SUBJECT_DIGEST_MISMATCH = ("SUBJECT_DIGEST_MISMATCH", _S)
    UNKNOWN_ALGORITHM = ("UNKNOWN_ALGORITHM", _S)
    ALGORITHM_MISMATCH = ("ALGORITHM_MISMATCH", _S)
    RESOURCE_ORDER = ("RESOURCE_ORDER", _S)
    UNSAFE_NAME = ("UNSAFE_NAME", _S)
    DUPLICATE_RESOURCE = ("DUPLICATE_RESOURCE", _S)
    UNSUPPORTED_METHOD = ("UNSUPPORTED_METHOD", _S)
    MANIFEST_MISMATCH = ("MANIFEST_MISMATCH", _S)
    SHARD_NAME_INVALID = ("SHARD_NAME_INVALID", _S)
    SHARD_SIZE_INVALID = ("SHARD_SIZE_INVALID", _S)
    SHARD_OVERLAP = ("SHARD_OVERLAP", _S)
    SHARD_GAP = ("SHARD_GAP", _S)
    SHARD_SIZE_MISMATCH = ("SHARD_SIZE_MISMATCH", _S)
    # modelsign's attestation and SLSA provenance
    ATTESTATION_MISSING = ("ATTESTATION_MISSING", _S)
    ATTESTATION_UNBOUND = ("ATTESTATION_UNBOUND", _S)
    ATTESTATION_INVALID = ("ATTESTATION_INVALID", _S)
    ATTESTATION_UNSUPPORTED = ("ATTESTATION_UNSUPPORTED", _S)
    ATTESTATION_SIGNER = ("ATTESTATION_SIGNER", _S)
    PROVENANCE_INVALID = ("PROVENANCE_INVALID", _S)
    PROVENANCE_SUBJECT_MISMATCH = ("PROVENANCE_SUBJECT_MISMATCH", _S)
    BUILDER_MISMATCH = ("BUILDER_MISMATCH", _S)
    MODEL_NAME_MISMATCH = ("MODEL_NAME_MISMATCH", _S)
    SOURCE_MISMATCH = ("SOURCE_MISMATCH", _S)

    # -- content: the model on disk against what was signed ------------------------------
    SIGNATURE_FOR_FILE = ("SIGNATURE_FOR_FILE", _CT)
    SIGNATURE_FOR_FOLDER = ("SIGNATURE_FOR_FOLDER", _CT)
    FILE_MODIFIED = ("FILE_MODIFIED", _CT)
    FILE_MISSING = ("FILE_MISSING", _CT)
    FILE_EXTRA = ("FILE_EXTRA", _CT)
    FILE_RENAMED = ("FILE_RENAMED", _CT)
    FILE_SIZE_MISMATCH = ("FILE_SIZE_MISMATCH", _CT)
    FILE_UNSIGNED = ("FILE_UNSIGNED", _CT)
    FILE_NOT_CHECKED = ("FILE_NOT_CHECKED", _CT)
    TENSOR_MODIFIED = ("TENSOR_MODIFIED", _CT)
    TENSOR_ADDED = ("TENSOR_ADDED", _CT)
    TENSOR_REMOVED = ("TENSOR_REMOVED", _CT)
    TENSOR_RETYPED = ("TENSOR_RETYPED", _CT)
    STORAGE_MODIFIED = ("STORAGE_MODIFIED", _CT)
    HEADER_MODIFIED = ("HEADER_MODIFIED", _CT)
    METADATA_MODIFIED = ("METADATA_MODIFIED", _CT)
    GGUF_KV_MODIFIED = ("GGUF_KV_MODIFIED", _CT)
    CHAT_TEMPLATE_MODIFIED = ("CHAT_TEMPLATE_MODIFIED", _CT)
    FORMAT_CHANGED = ("FORMAT_CHANGED", _CT)
    PADDING_MODIFIED = ("PADDING_MODIFIED", _CT)
    DUPLICATE_TENSOR = ("DUPLICATE_TENSOR", _CT)

    # -- policy --------------------------------------------------------------------------
    POLICY_FAILED = ("POLICY_FAILED", _P)
    POLICY_SIGNERS = ("POLICY_SIGNERS", _P)
    POLICY_IDENTITY = ("POLICY_IDENTITY", _P)
    POLICY_LICENCES = ("POLICY_LICENCES", _P)
    POLICY_PROVENANCE = ("POLICY_PROVENANCE", _P)
    POLICY_FORMATS = ("POLICY_FORMATS", _P)
    POLICY_QUANTIZATION = ("POLICY_QUANTIZATION", _P)
    POLICY_COVERAGE = ("POLICY_COVERAGE", _P)
    POLICY_FRESHNESS = ("POLICY_FRESHNESS", _P)

    # -- change: modelsign diff ----------------------------------------------------------
    FILE_ADDED = ("FILE_ADDED", _CH)
    FILE_REMOVED = ("FILE_REMOVED", _CH)
    QUANTIZATION_CHANGED = ("QUANTIZATION_CHANGED", _CH)
    LICENCE_CHANGED = ("LICENCE_CHANGED", _CH)
    PROVENANCE_CHANGED = ("PROVENANCE_CHANGED", _CH)
    WEIGHTS_DIGEST_CHANGED = ("WEIGHTS_DIGEST_CHANGED", _CH)
    SIGNER_CHANGED = ("SIGNER_CHANGED", _CH)

    # -- note: in a verification result, never a failure ---------------------------------
    LEGACY_SIGNATURE = ("LEGACY_SIGNATURE", _N)
    LEGACY_SIGNATURE_PLACE = ("LEGACY_SIGNATURE_PLACE", _N)
    FILE_UNSIGNED_IGNORED = ("FILE_UNSIGNED_IGNORED", _N)
    FILE_EMPTY_UNLISTED = ("FILE_EMPTY_UNLISTED", _N)

    # -- finding: recorded in a manifest -------------------------------------------------
    PICKLE_UNSAFE = ("PICKLE_UNSAFE", _FD)
    PICKLE_DANGEROUS_GLOBAL = ("PICKLE_DANGEROUS_GLOBAL", _FD)
    PICKLE_UNKNOWN_GLOBAL = ("PICKLE_UNKNOWN_GLOBAL", _FD)
    PICKLE_TORCHSCRIPT = ("PICKLE_TORCHSCRIPT", _FD)
    CODE_FILE = ("CODE_FILE", _FD)
    ZIP_UNREADABLE = ("ZIP_UNREADABLE", _FD)
    NUMPY_UNSUPPORTED_DTYPE = ("NUMPY_UNSUPPORTED_DTYPE", _FD)
    KERAS_LAMBDA = ("KERAS_LAMBDA", _FD)
    KERAS_CUSTOM_OBJECT = ("KERAS_CUSTOM_OBJECT", _FD)
    KERAS_LEGACY_H5 = ("KERAS_LEGACY_H5", _FD)
    CONFIG_INVALID = ("CONFIG_INVALID", _FD)
    MODEL_CARD_INVALID = ("MODEL_CARD_INVALID", _FD)
    LICENCE_MISSING = ("LICENCE_MISSING", _FD)
    LICENCE_UNRECOGNISED = ("LICENCE_UNRECOGNISED", _FD)
    LICENCE_DISAGREEMENT = ("LICENCE_DISAGREEMENT", _FD)
    QUANTIZATION_CONFIG_INVALID = ("QUANTIZATION_CONFIG_INVALID", _FD)
    QUANTIZATION_FILE_TYPE_UNKNOWN = ("QUANTIZATION_FILE_TYPE_UNKNOWN", _FD)
    QUANTIZATION_MISMATCH = ("QUANTIZATION_MISMATCH", _FD)
    QUANTIZATION_MIXED = ("QUANTIZATION_MIXED", _FD)
    SAFETENSORS_HEADER_PADDING = ("SAFETENSORS_HEADER_PADDING", _FD)
    SAFETENSORS_NONCANONICAL_NAME = ("SAFETENSORS_NONCANONICAL_NAME", _FD)
    SAFETENSORS_UNKNOWN_FIELD = ("SAFETENSORS_UNKNOWN_FIELD", _FD)
    SHARD_INDEX_EXTRA_SHARD = ("SHARD_INDEX_EXTRA_SHARD", _FD)
    GGUF_CHAT_TEMPLATE = ("GGUF_CHAT_TEMPLATE", _FD)
    GGUF_UNKNOWN_FILE_TYPE = ("GGUF_UNKNOWN_FILE_TYPE", _FD)
    PROVENANCE_SOURCE_CONFLICT = ("PROVENANCE_SOURCE_CONFLICT", _FD)
    INVENTORY_NO_MANIFEST = ("INVENTORY_NO_MANIFEST", _FD)

    # -- internal, interrupted: how a command can end whatever it does -------------------
    INTERNAL_ERROR = ("INTERNAL_ERROR", _X)
    INTERRUPTED = ("INTERRUPTED", _INT)


__all__ = ["Category", "Code"]
