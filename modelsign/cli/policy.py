"""``modelsign policy check`` and ``policy explain``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import click

from .._internal._text import plural
from .._trust import TrustFileError, check_trust_files
from ..codes import Code
from ..errors import ModelsignError
from ..issues import Issue
from ..policy import Policy, explain
from ..policy.loading import field_text
from ..policy.schema import LineOf, read_policy
from . import cli

POLICY_CHECK_KIND: Final = "modelsign.policy-check"
POLICY_EXPLANATION_KIND: Final = "modelsign.policy-explanation"


class PolicyProblems(ModelsignError):
    """A policy whose trust files cannot be used: each problem an issue (``--json``)."""

    code = Code.POLICY_INVALID

    def __init__(self, message: str, *, path: str, problems: Sequence[Issue]) -> None:
        super().__init__(message, path=path)
        self.problems = list(problems)

    def _problems(self) -> Sequence[Issue]:
        return self.problems


@cli.group("policy")
def policy_group() -> None:
    """Check and explain policy files."""


@policy_group.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as JSON (schema modelsign.policy-check) on stdout; "
    "an invalid policy is a modelsign.error naming each problem.",
)
@click.pass_context
def policy_check_cmd(ctx: click.Context, policy_file: str, as_json: bool) -> None:
    """Validate POLICY_FILE and every file it names (exit 0 valid, 2 invalid).

    The policy's fields, and every key, certificate root, Sigstore trusted root
    and TSA chain it names, read as `verify` reads them (paths relative to the
    policy file). Each problem is named with its field, its line and its code.
    """
    policy, line_of = read_policy(policy_file)
    failed = check_trust_files(policy)
    for problem in failed:
        click.echo(_problem_text(policy_file, problem, line_of), err=True)
    if failed:
        problems = plural(len(failed), "problem")
        if as_json:
            raise PolicyProblems(
                f"not usable: {problems} with the trust it names",
                path=policy_file,
                problems=[_problem_issue(p, line_of) for p in failed],
            )
        click.echo(f"{policy_file}: not usable: {problems} with the trust it names", err=True)
        ctx.exit(2)
    rules = ", ".join(policy.rules()) or "no rules"
    text = f"{policy_file}: valid policy (version {policy.version}; {rules})"
    if as_json:
        click.echo(text, err=True)
        click.echo(json.dumps(policy_check_json(policy_file, policy), indent=2, sort_keys=True))
    else:
        click.echo(text)


def policy_check_json(policy_file: str, policy: Policy) -> dict[str, Any]:
    """What ``policy check --json`` prints for a valid policy."""
    return {
        "kind": POLICY_CHECK_KIND,
        "version": 1,
        "policy": policy_file,
        "valid": True,
        "policy_version": policy.version,
        "rules": list(policy.rules()),
    }


def _field_text(problem: TrustFileError, line_of: LineOf) -> str:
    """``field signers.keys.1.file (line 6)``."""
    return field_text(problem.field, line_of(problem.field))


def _problem_text(policy_file: str, problem: TrustFileError, line_of: LineOf) -> str:
    """``error[KEY_NOT_FOUND]: policy.yaml: field signers.keys.1.file (line 6): …``."""
    exc = problem.error
    about = f"{exc.path}: " if exc.path is not None else ""
    where = _field_text(problem, line_of)
    return f"error[{exc.code}]: {policy_file}: {where}: {about}{exc.message}"


def _problem_issue(problem: TrustFileError, line_of: LineOf) -> Issue:
    """The problem as an issue: the field and line in its message, its file the one named."""
    issue = problem.error.to_issue()
    message = f"{_field_text(problem, line_of)}: {issue.message}"
    return issue.model_copy(update={"message": message})


@policy_group.command("explain")
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the explanation as JSON (schema modelsign.policy-explanation) on stdout.",
)
def policy_explain_cmd(policy_file: str, as_json: bool) -> None:
    """Say what POLICY_FILE requires, in plain words."""
    policy = Policy.load(policy_file)
    if as_json:
        out = policy_explanation_json(policy_file, policy)
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        click.echo(explain(policy))


def policy_explanation_json(policy_file: str, policy: Policy) -> dict[str, Any]:
    """What ``policy explain --json`` prints: each rule and its mode, and the text."""
    return {
        "kind": POLICY_EXPLANATION_KIND,
        "version": 1,
        "policy": policy_file,
        "description": policy.description,
        "mode": policy.mode,
        "rules": [{"rule": r, "mode": policy.mode_of(r)} for r in policy.rules()],
        "text": explain(policy),
    }
