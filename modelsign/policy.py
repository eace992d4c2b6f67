"""Policies: what a security team requires of every model, written once.

A policy file (YAML or JSON, versioned, unknown fields refused) lists rules:
who may sign (``signers``), which licences, provenance, formats and
quantizations are acceptable, how much of the model the signature must cover,
and how old a signature may be. Each rule is ``enforce`` (a failure blocks) or
``warn`` (reported only). The same policy drives ``modelsign verify``, the
pre-load hook and CI.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, get_args

import yaml
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._atomic import open_regular
from .discover import discover, name_inside
from .errors import InputError, ModelsignError, VerificationError
from .formats import sniff_file
from .manifest import Manifest
from .metadata.licence import licence_permitted
from .metadata.provenance import source_matches, source_text
from .signature import keys
from .signature.bundle import Envelope
from .signature.certs import load_certificates
from .signature.timestamps import TimestampAuthority, trusted_root_authorities
from .signature.verifiers import CertificateVerifier, KeyVerifier, SignerInfo, Verifier

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

#: Extensions of files that look like weights; found as an opaque file, they are "unknown".
WEIGHT_LIKE = (
    ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".npy", ".npz", ".h5",
    ".hdf5", ".keras", ".onnx", ".msgpack", ".tflite", ".mlmodel", ".pb", ".gguf",
    ".safetensors", ".ggml", ".llamafile",
)  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Strict):
    """A trusted public key: a PEM file (relative to the policy) or inline PEM."""

    file: str | None = None
    pem: str | None = None
    fingerprint: str | None = None  # SHA-256 of the PEM (the bundle's key hint), if pinned

    @model_validator(mode="after")
    def _one_source(self) -> KeySpec:
        if (self.file is None) == (self.pem is None):
            raise ValueError("give exactly one of 'file' or 'pem'")
        if self.fingerprint is not None and not re.fullmatch(r"[0-9a-f]{64}", self.fingerprint):
            raise ValueError("fingerprint must be 64 lowercase hex digits")
        return self


class SigstoreSpec(_Strict):
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


class SignersRule(_Strict):
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


class LicencesRule(_Strict):
    mode: Mode | None = None
    allow: list[str] | None = None
    deny: list[str] = []
    require: bool = True
    require_agreement: bool = False


ProvenanceField = Literal["source_repository", "pinned_revision", "base_model", "builder"]


class ProvenanceRule(_Strict):
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


PolicyFormat = Literal["safetensors", "gguf", "pickle", "opaque", "unknown"]


class FormatsRule(_Strict):
    mode: Mode | None = None
    allow: list[PolicyFormat] | None = None
    deny: list[PolicyFormat] = ["pickle"]
    allow_python_code: bool = False  # *.py files run under trust_remote_code
    allow_chat_templates: bool = True  # GGUF Jinja templates run in the runtime


class QuantizationRule(_Strict):
    mode: Mode | None = None
    allowed_schemes: list[str] | None = None
    min_bits_per_weight: float | None = None
    allow_unquantized: bool = True


class CoverageRule(_Strict):
    mode: Mode | None = None
    require_tensor_digests: bool = True
    unsigned_files: Literal["deny", "warn", "allow"] = "deny"


class IdentityRule(_Strict):
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
            _version(value)
        return value


def _version(text: str) -> Version:
    try:
        return Version(text.removeprefix("v"))
    except InvalidVersion as exc:
        raise ValueError(f"{text!r} is not a version (like 1.4 or v2.0.1)") from exc


class FreshnessRule(_Strict):
    mode: Mode | None = None
    max_age: str  # "90d", "12h", "2w"

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str) -> str:
        _parse_duration(value)
        return value


def _parse_duration(value: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", value)
    if m is None:
        raise ValueError("max_age must look like 90d, 12h, 2w, 30m or 45s")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
    try:
        return timedelta(**{unit: int(m.group(1))})
    except OverflowError:  # pydantic reports ValueError; an OverflowError would escape it
        raise ValueError(f"max_age {value.strip()} is too large") from None


class Policy(_Strict):
    """A versioned policy; rules that are absent are not evaluated."""

    version: Literal[1]
    description: str | None = None
    mode: Mode = "enforce"
    signers: SignersRule | None = None
    identity: IdentityRule | None = None
    licences: LicencesRule | None = None
    provenance: ProvenanceRule | None = None
    formats: FormatsRule | None = None
    quantization: QuantizationRule | None = None
    coverage: CoverageRule | None = None
    freshness: FreshnessRule | None = None
    base_dir: str = Field(default=".", exclude=True)  # where relative paths resolve

    @model_validator(mode="before")
    @classmethod
    def _empty_rules_take_defaults(cls, data: Any) -> Any:
        # `formats:` with nothing under it means "this rule, with its defaults",
        # not "no rule" (which would silently drop the pickle ban).
        if isinstance(data, dict):
            return {k: ({} if k in RULES and v is None else v) for k, v in data.items()}
        return data

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and validate a policy file; errors name the field and the line."""
        return load_policy(path)

    def mode_of(self, rule: RuleName) -> Mode:
        if rule == "signers" and self.signers is None:
            return "enforce"  # trust given by the caller (--key, a verifier) is never optional
        spec = getattr(self, rule)
        return (getattr(spec, "mode", None) if spec is not None else None) or self.mode

    def rules(self) -> list[RuleName]:
        return [r for r in RULES if getattr(self, r) is not None]

    def _path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.base_dir, p)

    def verifier(self) -> PolicyVerifier:
        """A verifier that accepts a signature from any signer the policy lists."""
        if self.signers is None:
            raise InputError(
                "the policy lists no signers: give --key, --cert-chain or --identity",
                code="USAGE",
            )
        return PolicyVerifier(self)


class Trust:
    """How one verification checks a signature, and how it judges a failure.

    The one rule, shared by ``verify()``, the CLI, the loaders, the guard, the
    inventory and ``watch``: trust the caller gives (``--key``, a verifier
    object) is always enforced; a policy's ``signers``, when listed, must also
    verify, failing as the signers rule's mode says. A policy never loosens
    what the caller demands: its warn mode only softens its own signer list.
    Make one per verification (it collects that verification's warnings).
    """

    def __init__(self, caller: Verifier | None, policy: Policy | None) -> None:
        if caller is None and (policy is None or policy.signers is None):
            raise InputError(
                "give a verifier, or a policy that lists signers (--key, --cert-chain, "
                "--identity, or signers in the policy)",
                code="USAGE",
            )
        self.caller = caller
        self.policy = policy
        self.warnings: list[str] = []  # the policy's warn-mode signers that did not verify

    @property
    def caller_given(self) -> bool:
        return self.caller is not None

    @property
    def enforce(self) -> bool:
        """Whether a signature or content failure blocks (else it is only reported)."""
        return (
            self.caller is not None
            or self.policy is None
            or self.policy.mode_of("signers") == "enforce"
        )

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        """The caller's verifier, then the policy's signers (a Verifier itself)."""
        info = self.caller.verify_envelope(envelope) if self.caller is not None else None
        if self.policy is None or self.policy.signers is None:
            assert info is not None  # __init__: no policy signers means a caller verifier
            return info
        try:
            listed = PolicyVerifier(self.policy).verify_envelope(envelope)
        except VerificationError as exc:
            # Without the caller's trust, or under an enforced signers rule, this blocks.
            if info is None or self.policy.mode_of("signers") == "enforce":
                raise
            # (PolicyVerifier's failures are all SIGNER_NOT_TRUSTED.)
            if exc.message not in self.warnings:  # the OMS bundle and the attestation: once
                self.warnings.append(exc.message)
            return info
        return info if info is not None else listed

    def warn_reasons(self) -> list[str]:
        """The warnings as signers-rule reasons that never block (see :func:`evaluate`)."""
        return [f"{_WARN}SIGNER_NOT_TRUSTED: {w}" for w in self.warnings]


def resolve_trust(verifier: Verifier | None, policy: Policy | None) -> Trust:
    """The trust for one verification (a usage error when neither gives a signer)."""
    return Trust(verifier, policy)


class RuleResult(BaseModel):
    """The outcome of one rule (part of the verification result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleName
    mode: Mode
    status: Status
    reasons: list[str] = []


class PolicyReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RuleResult]

    @property
    def blocked(self) -> bool:
        return any(r.status == "fail" for r in self.rules)


# -- loading -------------------------------------------------------------------


#: Bounds on a policy document: a policy is a few dozen lines, never deep or huge,
#: and the recursive composer must never meet a nesting Python's stack cannot hold.
MAX_POLICY_BYTES = 1 << 20
MAX_POLICY_DEPTH = 32
MAX_POLICY_NODES = 100_000


class _ShapeError(yaml.MarkedYAMLError):
    """Valid YAML, but not the shape any policy has (too deep, too large, a non-scalar key)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate and non-scalar keys, and bounds depth and size.

    Depth is checked as the node tree is composed (the composer recurses, so
    5,000 nested brackets would otherwise end in a RecursionError), and the
    count of composed nodes, aliases included, bounds the work after it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_POLICY_DEPTH or self._nodes > MAX_POLICY_NODES:
                what = (
                    f"nested deeper than {MAX_POLICY_DEPTH} levels"
                    if self._depth > MAX_POLICY_DEPTH
                    else f"more than {MAX_POLICY_NODES} values"
                )
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _ShapeError(None, None, what, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            # A list or mapping as a key is legal YAML, but unhashable in Python and
            # meaningless in a policy: refused with its line, never a TypeError.
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise _ShapeError(
                None, None, f"a key must be a plain value, not a {kind}", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return line
            # The field is named on its key's line (a block value starts below it).
            line = pair[0].start_mark.line + 1
            node = pair[1]
            continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def load_policy(path: str | os.PathLike[str]) -> Policy:
    p = os.fspath(path)
    try:
        with open_regular(p, "r", encoding="utf-8") as fh:
            text = fh.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputError("no such policy file", code="POLICY_NOT_FOUND", path=p) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the policy: {exc}", code="POLICY_INVALID", path=p) from exc
    return parse_policy(text, p)


def parse_policy(text: str, where: str) -> Policy:
    """Validate policy text (YAML, of which JSON is a subset)."""
    if len(text) > MAX_POLICY_BYTES:
        raise InputError(
            f"larger than {MAX_POLICY_BYTES} characters: not a policy",
            code="POLICY_INVALID",
            path=where,
        )
    try:
        loader = _UniqueKeyLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before parsing
        raise InputError(f"not valid YAML: {exc}", code="POLICY_INVALID", path=where) from exc
    try:
        # Parsed once: the node tree gives the lines of errors, the data is built from it.
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        what = "not a policy" if isinstance(exc, _ShapeError) else "not valid YAML"
        raise InputError(f"{what}{at}: {problem}", code="POLICY_INVALID", path=where) from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError("a policy is a mapping of rules", code="POLICY_INVALID", path=where)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))]
        field_name = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(root, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(
            f"field {field_name}{f' (line {line})' if line else ''}: {msg}",
            code="POLICY_INVALID",
            path=where,
        ) from exc
    return policy.model_copy(update={"base_dir": os.path.dirname(os.path.abspath(where))})


# -- the signers rule as a verifier ----------------------------------------------


class PolicyVerifier:
    """Tries every signer the policy trusts that fits the bundle; the first that verifies wins."""

    def __init__(self, policy: Policy) -> None:
        assert policy.signers is not None
        self.policy = policy
        self.spec = policy.signers

    def _keys(self) -> list[keys.PublicKey]:
        out = []
        for k in self.spec.keys:
            key = (
                keys.load_public_key(self.policy._path(k.file))
                if k.file is not None
                else keys.load_public_key_pem((k.pem or "").encode(), "the policy's inline key")
            )
            if k.fingerprint is not None and keys.key_hint(key) != k.fingerprint:
                raise InputError(
                    f"policy key {k.file or 'inline'} does not have fingerprint {k.fingerprint}",
                    code="POLICY_INVALID",
                )
            out.append(key)
        return out

    def _tsa(self) -> list[TimestampAuthority]:
        """The TSAs listed, and those of the policy's Sigstore trusted root, if it names one."""
        tsa = [
            TimestampAuthority.from_file(self.policy._path(p))
            for p in self.spec.timestamp_authorities
        ]
        if self.spec.trusted_root is not None:
            tsa += trusted_root_authorities(self.policy._path(self.spec.trusted_root))
        return tsa

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        reasons: list[str] = []
        if envelope.method == "sigstore":
            if not self.spec.sigstore:
                raise VerificationError(
                    "a Sigstore signature, but the policy trusts no Sigstore identity",
                    code="SIGNER_NOT_TRUSTED",
                )
            from .signature.sigstore import SigstoreVerifier, load_trusted_root

            root = load_trusted_root(
                self.policy._path(self.spec.trusted_root) if self.spec.trusted_root else None,
                offline=self.spec.offline,
            )
            for s in self.spec.sigstore:
                v = SigstoreVerifier(
                    root,
                    issuer=s.issuer,
                    identity=s.identity,
                    identity_regex=s.identity_regex,
                    github_repository=s.github_repository,
                    github_ref=s.github_ref,
                    github_workflow=s.github_workflow,
                )
                try:
                    return v.verify_envelope(envelope)
                except VerificationError as exc:
                    reasons.append(f"{s.identity or s.identity_regex}: {exc.message}")
        elif envelope.certificates and self.spec.certificate_roots:
            roots = [
                c
                for p in self.spec.certificate_roots
                for c in load_certificates(self.policy._path(p))
            ]
            try:
                return CertificateVerifier(roots, tsa=self._tsa()).verify_envelope(envelope)
            except VerificationError as exc:
                reasons.append(f"certificate roots: {exc.message}")
        else:
            for key in self._keys():
                hint = keys.key_hint(key)
                if envelope.key_hint is not None and envelope.key_hint != hint:
                    continue
                try:
                    return KeyVerifier(key, tsa=self._tsa()).verify_envelope(envelope)
                except VerificationError as exc:
                    reasons.append(f"key {hint[:16]}: {exc.message}")
            if not reasons:
                reasons.append(
                    f"signed by key {envelope.key_hint or '(no hint)'}, "
                    "which the policy does not list"
                    if not envelope.certificates
                    else "signed with a certificate, but the policy lists no certificate roots"
                )
        raise VerificationError(
            "no signer the policy trusts verifies this signature: " + "; ".join(reasons),
            code="SIGNER_NOT_TRUSTED",
        )


# -- what the formats rule sees ---------------------------------------------------


def formats_beside(root: str, *, known: Collection[str], own: Sequence[str]) -> dict[str, str]:
    """Files in the model folder beyond ``known`` ones, with their sniffed format.

    The formats rule judges every file present, whatever an ignore pattern (at
    signing, recorded as ``ignore_paths``, or at verifying) left out of the
    signature: a runtime loads what is in the folder, not what was signed.
    Only the default exclusions stay out — the top-level git paths and
    modelsign's own files (``own``: the signature, claims, provenance).
    """
    if not os.path.isdir(root):
        return {}
    exclude = [rel for p in own if (rel := name_inside(root, p)) is not None]
    try:
        tree = discover(root, exclude=exclude, allow_symlinks=True)
    except ModelsignError:
        return {}  # the signed-tree walk reports what makes the folder unreadable
    return {f.path: sniff_file(f.real, f.path) for f in tree.files if f.path not in known}


# -- evaluation ------------------------------------------------------------------


_WARN = "warn:"  # a reason with this prefix only warns, whatever the rule's mode


def _result(
    policy: Policy, rule: RuleName, reasons: list[str], mode: Mode | None = None
) -> RuleResult:
    mode = mode or policy.mode_of(rule)
    if not reasons:
        return RuleResult(rule=rule, mode=mode, status="pass")
    hard = [r for r in reasons if not r.startswith(_WARN)]
    clean = [r.removeprefix(_WARN) for r in reasons]
    status: Status = "fail" if hard and mode == "enforce" else "warn"
    return RuleResult(rule=rule, mode=mode, status=status, reasons=clean)


def evaluate(
    policy: Policy,
    *,
    manifest: Manifest | None,
    signer: SignerInfo | None,
    signature_problems: Sequence[str],
    unsigned_files: Mapping[str, str],
    excused: Sequence[str] = (),
    ignored_files: Mapping[str, str] | None = None,
    coverage_manifest: Manifest | None = None,
    attestation: Any = None,
    verifier_given: bool = True,
    now: datetime | None = None,
    release: str | None = None,
) -> PolicyReport:
    """Judge every rule of ``policy``.

    ``manifest`` is the verified, signed manifest (or, when the signature could
    not be trusted, the manifest of what is on disk, for reporting);
    ``signature_problems`` are the reasons the signature or content did not
    verify; ``unsigned_files`` maps files present but not signed to their
    sniffed format (the formats rule judges them too: an unsigned pickle
    beside signed weights is still a pickle a loader may pick up); ``excused``
    are those the verifier's ``--ignore`` left out (not a coverage failure);
    ``ignored_files`` are those the signature's ``ignore_paths`` left out
    (:func:`formats_beside`): judged by the formats rule only, since no
    ignore pattern makes a pickle safe to have beside a model.
    Coverage is about the signature, so it judges ``coverage_manifest`` (the
    trusted signed manifest) and is skipped when there is none.

    The signers rule is judged when the policy lists signers, or when the
    caller verified with its own trust (``verifier_given``: --key, a verifier
    object). With the caller's trust it is enforced whatever the policy's
    mode (see :class:`Trust`); failures of the policy's own warn-mode signers
    then arrive as ``Trust.warn_reasons()``, which only warn. Without a
    coverage rule, unsigned files fail it, as they do without a policy. (Only
    the policy's trust, or none, as in the inventory: ``verifier_given=False``.)
    """
    now = now or datetime.now(timezone.utc)
    judged = {k: v for k, v in unsigned_files.items() if k not in excused}
    out: list[RuleResult] = []
    judged_rules = policy.rules()
    if verifier_given and policy.signers is None:
        judged_rules.insert(0, "signers")
    for rule in judged_rules:
        reasons: list[str]
        if rule == "signers":
            reasons = list(signature_problems)
            if policy.coverage is None:
                reasons += [f"FILE_EXTRA: {n}: {NOT_COVERED}" for n in sorted(judged)]
        elif rule == "identity":
            reasons = _identity(policy, coverage_manifest, signer, release, now)
        elif rule == "coverage" and coverage_manifest is None:
            out.append(
                RuleResult(
                    rule=rule,
                    mode=policy.mode_of(rule),
                    status="skip",
                    reasons=["no trusted signed manifest to judge coverage by"],
                )
            )
            continue
        elif manifest is None:
            reasons = [
                "no manifest to judge (the signature carries none and the model could not be read)"
            ]
        else:
            files = {**(ignored_files or {}), **unsigned_files} if rule == "formats" else judged
            subject = coverage_manifest if rule == "coverage" and coverage_manifest else manifest
            reasons = _JUDGES[rule](policy, subject, signer, files, now)
            if rule == "provenance":
                reasons += _attestation(policy, attestation)
        # A policy never loosens what the caller demands (Trust).
        mode: Mode | None = "enforce" if rule == "signers" and verifier_given else None
        out.append(_result(policy, rule, reasons, mode))
    return PolicyReport(rules=out)


def _licences(policy: Policy, m: Manifest, *_: Any) -> list[str]:
    spec = policy.licences
    assert spec is not None
    reasons = []
    if m.licence.spdx is None:
        if spec.require:
            reasons.append("no licence found (model card, GGUF metadata or LICENSE file)")
    else:
        ok, why = licence_permitted(m.licence.spdx, allow=spec.allow, deny=spec.deny)
        if not ok:
            reasons.append(f"licence {m.licence.spdx}: {why}")
    if spec.require_agreement and not m.licence.agree:
        found = ", ".join(f"{s.source}={s.spdx or s.value}" for s in m.licence.sources)
        reasons.append(f"licence sources disagree: {found}")
    return reasons


def _provenance(policy: Policy, m: Manifest, signer: SignerInfo | None, *_: Any) -> list[str]:
    spec = policy.provenance
    assert spec is not None
    p = m.provenance
    reasons = []
    if spec.require_certified_builder and (signer is None or signer.kind != "sigstore"):
        reasons.append(
            "the CI builder is self-reported (a key or certificate signature): "
            "a keyless CI signature is required to vouch for it"
        )
    need = set(spec.require)
    if "source_repository" in need and p.source is None:
        reasons.append("no source repository recorded")
    if "pinned_revision" in need and (
        p.source is None or not re.fullmatch(r"[0-9a-f]{40}", p.source.revision or "")
    ):
        reasons.append("the source revision is not pinned to a commit (40 hex digits)")
    if "base_model" in need and not p.base_models:
        reasons.append("no base model recorded")
    if "builder" in need and p.builder is None:
        reasons.append("no CI builder recorded")
    if (
        spec.source_repositories is not None
        and p.source is not None
        and not any(
            fnmatch.fnmatchcase(p.source.repository, pat) for pat in spec.source_repositories
        )
    ):
        reasons.append(f"source repository {p.source.repository} is not allowed")
    if spec.base_models is not None:
        for b in p.base_models:
            names = [b.name] + ([f"{b.organization}/{b.name}"] if b.organization else [])
            if not any(fnmatch.fnmatchcase(n, pat) for n in names for pat in spec.base_models):
                reasons.append(f"base model {b.name} is not allowed")
    return reasons


def _attestation(policy: Policy, info: Any) -> list[str]:
    """The SLSA attestation part of the provenance rule (``info``: a ProvenanceInfo or None)."""
    spec = policy.provenance
    assert spec is not None
    if info is None:
        return (
            ["no verified provenance attestation (modelsign attest provenance)"]
            if spec.needs_attestation
            else []
        )
    if spec.builder_ids is not None and not any(
        fnmatch.fnmatchcase(info.builder_id, pat) for pat in spec.builder_ids
    ):
        return [f"built by {info.builder_id}, which is not an allowed builder"]
    if spec.require_certified_builder and not info.builder_certified:
        return [
            f"the attestation's builder {info.builder_id} is self-reported "
            "(a key signature): a keyless CI signature is required to vouch for it"
        ]
    return []


def _formats(
    policy: Policy, m: Manifest, _s: Any, unsigned: Mapping[str, str], _n: Any
) -> list[str]:
    spec = policy.formats
    assert spec is not None
    reasons = []
    files: list[tuple[str, str, list[str], str]] = [
        (f.path, f.format, f.flags, "") for f in m.files
    ]
    known = {f.path for f in m.files}
    files += [(p, fmt, [], " (unsigned)") for p, fmt in unsigned.items() if p not in known]
    for path, fmt, flags, note in files:
        kind: str = fmt
        if kind == "opaque" and path.lower().endswith(WEIGHT_LIKE):
            kind = "unknown"
        if kind in spec.deny:
            reasons.append(f"{path}{note}: format {kind} is denied")
        elif spec.allow is not None and kind not in spec.allow and kind != "opaque":
            reasons.append(f"{path}{note}: format {kind} is not allowed")
        if (path.endswith(".py") or "code" in flags) and not spec.allow_python_code:
            reasons.append(f"{path}{note}: Python code in the model (runs with trust_remote_code)")
        if "chat-template" in flags and not spec.allow_chat_templates:
            reasons.append(f"{path}: carries a chat template (a Jinja program the runtime runs)")
    return reasons


def _quantization(policy: Policy, m: Manifest, *_: Any) -> list[str]:
    spec = policy.quantization
    assert spec is not None
    q = m.quantization
    reasons = []
    if not q.quantized:
        if not spec.allow_unquantized:
            reasons.append("the model is not quantized")
        return reasons
    if spec.allowed_schemes is not None and (q.scheme or "unknown") not in spec.allowed_schemes:
        reasons.append(f"quantization scheme {q.scheme} is not allowed")
    if spec.min_bits_per_weight is not None:
        bpw = q.bits_per_weight
        if bpw is None or bpw < spec.min_bits_per_weight:
            reasons.append(f"{bpw} bits per weight is below the minimum {spec.min_bits_per_weight}")
    return reasons


def _coverage(
    policy: Policy, m: Manifest, _s: Any, unsigned: Mapping[str, str], _n: Any
) -> list[str]:
    spec = policy.coverage
    assert spec is not None
    reasons = []
    if spec.require_tensor_digests:
        for f in m.files:
            if f.format in ("safetensors", "gguf") and (
                f.weights is None
                or any(t.digest is None for t in f.weights.tensors)
                or m.hashing.tensor is None
            ):
                reasons.append(
                    f"{f.path}: the signature has no tensor digests for this weight file"
                )
    if spec.unsigned_files != "allow":
        prefix = "" if spec.unsigned_files == "deny" else _WARN
        reasons += [f"{prefix}{n}: {NOT_COVERED}" for n in unsigned]
    return reasons


def _identity(
    policy: Policy,
    signed: Manifest | None,
    signer: SignerInfo | None,
    release: str | None,
    now: datetime,
) -> list[str]:
    """The identity pins, judged on the trusted signed manifest only (never the disk)."""
    spec = policy.identity
    assert spec is not None
    if signed is None:
        return ["no trusted signed manifest to check the model's identity against"]
    reasons = []
    if spec.name is not None and signed.name != spec.name:
        reasons.append(f"the signature is for model {signed.name!r}, not {spec.name!r}")
    have = source_text(signed.provenance.source)
    if spec.source is not None and not source_matches(spec.source, have):
        reasons.append(f"the signature is for source {have or '(none)'}, not {spec.source}")
    if spec.weights_digest is not None and signed.weights_digest != spec.weights_digest:
        reasons.append(f"the weights digest is {signed.weights_digest}, not {spec.weights_digest}")
    if spec.min_release is not None:
        reasons += _release_reasons(spec.min_release, release)
    if spec.signed_after is not None:
        when = signer.signed_at if signer is not None else None
        after = spec.signed_after
        after = after if after.tzinfo else after.replace(tzinfo=timezone.utc)
        if when is None:
            reasons.append("the signature carries no trusted signing time to compare")
        elif datetime.fromisoformat(when) < after:
            reasons.append(f"signed {when}, before {after.isoformat()}")
    return reasons


def _release_reasons(minimum: str, release: str | None) -> list[str]:
    if release is None:
        return [f"the signature names no release (sign --release); at least {minimum} required"]
    try:
        older = _version(release) < _version(minimum)
    except ValueError:
        return [f"the signed release {release!r} is not a version to compare with {minimum}"]
    return [f"release {release} is older than {minimum}"] if older else []


def _freshness(
    policy: Policy, _m: Manifest, signer: SignerInfo | None, _u: Any, now: datetime
) -> list[str]:
    spec = policy.freshness
    assert spec is not None
    if signer is None or signer.signed_at is None:
        return [
            "the signature carries no trusted signing time "
            "(a key or certificate signature has one only with a timestamp from a TSA "
            "the policy trusts: sign with --tsa-url, list signers.timestamp_authorities)"
        ]
    signed = datetime.fromisoformat(signer.signed_at)
    age = now - signed
    if age > _parse_duration(spec.max_age):
        return [f"signed {signed.isoformat()}, {age.days} days ago: older than {spec.max_age}"]
    return []


_JUDGES: dict[str, Any] = {
    "licences": _licences,
    "provenance": _provenance,
    "formats": _formats,
    "quantization": _quantization,
    "coverage": _coverage,
    "freshness": _freshness,
}


def explain(policy: Policy) -> str:
    """What the policy requires, in plain words."""
    lines = [policy.description.strip()] if policy.description else []
    lines.append(f"Rules not given a mode {'block' if policy.mode == 'enforce' else 'only warn'}.")

    def say(rule: RuleName, text: str) -> None:
        verb = "requires" if policy.mode_of(rule) == "enforce" else "warns unless"
        lines.append(f"- {rule} ({policy.mode_of(rule)}): {verb} {text}")

    if (s := policy.signers) is not None:
        who = [f"the key in {k.file}" if k.file else "an inline key" for k in s.keys]
        who += [f"a certificate chaining to {r}" for r in s.certificate_roots]
        for i in s.sigstore:
            ident = i.identity or f"an identity matching /{i.identity_regex}/"
            extra = ", ".join(
                f"{k.removeprefix('github_')} {v}"
                for k, v in (
                    ("github_repository", i.github_repository),
                    ("github_ref", i.github_ref),
                    ("github_workflow", i.github_workflow),
                )
                if v
            )
            who.append(f"Sigstore {ident} from {i.issuer}" + (f" ({extra})" if extra else ""))
        say("signers", "a valid signature over every file, by one of: " + "; ".join(who))
    if (pin := policy.identity) is not None:
        pins = [f"the model named {pin.name}"] if pin.name else []
        pins += [f"from {pin.source}"] if pin.source else []
        pins += [f"with weights digest {pin.weights_digest}"] if pin.weights_digest else []
        pins += [f"release {pin.min_release} or later"] if pin.min_release else []
        if pin.signed_after is not None:
            pins.append(f"signed after {pin.signed_after.isoformat()} (a trusted time)")
        say("identity", ", ".join(pins) or "nothing in particular")
    if (lic := policy.licences) is not None:
        parts = ["a licence" if lic.require else "no particular licence"]
        if lic.allow is not None:
            parts.append("allowed: " + ", ".join(lic.allow))
        if lic.deny:
            parts.append("denied: " + ", ".join(lic.deny))
        if lic.require_agreement:
            parts.append("all licence sources agreeing")
        say("licences", "; ".join(parts))
    if (pv := policy.provenance) is not None:
        parts = [f"recorded {', '.join(pv.require)}"] if pv.require else []
        if pv.source_repositories is not None:
            parts.append("source repository in " + ", ".join(pv.source_repositories))
        if pv.base_models is not None:
            parts.append("base models in " + ", ".join(pv.base_models))
        if pv.require_certified_builder:
            parts.append("a CI builder vouched for by a keyless signing certificate")
        say("provenance", "; ".join(parts) or "nothing in particular")
        if "builder" in pv.require or pv.builder_ids is not None:
            lines.append(
                "  note: with a key signature the builder is self-reported (environment "
                "variables anyone can set); only a keyless CI signature's certificate vouches "
                "for it (require_certified_builder)"
            )
    if (fm := policy.formats) is not None:
        parts = []
        if fm.allow is not None:
            parts.append("formats among " + ", ".join(fm.allow))
        if fm.deny:
            parts.append("no " + ", ".join(fm.deny) + " files")
        parts.append("Python files " + ("allowed" if fm.allow_python_code else "refused"))
        parts.append("chat templates " + ("allowed" if fm.allow_chat_templates else "refused"))
        say("formats", "; ".join(parts))
    if (q := policy.quantization) is not None:
        parts = []
        if q.allowed_schemes is not None:
            parts.append("schemes " + ", ".join(q.allowed_schemes))
        if q.min_bits_per_weight is not None:
            parts.append(f"at least {q.min_bits_per_weight} bits per weight")
        parts.append("unquantized models " + ("allowed" if q.allow_unquantized else "refused"))
        say("quantization", "; ".join(parts))
    if (c := policy.coverage) is not None:
        parts = (
            ["tensor digests for every safetensors/GGUF file"] if c.require_tensor_digests else []
        )
        parts.append(
            {
                "deny": "no unsigned files",
                "warn": "unsigned files reported",
                "allow": "unsigned files tolerated",
            }[c.unsigned_files]
        )
        say("coverage", "; ".join(parts))
    if (fr := policy.freshness) is not None:
        say("freshness", f"a signature younger than {fr.max_age} (needs a trusted signing time)")
    return "\n".join(lines)
