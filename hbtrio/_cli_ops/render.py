"""Terminal output of the commands: rich tables that fit the terminal.

Width: ``COLUMNS`` when set, else the terminal's; piped output without
``COLUMNS`` is not cut (every column is shown). A table wider than the width
hides its least important columns and says which (``--json`` has every field).

Numbers keep the server's text (``0.53910`` stays ``0.53910``) and are aligned
on their decimal point. Colour only on a terminal; piped output, and any output
with ``NO_COLOR`` set, is plain text without escape sequences.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

__all__ = [
    "Cell",
    "Column",
    "FittedTable",
    "UNBOUNDED_WIDTH",
    "WRAP_MIN_WIDTH",
    "align_decimals",
    "hidden_note",
    "make_console",
    "plain_table",
    "render_text",
    "table",
]

UNBOUNDED_WIDTH = 100_000
"""Width of piped output without ``COLUMNS``: lines are never cut."""
WRAP_MIN_WIDTH = 20
"""Narrowest a wrapping column (free text such as a failure reason) may become."""
_GAP = 2  # characters between two columns

Cell = str | Text | None
"""A table cell: text, styled text, or ``None`` (shown as ``-``)."""


@dataclass(frozen=True, slots=True)
class Column:
    """A table column.

    Attributes:
        header: The title.
        numeric: Right-aligned and aligned on the decimal point.
        drop: ``0``: always shown; otherwise hidden when the table is too wide,
            the highest numbers first.
        wrap: Free text that may wrap inside its cell (down to
            ``WRAP_MIN_WIDTH``) rather than widen the table.
        style: Style of every cell of the column (a cell's own style wins).
    """

    header: str
    numeric: bool = False
    drop: int = 0
    wrap: bool = False
    style: str = ""


def _colour_disabled() -> bool:
    return os.environ.get("NO_COLOR", "") != ""


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


def make_console(stream: IO[str] | None = None) -> Console:
    """A console for one command's output.

    Args:
        stream: Where to write (default standard output).

    Returns:
        A console: the terminal's width (or ``COLUMNS``), unbounded when piped
        without ``COLUMNS``; colour only on a terminal without ``NO_COLOR``; no
        markup or highlighting (text is printed as given).
    """
    target = stream if stream is not None else sys.stdout
    width: int | None = None
    if not _is_tty(target) and not os.environ.get("COLUMNS", "").isdigit():
        width = UNBOUNDED_WIDTH
    return Console(
        file=target,
        width=width,
        markup=False,
        highlight=False,
        emoji=False,
        color_system=None if _colour_disabled() else "auto",
    )


def render_text(console: Console, renderable: RenderableType) -> str:
    """Render to text (with escape sequences when ``console`` is in colour).

    Trailing blanks of every line are removed.

    Args:
        console: The console whose width and colours apply.
        renderable: What to render.

    Returns:
        The text, one ``\\n`` after each line.
    """
    with console.capture() as capture:
        console.print(renderable)
    lines = capture.get().splitlines()
    return "".join(line.rstrip() + "\n" for line in lines)


def align_decimals(cells: Sequence[str]) -> list[str]:
    """Pad numbers so that their decimal points line up.

    The digits are kept as given (no rounding, trailing zeros kept).

    Args:
        cells: Numbers as text (``-`` and other text are aligned as integers).

    Returns:
        The cells, all of the same width.
    """
    parts = [cell.partition(".") for cell in cells]
    int_width = max((len(whole) for whole, _, _ in parts), default=0)
    frac_width = max((len(dot) + len(frac) for _, dot, frac in parts), default=0)
    return [whole.rjust(int_width) + (dot + frac).ljust(frac_width) for whole, dot, frac in parts]


def _plain(cell: Cell) -> str:
    if cell is None:
        return "-"
    return cell.plain if isinstance(cell, Text) else cell


def _styled(cell: Cell, text: str, column: Column) -> Text:
    own = cell.style if isinstance(cell, Text) else ""
    return Text(text, style=own or column.style)


def table(
    columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int
) -> tuple[Table, list[str]]:
    """A table that fits ``width`` by hiding its least important columns.

    Args:
        columns: The columns.
        rows: One cell per column in each row.
        width: The width to fit (a console's ``width``).

    Returns:
        The table and the headers of the hidden columns (in column order).
    """
    texts = [[_plain(cell) for cell in row] for row in rows]
    cells_of = [[row[i] for row in texts] for i in range(len(columns))]
    shown_cells: list[list[str]] = []
    natural: list[int] = []
    for column, cells in zip(columns, cells_of, strict=True):
        if column.numeric and cells:
            aligned = align_decimals(cells)
            cell_width = max(len(column.header), len(aligned[0]))
            cells = [cell.rjust(cell_width) for cell in aligned]
        shown_cells.append(cells)
        need = max([len(column.header), *(len(cell) for cell in cells)])
        natural.append(min(need, WRAP_MIN_WIDTH) if column.wrap else need)

    visible = list(range(len(columns)))

    def total() -> int:
        return sum(natural[i] for i in visible) + _GAP * max(len(visible) - 1, 0)

    droppable = sorted(
        (i for i, c in enumerate(columns) if c.drop), key=lambda i: (-columns[i].drop, -i)
    )
    hidden: list[int] = []
    for index in droppable:
        if total() <= width:
            break
        visible.remove(index)
        hidden.append(index)

    grid = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
        header_style="bold",
    )
    for i in visible:
        column = columns[i]
        header = column.header
        if column.numeric:
            header = header.rjust(max([len(header), *(len(c) for c in shown_cells[i])]))
        grid.add_column(
            header,
            no_wrap=not column.wrap,
            overflow="fold",
            min_width=WRAP_MIN_WIDTH if column.wrap else None,
        )
    for r, row in enumerate(rows):
        grid.add_row(*(_styled(row[i], shown_cells[i][r], columns[i]) for i in visible))
    return grid, [columns[i].header for i in sorted(hidden)]


def hidden_note(hidden: Sequence[str]) -> Text:
    """The line saying which columns a narrow terminal hides.

    Args:
        hidden: Headers of the hidden columns.

    Returns:
        The note (dim).
    """
    return Text(f"hidden: {', '.join(hidden)} (see --json)", "dim")


class FittedTable:
    """A renderable table fitted to the width it is rendered at (see ``table``).

    Args:
        columns: The columns.
        rows: One cell per column in each row.
        title: A line above the table.
        notes: Lines below the table (after the note on hidden columns).
        when_hidden: Lines shown below the table only when the column of that
            header is hidden (what the column would have shown).
    """

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Cell]],
        *,
        title: str | Text | None = None,
        notes: Sequence[str | Text] = (),
        when_hidden: Mapping[str, Sequence[str | Text]] | None = None,
    ) -> None:
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.title = title
        self.notes = list(notes)
        self.when_hidden = {k: list(v) for k, v in (when_hidden or {}).items()}

    def hidden_at(self, width: int) -> list[str]:
        """The headers hidden at a width.

        Args:
            width: Columns available.

        Returns:
            The hidden headers.
        """
        return table(self.columns, self.rows, width)[1]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        grid, hidden = table(self.columns, self.rows, options.max_width)
        if self.title is not None:
            yield self.title
        yield grid
        if hidden:
            yield hidden_note(hidden)
        for header in hidden:
            yield from self.when_hidden.get(header, ())
        yield from self.notes


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return True


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table (no colour, never cut); numbers aligned on their decimal point.

    A column is numeric when every cell is a number (or ``-``).

    Args:
        headers: Column titles.
        rows: Cells (converted with ``str``; ``None`` shows as ``-``).

    Returns:
        The table, one line per row, without a trailing newline.
    """
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    numeric = [
        all(row[i] == "-" or _is_number(row[i]) for row in cells) for i in range(len(headers))
    ]
    columns = [Column(h, numeric=n) for h, n in zip(headers, numeric, strict=True)]
    console = Console(file=io.StringIO(), width=UNBOUNDED_WIDTH, color_system=None)
    grid, _ = table(columns, cells, UNBOUNDED_WIDTH)
    return render_text(console, grid).rstrip("\n")
