"""The strict OMS v1.0 statement reader: every schema rule is refused with the field named."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import rfc8785

from modelsign._internal.signature.statement import (
    Resource,
    parse_statement,
    root_digest,
)
from modelsign.errors import VerificationError

Statement = dict[str, Any]


def _statement(names: list[str], **serialization: Any) -> Statement:
    resources = [
        {"name": n, "algorithm": "sha256", "digest": f"{i:02x}" * 32} for i, n in enumerate(names)
    ]
    ser = {"method": "files", "hash_type": "sha256", "allow_symlinks": False, **serialization}
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": _root(resources)}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"resources": resources, "serialization": ser},
    }


def _root(resources: list[dict[str, str]]) -> str:
    return root_digest([Resource(r["name"], "sha256", r["digest"]) for r in resources])


def _refix(st: Statement) -> Statement:
    """Recompute the subject digest after an edit (so only the edited rule can fail)."""
    st["subject"][0]["digest"]["sha256"] = _root(st["predicate"]["resources"])
    return st


BASE = _statement(["a", "b/c"], ignore_paths=[".git"])


def test_a_valid_statement_reads() -> None:
    st = parse_statement(rfc8785.dumps(BASE))
    assert [r.name for r in st.resources] == ["a", "b/c"] and st.ignore_paths == (".git",)


def _set(path: str, value: object) -> Callable[[Statement], None]:
    def edit(st: Statement) -> None:
        *parents, last = path.split(".")
        node: Any = st
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value

    return edit


def _delete(path: str) -> Callable[[Statement], None]:
    def edit(st: Statement) -> None:
        *parents, last = path.split(".")
        node: Any = st
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        del node[last]

    return edit


@pytest.mark.parametrize(
    ("edit", "code", "field"),
    [
        (_set("predicate.extra", 1), "STATEMENT_SCHEMA", "extra"),
        (_set("predicate.serialization.extra", 1), "STATEMENT_SCHEMA", "extra"),
        (_set("extra", 1), "STATEMENT_SCHEMA", "extra"),
        (_delete("predicate.serialization.allow_symlinks"), "STATEMENT_INVALID", "allow_symlinks"),
        (_set("predicate.serialization.allow_symlinks", "false"), "STATEMENT_INVALID", "allow_"),
        (_set("predicate.serialization.shard_size", 1000), "STATEMENT_INVALID", "shard_size"),
        (_set("subject.0.name", ""), "STATEMENT_INVALID", "subject[0].name"),
        (_delete("subject.0.name"), "STATEMENT_INVALID", "subject[0].name"),
        (_set("predicate.resources", []), "STATEMENT_INVALID", "resources"),
        (_set("predicate.serialization.hash_type", "md5"), "UNKNOWN_ALGORITHM", "md5"),
        (_set("predicate.serialization.hash_type", "blake3"), "ALGORITHM_MISMATCH", "hash_type"),
        (_set("predicate.resources.0.algorithm", "md5"), "UNKNOWN_ALGORITHM", "md5"),
        (_set("predicate.resources.0.digest", "AB" * 32), "STATEMENT_INVALID", "lower-case"),
        (_set("subject.0.digest.sha256", "AB" * 32), "STATEMENT_INVALID", "lower-case"),
        (_set("predicate.serialization.ignore_paths", ["*.bin"]), "STATEMENT_INVALID", "glob"),
        (_set("predicate.serialization.ignore_paths", [""]), "STATEMENT_INVALID", "ignore_"),
        (_set("predicate.serialization.method", "tree"), "UNSUPPORTED_METHOD", "tree"),
        (_set("predicate.resources.0.name", "../x"), "UNSAFE_NAME", "../x"),
    ],
)
def test_schema_violations_are_refused_naming_the_field(
    edit: Callable[[Statement], None], code: str, field: str
) -> None:
    st = copy.deepcopy(BASE)
    edit(st)
    with pytest.raises(VerificationError) as e:
        parse_statement(rfc8785.dumps(st))
    assert e.value.code == code and field in e.value.message


def test_resource_order_code_point_or_per_component() -> None:
    # The spec's order, and model_signing's per-component order, are both read.
    parse_statement(rfc8785.dumps(_statement(["A", "a-b", "a.b", "a/b"])))
    parse_statement(rfc8785.dumps(_statement(["A", "a/b", "a-b", "a.b"])))
    with pytest.raises(VerificationError) as e:
        parse_statement(rfc8785.dumps(_statement(["b", "a"])))
    assert e.value.code == "RESOURCE_ORDER"


def test_unrecognised_resource_descriptor_fields_are_ignored() -> None:
    st = copy.deepcopy(BASE)
    st["predicate"]["resources"][1]["media_type"] = "application/octet-stream"
    st["predicate"]["resources"][1]["annotations"] = {"org.example": {"any": "thing"}}
    assert parse_statement(rfc8785.dumps(st)).attestation_type is None


def test_marker_must_be_a_string() -> None:
    st = copy.deepcopy(BASE)
    st["predicate"]["resources"][0]["annotations"] = {"dev.modelsign.attestation": 7}
    with pytest.raises(VerificationError) as e:
        parse_statement(rfc8785.dumps(st))
    assert e.value.code == "STATEMENT_INVALID"


def test_missing_ignore_paths_means_the_default_exclusions() -> None:
    st = parse_statement(rfc8785.dumps(_statement(["a"])))
    assert set(st.ignore_paths) == {".git", ".gitattributes", ".github", ".gitignore"}


def test_subject_digest_must_match() -> None:
    st = copy.deepcopy(BASE)
    st["predicate"]["resources"][0]["digest"] = "ff" * 32
    with pytest.raises(VerificationError) as e:
        parse_statement(rfc8785.dumps(st))
    assert e.value.code == "SUBJECT_DIGEST_MISMATCH"
    parse_statement(rfc8785.dumps(_refix(st)))


def test_key_order_and_whitespace_do_not_matter() -> None:
    """model_signing's payload bytes vary run to run; only the content counts."""
    raw = json.dumps(BASE, indent=3).encode()
    assert parse_statement(raw).resources == parse_statement(rfc8785.dumps(BASE)).resources
