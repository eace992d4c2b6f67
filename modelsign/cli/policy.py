"""``modelsign policy check`` and ``policy explain``."""

from __future__ import annotations

import click

from .._internal._text import plural
from .._trust import TrustFileError, check_trust_files
from ..policy import Policy, explain
from ..policy.schema import LineOf, read_policy
from . import cli


@cli.group("policy")
def policy_group() -> None:
    """Check and explain policy files."""


@policy_group.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False))
@click.pass_context
def policy_check_cmd(ctx: click.Context, policy_file: str) -> None:
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
        click.echo(f"{policy_file}: not usable: {problems} with the trust it names", err=True)
        ctx.exit(2)
    rules = ", ".join(policy.rules()) or "no rules"
    click.echo(f"{policy_file}: valid policy (version {policy.version}; {rules})")


def _problem_text(policy_file: str, problem: TrustFileError, line_of: LineOf) -> str:
    """``error[KEY_NOT_FOUND]: policy.yaml: field signers.keys.1.file (line 6): …``."""
    exc = problem.error
    name = ".".join(str(part) for part in problem.field)
    line = line_of(problem.field)
    where = f" (line {line})" if line is not None else ""
    about = f"{exc.path}: " if exc.path is not None else ""
    return f"error[{exc.code}]: {policy_file}: field {name}{where}: {about}{exc.message}"


@policy_group.command("explain")
@click.argument("policy_file", type=click.Path(dir_okay=False))
def policy_explain_cmd(policy_file: str) -> None:
    """Say what POLICY_FILE requires, in plain words."""
    click.echo(explain(Policy.load(policy_file)))
