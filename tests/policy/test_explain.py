"""``explain``: the plain-language account of a policy, rule by rule."""

from __future__ import annotations

from pathlib import Path

from modelsign.policy import RULES, explain
from tests.policy.helpers import GH_REF, GH_REPO, load
from tests.sigstore_standin import GITHUB_ISSUER


def test_explain_mentions_every_rule(tmp_path: Path) -> None:
    policy = load(
        tmp_path,
        {
            "description": "All the rules.",
            "mode": "warn",
            "signers": {
                "mode": "enforce",
                "keys": [{"file": "keys/release.pub"}, {"pem": "x"}],
                "certificate_roots": ["pki/root.pem"],
                "sigstore": [
                    {
                        "identity_regex": "^https://github\\.com/acme/.*$",
                        "issuer": GITHUB_ISSUER,
                        "github_repository": GH_REPO,
                        "github_ref": GH_REF,
                    }
                ],
            },
            "identity": {"name": "tiny-model", "source": "acme/tiny", "min_release": "1.4"},
            "licences": {"allow": ["MIT"], "deny": ["GPL-3.0-only"], "require_agreement": True},
            "provenance": {
                "require": ["source_repository", "pinned_revision"],
                "source_repositories": ["acme/*"],
                "base_models": ["meta-llama/*"],
            },
            "formats": {"allow": ["safetensors", "opaque"], "deny": ["pickle", "unknown"]},
            "quantization": {
                "allowed_schemes": ["MOSTLY_Q8_0"],
                "min_bits_per_weight": 4,
                "allow_unquantized": False,
            },
            "coverage": {"unsigned_files": "warn"},
            "freshness": {"max_age": "30d"},
        },
    )
    lines = explain(policy).splitlines()
    assert lines[0] == "All the rules."
    assert lines[1] == "Rules not given a mode only warn."
    by_rule = {line.split(" ")[1]: line for line in lines[2:]}
    assert list(by_rule) == list(RULES)
    assert by_rule["signers"] == (
        "- signers (enforce): requires a valid signature over every file, by one of: "
        "the key in keys/release.pub; an inline key; a certificate chaining to pki/root.pem; "
        "a Sigstore identity matching /^https://github\\.com/acme/.*$/ from "
        f"{GITHUB_ISSUER} (repository {GH_REPO}, ref {GH_REF})"
    )
    assert by_rule["identity"] == (
        "- identity (warn): warns unless the model named tiny-model, from acme/tiny, "
        "release 1.4 or later"
    )
    assert by_rule["licences"] == (
        "- licences (warn): warns unless a licence; allowed: MIT; denied: GPL-3.0-only; "
        "all licence sources agreeing"
    )
    assert by_rule["provenance"] == (
        "- provenance (warn): warns unless recorded source_repository, pinned_revision; "
        "source repository in acme/*; base models in meta-llama/*"
    )
    assert by_rule["formats"] == (
        "- formats (warn): warns unless formats among safetensors, opaque; "
        "no pickle, unknown files; Python files refused; chat templates allowed"
    )
    assert by_rule["quantization"] == (
        "- quantization (warn): warns unless schemes MOSTLY_Q8_0; at least 4.0 bits per "
        "weight; unquantized models refused"
    )
    assert by_rule["coverage"] == (
        "- coverage (warn): warns unless tensor digests for every safetensors/GGUF file; "
        "unsigned files reported"
    )
    assert by_rule["freshness"] == (
        "- freshness (warn): warns unless a signature younger than 30d "
        "(needs a trusted signing time)"
    )


def test_explain_only_the_rules_present(tmp_path: Path) -> None:
    text = explain(load(tmp_path, {"formats": {}}))
    assert text.splitlines() == [
        "Rules not given a mode block.",
        "- formats (enforce): requires no pickle files; Python files refused; "
        "chat templates allowed",
    ]
