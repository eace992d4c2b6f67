"""``modelsign policy check`` and ``policy explain``."""

from __future__ import annotations

import click

from ..policy import Policy, explain
from . import cli


@cli.group("policy")
def policy_group() -> None:
    """Check and explain policy files."""


@policy_group.command("check")
@click.argument("policy_file", type=click.Path(dir_okay=False))
def policy_check_cmd(policy_file: str) -> None:
    """Validate POLICY_FILE (exit 0 valid, 2 invalid, naming the field and line)."""
    policy = Policy.load(policy_file)
    rules = ", ".join(policy.rules()) or "no rules"
    click.echo(f"{policy_file}: valid policy (version {policy.version}; {rules})")


@policy_group.command("explain")
@click.argument("policy_file", type=click.Path(dir_okay=False))
def policy_explain_cmd(policy_file: str) -> None:
    """Say what POLICY_FILE requires, in plain words."""
    click.echo(explain(Policy.load(policy_file)))
