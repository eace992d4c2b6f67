"""The policy document: a versioned :class:`Policy`, read from YAML or JSON.

A policy file (versioned, unknown fields refused) lists rules: who may sign
(``signers``), which licences, provenance, formats and quantizations are
acceptable, how much of the model the signature must cover, and how old a
signature may be. Errors name the field and its line.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from .._atomic import open_regular
from ..errors import InputError
from .loading import MAX_POLICY_BYTES, _line_of, _ShapeError, _UniqueKeyLoader
from .signers import PolicyVerifier
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
    _Strict,
)


class Policy(_Strict):
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

    def _path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.base_dir, p)

    def verifier(self) -> PolicyVerifier:
        """A verifier that accepts a signature from any signer the policy lists."""
        if self.signers is None:
            raise InputError(
                "the policy lists no signers: give --key, --cert-chain or --identity",
                code="USAGE",
            )
        return PolicyVerifier(self)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    p = os.fspath(path)
    try:
        with open_regular(p, "r", encoding="utf-8") as fh:
            text = fh.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputError("no such policy file", code="POLICY_NOT_FOUND", path=p) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the policy: {exc}", code="POLICY_INVALID", path=p) from exc
    return parse_policy(text, p)


def parse_policy(text: str, where: str) -> Policy:
    """Validate policy text (YAML, of which JSON is a subset)."""
    if len(text) > MAX_POLICY_BYTES:
        raise InputError(
            f"larger than {MAX_POLICY_BYTES} characters: not a policy",
            code="POLICY_INVALID",
            path=where,
        )
    try:
        loader = _UniqueKeyLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before parsing
        raise InputError(f"not valid YAML: {exc}", code="POLICY_INVALID", path=where) from exc
    try:
        # Parsed once: the node tree gives the lines of errors, the data is built from it.
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        what = "not a policy" if isinstance(exc, _ShapeError) else "not valid YAML"
        raise InputError(f"{what}{at}: {problem}", code="POLICY_INVALID", path=where) from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise InputError("a policy is a mapping of rules", code="POLICY_INVALID", path=where)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))]
        field_name = ".".join(str(x) for x in loc) or "(top level)"
        line = _line_of(root, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        raise InputError(
            f"field {field_name}{f' (line {line})' if line else ''}: {msg}",
            code="POLICY_INVALID",
            path=where,
        ) from exc
    return policy.model_copy(update={"base_dir": os.path.dirname(os.path.abspath(where))})
