"""Judging a policy's rules: what the verification found → a :class:`PolicyReport`."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from .._internal.discover import discover, name_inside
from .._internal.formats import sniff_file
from .._internal.manifest import Manifest
from .._internal.metadata.provenance import source_matches, source_text
from .._internal.metadata.spdx import licence_permitted
from .._internal.signature.verifiers import SignerInfo
from ..codes import Code
from ..errors import ModelsignError
from ..issues import Issue, Severity
from .pickles import findings_by_file, pickle_refusal
from .schema import Policy
from .specs import (
    NOT_COVERED,
    RULE_CODES,
    WEIGHT_LIKE,
    FormatsRule,
    Mode,
    RuleName,
    Status,
    parse_duration,
    parse_version,
)


class RuleResult(BaseModel):
    """The outcome of one rule (part of the verification result).

    ``issues`` say why the rule is not met: the rule's own reasons (code
    ``POLICY_<RULE>``) and, for the signers rule, the verification problems
    it judges (with their own codes). An issue's severity is what it did:
    ``error`` failed the rule (enforced), ``warning`` was only reported (a
    warn-mode rule, or a reason that only ever warns), ``info`` says why the
    rule was skipped. ``reasons`` are the issues as text, and are what the
    JSON holds (the JSON schema is unchanged).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: RuleName
    mode: Mode
    status: Status
    issues: list[Issue] = Field(default=[], exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _from_json(cls, data: Any) -> Any:
        """Read the JSON form: ``reasons`` are derived from the issues, or stand for them."""
        if isinstance(data, dict) and "reasons" in data:
            data = dict(data)
            reasons = data.pop("reasons")
            if "issues" not in data and isinstance(reasons, list):
                severity = {"fail": "error", "skip": "info"}.get(data.get("status"), "warning")
                code = RULE_CODES.get(data.get("rule"))
                data["issues"] = [
                    {"code": code, "severity": severity, "message": r} for r in reasons
                ]
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reasons(self) -> list[str]:
        """Each issue as a line: the rule's own as its message, others ``CODE: file: message``."""
        own = RULE_CODES[self.rule]
        return [
            i.message
            if i.code == own
            else f"{i.code}: {i.file + ': ' if i.file else ''}{i.message}"
            for i in self.issues
        ]


class PolicyReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[RuleResult]

    @property
    def failed(self) -> list[RuleResult]:
        """The rules that failed (enforced, and not met)."""
        return [r for r in self.rules if r.status == "fail"]

    @property
    def blocked(self) -> bool:
        return bool(self.failed)


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


#: A reason a judge gives: its text (the rule's own code), or an issue with a code of its own.
_Reason = str | Issue


def _own(rule: RuleName, text: str, *, file: str | None = None, only_warn: bool = False) -> Issue:
    """A reason of the rule itself (``only_warn``: it never fails the rule, whatever the mode)."""
    severity: Severity = "warning" if only_warn else "error"
    return Issue(code=RULE_CODES[rule], severity=severity, message=text, file=file)


def _result(
    policy: Policy, rule: RuleName, reasons: Sequence[_Reason], mode: Mode | None = None
) -> RuleResult:
    mode = mode or policy.mode_of(rule)
    if not reasons:
        return RuleResult(rule=rule, mode=mode, status="pass")
    issues = [r if isinstance(r, Issue) else _own(rule, r) for r in reasons]
    hard = any(i.severity == "error" for i in issues)
    status: Status = "fail" if hard and mode == "enforce" else "warn"
    if status == "warn":  # nothing failed: every reason was only reported
        issues = [
            i.model_copy(update={"severity": "warning"}) if i.severity == "error" else i
            for i in issues
        ]
    return RuleResult(rule=rule, mode=mode, status=status, issues=issues)


def evaluate(
    policy: Policy,
    *,
    manifest: Manifest | None,
    signer: SignerInfo | None,
    signature_problems: Sequence[Issue | str],
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
    verify: verification problems (one of severity ``warning`` never fails
    the rule), or text (a reason of the signers rule's own); ``unsigned_files``
    maps files present but not signed to their sniffed format (the formats
    rule judges them too: an unsigned pickle beside signed weights is still
    a pickle a loader may pick up); ``excused``
    are those the verifier's ``--ignore`` left out (not a coverage failure);
    ``ignored_files`` are those the signature's ``ignore_paths`` left out
    (:func:`formats_beside`): judged by the formats rule only, since no
    ignore pattern makes a pickle safe to have beside a model.
    Coverage is about the signature, so it judges ``coverage_manifest`` (the
    trusted signed manifest) and is skipped when there is none.

    The signers rule is judged when the policy lists signers, or when the
    caller verified with its own trust (``verifier_given``: --key, a verifier
    object). With the caller's trust it is enforced whatever the policy's
    mode (see ``modelsign._trust.Trust``); failures of the policy's own warn-mode signers
    then arrive as ``Trust.warn_reasons()``, warnings that never fail it. Without a
    coverage rule, unsigned files fail it, as they do without a policy. (Only
    the policy's trust, or none, as in the inventory: ``verifier_given=False``.)
    """
    evidence = _Evidence(
        manifest=manifest,
        signer=signer,
        signature_problems=signature_problems,
        judged={k: v for k, v in unsigned_files.items() if k not in excused},
        unsigned_files=unsigned_files,
        ignored_files=ignored_files,
        coverage_manifest=coverage_manifest,
        attestation=attestation,
        verifier_given=verifier_given,
        now=now or datetime.now(timezone.utc),
        release=release,
    )
    judged_rules = policy.rules()
    if verifier_given and policy.signers is None:
        judged_rules.insert(0, "signers")
    return PolicyReport(rules=[_judge(policy, rule, evidence) for rule in judged_rules])


@dataclass(frozen=True)
class _Evidence:
    """What :func:`evaluate` was given, for the rule judges (``judged``: unsigned, not excused)."""

    manifest: Manifest | None
    signer: SignerInfo | None
    signature_problems: Sequence[Issue | str]
    judged: dict[str, str]
    unsigned_files: Mapping[str, str]
    ignored_files: Mapping[str, str] | None
    coverage_manifest: Manifest | None
    attestation: Any
    verifier_given: bool
    now: datetime
    release: str | None


def _judge(policy: Policy, rule: RuleName, ev: _Evidence) -> RuleResult:
    if rule == "coverage" and ev.coverage_manifest is None:
        why = "no trusted signed manifest to judge coverage by"
        return RuleResult(
            rule=rule,
            mode=policy.mode_of(rule),
            status="skip",
            issues=[Issue(code=RULE_CODES[rule], severity="info", message=why)],
        )
    # A policy never loosens what the caller demands (Trust).
    mode: Mode | None = "enforce" if rule == "signers" and ev.verifier_given else None
    return _result(policy, rule, _reasons(policy, rule, ev), mode)


def _reasons(policy: Policy, rule: RuleName, ev: _Evidence) -> Sequence[_Reason]:
    """Why ``rule`` is not met (empty: it is)."""
    if rule == "signers":
        reasons: list[_Reason] = list(ev.signature_problems)
        if policy.coverage is None:
            reasons += [
                Issue(code=Code.FILE_EXTRA, message=NOT_COVERED, file=n) for n in sorted(ev.judged)
            ]
        return reasons
    if rule == "identity":
        return _identity(policy, ev.coverage_manifest, ev.signer, ev.release)
    if ev.manifest is None:
        return [_no_manifest(ev.signature_problems)]
    files = {**(ev.ignored_files or {}), **ev.unsigned_files} if rule == "formats" else ev.judged
    subject = ev.coverage_manifest if rule == "coverage" and ev.coverage_manifest else ev.manifest
    found: list[_Reason] = list(_JUDGES[rule](policy, subject, ev.signer, files, ev.now))
    if rule == "provenance":
        found += _attestation(policy, ev.attestation)
    return found


def _no_manifest(signature_problems: Sequence[Issue | str]) -> str:
    """Why a content rule has nothing to judge: the model is not signed, or cannot be read."""
    missing = next(
        (
            p
            for p in signature_problems
            if isinstance(p, Issue) and p.code == Code.SIGNATURE_NOT_FOUND
        ),
        None,
    )
    if missing is not None:
        where = f" (no signature at {missing.file})" if missing.file else ""
        return f"not judged: the model is not signed{where}"
    return "no manifest to judge (the signature carries none and the model could not be read)"


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
) -> list[_Reason]:
    """Each file's format by the lists, its pickles by the pickle setting, code and templates.

    A file not in the manifest (unsigned, or ignored at signing) was never
    analysed: under ``pickle: safe-state-dicts`` a pickle there is refused.
    """
    spec = policy.formats
    assert spec is not None
    reasons: list[_Reason] = []
    files: list[tuple[str, str, list[str], str]] = [
        (f.path, f.format, f.flags, "") for f in m.files
    ]
    known = {f.path for f in m.files}
    files += [(p, fmt, [], " (unsigned)") for p, fmt in unsigned.items() if p not in known]
    about = findings_by_file(m.findings)
    for path, fmt, flags, note in files:
        kind: str = fmt
        if kind == "opaque" and path.lower().endswith(WEIGHT_LIKE):
            kind = "unknown"
        listed = _listing(spec, kind)
        unpickled = pickle_refusal(spec, fmt, flags, about.get(path, []))
        why = [f"{path}{note}: {text}" for text in (listed, unpickled) if text is not None]
        if (path.endswith(".py") or "code" in flags) and not spec.allow_python_code:
            why.append(f"{path}{note}: Python code in the model (runs with trust_remote_code)")
        if "chat-template" in flags and not spec.allow_chat_templates:
            why.append(f"{path}: carries a chat template (a Jinja program the runtime runs)")
        reasons += [_own("formats", text, file=path) for text in why]
    return reasons


def _listing(spec: FormatsRule, kind: str) -> str | None:
    """What the allow and deny lists say of a format; pickle is the pickle setting's to judge."""
    if kind == "pickle":
        return None
    if kind in spec.deny:
        return f"format {kind} is denied"
    if spec.allow is not None and kind not in spec.allow and kind != "opaque":
        return f"format {kind} is not allowed"
    return None


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
) -> list[_Reason]:
    spec = policy.coverage
    assert spec is not None
    reasons: list[_Reason] = []
    if spec.require_tensor_digests:
        for f in m.files:
            if f.format in ("safetensors", "gguf") and (
                f.weights is None
                or any(t.digest is None for t in f.weights.tensors)
                or m.hashing.tensor is None
            ):
                why = f"{f.path}: the signature has no tensor digests for this weight file"
                reasons.append(_own("coverage", why, file=f.path))
    if spec.unsigned_files != "allow":
        warn = spec.unsigned_files == "warn"  # reported, never a failure
        reasons += [
            _own("coverage", f"{n}: {NOT_COVERED}", file=n, only_warn=warn) for n in unsigned
        ]
    return reasons


def _identity(
    policy: Policy, signed: Manifest | None, signer: SignerInfo | None, release: str | None
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
        older = parse_version(release) < parse_version(minimum)
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
    if age > parse_duration(spec.max_age):
        return [f"signed {signed.isoformat()}, {age.days} days ago: older than {spec.max_age}"]
    return []


#: The rules judged on a manifest: (policy, manifest, signer, files, now) → reasons.
_JUDGES: dict[
    RuleName,
    Callable[[Policy, Manifest, SignerInfo | None, Mapping[str, str], datetime], Sequence[_Reason]],
] = {
    "licences": _licences,
    "provenance": _provenance,
    "formats": _formats,
    "quantization": _quantization,
    "coverage": _coverage,
    "freshness": _freshness,
}
