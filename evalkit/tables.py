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
        table.add_column(key[0], no_wrap=True)
        for i in group:
            table.add_column(columns[i][0], justify=justify, overflow="fold")  # type: ignore[arg-type]
        for row, name in enumerate(key[1]):
            table.add_row(name, *(columns[i][1][row] for i in group))
        tables.append(table)
    return tables
