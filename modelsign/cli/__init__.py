"""The ``modelsign`` command line: a thin layer over the library.

Exit codes: 0 success, 1 verification failed, 2 usage or input error, 3 an
unexpected error (a bug), 130 interrupted. Errors are printed as
``error[CODE]: file: message`` — never a traceback — and with ``--json`` also
as one ``modelsign.error`` JSON object on stdout (``_report.py``).

One module per command (``sign.py``, ``verify.py``, …); what several share is
in ``_options.py`` (option groups, the progress bar) and ``_signer.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from .._version import __version__
from ._report import json_in_args, report, wants_json


class _Command(click.Command):
    """A command whose failures are reported while its parsed options are known."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, BrokenPipeError):
            raise  # an exit code, or stdout closed early (| head): click's, as before
        except (Exception, KeyboardInterrupt) as exc:
            ctx.exit(report(exc, as_json=wants_json(ctx)))


class _Group(click.Group):
    """Reports what fails before a command runs (parsing, an unknown command) too."""

    command_class = _Command
    group_class = type  # subgroups are _Group, so their commands are _Command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, False, **extra)
        try:
            code = super().main(argv, prog_name, complete_var, False, **extra)
        except (Exception, KeyboardInterrupt) as exc:
            # No command has parsed its options: the arguments say whether --json was given.
            code = report(exc, as_json=json_in_args(argv))
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelsign")
def cli() -> None:
    """Model weights as a signed supply-chain artifact.

    Write a manifest of a model package (file and tensor digests, quantization,
    licence, provenance), inspect it, sign it and verify it.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="modelsign")


# Register the commands on the group (they import it from this module).
from . import attest as _attest  # noqa: E402,F401
from . import diff as _diff  # noqa: E402,F401
from . import inspect as _inspect  # noqa: E402,F401
from . import inventory as _inventory  # noqa: E402,F401
from . import keygen as _keygen  # noqa: E402,F401
from . import manifest as _manifest  # noqa: E402,F401
from . import policy as _policy  # noqa: E402,F401
from . import sbom as _sbom  # noqa: E402,F401
from . import sign as _sign  # noqa: E402,F401
from . import verify as _verify  # noqa: E402,F401
from . import watch as _watch  # noqa: E402,F401
