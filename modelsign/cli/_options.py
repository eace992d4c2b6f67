"""What several commands share: option groups, the progress bar, refusing to overwrite."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ..codes import Code
from ..errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator; they appear in ``--help`` in the order given."""

    def apply(func: F) -> F:
        for option in reversed(decorators):
            func = option(func)
        return func

    return apply


#: Options that decide which files are part of the model.
model_options = options(
    click.option(
        "--ignore",
        "ignore",
        multiple=True,
        metavar="PATTERN",
        help="Leave out files matching PATTERN (fnmatch; recorded as ignored). Repeatable.",
    ),
    click.option(
        "--allow-symlinks",
        is_flag=True,
        help="Follow symlinks that stay inside the model (never outside it).",
    ),
)

#: Where the model comes from: --source and --parent.
origin_options = options(
    click.option(
        "--source",
        metavar="REPO@REV",
        help="Source repository and revision, e.g. org/name@<commit>.",
    ),
    click.option(
        "--parent",
        "parents",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="MANIFEST",
        help="Manifest of a model this one derives from (recorded by digest). Repeatable.",
    ),
)


@contextmanager
def progress_bar(
    enabled: bool, label: str, *, counting: bool = False
) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal (stderr), nothing otherwise.

    It counts bytes, with a transfer speed; ``counting`` counts items (N of M).
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amount: tuple[ProgressColumn, ...] = (
        (MofNCompleteColumn(),) if counting else (DownloadColumn(), TransferSpeedColumn())
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        *amount,
        TimeRemainingColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def refuse_existing(output: str | None, force: bool) -> None:
    """Fail before any work when ``output`` exists and may not be replaced.

    ``write_atomic`` checks again at the end, against a file created meanwhile.
    """
    if output and os.path.lexists(output) and not force:
        raise InputError(
            "output exists; pass --force to overwrite", code=Code.OUTPUT_EXISTS, path=output
        )
