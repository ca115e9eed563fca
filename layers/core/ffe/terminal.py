"""How the ``ffe`` commands print: one table printer (rich), the width it fits, when it uses colour, and JSON.

Width: on a terminal, ``COLUMNS`` when it is set, else the terminal's width; output piped into a file or another
program is 120 columns wide, whatever ``COLUMNS`` says. Colour (BUY green, SELL red, HOLD yellow, failures red,
bold headers) only when stdout is a terminal (or rich's ``FORCE_COLOR`` says to treat it as one) and never with
``NO_COLOR`` set: piped output is plain text, with no escape codes.

A table's free-text columns (a decision's reason, an error message) are cut to fit the width with an ellipsis;
``wide=True`` wraps them whole inside their column instead, so every line still fits. Other columns are never cut.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any, Literal

from rich.box import Box
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 120

# Column headers over a rule of dashes, columns two spaces apart, no frame: plain text reads like the old tables.
_RULE_UNDER_HEADER = Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)

_STYLES = {
    "BUY": "green",
    "SELL": "red",
    "HOLD": "yellow",
    "FAILED": "bold red",
    "SUCCEEDED": "green",
    "Succeeded": "green",
    "Failed": "red",
    "TIMED_OUT": "bold red",
    "ABORTED": "bold red",
    "RUNNING": "cyan",
    "Running": "cyan",
    "ok": "green",
}


@dataclass(frozen=True)
class Column:
    header: str
    justify: Literal["left", "right"] = "left"
    free_text: bool = False  # a reason or a message: cut with an ellipsis to fit, or wrapped whole when wide


def width(stream: IO[str] | None = None) -> int:
    """On a terminal ``COLUMNS`` when set, else the terminal's width; anywhere else 120, whatever COLUMNS says
    (piped output is the same wherever it runs)."""
    stream = stream or sys.stdout
    try:
        if not stream.isatty():
            return PIPED_WIDTH
        columns = os.environ.get("COLUMNS", "").strip()
        return int(columns) if columns.isdigit() and int(columns) > 0 else os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # a stream with no file descriptor behind it
        return PIPED_WIDTH


def console(stream: IO[str] | None = None) -> Console:
    """A console on ``stream`` (default: whatever ``sys.stdout`` is when it prints) that never reads markup."""
    no_color = os.environ.get("NO_COLOR", "") != ""
    return Console(
        file=stream,
        width=width(stream),
        color_system=None if no_color else "auto",  # "auto": none unless the stream is a terminal
        no_color=no_color,
        highlight=False,
        markup=False,
        emoji=False,
    )


def styled(value: str) -> Text:
    """An action or a status with its colour (shown only where colour is)."""
    return Text(value, style=_STYLES.get(value, ""))


def table(
    columns: Sequence[Column], rows: Iterable[Sequence[str | Text]], *, wide: bool = False, title: str | None = None
) -> Table:
    """The one table layout every ffe command prints."""
    grid = Table(
        box=_RULE_UNDER_HEADER,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
        title=title,
        title_justify="left",
        title_style="bold",
    )
    cut = [c.free_text and not wide for c in columns]
    cells = [[_cell(value, cut=c) for value, c in zip(row, cut, strict=True)] for row in rows]
    for i, column in enumerate(columns):
        # Only free text shrinks to fit (rich narrows wrapable columns first): an id, a time or a number is never
        # cut; on a terminal too narrow for them the lines run over and the terminal wraps them.
        widest = max((cell_len(column.header), *(row[i].cell_len for row in cells)))
        grid.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.free_text,
            min_width=None if column.free_text else widest,
        )
    for row in cells:
        grid.add_row(*row)
    return grid


def details(fields: Iterable[tuple[str, str | Text]], indent: int = 0) -> Padding:
    """Label / value lines, values wrapped whole under each other: one record in full."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    return Padding(grid, (0, 0, 0, indent))


def show(*renderables: RenderableType | str) -> bool:
    """Print to stdout, fitted to the width; trailing blanks of plain lines trimmed. True when a cell was cut."""
    out = console()
    with out.capture() as captured:
        for renderable in renderables:
            out.print(renderable, crop=False)  # a line over the width (a table too narrow for it) runs on, uncut
    text = captured.get()
    sys.stdout.write("".join(line.rstrip(" ") + "\n" for line in text.splitlines()))
    return "\u2026" in text


def render(*renderables: RenderableType | str) -> str:
    """Plain text of what ``show`` would print on a pipe (for commands that return their text)."""
    out = Console(file=io.StringIO(), width=width(), color_system=None, highlight=False, markup=False, emoji=False)
    with out.capture() as captured:
        for renderable in renderables:
            out.print(renderable, crop=False)
    return "\n".join(line.rstrip(" ") for line in captured.get().splitlines())


def print_json(document: Any) -> None:
    """One JSON document on stdout: times in ISO 8601, decimals (money, quantities) as exact strings."""
    sys.stdout.write(json.dumps(document, indent=2, default=_jsonable, allow_nan=False, ensure_ascii=False) + "\n")


def _cell(value: str | Text, cut: bool) -> Text:
    text = value.copy() if isinstance(value, Text) else Text(value)
    if cut:
        text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "model_dump"):  # a pydantic contract
        return value.model_dump(mode="json")
    return str(value)
