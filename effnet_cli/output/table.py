"""Column tables: a view declares its columns once, and the rich table, CSV and markdown all come
from that one declaration.

A view declares its columns once (`Column`): the header and unit a person reads, the key its
rows carry (the CSV and JSON name), how a cell shows the value, and a priority. On a narrow
terminal the columns that fit are shown, most important first, each at its full width (a number
is never cut); what is left out is said below the table, and `--wide` or a pipe shows
everything. A path column (`path=True`) that still does not fit gives up the middle of its
folders, never its file name (`/very/long/…/efficientnet-b0.onnx`); `--wide` or a pipe shows it
whole.

A new view: declare `MY_TABLE = (Column("img/s", "images_per_s", "f1"), ...)` beside its
printer and call `print_columns(sink.out(), title, MY_TABLE, rows)` with the rows of its JSON
document; `columns_csv` and `columns_markdown` give the other formats from the same table.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

# ---------------------------------------------------------------------------- humanised numbers


def count(value: float | None) -> str:
    """5,330,571 -> '5.33M'; for tables only (JSON keeps exact integers)."""
    if value is None:
        return "–"
    for factor, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return (
                f"{value / factor:.3g}{unit}"
                if value / factor < 100
                else f"{value / factor:.0f}{unit}"
            )
    return f"{value:g}"


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "–"
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if num_bytes >= factor:
            return f"{num_bytes / factor:.1f} {unit}"
    return f"{num_bytes:.0f} B"


# ---------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    header: str
    key: str  # the row's field: the CSV column and the JSON key
    kind: str = "text"  # how a cell shows the value (see `cell`), unless `show` is given
    unit: str = ""  # said once in the header, not in every cell
    priority: int = 1  # 1: always shown; higher numbers give way first on a narrow terminal
    left: bool = False  # text reads left-aligned; numbers right-aligned
    wrap: bool = False  # free text (paths, errors) may fold onto more lines; numbers never do
    show: Callable[[Mapping[str, Any]], str] | None = None  # the cell from the whole row
    in_table: bool = True  # False: CSV/JSON only (say, the device of every row)
    path: bool = False  # a file's path: elided in the middle to fit (`elide_path`), else folded

    @property
    def title(self) -> str:
        return f"{self.header} {self.unit}".strip() if self.unit else self.header

    def text(self, row: Mapping[str, Any]) -> str:
        return self.show(row) if self.show is not None else cell(row.get(self.key), self.kind)


def cell(value: Any, kind: str) -> str:
    """One value as a table shows it; None is '–'."""
    if value is None:
        return "–"
    formats: dict[str, Callable[[Any], str]] = {
        "count": count,
        "bytes": size,
        "int": lambda v: f"{v:,}",
        "ratio": lambda v: f"{v:.2f}",
        "coef": lambda v: f"{v:.3g}",
        "f0": lambda v: f"{v:.0f}",
        "f1": lambda v: f"{v:.1f}",
        "f2": lambda v: f"{v:.2f}",
        "f4": lambda v: f"{v:.4f}",
        "sci": lambda v: f"{v:.1e}",
        "pct": lambda v: f"{v:.0%}",
        "yes": lambda v: "yes" if v else "no",
    }
    if kind in formats:
        return formats[kind](value)
    return f"{value:g}" if isinstance(value, float) else str(value)


GAP = 3  # between two columns: a space, the rule, a space
WRAP_MIN = 24  # a folding column is given at least this much room before others are left out


def _needed(column: Column, cells: list[str], folded: bool = True) -> int:
    """The width a column needs; a folding column's least (`folded`) or its whole text's."""
    longest = max([cell_len(column.title), *(cell_len(c) for c in cells)])
    if column.wrap and folded:
        return min(longest, max(WRAP_MIN, cell_len(column.title)))
    return longest


def fit_columns(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[int]:
    """Indexes of the columns shown at `width`: by priority (then left to right) while they fit,
    in their declared order. Priority-1 columns are always kept: if even they do not fit, the
    caller stacks the rows instead. A folding column (a path) counts at its whole width here: an
    optional column is not worth folding a path for."""
    needs = [_needed(c, [row[i] for row in cells], folded=False) for i, c in enumerate(columns)]
    order = sorted(range(len(columns)), key=lambda i: (columns[i].priority, i))
    chosen: list[int] = []
    used = -GAP
    for i in order:
        if columns[i].priority == 1 or used + GAP + needs[i] <= width:
            chosen.append(i)
            used += GAP + needs[i]
    return sorted(chosen)


def table_width(columns: Sequence[Column], cells: list[list[str]], shown: list[int]) -> int:
    return sum(_needed(columns[i], [row[i] for row in cells]) + GAP for i in shown) - GAP


def columns_with_values(
    columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]
) -> list[Column]:
    """The table's columns, less those empty in every row (no V1 row has a train size)."""
    return [c for c in columns if c.in_table and any(c.text(row) not in ("–", "") for row in rows)]


def print_columns(
    console: Console,
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """A view's rows as a table that fits the console: no number cut, ever."""
    columns = columns_with_values(columns, rows) if rows else [c for c in columns if c.in_table]
    cells = [[c.text(row) for c in columns] for row in rows]
    # every column, however wide the table is: --wide, a pipe (the sink's console says which)
    if getattr(console, "every_column", False) or not console.is_terminal:
        whole = sum(
            _needed(c, [row[i] for row in cells], folded=False) + GAP for i, c in enumerate(columns)
        )
        console.width = max(console.width, whole - GAP)
    width = console.width
    shown = fit_columns(columns, cells, width)
    if table_width(columns, cells, shown) > width:
        _print_stacked(console, title, columns, cells)
        return
    cells = _elide_paths(columns, cells, shown, width)
    # Text, not str: a path or label holding [brackets] is not rich markup
    table = Table(
        title=Text(title) if title else None, title_justify="left", show_edge=False, pad_edge=False
    )
    for i in shown:
        column = columns[i]
        need = _needed(column, [row[i] for row in cells])
        table.add_column(
            column.title,
            justify="left" if column.left else "right",
            no_wrap=not column.wrap,
            overflow="fold",
            min_width=None if column.wrap else need,
        )
    for row in cells:
        table.add_row(*(Text(row[i]) for i in shown))
    console.print(table)
    left_out = [columns[i].title for i in range(len(columns)) if i not in shown]
    if left_out:
        console.print(
            f"(not shown at {width} columns: {', '.join(left_out)}; --wide shows every column)",
            markup=False,
        )


def elide_path(text: str, room: int) -> str:
    """`text` (a path) in `room` cells: whole where it fits; else its first folder (two for an
    absolute path, where they fit), `…` for the folders that do not fit, as many of the last
    folders as do, and the file name whole: `/home/…/exports/efficientnet-b0.onnx`. Where even
    `…/name` does not fit, the whole path, for the table to fold (eliding would save nothing)."""
    if cell_len(text) <= room:
        return text
    *folders, name = text.split("/")
    if not folders:
        return text  # no folder to give up: the table folds it
    front: list[str] = folders[: 2 if folders[0] == "" else 1]  # an absolute path: "/home"
    if cell_len("/".join([*front, "…", name])) > room:
        front = folders[:1]  # "" for an absolute path: "/…/name"
    back: list[str] = []
    for folder in reversed(folders[len(front) :]):
        if cell_len("/".join([*front, "…", folder, *back, name])) > room:
            break
        back.insert(0, folder)
    shown = "/".join([*front, "…", *back, name])
    if cell_len(shown) <= room:
        return shown
    short = f"…/{name}"
    return short if cell_len(short) <= room else text  # the name alone too long: fold it all


def _elide_paths(
    columns: Sequence[Column], cells: list[list[str]], shown: list[int], width: int
) -> list[list[str]]:
    """The cells, with the paths of path columns elided to the room the other columns leave
    (each other column at the width it needs, a folding one at its least)."""
    paths = [i for i in shown if columns[i].path]
    if not paths:
        return cells
    others = sum(_needed(columns[i], [row[i] for row in cells]) for i in shown if i not in paths)
    room = (width - others - GAP * (len(shown) - 1)) // len(paths)
    elided = [list(row) for row in cells]
    for i in paths:
        fits = max(room, cell_len(columns[i].title))
        for row in elided:
            row[i] = elide_path(row[i], fits)
    return elided


def _print_stacked(
    console: Console, title: str | None, columns: Sequence[Column], cells: list[list[str]]
) -> None:
    """Too narrow for even the main columns: one block per row, one `header: value` a line."""
    if title:
        console.print(title, markup=False)
    label = max(cell_len(c.title) for c in columns)
    for n, row in enumerate(cells):
        if n:
            console.print()
        for column, text in zip(columns, row, strict=True):
            shown = elide_path(text, console.width - label - 2) if column.path else text
            console.print(f"{column.title.ljust(label)}  {shown}", markup=False)


def columns_csv(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    """Raw values under the columns' keys (no units, no rounding); None is empty."""
    import csv

    buffer = io.StringIO()
    keys = list(dict.fromkeys(c.key for c in columns))
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if row.get(k) is None else row.get(k) for k in keys} for row in rows)
    return buffer.getvalue()


def columns_markdown(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    columns = columns_with_values(columns, rows)
    lines = ["| " + " | ".join(c.title for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(c.text(row) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pairs(console: Console, pairs: Sequence[tuple[str, str]], title: str | None = None) -> None:
    """A two-column 'what: value' view; the value folds rather than being cut."""
    table = Table(
        title=title, title_justify="left", show_edge=False, pad_edge=False, show_header=False
    )
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for what, value in pairs:
        table.add_row(what, value)
    console.print(table)
