"""The ``modelsign`` command line: a thin layer over the library.

Exit codes: 0 success, 1 verification failed, 2 usage or input error. Errors
are printed as ``error[CODE]: file: message`` — never a traceback.

One module per command (``sign.py``, ``verify.py``, …); what several share is
in ``_options.py`` (option groups, the progress bar) and ``_signer.py``.
"""

from __future__ import annotations

from typing import Any

import click

from .._version import __version__
from ..errors import ModelsignError


class _Group(click.Group):
    """Turns library errors into a one-line diagnostic and exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelsignError as exc:
            click.echo(exc.diagnostics(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


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
