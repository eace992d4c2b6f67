"""How a command ends on a failure: a diagnostic on stderr and, with ``--json``, one JSON line.

Every failure is first made a :class:`~modelsign.errors.ModelsignError`:

- a ``ModelsignError`` stays what it is (its code, its exit code);
- a click usage error (an unknown option, a missing argument, a bad value) is ``USAGE``,
  exit code 2;
- Ctrl-C (``KeyboardInterrupt``; click's ``Abort`` at a prompt) is ``INTERRUPTED``, 130;
- anything else is ``INTERNAL_ERROR``, exit code 3, naming the exception's type: a bug.
  Its traceback goes to stderr only with ``MODELSIGN_DEBUG=1``, never to stdout.

stderr carries what it always did, ``--json`` or not: ``error[CODE]: …``, click's usage
text, ``interrupted``. With ``--json`` stdout carries the error's
:meth:`~modelsign.errors.ModelsignError.to_json` as one line — the one JSON object the
command prints, or the last line of a command whose output is JSON lines (``watch``).

Whether ``--json`` was given is read from the parsed command (its ``as_json``
parameter, or :func:`json_option`); a usage error can come before the parameters are
parsed, and then the arguments decide (:func:`json_in_args`).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import click

from ..codes import Code
from ..errors import InputError, ModelsignError

#: With this set to 1, an unexpected exception's traceback is printed on stderr.
DEBUG_ENV: Final = "MODELSIGN_DEBUG"
_JSON: Final = "modelsign.json"  # ctx.meta: json_option was given

F = TypeVar("F", bound=Callable[..., Any])


def json_option(help: str) -> Callable[[F], F]:
    """``--json`` for a command whose results are JSON already: it asks for JSON errors too.

    The command does not receive it as a parameter.
    """

    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.meta[_JSON] = True
        return value

    return click.option("--json", is_flag=True, expose_value=False, callback=remember, help=help)


def wants_json(ctx: click.Context) -> bool:
    """Whether the parsed command was asked for JSON (``--json``)."""
    return ctx.params.get("as_json") is True or ctx.meta.get(_JSON) is True


def json_in_args(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the arguments (before a ``--``): for failures in parsing."""
    options = args[: list(args).index("--")] if "--" in args else args
    return "--json" in options


def as_error(exc: BaseException) -> ModelsignError:
    """Any failure as a :class:`ModelsignError`, its ``exit_code`` its code's."""
    if isinstance(exc, ModelsignError):
        return exc
    error: ModelsignError
    if isinstance(exc, click.UsageError):
        error = InputError(exc.format_message(), code=Code.USAGE)
    elif isinstance(exc, click.ClickException):  # click's other errors: a file it opened
        error = InputError(exc.format_message(), code=Code.INPUT_ERROR)
    elif isinstance(exc, (KeyboardInterrupt, click.Abort)):
        error = ModelsignError("interrupted", code=Code.INTERRUPTED)
    else:
        detail = str(exc)
        error = ModelsignError(
            f"unexpected {type(exc).__name__}{': ' if detail else ''}{detail} (a bug in "
            f"modelsign: please report it; {DEBUG_ENV}=1 prints the traceback on stderr)",
            code=Code.INTERNAL_ERROR,
        )
    error.exit_code = error.code.exit_code
    return error


def report(exc: BaseException, *, as_json: bool) -> int:
    """Report ``exc`` (stderr; and stdout as JSON when asked); return the exit code."""
    error = as_error(exc)
    if isinstance(exc, click.ClickException):
        exc.show()  # click's usage text and "Error: …", as without --json
    elif error.code == Code.INTERRUPTED:
        click.echo("interrupted", err=True)
    else:
        click.echo(error.diagnostics(), err=True)
        if error.code == Code.INTERNAL_ERROR and os.environ.get(DEBUG_ENV) == "1":
            click.echo("".join(traceback.format_exception(exc)).rstrip("\n"), err=True)
    if as_json:
        click.echo(json.dumps(error.to_json()))
    return error.exit_code
