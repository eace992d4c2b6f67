"""The policy document: a versioned :class:`Policy`, read from YAML or JSON.

A policy file (versioned, unknown fields refused) lists rules: who may sign
(``signers``), which licences, provenance, formats and quantizations are
acceptable, how much of the model the signature must cover, and how old a
signature may be. Errors name the field and its line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from ..codes import Code
from ..errors import InputError
from .loading import field_error, line_of, parse_yaml, read_policy_text
from .specs import (
    RULES,
    CoverageRule,
    FormatsRule,
    FreshnessRule,
    IdentityRule,
    LicencesRule,
    Mode,
    ProvenanceRule,
    QuantizationRule,
    RuleName,
    SignersRule,
    StrictModel,
)


class Policy(StrictModel):
    """A versioned policy; rules that are absent are not evaluated."""

    version: Literal[1]
    description: str | None = None
    mode: Mode = "enforce"
    signers: SignersRule | None = None
    identity: IdentityRule | None = None
    licences: LicencesRule | None = None
    provenance: ProvenanceRule | None = None
    formats: FormatsRule | None = None
    quantization: QuantizationRule | None = None
    coverage: CoverageRule | None = None
    freshness: FreshnessRule | None = None
    base_dir: str = Field(default=".", exclude=True)  # where relative paths resolve

    @model_validator(mode="before")
    @classmethod
    def _empty_rules_take_defaults(cls, data: Any) -> Any:
        # `formats:` with nothing under it means "this rule, with its defaults",
        # not "no rule" (which would silently drop the pickle ban).
        if isinstance(data, dict):
            return {k: ({} if k in RULES and v is None else v) for k, v in data.items()}
        return data

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and validate a policy file; errors name the field and the line."""
        return load_policy(path)

    def mode_of(self, rule: RuleName) -> Mode:
        if rule == "signers" and self.signers is None:
            return "enforce"  # trust given by the caller (--key, a verifier) is never optional
        spec = getattr(self, rule)
        return (getattr(spec, "mode", None) if spec is not None else None) or self.mode

    def rules(self) -> list[RuleName]:
        return [r for r in RULES if getattr(self, r) is not None]

    def path_of(self, p: str) -> str:
        """Where a file the policy names is: relative paths are relative to the policy file."""
        return p if os.path.isabs(p) else os.path.join(self.base_dir, p)


#: The 1-based line of a field of a policy file, by its path (``("signers", "keys", 0)``).
LineOf = Callable[[Sequence[int | str]], "int | None"]


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate a policy file (see :func:`parse_policy`)."""
    return read_policy(path)[0]


def read_policy(path: str | os.PathLike[str]) -> tuple[Policy, LineOf]:
    """Read and validate a policy file; also where each field is, for messages about it."""
    p = os.fspath(path)
    policy, root = _parse(read_policy_text(p), p)
    return policy, lambda loc: line_of(root, loc)


def parse_policy(text: str, where: str) -> Policy:
    """Validate policy text (YAML, of which JSON is a subset)."""
    return _parse(text, where)[0]


def _parse(text: str, where: str) -> tuple[Policy, yaml.Node | None]:
    root, data = parse_yaml(text, where)
    if not isinstance(data, dict):
        raise InputError("a policy is a mapping of rules", code=Code.POLICY_INVALID, path=where)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise field_error(root, exc, where) from exc
    return policy.model_copy(update={"base_dir": os.path.dirname(os.path.abspath(where))}), root
