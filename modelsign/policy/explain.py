"""What a policy requires, in plain words (``modelsign policy explain``).

One function per rule turns its spec into a phrase; :func:`explain` adds the
rule's mode, so each phrase reads after "requires" or "warns unless".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .schema import Policy
from .specs import (
    CoverageRule,
    FormatsRule,
    FreshnessRule,
    IdentityRule,
    LicencesRule,
    ProvenanceRule,
    QuantizationRule,
    RuleName,
    SignersRule,
    SigstoreSpec,
)

#: Why a builder a policy names is only as good as the signature that records it.
_BUILDER_NOTE = (
    "  note: with a key signature the builder is self-reported (environment "
    "variables anyone can set); only a keyless CI signature's certificate vouches "
    "for it (require_certified_builder)"
)


def explain(policy: Policy) -> str:
    """What the policy requires, in plain words."""
    lines = [policy.description.strip()] if policy.description else []
    lines.append(f"Rules not given a mode {'block' if policy.mode == 'enforce' else 'only warn'}.")
    for rule, text in _requirements(policy):
        verb = "requires" if policy.mode_of(rule) == "enforce" else "warns unless"
        lines.append(f"- {rule} ({policy.mode_of(rule)}): {verb} {text}")
        if rule == "provenance":
            lines += _builder_note(policy.provenance)
    return "\n".join(lines)


def _requirements(policy: Policy) -> Iterator[tuple[RuleName, str]]:
    """Each rule the policy gives, in the order they are judged, with what it requires."""
    for rule in policy.rules():
        yield rule, _PHRASES[rule](getattr(policy, rule))


def _signers(s: SignersRule) -> str:
    who = [
        f"the key in {k.file}" if k.file else f"the key at {k.uri}" if k.uri else "an inline key"
        for k in s.keys
    ]
    who += [f"a certificate chaining to {r}" for r in s.certificate_roots]
    who += [_sigstore(i) for i in s.sigstore]
    by = who[0] if len(who) == 1 else "one of: " + "; ".join(who)
    return f"a valid signature over every file, by {by}"


def _sigstore(i: SigstoreSpec) -> str:
    ident = (
        f"the Sigstore identity {i.identity}"
        if i.identity is not None
        else f"a Sigstore identity matching /{i.identity_regex}/"
    )
    extra = ", ".join(
        f"{k.removeprefix('github_')} {v}"
        for k, v in (
            ("github_repository", i.github_repository),
            ("github_ref", i.github_ref),
            ("github_workflow", i.github_workflow),
        )
        if v
    )
    return f"{ident} from {i.issuer}" + (f" ({extra})" if extra else "")


def _identity(pin: IdentityRule) -> str:
    pins = [f"the model named {pin.name}"] if pin.name else []
    pins += [f"from {pin.source}"] if pin.source else []
    pins += [f"with weights digest {pin.weights_digest}"] if pin.weights_digest else []
    pins += [f"release {pin.min_release} or later"] if pin.min_release else []
    if pin.signed_after is not None:
        pins.append(f"signed after {pin.signed_after.isoformat()} (a trusted time)")
    return ", ".join(pins) or "nothing in particular"


def _licences(lic: LicencesRule) -> str:
    parts = ["a licence" if lic.require else "no particular licence"]
    if lic.allow is not None:
        parts.append("allowed: " + ", ".join(lic.allow))
    if lic.deny:
        parts.append("denied: " + ", ".join(lic.deny))
    if lic.require_agreement:
        parts.append("all licence sources agreeing")
    return "; ".join(parts)


def _provenance(pv: ProvenanceRule) -> str:
    parts = [f"recorded {', '.join(pv.require)}"] if pv.require else []
    if pv.source_repositories is not None:
        parts.append("source repository in " + ", ".join(pv.source_repositories))
    if pv.base_models is not None:
        parts.append("base models in " + ", ".join(pv.base_models))
    if pv.require_certified_builder:
        parts.append("a CI builder vouched for by a keyless signing certificate")
    return "; ".join(parts) or "nothing in particular"


def _builder_note(pv: ProvenanceRule | None) -> list[str]:
    """The caveat under a provenance rule that names a builder."""
    named = pv is not None and ("builder" in pv.require or pv.builder_ids is not None)
    return [_BUILDER_NOTE] if named else []


#: What each pickle setting admits, in words.
_PICKLES = {
    "deny": "no pickle files",
    "safe-state-dicts": "pickle files only when analysed as safe state dicts "
    "(importing only allowlisted globals)",
    "allow": "any pickle file (loading one can run code)",
}


def _formats(fm: FormatsRule) -> str:
    parts = []
    if fm.allow is not None:
        parts.append("formats among " + ", ".join(fm.allow))
    if fm.deny:
        parts.append("no " + ", ".join(fm.deny) + " files")
    if fm.pickle is not None and not (fm.pickle == "deny" and "pickle" in fm.deny):
        parts.append(_PICKLES[fm.pickle])
    parts.append("Python files " + ("allowed" if fm.allow_python_code else "refused"))
    parts.append("chat templates " + ("allowed" if fm.allow_chat_templates else "refused"))
    return "; ".join(parts)


def _quantization(q: QuantizationRule) -> str:
    parts = []
    if q.allowed_schemes is not None:
        parts.append("schemes " + ", ".join(q.allowed_schemes))
    if q.min_bits_per_weight is not None:
        parts.append(f"at least {q.min_bits_per_weight} bits per weight")
    parts.append("unquantized models " + ("allowed" if q.allow_unquantized else "refused"))
    return "; ".join(parts)


def _coverage(c: CoverageRule) -> str:
    parts = ["tensor digests for every safetensors/GGUF file"] if c.require_tensor_digests else []
    parts.append(
        {
            "deny": "no unsigned files",
            "warn": "unsigned files reported",
            "allow": "unsigned files tolerated",
        }[c.unsigned_files]
    )
    return "; ".join(parts)


def _freshness(fr: FreshnessRule) -> str:
    return f"a signature younger than {fr.max_age} (needs a trusted signing time)"


#: Each rule's spec → what it requires, in words.
_PHRASES: dict[RuleName, Callable[[Any], str]] = {
    "signers": _signers,
    "identity": _identity,
    "licences": _licences,
    "provenance": _provenance,
    "formats": _formats,
    "quantization": _quantization,
    "coverage": _coverage,
    "freshness": _freshness,
}
