"""What a policy requires, in plain words (``modelsign policy explain``)."""

from __future__ import annotations

from .schema import Policy
from .specs import RuleName


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
