"""The rules a policy lists, each a strict model, and the words and codes their reasons share.

A leaf of the subpackage: the policy document (:mod:`.schema`), the signers
verifier, the judges and ``explain`` all build on these, never the reverse.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from .._internal.signature.keyrefs import is_key_uri
from .._internal.signature.keyrefs.pkcs11_uri import holds_pin_value
from ..codes import Code

Mode = Literal["enforce", "warn"]
NOT_COVERED = "file is not covered by the signature"
Status = Literal["pass", "fail", "warn", "skip"]
RuleName = Literal[
    "signers",
    "identity",
    "licences",
    "provenance",
    "formats",
    "quantization",
    "coverage",
    "freshness",
]
RULES: tuple[RuleName, ...] = get_args(RuleName)  # in the order they are judged

#: The code of each rule's own reasons (a verification problem a rule judges keeps its code).
RULE_CODES: dict[RuleName, Code] = {
    "signers": Code.POLICY_SIGNERS,
    "identity": Code.POLICY_IDENTITY,
    "licences": Code.POLICY_LICENCES,
    "provenance": Code.POLICY_PROVENANCE,
    "formats": Code.POLICY_FORMATS,
    "quantization": Code.POLICY_QUANTIZATION,
    "coverage": Code.POLICY_COVERAGE,
    "freshness": Code.POLICY_FRESHNESS,
}

#: Extensions of files that look like weights; found as an opaque file, they are "unknown".
WEIGHT_LIKE = (
    ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".h5",
    ".hdf5", ".keras", ".onnx", ".msgpack", ".tflite", ".mlmodel", ".pb", ".gguf",
    ".safetensors", ".ggml", ".llamafile",
)  # fmt: skip


class StrictModel(BaseModel):
    """Unknown fields refused (a misspelt rule must not pass silently); frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(StrictModel):
    """A trusted public key: a PEM file (relative to the policy), inline PEM, or a held key.

    ``uri`` names a key in a PKCS#11 token or a cloud KMS (``pkcs11:…``,
    ``awskms://…``, ``gcpkms://…``, ``azurekms://…``) whose public half is read
    from its holder at verification; pin its ``fingerprint`` so that a key
    replaced behind the same name is refused.
    """

    file: str | None = None
    pem: str | None = None
    uri: str | None = None
    fingerprint: str | None = None  # SHA-256 of the PEM (the bundle's key hint), if pinned

    @model_validator(mode="after")
    def _one_source(self) -> KeySpec:
        if [self.file, self.pem, self.uri].count(None) != 2:
            raise ValueError("give exactly one of 'file', 'pem' or 'uri'")
        if self.uri is not None and not is_key_uri(self.uri):
            raise ValueError(
                "uri must name a held key: pkcs11:…, awskms://…, gcpkms://… or azurekms://…"
            )
        if self.uri is not None and holds_pin_value(self.uri):
            raise ValueError("uri must not hold a PIN (pin-value): verification needs none")
        if self.fingerprint is not None and not re.fullmatch(r"[0-9a-f]{64}", self.fingerprint):
            raise ValueError("fingerprint must be 64 lowercase hex digits")
        return self


class SigstoreSpec(StrictModel):
    """A trusted keyless identity: exact or regex, with its OIDC issuer and GitHub claims."""

    identity: str | None = None
    identity_regex: str | None = None
    issuer: str
    github_repository: str | None = None
    github_ref: str | None = None
    github_workflow: str | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> SigstoreSpec:
        if (self.identity is None) == (self.identity_regex is None):
            raise ValueError("give exactly one of 'identity' or 'identity_regex'")
        if self.identity_regex is not None:
            try:
                re.compile(self.identity_regex)
            except re.error as exc:
                raise ValueError(f"identity_regex is not a valid regex: {exc}") from exc
        return self


class SignersRule(StrictModel):
    mode: Mode | None = None
    keys: list[KeySpec] = []
    certificate_roots: list[str] = []  # PEM files, relative to the policy
    sigstore: list[SigstoreSpec] = []
    trusted_root: str | None = None  # Sigstore trusted root JSON; default: shipped with sigstore
    offline: bool = True  # Sigstore: no network; the shipped (or given) trusted root
    # RFC 3161 authorities (PEM chains, TSA certificate first) dating key / certificate signatures
    timestamp_authorities: list[str] = []

    @model_validator(mode="after")
    def _someone(self) -> SignersRule:
        if not (self.keys or self.certificate_roots or self.sigstore):
            raise ValueError("list at least one of keys, certificate_roots or sigstore")
        return self


class LicencesRule(StrictModel):
    mode: Mode | None = None
    allow: list[str] | None = None
    deny: list[str] = []
    require: bool = True
    require_agreement: bool = False


ProvenanceField = Literal["source_repository", "pinned_revision", "base_model", "builder"]


class ProvenanceRule(StrictModel):
    mode: Mode | None = None
    require: list[ProvenanceField] = []
    require_attestation: bool = False  # a verified SLSA provenance (`attest provenance`)
    builder_ids: list[str] | None = None  # fnmatch patterns for the attested builder id
    # The builder must be vouched for by a keyless signing certificate (a CI job's
    # OIDC identity), not self-reported from environment variables.
    require_certified_builder: bool = False
    source_repositories: list[str] | None = None  # fnmatch patterns: "acme/*", "acme/model"
    base_models: list[str] | None = None

    @property
    def needs_attestation(self) -> bool:
        """Whether a verified attestation is needed: required, or its builder restricted."""
        return self.require_attestation or self.builder_ids is not None


PolicyFormat = Literal[
    "safetensors", "gguf", "pickle", "onnx", "numpy", "keras", "opaque", "unknown"
]
#: Which pickle-bearing files pass: none, those analysed as safe state dicts, or all.
PickleSetting = Literal["deny", "safe-state-dicts", "allow"]
#: The manifest flag of a pickle-bearing file whose every pickle imports only allowlisted globals.
SAFE_STATE_DICT = "safe-state-dict"


class FormatsRule(StrictModel):
    """Which formats may be in the model folder, and which pickles.

    ``pickle`` decides every pickle-bearing file (format ``pickle``, or a file
    flagged as holding one, such as a NumPy object array): ``deny`` refuses
    each, ``safe-state-dicts`` admits only those the manifest flags
    ``safe-state-dict``, ``allow`` admits all. Without it the lists decide, as
    before it existed: the default ``deny: [pickle]`` refuses every pickle.
    Given, it leaves pickle out of the default deny list, and it may not be
    contradicted: a ``deny`` list naming pickle, or an ``allow`` list leaving
    it out, with ``safe-state-dicts`` or ``allow`` is an error.
    """

    mode: Mode | None = None
    allow: list[PolicyFormat] | None = None
    deny: list[PolicyFormat] = ["pickle"]
    allow_python_code: bool = False  # *.py files run under trust_remote_code
    allow_chat_templates: bool = True  # GGUF Jinja templates run in the runtime
    pickle: PickleSetting | None = None  # after allow and deny: its validator reads them

    @model_validator(mode="before")
    @classmethod
    def _setting_leaves_pickle_out_of_the_default_deny(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("pickle") is not None and "deny" not in data:
            return {**data, "deny": []}
        return data

    @field_validator("pickle")
    @classmethod
    def _not_contradicted(cls, value: PickleSetting | None, info: ValidationInfo) -> Any:
        if value not in ("safe-state-dicts", "allow"):
            return value
        if "pickle" in info.data.get("deny", []):
            raise ValueError(
                f"{value} contradicts deny, which lists pickle: remove pickle from deny "
                "(the pickle setting decides pickle files)"
            )
        allow = info.data.get("allow")
        if allow is not None and "pickle" not in allow:
            raise ValueError(
                f"{value} contradicts allow, which leaves out pickle: add pickle to allow "
                "(or drop the allow list)"
            )
        return value

    @property
    def pickle_setting(self) -> PickleSetting:
        """What pickle-bearing files are held to: the setting, else what the lists say."""
        if self.pickle is not None:
            return self.pickle
        listed = "pickle" not in self.deny and (self.allow is None or "pickle" in self.allow)
        return "allow" if listed else "deny"

    @property
    def weights_only(self) -> bool:
        """Whether torch must unpickle with its weights-only unpickler: unless ``pickle: allow``."""
        return self.pickle != "allow"


class QuantizationRule(StrictModel):
    mode: Mode | None = None
    allowed_schemes: list[str] | None = None
    min_bits_per_weight: float | None = None
    allow_unquantized: bool = True


class CoverageRule(StrictModel):
    mode: Mode | None = None
    require_tensor_digests: bool = True
    unsigned_files: Literal["deny", "warn", "allow"] = "deny"


class IdentityRule(StrictModel):
    """Which model, from where, and no older than what: rollback and substitution.

    A signature alone says "this signer signed these files"; another model (or
    an older release) by the same signer verifies just as well. The pins judge
    the signed manifest: its name, source repository, weights digest (which
    covers every tensor), and the release and trusted time the signature has.
    """

    mode: Mode | None = None
    name: str | None = None
    source: str | None = None  # "org/name" (any revision) or "org/name@revision"
    weights_digest: str | None = None
    min_release: str | None = None  # PEP 440 versions; a leading "v" is ignored
    signed_after: datetime | None = None  # needs a trusted signing time

    @field_validator("min_release")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None:
            parse_version(value)
        return value


def parse_version(text: str) -> Version:
    """A PEP 440 release, a leading "v" ignored; ValueError (for pydantic) if not one."""
    try:
        return Version(text.removeprefix("v"))
    except InvalidVersion as exc:
        raise ValueError(f"{text!r} is not a version (like 1.4 or v2.0.1)") from exc


class FreshnessRule(StrictModel):
    mode: Mode | None = None
    max_age: str  # "90d", "12h", "2w"

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


def parse_duration(value: str) -> timedelta:
    """A ``max_age`` such as 90d or 12h; ValueError (for pydantic) if not one."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value)
    if m is None:
        raise ValueError("max_age must look like 90d, 12h, 2w, 30m or 45s")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
    try:
        return timedelta(**{unit: int(m.group(1))})
    except OverflowError:  # pydantic reports ValueError; an OverflowError would escape it
        raise ValueError(f"max_age {value.strip()} is too large") from None
