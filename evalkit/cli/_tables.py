"""Terminal tables that fit the console: long cells wrap, names are never cut, wide tables split by columns.

Rich shrinks a table that is wider than the console by cropping cells with an ellipsis, which cuts model and
task names in an 80-column terminal. Here the first column (the name) never wraps or shrinks, the other
columns fold instead of cropping, and a table with more value columns than fit is printed as several tables
that each repeat the name column.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Border and padding that rich adds per column (one space each side plus a rule).
COLUMN_OVERHEAD = 3


def folding(table: Table, whole: Sequence[int] = (0,)) -> Table:
    """The table with the `whole` columns (names, short enumerations) never wrapped and every other column
    folding instead of cropping."""
    for i, column in enumerate(table.columns):
        column.overflow = "fold"
        if i in whole:
            column.no_wrap = True
    return table


def _width(cell: object) -> int:
    text = cell if isinstance(cell, Text) else Text.from_markup(str(cell))
    return max((len(line) for line in text.plain.splitlines()), default=0)


def split_by_width(
    console: Console,
    title: str,
    key: tuple[str, Sequence[str]],
    columns: Sequence[tuple[str, Sequence[str]]],
    *,
    justify: str = "right",
) -> list[Table]:
    """Tables that each fit `console.width`: the key column (header, cells) and as many value columns as fit.

    `columns` are (header, cells) pairs in display order; cells are rich markup strings, one per row.
    """
    key_width = max(_width(key[0]), *(_width(c) for c in key[1])) + COLUMN_OVERHEAD
    widths = [max(_width(h), *(_width(c) for c in cells)) + COLUMN_OVERHEAD for h, cells in columns]
    # A key too wide to leave room for the widest value column (a long reference label at 80 columns) wraps
    # instead: its text is kept whole on several lines, and the numbers stay visible.
    room = console.width - max(widths, default=0) - 1
    key_wraps = key_width > room >= 12
    key_width = min(key_width, room) if key_wraps else key_width
    groups: list[list[int]] = [[]]
    used = key_width + 1
    for i, width in enumerate(widths):
        if groups[-1] and used + width > console.width:
            groups.append([])
            used = key_width + 1
        groups[-1].append(i)
        used += width
    tables = []
    for n, group in enumerate(groups):
        part = f" ({n + 1}/{len(groups)})" if len(groups) > 1 else ""
        table = Table(title=title + part, title_justify="left")
        if key_wraps:
            table.add_column(key[0], overflow="fold", max_width=key_width - COLUMN_OVERHEAD)
        else:
            table.add_column(key[0], no_wrap=True)
        for i in group:
            table.add_column(columns[i][0], justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row, name in enumerate(key[1]):
            table.add_row(name, *(columns[i][1][row] for i in group))
        tables.append(table)
    return tables


def fitting(table: Table, width: int | None = None) -> list[Table]:
    """`table`, or, when it is wider than `width` (default: the terminal's, if stdout is one; pipes and files keep
    the one wide table), several tables of the same style that each repeat the first column: a statistics table
    at 80 columns then shows every delta and bound whole instead of wrapping or cutting them."""
    if width is None:
        terminal = Console()
        if not terminal.is_terminal:
            return [table]
        width = terminal.width
    columns = table.columns
    if len(columns) < 3:
        return [table]
    widths = [max(_width(c.header), *(_width(cell) for cell in c.cells)) + COLUMN_OVERHEAD for c in columns]
    if sum(widths) + 1 <= width:
        return [table]
    groups: list[list[int]] = [[]]
    used = widths[0] + 1
    for i in range(1, len(columns)):
        if groups[-1] and used + widths[i] > width:
            groups.append([])
            used = widths[0] + 1
        groups[-1].append(i)
        used += widths[i]
    parts = []
    title = str(table.title or "")
    for n, group in enumerate(groups):
        part = Table(
            title=f"{title} ({n + 1}/{len(groups)})" if title else None,
            title_justify=table.title_justify,
            box=table.box,
        )
        for i in (0, *group):
            c = columns[i]
            part.add_column(c.header, justify=c.justify, no_wrap=c.no_wrap, min_width=c.min_width)
        cells = [list(c.cells) for c in columns]
        for row in range(table.row_count):
            part.add_row(*(cells[i][row] for i in (0, *group)))
        parts.append(part)
    return parts
