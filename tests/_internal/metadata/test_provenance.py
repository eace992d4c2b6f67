"""Provenance: --source parsing, base models, CI builders."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelsign._internal.metadata.card import parse_model_card
from modelsign._internal.metadata.provenance import (
    BaseModelRef,
    ParentRef,
    Provenance,
    SourceRepo,
    base_models_from_card,
    base_models_from_gguf,
    builder_from_env,
    parse_source,
)
from modelsign.errors import InputError


@pytest.mark.parametrize(
    ("text", "repository", "revision"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B", None),
        ("Qwen/Qwen2.5-0.5B@main", "Qwen/Qwen2.5-0.5B", "main"),
        (
            "TheBloke/Llama-2-7B-GGUF@191239b3e26b2882fb562ffccdd1cf0f65402adb",
            "TheBloke/Llama-2-7B-GGUF",
            "191239b3e26b2882fb562ffccdd1cf0f65402adb",
        ),
        ("org/name@refs/pr/12", "org/name", "refs/pr/12"),
        ("a_b/c.d_e", "a_b/c.d_e", None),
        ("o/" + "n" * 96, "o/" + "n" * 96, None),
    ],
)
def test_parse_source(text: str, repository: str, revision: str | None) -> None:
    assert parse_source(text) == SourceRepo(repository=repository, revision=revision, origin="cli")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpt2",  # no namespace
        "a/b/c",
        "/name",
        "org/",
        "org/-name",
        "org/name.",
        "org/na--me",
        "org/na..me",
        "org/na me",
        "org/näme",
        "o/" + "n" * 97,
        "org/name@",
        "org/name@ main",
        "org/name@main\n",
        "org/name@ma\x00in",
        "org/name@main\u202e",  # bidi override
        "org/name@" + "r" * 256,
        "https://huggingface.co/org/name",
    ],
)
def test_parse_source_rejects(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_source(text)
    assert info.value.code == "BAD_SOURCE"
    assert "org/name" in info.value.message


def test_base_model_string_from_card() -> None:
    card, _ = parse_model_card(
        b"---\nbase_model: meta-llama/Llama-3.1-8B\nbase_model_relation: quantized\n---\n",
        "README.md",
    )
    assert base_models_from_card(card, "README.md") == [
        BaseModelRef(
            name="meta-llama/Llama-3.1-8B", relation="quantized", source="README.md:base_model"
        )
    ]


def test_base_model_list_from_card() -> None:
    card, _ = parse_model_card(
        b"---\nbase_model:\n- mistralai/Mistral-7B-v0.1\n- HuggingFaceH4/zephyr-7b-beta\n"
        b"- mistralai/Mistral-7B-v0.1\n- 42\n- ''\nbase_model_relation: merge\n---\n",
        "README.md",
    )
    refs = base_models_from_card(card, "README.md")
    assert [(r.name, r.relation) for r in refs] == [
        ("mistralai/Mistral-7B-v0.1", "merge"),
        ("HuggingFaceH4/zephyr-7b-beta", "merge"),
    ]


def test_no_base_model() -> None:
    assert base_models_from_card({"license": "mit"}, "README.md") == []
    assert base_models_from_card({"base_model": {"x": 1}}, "README.md") == []
    card: dict[str, object] = {"base_model": "org/model"}
    assert base_models_from_card(card, "README.md")[0].relation is None


def test_base_models_from_gguf() -> None:
    metadata: dict[str, object] = {
        "general.architecture": "llama",
        "general.base_model.count": 2,
        "general.base_model.0.name": "Llama 3.1 8B Instruct",
        "general.base_model.0.organization": "Meta Llama",
        "general.base_model.0.repo_url": "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct",
        "general.base_model.1.repo_url": "https://huggingface.co/org/other",
        # Beyond count: ignored.
        "general.base_model.2.name": "ignored",
    }
    refs = base_models_from_gguf(metadata, "model.gguf")
    assert refs == [
        BaseModelRef(
            name="Llama 3.1 8B Instruct",
            organization="Meta Llama",
            repo_url="https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct",
            source="model.gguf:general.base_model.0",
        ),
        BaseModelRef(
            name="https://huggingface.co/org/other",
            repo_url="https://huggingface.co/org/other",
            source="model.gguf:general.base_model.1",
        ),
    ]


def test_gguf_hostile_count() -> None:
    metadata: dict[str, object] = {
        "general.base_model.count": 2**63,
        "general.base_model.0.name": "x",
    }
    assert [r.name for r in base_models_from_gguf(metadata, "m.gguf")] == ["x"]
    assert base_models_from_gguf({"general.base_model.count": "1"}, "m.gguf") == []
    assert base_models_from_gguf({"general.base_model.count": True}, "m.gguf") == []
    assert base_models_from_gguf({}, "m.gguf") == []


GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/models",
    "GITHUB_REPOSITORY_ID": "123456789",
    "GITHUB_WORKFLOW_REF": "acme/models/.github/workflows/sign.yml@refs/heads/main",
    "GITHUB_SHA": "ffac537e6cbbf934b08745a378932722df287a53",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_RUN_ID": "1658821493",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_EVENT_NAME": "push",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_HEAD_REF": "",
    "GITHUB_TOKEN": "ghs_secret",
    "HOME": "/home/runner",
}


def test_github_builder() -> None:
    builder = builder_from_env(GITHUB_ENV)
    assert builder is not None and builder.kind == "github-actions"
    assert builder.fields["GITHUB_WORKFLOW_REF"].endswith("sign.yml@refs/heads/main")
    assert set(builder.fields) == {
        "GITHUB_REPOSITORY",
        "GITHUB_REPOSITORY_ID",
        "GITHUB_WORKFLOW_REF",
        "GITHUB_SHA",
        "GITHUB_REF",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_EVENT_NAME",
        "RUNNER_ENVIRONMENT",
        "GITHUB_SERVER_URL",
    }
    assert list(builder.fields) == sorted(builder.fields)


def test_gitlab_builder() -> None:
    env = {
        "GITLAB_CI": "true",
        "CI": "true",
        "CI_PROJECT_PATH": "acme/models",
        "CI_PROJECT_ID": "4242",
        "CI_COMMIT_SHA": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
        "CI_COMMIT_REF_NAME": "main",
        "CI_PIPELINE_ID": "1000",
        "CI_JOB_ID": "50",
        "CI_CONFIG_PATH": ".gitlab-ci.yml",
        "CI_SERVER_URL": "https://gitlab.com",
        "CI_RUNNER_ID": "",
        "CI_JOB_TOKEN": "secret",
    }
    builder = builder_from_env(env)
    assert builder is not None and builder.kind == "gitlab-ci"
    assert builder.fields == {
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_SHA": "1ecfd275763eff1d6b4844ea3168962458c9f27a",
        "CI_CONFIG_PATH": ".gitlab-ci.yml",
        "CI_JOB_ID": "50",
        "CI_PIPELINE_ID": "1000",
        "CI_PROJECT_ID": "4242",
        "CI_PROJECT_PATH": "acme/models",
        "CI_SERVER_URL": "https://gitlab.com",
    }


def test_no_builder() -> None:
    assert builder_from_env({}) is None
    assert builder_from_env({"CI": "true", "GITHUB_REPOSITORY": "acme/models"}) is None
    assert builder_from_env({"GITHUB_ACTIONS": "1"}) is None
    assert builder_from_env({"GITLAB_CI": "false"}) is None


def test_parent_digest_is_validated() -> None:
    ParentRef(digest="sha256:" + "ab" * 32)
    with pytest.raises(ValidationError):
        ParentRef(digest="sha256:ABC")


def test_provenance_is_deterministic() -> None:
    a = BaseModelRef(name="b/model", source="README.md:base_model")
    b = BaseModelRef(name="a/model", source="m.gguf:general.base_model.0")
    p1 = ParentRef(digest="sha256:" + "1" * 64, name="one")
    p2 = ParentRef(digest="sha256:" + "0" * 64)
    first = Provenance(
        source=parse_source("org/name@main"),
        base_models=[a, b],
        builder=builder_from_env(GITHUB_ENV),
        parents=[p1, p2],
    )
    second = Provenance(
        source=parse_source("org/name@main"),
        base_models=[b, a],
        builder=builder_from_env(dict(reversed(GITHUB_ENV.items()))),
        parents=[p2, p1],
    )
    assert first.model_dump_json() == second.model_dump_json()
    assert [m.name for m in first.base_models] == ["a/model", "b/model"]
    assert Provenance().model_dump_json() == (
        '{"source":null,"base_models":[],"builder":null,"parents":[]}'
    )
