"""Validate signature bundles against the OMS v1.0 JSON schemas (``../shared/conformance``).

``oms_errors`` checks an OMS bundle: the bundle schema (which refers to the
envelope schema), then the decoded DSSE payload against the statement schema
(which refers to the predicate schema). ``attestation_errors`` checks any
other in-toto attestation bundle: the same bundle and envelope schemas, and a
plain in-toto Statement v1 payload. Each returns one message per violation,
naming its JSON path; ``[]`` means valid. The schemas are read from outside the
repository: ``SCHEMAS_PRESENT`` is False (and ``SKIP_REASON`` says why) when
they are absent.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource

from .paths import CONFORMANCE

SCHEMA_DIR = CONFORMANCE / "oms-spec-v1.0" / "schemas" / "v1.0"
SCHEMA_FILES = ("bundle", "envelope", "statement", "predicate")
SCHEMAS_PRESENT = all((SCHEMA_DIR / f"{n}.schema.json").is_file() for n in SCHEMA_FILES)
SKIP_REASON = (
    f"OMS v1.0 schemas not found at {SCHEMA_DIR} "
    "(expected ../shared/conformance/ beside the project checkout)"
)
#: Where tests/conftest.py's autouse fixture keeps the violations a test's signers made.
VIOLATIONS = pytest.StashKey[list[str]]()
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"

#: An in-toto Statement v1 with any predicate (the attestation beside an OMS signature).
INTOTO_STATEMENT_V1: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_type", "subject", "predicateType", "predicate"],
    "properties": {
        "_type": {"const": "https://in-toto.io/Statement/v1"},
        "subject": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "digest"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "digest": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]+$"},
                    },
                },
            },
        },
        "predicateType": {"type": "string", "minLength": 1},
        "predicate": {"type": "object"},
    },
}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_bytes())
    return data


@cache
def _validators() -> tuple[Draft202012Validator, Draft202012Validator, Draft202012Validator]:
    """(bundle, OMS statement, plain in-toto statement) validators, compiled once."""
    schemas = {n: _load(n) for n in SCHEMA_FILES}
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values()
    )
    for schema in (*schemas.values(), INTOTO_STATEMENT_V1):
        Draft202012Validator.check_schema(schema)

    def make(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=registry)

    return make(schemas["bundle"]), make(schemas["statement"]), make(INTOTO_STATEMENT_V1)


def _messages(where: str, errors: Iterable[ValidationError]) -> list[str]:
    """One line per violation, by JSON path (with each failed branch of an ``anyOf``)."""
    out: list[str] = []
    for e in sorted(errors, key=lambda e: e.json_path):
        path = where + e.json_path[1:]
        # An anyOf failure's own message repeats the whole instance: name the branches instead.
        out.append(f"{path}: " + (f"matches no {e.validator} branch" if e.context else e.message))
        out += [f"{path}: ({e.validator} branch) {sub.message}" for sub in e.context or ()]
    return out


def _check(data: bytes, statement: Draft202012Validator) -> list[str]:
    bundle_validator = _validators()[0]
    try:
        bundle = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"$: not JSON: {exc}"]
    errors = _messages("$", bundle_validator.iter_errors(bundle))
    payload = bundle.get("dsseEnvelope", {}).get("payload") if isinstance(bundle, dict) else None
    if not isinstance(payload, str):
        return errors or ["$.dsseEnvelope.payload: missing"]
    try:
        decoded = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        return [*errors, f"$.dsseEnvelope.payload: not base64 JSON: {exc}"]
    return errors + _messages("$.dsseEnvelope.payload<decoded>", statement.iter_errors(decoded))


def oms_errors(bundle: bytes) -> list[str]:
    """Violations of the OMS v1.0 bundle, envelope, statement and predicate schemas."""
    return _check(bundle, _validators()[1])


def attestation_errors(bundle: bytes) -> list[str]:
    """Violations of the bundle and envelope schemas and of in-toto Statement v1."""
    return _check(bundle, _validators()[2])


def predicate_type(bundle: bytes) -> str | None:
    """The ``predicateType`` of a bundle's statement, or None when it cannot be read."""
    try:
        payload = json.loads(bundle)["dsseEnvelope"]["payload"]
        value = json.loads(base64.b64decode(payload))["predicateType"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return value if isinstance(value, str) else None


def bundle_errors(bundle: bytes) -> list[str]:
    """``oms_errors`` for an OMS statement, ``attestation_errors`` for any other."""
    if predicate_type(bundle) == OMS_PREDICATE_TYPE:
        return oms_errors(bundle)
    return attestation_errors(bundle)
