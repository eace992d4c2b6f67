"""modelsign's JSON outputs against the schemas the package ships (``modelsign/schemas``)."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator


def schema(name: str) -> dict[str, Any]:
    """The shipped schema ``name`` (``error``, ``verification``, …), read as package data."""
    text = (files("modelsign") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(schema(name))


def validate(instance: Any, name: str) -> None:
    """Fail, naming where and why, unless ``instance`` is valid against schema ``name``."""
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"not a valid {name}: " + "; ".join(
        f"at {list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]
    )
