"""The provenance rule: source repository and pinned revision, base models, the CI builder."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers.examples import build_example
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    GH_REF,
    GH_REPO,
    GH_WORKFLOW,
    MODES,
    PINNED,
    assert_fails,
    assert_passes,
    judge,
    key_sign,
    load,
    rule_of,
    rule_policy,
    with_card,
)


@pytest.mark.parametrize("mode", MODES)
def test_provenance_source_repository_and_pinned_revision(
    tmp_path: Path, release: KeyPair, mode: str
) -> None:
    verifier = release.verifier
    require = ["source_repository", "pinned_revision"]
    policy = rule_policy(tmp_path, "provenance", mode, require=require)
    unpinned, branch, pinned = (build_example(tmp_path / n)[0] for n in ("a", "b", "c"))
    key_sign(unpinned, release)
    key_sign(branch, release, source=parse_source("acme/tiny@main"))
    key_sign(pinned, release, source=parse_source(f"acme/tiny@{PINNED}"))
    assert_fails(
        unpinned,
        policy,
        "provenance",
        mode,
        [
            "no source repository recorded",
            "the source revision is not pinned to a commit (40 hex digits)",
        ],
        verifier=verifier,
    )
    assert_fails(
        branch,
        policy,
        "provenance",
        mode,
        ["the source revision is not pinned to a commit (40 hex digits)"],
        verifier=verifier,
    )
    assert_passes(pinned, policy, "provenance", verifier=verifier)
    only_repo = rule_policy(tmp_path, "provenance", mode, require=["source_repository"])
    assert_passes(branch, only_repo, "provenance", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_provenance_base_model(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release: KeyPair, mode: str
) -> None:
    verifier = release.verifier
    policy = rule_policy(tmp_path, "provenance", mode, require=["base_model"])
    assert_passes(signed_st, policy, "provenance", verifier=verifier)  # card base_model
    assert_passes(signed_gguf, policy, "provenance", verifier=verifier)  # GGUF base_model
    bare = with_card(tmp_path / "bare", "mit")
    key_sign(bare, release)
    assert_fails(bare, policy, "provenance", mode, ["no base model recorded"], verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_provenance_builder(tmp_path: Path, release: KeyPair, mode: str) -> None:
    verifier = release.verifier
    policy = rule_policy(tmp_path, "provenance", mode, require=["builder"])
    local, ci = (build_example(tmp_path / n)[0] for n in ("local", "ci"))
    key_sign(local, release)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": GH_REPO,
        "GITHUB_SHA": PINNED,
        "GITHUB_REF": GH_REF,
        "GITHUB_WORKFLOW_REF": f"{GH_REPO}/{GH_WORKFLOW}@{GH_REF}",
    }
    key_sign(ci, release, env=env)
    assert_fails(local, policy, "provenance", mode, ["no CI builder recorded"], verifier=verifier)
    assert_passes(ci, policy, "provenance", verifier=verifier)


def test_provenance_builder_is_not_taken_from_the_verifiers_environment(
    tmp_path: Path, tiny_model: Path, release: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "verifier/ci-job")
    policy = load(
        tmp_path,
        {
            "mode": "warn",
            "signers": {"keys": [{"pem": release.pem}]},
            "provenance": {"require": ["builder"]},
        },
    )
    result, _ = judge(tiny_model, policy)  # unsigned: judged from disk
    assert rule_of(result, "provenance").reasons == ["no CI builder recorded"]


@pytest.mark.parametrize("mode", MODES)
def test_provenance_source_repository_patterns(tmp_path: Path, release: KeyPair, mode: str) -> None:
    verifier = release.verifier
    model = build_example(tmp_path / "m")[0]
    key_sign(model, release, source=parse_source(f"acme/tiny@{PINNED}"))
    allowed = rule_policy(tmp_path, "provenance", mode, source_repositories=["other/*", "acme/*"])
    assert_passes(model, allowed, "provenance", verifier=verifier)
    exact = rule_policy(tmp_path, "provenance", mode, source_repositories=["acme/tiny"])
    assert_passes(model, exact, "provenance", verifier=verifier)
    refused = rule_policy(
        tmp_path, "provenance", mode, source_repositories=["acme-research/*", "Acme/*"]
    )
    assert_fails(
        model,
        refused,
        "provenance",
        mode,
        ["source repository acme/tiny is not allowed"],
        verifier=verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_provenance_base_model_patterns(
    tmp_path: Path, signed_st: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    allowed = rule_policy(tmp_path, "provenance", mode, base_models=["modelsign-examples/*"])
    assert_passes(signed_st, allowed, "provenance", verifier=release_verifier)
    refused = rule_policy(tmp_path, "provenance", mode, base_models=["meta-llama/*"])
    assert_fails(
        signed_st,
        refused,
        "provenance",
        mode,
        ["base model modelsign-examples/tiny-base is not allowed"],
        verifier=release_verifier,
    )
