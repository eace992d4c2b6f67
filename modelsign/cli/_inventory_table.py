"""The inventory table for a person, laid out for the terminal's width.

One line per model: the status (never shortened), the model's name (shortened
in the middle when it must be: ``meta-llama/Meta-Ll…ct@main (0123456789ab)``
keeps the repo and the revision), then as many of the other columns as fit, in
the order of :data:`PRIORITY`; the columns left out are named under the table.
A model's reason is on its own indented line below it, wrapped at spaces.
Without a width (a pipe or a file, and no ``COLUMNS``) nothing is shortened,
left out or wrapped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

#: The other columns, left to right.
COLUMNS: Final = ("store", "size", "format", "quant", "licence", "signed", "checked")
#: Which of them stay as the terminal narrows: the first ones longest.
PRIORITY: Final = ("size", "store", "format", "quant", "licence", "checked", "signed")
#: The model column keeps this much (half the width, on a narrow terminal) before another
#: column is shown.
NAME_MIN: Final = 32
#: A cell of the other columns (a long licence expression, many formats) is cut at this width.
CELL_MAX: Final = 24
GAP: Final = 2
REASON_INDENT: Final = 4
BLOCKED: Final = "✗"


def terminal_width() -> int | None:
    """``COLUMNS``, else the terminal's width; None for a pipe or a file (no limit)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    console = Console()
    return console.width if console.is_terminal else None


def _take(text: str, width: int) -> str:
    """The longest start of ``text`` at most ``width`` cells wide."""
    out = ""
    for ch in text:
        if cell_len(out + ch) > width:
            break
        out += ch
    return out


def elide_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells: its start, ``…`` and its end (start and end kept)."""
    if cell_len(text) <= width:
        return text
    if width < 3:
        return _take(text, width)
    head = _take(text, width // 2)
    tail = _take(text[::-1], width - 1 - cell_len(head))[::-1]
    return head + "…" + tail


def elide_end(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, cut at the end with ``…``."""
    if cell_len(text) <= width:
        return text
    return _take(text, width - 1) + "…"


@dataclass(frozen=True)
class Row:
    """One model as the table shows it."""

    status: str
    style: str  # the status's rich style
    blocked: bool
    name: str
    cells: dict[str, str]  # by column in COLUMNS
    reason: str | None


@dataclass(frozen=True)
class Layout:
    """Which columns are shown and how wide."""

    marker: int  # the blocked mark's column (0: nothing is blocked)
    status: int
    name: int
    shown: tuple[str, ...]  # in COLUMNS order
    widths: dict[str, int]

    @property
    def hidden(self) -> tuple[str, ...]:
        return tuple(c for c in COLUMNS if c not in self.shown)


_HEADER: Final = Row("status", "", False, "model", {c: c for c in COLUMNS}, None)


def layout(rows: Sequence[Row], width: int | None) -> Layout:
    """Fit the columns into ``width`` cells (None: everything, at its natural width)."""
    marker = cell_len(BLOCKED) + 1 if any(r.blocked for r in rows) else 0
    status = max(cell_len(r.status) for r in [*rows, _HEADER])
    widths = {c: max(cell_len(r.cells[c]) for r in [*rows, _HEADER]) for c in COLUMNS}
    widths = {c: min(w, CELL_MAX) for c, w in widths.items()}
    natural = max(cell_len(r.name) for r in [*rows, _HEADER])
    if width is None:
        return Layout(marker, status, natural, COLUMNS, widths)
    used = marker + status + GAP
    shown: list[str] = []
    for column in PRIORITY:
        if width - (used + widths[column] + GAP) < min(NAME_MIN, natural, width // 2):
            break
        shown.append(column)
        used += widths[column] + GAP
    # Below about 40 columns the name gets a few cells anyway and lines run over.
    name = max(min(natural, width - used), 8)
    return Layout(marker, status, name, tuple(c for c in COLUMNS if c in shown), widths)


def _line(row: Row, lay: Layout, *, header: bool = False) -> Text:
    line = Text(style="bold" if header else "")
    if lay.marker:
        line.append(f"{BLOCKED} " if row.blocked else " " * lay.marker, style="bold red")
    line.append(row.status.ljust(lay.status), style=row.style)
    line.append(" " * GAP)
    name = elide_middle(row.name, lay.name)
    line.append(name + " " * (lay.name - cell_len(name)))
    for column in lay.shown:
        cell = elide_end(row.cells[column], lay.widths[column])
        pad = " " * (lay.widths[column] - cell_len(cell))
        line.append(" " * GAP)
        line.append(pad + cell if column == "size" else cell + pad)
    line.rstrip()
    return line


def print_table(console: Console, rows: Sequence[Row], width: int | None) -> Layout:
    """The header, a line per model and its reason below it; returns the layout used."""
    lay = layout(rows, width)
    console.print(_line(_HEADER, lay, header=True), soft_wrap=True)
    for row in rows:
        console.print(_line(row, lay), soft_wrap=True)
        if row.reason:
            reason = Text(row.reason, style="dim")
            lines = [reason] if width is None else reason.wrap(console, width - REASON_INDENT)
            for line in lines:
                line.rstrip()
                console.print(Text(" " * REASON_INDENT) + line, soft_wrap=True)
    return lay


def wrap_units(units: Sequence[str], width: int | None) -> list[str]:
    """``units`` joined by spaces, in lines of ``width`` cells, broken between units only."""
    lines: list[str] = []
    for unit in units:
        if lines and (width is None or cell_len(lines[-1]) + 1 + cell_len(unit) <= width):
            lines[-1] += " " + unit
        else:
            lines.append(unit)
    return lines
