"""Model card front matter: real card shapes, broken YAML, hostile YAML."""

from __future__ import annotations

from modelsign._internal.metadata.card import parse_model_card

LLAMA_CARD = b"""---
language:
- en
license: llama3.1
base_model: meta-llama/Llama-3.1-8B
base_model_relation: finetune
library_name: transformers
tags:
- facebook
- meta
- llama-3
model-index:
- name: Example
  results:
  - task: {type: text-generation}
    metrics:
    - {type: acc, value: 0.6512}
---

# Example

A fine-tune of Llama 3.1 8B.
"""


def test_front_matter_is_parsed() -> None:
    card, findings = parse_model_card(LLAMA_CARD, "README.md")
    assert findings == []
    assert card["license"] == "llama3.1"
    assert card["base_model"] == "meta-llama/Llama-3.1-8B"
    assert card["base_model_relation"] == "finetune"
    assert card["tags"] == ["facebook", "meta", "llama-3"]


def test_other_licence_and_list_base_model() -> None:
    text = (
        b"---\r\nlicense: other\r\nlicense_name: qwen-research\r\n"
        b"license_link: https://huggingface.co/Qwen/Qwen2.5-3B/blob/main/LICENSE\r\n"
        b"base_model:\r\n- Qwen/Qwen2.5-3B\r\n- Qwen/Qwen2.5-3B-Instruct\r\n"
        b"base_model_relation: merge\r\n---\r\nbody\r\n"
    )
    card, findings = parse_model_card(text, "README.md")
    assert findings == []
    assert card["license_name"] == "qwen-research"
    assert card["base_model"] == ["Qwen/Qwen2.5-3B", "Qwen/Qwen2.5-3B-Instruct"]


def test_bom_is_tolerated() -> None:
    card, findings = parse_model_card(b"\xef\xbb\xbf---\nlicense: mit\n---\n", "README.md")
    assert (card, findings) == ({"license": "mit"}, [])


def test_no_front_matter() -> None:
    assert parse_model_card(b"# Just a README\n\nlicense: mit\n", "README.md") == ({}, [])
    assert parse_model_card(b"", "README.md") == ({}, [])


def test_empty_front_matter() -> None:
    assert parse_model_card(b"---\n\n---\ntext\n", "README.md") == ({}, [])


def _invalid(text: bytes) -> str:
    card, findings = parse_model_card(text, "docs/README.md")
    assert card == {}
    assert len(findings) == 1
    f = findings[0]
    assert (f.code, f.severity, f.path) == ("MODEL_CARD_INVALID", "warning", "docs/README.md")
    return f.message


def test_broken_yaml() -> None:
    assert "invalid YAML" in _invalid(b"---\nlicense: [apache-2.0\nbase_model: x\n---\n")


def test_invalid_utf8() -> None:
    assert "UTF-8" in _invalid(b"---\nlicense: \xff\xfe\n---\n")


def test_not_a_mapping() -> None:
    assert "list" in _invalid(b"---\n- apache-2.0\n- mit\n---\n")
    assert "string" in _invalid(b"---\njust text\n---\n")


def test_impossible_date() -> None:
    assert "month" in _invalid(b"---\ndate: 2024-13-45\n---\n")


def test_python_tags_are_not_constructed() -> None:
    assert "invalid YAML" in _invalid(b"---\nx: !!python/object/apply:os.system ['true']\n---\n")


def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = ("---\n" + "\n".join(lines) + "\n---\n").encode()
    assert "more than" in _invalid(text)


def test_self_reference_and_deep_nesting() -> None:
    assert "deeper" in _invalid(b"---\na: &a [*a]\n---\n")
    assert "nested" in _invalid(b"---\na: " + b"[" * 5000 + b"]" * 5000 + b"\n---\n")


def test_values_are_json_safe() -> None:
    text = b"""---
date: 2024-05-01
score: .nan
big: 123456789012345678901
1: numeric key
blob: !!binary aGVsbG8=
tags: !!set {b, a}
---
"""
    card, findings = parse_model_card(text, "README.md")
    assert findings == []
    assert card == {
        "date": "2024-05-01",
        "score": ".nan",
        "big": "123456789012345678901",
        "1": "numeric key",
        "blob": "aGVsbG8=",
        "tags": ["a", "b"],
    }


def test_key_collision_after_conversion() -> None:
    assert "twice" in _invalid(b"---\n1: a\n'1': b\n---\n")


def test_deterministic() -> None:
    assert parse_model_card(LLAMA_CARD, "README.md") == parse_model_card(LLAMA_CARD, "README.md")
