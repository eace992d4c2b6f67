"""The JSON Schemas in ``modelsign/schemas``: generated from the models, shipped, valid.

``tools/gen_schemas.py`` writes them; a shipped file that differs from what it makes now
fails here, so a model change cannot leave its schema behind.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from modelsign.errors import ModelsignError, VerificationError
from modelsign.issues import Issue
from modelsign.watch import Event
from modelsign.watch.events import make_event
from tests.helpers.json_output import schema, validate
from tests.helpers.paths import ROOT
from tools import gen_schemas

NAMES = [
    "error",
    "verification",
    "diff",
    "manifest",
    "inventory",
    "watch-event",
    "signing",
    "keygen",
    "attestation",
    "policy-check",
    "policy-explanation",
]


def test_the_shipped_schemas_are_the_generated_ones() -> None:
    assert gen_schemas.stale() == [], "out of date: run python tools/gen_schemas.py"
    assert sorted(gen_schemas.generate()) == sorted(f"{n}.schema.json" for n in NAMES)


def test_the_check_names_a_changed_a_missing_and_an_extra_file(tmp_path: Path) -> None:
    for name, text in gen_schemas.generate().items():
        (tmp_path / name).write_text(gen_schemas.render(text), encoding="utf-8")
    assert gen_schemas.stale(tmp_path) == []
    (tmp_path / "diff.schema.json").write_text("{}")
    (tmp_path / "error.schema.json").unlink()
    (tmp_path / "old.schema.json").write_text("{}")
    assert gen_schemas.stale(tmp_path) == [
        "old.schema.json",
        "error.schema.json",
        "diff.schema.json",
    ]


@pytest.mark.parametrize("name", NAMES)
def test_each_is_a_draft_2020_12_schema_shipped_as_package_data(name: str) -> None:
    loaded = schema(name)  # importlib.resources: where an installed package has it
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(loaded)
    shipped = {p.name for p in (files("modelsign") / "schemas").iterdir()}
    assert f"{name}.schema.json" in shipped
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '[tool.setuptools.package-data]\nmodelsign = ["schemas/*.json"]' in pyproject


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_resolves_and_no_object_is_left_open(name: str) -> None:
    """A dangling ``$ref`` fails only the instances that reach it; an open object checks nothing."""
    loaded = schema(name)
    defs = loaded.get("$defs", {})
    for ref in _refs(loaded):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in defs, ref
    for key, d in defs.items():
        if d.get("type") == "object" and "properties" not in d:
            assert "additionalProperties" not in d or d["additionalProperties"] is not True, key


def test_the_error_schema_is_to_json() -> None:
    error = VerificationError(
        "2 problems",
        findings=[
            Issue(code="TENSOR_MODIFIED", message="m", file="w", tensor="t", expected="a"),
            Issue(code="LEGACY_SIGNATURE", severity="warning", message="re-sign"),
        ],
        path="model",
    )
    validate(error.to_json(), "error")
    assert list(schema("error")["properties"]) == list(error.to_json())
    plain = ModelsignError("no", code="NOT_FOUND").to_json()
    validate(plain, "error")
    for broken in ({**plain, "code": "NOT_A_CODE"}, {**plain, "extra": 1}, {**plain, "kind": "x"}):
        with pytest.raises(AssertionError):
            validate(broken, "error")
    del plain["problems"]
    with pytest.raises(AssertionError):
        validate(plain, "error")


def test_the_watch_event_schema_is_the_typed_event() -> None:
    assert list(schema("watch-event")["properties"]) == list(Event.__annotations__)
    issue = Issue(code="TENSOR_MODIFIED", message="m", file="w", tensor="t", expected="a")
    event = make_event("tampered", "m", verdict="failed", problems=[issue], failed_rules=["x"])
    validate(json.loads(json.dumps(event)), "watch-event")
    signed = {**event, "signer": {"kind": "key", "key_hint": "abc"}}
    with pytest.raises(AssertionError):  # a signer as written has every key
        validate(signed, "watch-event")
    with pytest.raises(AssertionError):
        validate({**event, "event": "exploded"}, "watch-event")
