"""Regenerate the JSON Schemas (draft 2020-12) of modelsign's JSON outputs: ``modelsign/schemas/``.

    python tools/gen_schemas.py          # write them
    python tools/gen_schemas.py --check  # exit 1 when a shipped file differs (a test runs this)

Where an output is a pydantic model, its schema is the model's (``model_json_schema``
in serialization mode); only what is no model is written here, and it takes its parts
from the models and types it is made of:

- ``error.schema.json``: ``ModelsignError.to_json()`` — every ``--json`` failure;
- ``verification.schema.json``: ``VerificationResult`` — ``verify --json``;
- ``diff.schema.json``: ``ModelDiff`` — ``diff --json``;
- ``manifest.schema.json``: ``Manifest`` — ``manifest`` and ``inspect --json``;
- ``inventory.schema.json``: ``Inventory`` — ``inventory --json``;
- ``watch-event.schema.json``: the ``Event`` TypedDict — each line ``watch`` prints;
- ``signing``, ``keygen``, ``attestation``, ``policy-check``, ``policy-explanation``:
  the dicts ``sign``, ``keygen``, ``attest provenance``, ``policy check`` and
  ``policy explain`` print with ``--json`` (checked against the keys their code writes).

They describe output: every key an object is written with is required, and defaults are
left out (they say nothing about what was written, and one holds the version).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, get_args

ROOT: Final = Path(__file__).resolve().parent.parent
if (ROOT / "modelsign" / "__init__.py").is_file():  # this checkout's modelsign, not another
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue  # noqa: E402
from pydantic_core import core_schema  # noqa: E402

from modelsign._internal.findings import Finding  # noqa: E402
from modelsign._internal.manifest import Manifest  # noqa: E402
from modelsign._internal.signature.keys import KEY_TYPES  # noqa: E402
from modelsign._internal.signature.verifiers import SignerInfo  # noqa: E402
from modelsign.cli.attest import ATTESTATION_KIND, attestation_json  # noqa: E402
from modelsign.cli.keygen import KEYGEN_KIND, keygen_json  # noqa: E402
from modelsign.cli.policy import (  # noqa: E402
    POLICY_CHECK_KIND,
    POLICY_EXPLANATION_KIND,
    policy_check_json,
    policy_explanation_json,
)
from modelsign.cli.sign import SIGNING_KIND, signing_json  # noqa: E402
from modelsign.diff import ModelDiff  # noqa: E402
from modelsign.errors import ERROR_KIND, ModelsignError  # noqa: E402
from modelsign.inventory import Inventory  # noqa: E402
from modelsign.issues import Issue  # noqa: E402
from modelsign.policy.specs import RULES, Mode  # noqa: E402
from modelsign.verify import VerificationResult  # noqa: E402
from modelsign.watch import Event, EventName, Verdict  # noqa: E402

SCHEMA_DIR: Final = ROOT / "modelsign" / "schemas"
DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
_NULLABLE_STRING: Final = {"type": ["string", "null"]}


class OutputSchema(GenerateJsonSchema):
    """A model's JSON as written: every field it writes required, no defaults."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        # A field left out while unset (``exclude_if``) is not always written.
        return not (field.get("serialization_exclude") or field.get("serialization_exclude_if"))

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s output schema, its ``$defs`` included."""
    schema = model.model_json_schema(mode="serialization", schema_generator=OutputSchema)
    if "Finding" in schema.get("$defs", {}):
        finding, defs = finding_schema()
        schema["$defs"].update(defs)
        schema["$defs"]["Finding"] = finding
    return schema


def finding_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """A finding as a manifest records it (its file as ``path``: its own serializer), and
    the ``$defs`` it refers to."""
    read = Finding.model_json_schema(mode="validation", schema_generator=OutputSchema)
    fields = read["properties"]
    return {
        "additionalProperties": False,
        "description": read["description"],
        "properties": {
            "code": fields["code"],
            "severity": fields["severity"],
            "message": fields["message"],
            "path": fields["file"],
            "tensor": fields["tensor"],
        },
        "required": ["code", "severity", "message", "path", "tensor"],
        "title": "Finding",
        "type": "object",
    }, read.get("$defs", {})


def with_defs(schema: dict[str, Any], *models: type[BaseModel]) -> dict[str, Any]:
    """``schema`` with ``models`` (and what they refer to) in its ``$defs``, by class name."""
    defs: dict[str, Any] = {}
    for model in models:
        one = model_schema(model)
        defs.update(one.pop("$defs", {}))
        defs[model.__name__] = one
    return {**schema, "$defs": dict(sorted(defs.items()))}


def error_schema() -> dict[str, Any]:
    """``ModelsignError.to_json()``, schema ``modelsign.error`` version 1."""
    keys = list(ModelsignError("x").to_json())
    properties: dict[str, Any] = {
        "kind": {"const": ERROR_KIND},
        "version": {"const": 1},
        "code": {"$ref": "#/$defs/Code"},
        "message": {"type": "string"},
        "file": _NULLABLE_STRING,
        "tensor": _NULLABLE_STRING,
        "expected": _NULLABLE_STRING,
        "actual": _NULLABLE_STRING,
        "problems": {"type": "array", "items": {"$ref": "#/$defs/Issue"}},
    }
    assert list(properties) == keys, f"to_json() writes {keys}: update error_schema()"
    description = (
        "A failure of any modelsign command run with --json: its stable code, the file and "
        "tensor it concerns, expected and actual values, and every problem a verification found."
    )
    return with_defs(closed_object(ERROR_KIND, description, properties), Issue)


def closed_object(title: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly ``properties``, every one of them required."""
    return {
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def result_schema(
    kind: str, description: str, properties: dict[str, Any], writer: Callable[..., Any]
) -> dict[str, Any]:
    """A result object that is no model: ``writer``'s dict, every key required.

    ``kind`` (the argument) and ``version`` (1) lead every such object: added here.
    """
    properties = {"kind": {"const": kind}, "version": {"const": 1}, **properties}
    keys = _keys_written(writer)
    assert sorted(properties) == keys, f"{writer.__name__}() writes {keys}: update its schema"
    return closed_object(kind, description, properties)


def _keys_written(writer: Callable[..., Any]) -> list[str]:
    """The keys of the dict literal ``writer`` returns (one ``"key": value`` a line)."""
    source = inspect.getsource(writer)
    return sorted(re.findall(r'^\s+"(\w+)": ', source, flags=re.MULTILINE))


def signing_schema() -> dict[str, Any]:
    """What ``sign --json`` prints (``signing_json``): ``modelsign.signing`` version 1."""
    count = {"type": "integer", "minimum": 0}
    properties: dict[str, Any] = {
        "model": {"type": "string"},
        "signature": {"type": "string"},
        "claims": {"type": "string"},
        "manifest_digest": {"type": "string"},
        "weights_digest": _NULLABLE_STRING,
        "files": count,
        "tensors": count,
        "reused": count,
        "read": count,
    }
    description = (
        "What sign --json prints: where the signature and the attestation went, "
        "the manifest's digests, and how many files were reused from an earlier signature "
        "and how many read."
    )
    return result_schema(SIGNING_KIND, description, properties, signing_json)


def keygen_schema() -> dict[str, Any]:
    """What ``keygen --json`` prints (``keygen_json``): ``modelsign.keygen`` version 1."""
    properties: dict[str, Any] = {
        "private_key": {
            "type": "string",
            "description": "PREFIX.key (PKCS#8 PEM), or the URI of the key made on a token.",
        },
        "public_key": {"type": "string", "description": "PREFIX.pub (SPKI PEM)."},
        "key_hint": {"type": "string", "description": "SHA-256 hex of the public key's PEM."},
        "algorithm": {"enum": list(KEY_TYPES)},
        "encrypted": {"type": "boolean"},
        "held": {
            "type": "boolean",
            "description": "The private key is held in a PKCS#11 token (keygen --pkcs11).",
        },
    }
    description = (
        "What keygen --json prints: the key files written, the key's hint (as OMS "
        "signatures record it), its type and whether the private key is encrypted."
    )
    return result_schema(KEYGEN_KIND, description, properties, keygen_json)


def attestation_schema() -> dict[str, Any]:
    """What ``attest provenance --json`` prints: ``modelsign.attestation`` version 1."""
    properties: dict[str, Any] = {
        "attestation": {"type": "string", "description": "Where the statement was written."},
        "model": {"type": "string"},
        "builder": {"type": "string", "description": "The SLSA builder id."},
        "manifest_digest": {"type": "string"},
    }
    description = (
        "What attest provenance --json prints: where the signed SLSA provenance "
        "statement went, the builder it names and the model's manifest digest."
    )
    return result_schema(ATTESTATION_KIND, description, properties, attestation_json)


def policy_check_schema() -> dict[str, Any]:
    """What ``policy check --json`` prints for a valid policy."""
    properties: dict[str, Any] = {
        "policy": {"type": "string"},
        "valid": {"const": True},
        "policy_version": {"const": 1},
        "rules": {"type": "array", "items": {"enum": list(RULES)}},
    }
    description = (
        "What policy check --json prints for a valid policy: the rules it gives. "
        "An invalid one is a modelsign.error (POLICY_INVALID with each problem, or the "
        "policy file's own error)."
    )
    return result_schema(POLICY_CHECK_KIND, description, properties, policy_check_json)


def policy_explanation_schema() -> dict[str, Any]:
    """What ``policy explain --json`` prints."""
    mode = {"enum": list(get_args(Mode))}
    rule = {
        "type": "object",
        "properties": {"rule": {"enum": list(RULES)}, "mode": mode},
        "required": ["rule", "mode"],
        "additionalProperties": False,
    }
    properties: dict[str, Any] = {
        "policy": {"type": "string"},
        "description": _NULLABLE_STRING,
        "mode": mode,
        "rules": {"type": "array", "items": rule},
        "text": {"type": "string", "description": "What policy explain prints without --json."},
    }
    description = (
        "What policy explain --json prints: the policy's default mode, each rule it "
        "gives with its mode, and the explanation in plain words."
    )
    return result_schema(POLICY_EXPLANATION_KIND, description, properties, policy_explanation_json)


def watch_event_schema() -> dict[str, Any]:
    """One ``Event``: a line of ``modelsign watch``."""
    properties: dict[str, Any] = {
        "event": {"enum": list(get_args(EventName))},
        "model": {"type": "string", "description": "The path as given."},
        "time": {"type": "string", "description": "ISO 8601 UTC, milliseconds."},
        "verdict": {"enum": [*get_args(Verdict), None]},
        "problems": {"type": "array", "items": {"$ref": "#/$defs/Issue"}},
        "failed_rules": {"type": "array", "items": {"type": "string"}},
        "signer": {"anyOf": [{"$ref": "#/$defs/SignerInfo"}, {"type": "null"}]},
        "paths": {"type": "array", "items": {"type": "string"}},
    }
    keys = list(Event.__annotations__)
    assert list(properties) == keys, f"Event has {keys}: update watch_event_schema()"
    description = "One line of modelsign watch: a transition of one model."
    return with_defs(
        closed_object("modelsign watch event", description, properties), Issue, SignerInfo
    )


def titled(model: type[BaseModel], title: str) -> dict[str, Any]:
    return {**model_schema(model), "title": title}


def generate() -> dict[str, dict[str, Any]]:
    """Every schema by its file name."""
    schemas = {
        "error.schema.json": error_schema(),
        "verification.schema.json": titled(VerificationResult, "modelsign.verification"),
        "diff.schema.json": titled(ModelDiff, "modelsign.diff"),
        "manifest.schema.json": titled(Manifest, "modelsign.manifest"),
        "inventory.schema.json": titled(Inventory, "modelsign.inventory"),
        "watch-event.schema.json": watch_event_schema(),
        "signing.schema.json": signing_schema(),
        "keygen.schema.json": keygen_schema(),
        "attestation.schema.json": attestation_schema(),
        "policy-check.schema.json": policy_check_schema(),
        "policy-explanation.schema.json": policy_explanation_schema(),
    }
    return {name: {"$schema": DRAFT, **schema} for name, schema in schemas.items()}


def render(schema: dict[str, Any]) -> str:
    """A schema file's text."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Files in ``directory`` that differ from what :func:`generate` makes, or should not be."""
    wanted = {name: render(schema) for name, schema in generate().items()}
    present = {p.name for p in directory.glob("*.schema.json")}
    out = sorted(present - set(wanted))
    for name, text in wanted.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    if args.check:
        changed = stale()
        for name in changed:
            print(f"{SCHEMA_DIR / name}: out of date; run python tools/gen_schemas.py")
        return 1 if changed else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    wanted = generate()
    for path in SCHEMA_DIR.glob("*.schema.json"):
        if path.name not in wanted:
            path.unlink()
    for name, schema in wanted.items():
        (SCHEMA_DIR / name).write_text(render(schema), encoding="utf-8")
    print(f"wrote {len(wanted)} schemas in {SCHEMA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
