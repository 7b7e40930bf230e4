"""The only place that formats output: rich tables for people, JSON/CSV/markdown for programs.

Commands compute rows once (plain dicts of raw numbers) and hand them here. stdout carries the
result; everything else (progress, notes, errors) goes to stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.model.identity import model_identity

SCHEMA_VERSION = 1
WIDE = 240  # columns for a non-terminal (CI logs) and for --wide, or a table's whole width
_wide = False  # --wide: every column whatever the terminal's width


def set_wide(wide: bool) -> None:
    global _wide
    _wide = wide


def is_terminal(stream: Any) -> bool:
    """Whether a person reads `stream` (tests pin this, and the width through COLUMNS)."""
    return bool(stream.isatty()) if hasattr(stream, "isatty") else False


def _console(stream: Any) -> Console:
    tty = is_terminal(stream)
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    return Console(
        file=stream,
        width=WIDE if _wide or not tty else None,  # None: the terminal's (or COLUMNS)
        force_terminal=tty,
        # NO_COLOR (no-color.org) means no escape sequence at all: no colour, no bold, no italic
        color_system=None if plain else "auto",
        highlight=False,
        soft_wrap=False,
    )


def out() -> Console:
    end_progress()  # the result replaces the live status, never interleaves with it
    return _console(sys.stdout)


def err() -> Console:
    return _console(sys.stderr)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr."""
    console = _live[0].console if _live else err()
    console.print(message, markup=False)


# ---------------------------------------------------------------------------- progress
#
# Slow work says what it is doing, on stderr only. In a terminal: each step becomes a line with
# its duration when the next begins, and the current one is a live status whose seconds tick;
# elsewhere (CI logs): one timestamped line per step. `effnet --quiet` silences both.

_quiet = False
_live: list[Any] = []  # the running rich Status, while a step is shown live
_step: list[Any] = []  # [message, monotonic start] of the current step


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


BAR = 12  # characters of the bar where a step says which of how many it is


class _Ticking:
    """The live status line: rich renders it again on every refresh, so the seconds move."""

    def __init__(self, message: str, started: float) -> None:
        self.message, self.started = message, started

    def __rich__(self) -> str:
        import re
        import time

        elapsed = f"{time.monotonic() - self.started:.0f} s"
        counted = re.search(r"\((\d+)/(\d+)\)$", self.message)  # "writing x.onnx (2/3)"
        if not counted:
            return f"{self.message} · {elapsed}"
        done, total = int(counted[1]) - 1, int(counted[2])  # the n-th step is under way
        bar = "━" * round(BAR * done / total) + "─" * (BAR - round(BAR * done / total))
        return f"{bar} {self.message} · {elapsed}"


def progress(message: str) -> None:
    """A step of slow work has begun (its end is the next step, or the result)."""
    import time

    if _quiet:
        return
    if not is_terminal(sys.stderr):
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        sys.stderr.flush()
        return
    _finish_step()
    now = time.monotonic()
    _step[:] = [message, now]
    if _live:
        _live[0].update(_Ticking(message, now))
        return
    status = _console(sys.stderr).status(_Ticking(message, now), spinner="line")
    status.start()
    _live.append(status)


def _finish_step() -> None:
    import time

    if _step and _live:
        message, started = _step
        _live[0].console.print(f"{message} · {time.monotonic() - started:.1f} s", markup=False)
    _step.clear()


def end_progress() -> None:
    """The work is over (a result or an error follows): the live line gives way to the last
    step's line (stopped first: a line printed just before a transient Live stops can be
    erased with it)."""
    import time

    if not _live:
        _step.clear()
        return
    status = _live.pop()
    status.stop()
    if _step:
        message, started = _step
        status.console.print(f"{message} · {time.monotonic() - started:.1f} s", markup=False)
    _step.clear()


_errors_as_json = False  # the command was asked for --json: an error is a document too
_emitted = False  # a document is on stdout already (a failed export's report): no second one


def errors_as_json(on: bool) -> None:
    global _errors_as_json, _emitted
    _errors_as_json, _emitted = on, False


def error_line(message: str, hint: str | None = None, exit_code: int = 1) -> None:
    """The `error:` line on stderr; under --json also `effnet.error/1` on stdout, so a script
    reads one JSON document whether the command worked or not."""
    end_progress()
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()
    if _errors_as_json and not _emitted:
        emit_json("error", {"error": message, "hint": hint, "exit": exit_code})


def emit_json(kind: str, document: Mapping[str, Any]) -> None:
    """One JSON document on stdout, tagged with its schema."""
    global _emitted
    end_progress()
    payload = {"schema": f"effnet.{kind}/{SCHEMA_VERSION}", **document}
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()
    _emitted = True


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every --json document of this schema version (one $defs per kind)."""
    from importlib.resources import files as package_files

    text = package_files("effnet_cli").joinpath(f"schemas/effnet-{SCHEMA_VERSION}.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def show(
    kind: str, document: Mapping[str, Any], as_json: bool, printer: Callable[[Any], None]
) -> None:
    """A command's result: one JSON document, or the table a person reads."""
    if as_json:
        emit_json(kind, document)
    else:
        printer(document)


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


# ---------------------------------------------------------------------------- documents


def model_document(spec: S.ModelSpec) -> dict[str, Any]:
    return {
        **model_identity(
            spec.name,
            spec.family.name,
            [spec.resolution, spec.resolution],
            spec.num_classes if spec.include_top else None,
            spec.preprocessing,
        ),
        "base": spec.base,
        "phi": spec.phi,
        "width": spec.width,
        "depth": spec.depth,
        "dropout": spec.dropout,
        "drop_connect": spec.drop_connect,
        "include_top": spec.include_top,
        "pooling": spec.pooling,
        "classifier_activation": spec.classifier_activation,
    }


def totals_document(costs: C.Costs) -> dict[str, int]:
    return {
        "params": costs.params,
        "params_trainable": costs.params_trainable,
        "params_non_trainable": costs.params_non_trainable,
        "params_bn_moving": costs.params_bn_moving,
        "params_preprocessing": costs.params_preprocessing,
        "macs": costs.macs,
        "param_bytes": costs.param_bytes,
        "peak_activation_bytes": costs.peak_activation_bytes,
    }


def published_document(spec: S.ModelSpec) -> dict[str, Any] | None:
    published = S.PUBLISHED.get(spec.base)
    if published is None or spec.name != f"efficientnet-{spec.base}":
        return None
    return {
        "params": published.params,
        "macs": published.macs,
        "top1": published.top1,
        "top1_v1": published.top1_v1,
        "source": published.source,
    }


def summary_document(costs: C.Costs, with_layers: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model_document(costs.spec),
        "input": S.input_contract(costs.spec),
        "totals": totals_document(costs),
        "published": published_document(costs.spec),
        "stages": [vars(stage) for stage in costs.stages],
    }
    if with_layers:
        doc["layers"] = [
            {
                "name": layer.name,
                "class": layer.keras_class,
                "stage": layer.stage,
                "shape": list(layer.shape),
                "params": layer.params,
                "params_trainable": layer.params_trainable,
                "macs": layer.macs,
                "activation_bytes": layer.activation_bytes,
            }
            for layer in costs.layers
        ]
    return doc


# ---------------------------------------------------------------------------- column tables
#
# A view declares its columns once (`Column`): the header and unit a person reads, the key its
# rows carry (the CSV and JSON name), how a cell shows the value, and a priority. The rich table,
# CSV and markdown all come from that one declaration. On a narrow terminal the columns that fit
# are shown, most important first, each at its full width (a number is never cut); what is left
# out is said below the table, and `--wide` or a pipe shows everything.
#
# A new view: declare `MY_TABLE = (Column("img/s", "images_per_s", "f1"), ...)` beside its
# printer and call `print_columns(out(), title, MY_TABLE, rows)` with the rows of its JSON
# document; `columns_csv` and `columns_markdown` give the other formats from the same table.


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
    if _wide or not console.is_terminal:  # every column, however wide the table is
        whole = sum(_needed(c, [row[i] for row in cells], folded=False) + GAP
                    for i, c in enumerate(columns))  # fmt: skip
        console.width = max(console.width, whole - GAP)
    width = console.width
    shown = fit_columns(columns, cells, width)
    if table_width(columns, cells, shown) > width:
        _print_stacked(console, title, columns, cells)
        return
    # Text, not str: a path or label holding [brackets] is not rich markup
    table = Table(title=Text(title) if title else None, title_justify="left", show_edge=False,
                  pad_edge=False)  # fmt: skip
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
        console.print(f"(not shown at {width} columns: {', '.join(left_out)}; --wide shows "
                      "every column)", markup=False)  # fmt: skip


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
            console.print(f"{column.title.ljust(label)}  {text}", markup=False)


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


def _pairs(console: Console, pairs: Sequence[tuple[str, str]], title: str | None = None) -> None:
    """A two-column 'what: value' view; the value folds rather than being cut."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
                  show_header=False)  # fmt: skip
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for what, value in pairs:
        table.add_row(what, value)
    console.print(table)


def _contract_line(spec: S.ModelSpec) -> str:
    contract = S.input_contract(spec)
    h, w, c = spec.input_shape()
    pixels = "caller-normalized RGB" if contract["range"] == "caller-normalized" else (
        f"RGB in {contract['range']}")  # fmt: skip
    return (
        f"input: float32 NHWC (batch, {h}, {w}, {c}), {pixels}; "
        f"inside the model: {contract['preprocessing']}"
    )


def _block_only(text: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """Stem and head have no expansion or squeeze-excitation: '–' there."""
    return lambda st: text(st) if st["expand_ratio"] > 0 else "–"


STAGE_TABLE = (
    Column("stage", "stage", left=True),
    Column("operator", "operator", left=True, priority=2),
    Column("resolution", "output_resolution", priority=1,
           show=lambda st: f"{st['input_resolution']}→{st['output_resolution']}"),
    Column("channels", "channels"),
    Column("layers", "layers"),
    Column("kernel", "kernel_size", priority=4, show=lambda st: f"{st['kernel_size']}x"
           f"{st['kernel_size']}"),
    Column("stride", "strides", priority=4),
    Column("expand", "expand_ratio", priority=4,
           show=_block_only(lambda st: str(st["expand_ratio"]))),
    Column("SE", "se", priority=5, show=_block_only(lambda st: "yes" if st["se"] else "no")),
    Column("params", "params", "count"),
    Column("MACs", "macs", "count"),
    Column("peak act.", "peak_activation_bytes", "bytes", priority=3),
)  # fmt: skip

LAYER_TABLE = (
    Column("name", "name", left=True),
    Column("class", "class", left=True, priority=2),
    Column("output shape", "shape", priority=3,
           show=lambda layer: "×".join(map(str, layer["shape"]))),
    Column("params", "params", "int"),
    Column("MACs", "macs", "int"),
)  # fmt: skip


def print_summary(costs: C.Costs, with_layers: bool) -> None:
    spec, console = costs.spec, out()
    document = summary_document(costs, with_layers)
    title = (
        f"{spec.name}  (width {spec.width:g}, depth {spec.depth:g}, resolution {spec.resolution})"
    )
    print_columns(console, title, STAGE_TABLE, document["stages"])
    if with_layers:
        console.print()
        print_columns(console, "layers", LAYER_TABLE, document["layers"])
    console.print()
    _totals_table(console, costs)
    console.print(_contract_line(spec), markup=False)
    for deviation in spec.family.deviations:
        console.print(f"deviation from the paper: {deviation}", markup=False)


def _totals_table(console: Console, costs: C.Costs) -> None:
    paper = published_document(costs.spec) or {}

    def beside(value: str, published: Any, kind: str = "count") -> str:
        return value if published is None else f"{value}  (published: {cell(published, kind)})"

    rows = [
        ("params (Keras count_params)", f"{costs.params:,}"),
        ("  trainable (the paper's count)", beside(f"{costs.params_trainable:,}",
                                                    paper.get("params"))),
        ("  BatchNorm moving statistics", f"{costs.params_bn_moving:,}"),
        ("  preprocessing (Normalization)", f"{costs.params_preprocessing:,}"),
        ("MACs (multiply-adds)", beside(f"{costs.macs:,} ({count(costs.macs)})",
                                        paper.get("macs"))),
        ("parameter bytes (float32)", size(costs.param_bytes)),
        ("peak activation memory (batch 1)", size(costs.peak_activation_bytes)),
    ]  # fmt: skip
    if paper.get("top1") is not None:
        rows.append(("ImageNet top-1 %", f"{paper['top1']} ({paper['source']})"))
    _pairs(console, rows, title="totals")


def print_build(report: Mapping[str, Any]) -> None:
    model = report["model"]
    rows = [
        ("model", f"{model['name']} ({report['input']['shape'][1]}×"
                  f"{report['input']['shape'][2]}, {model['classes'] or 'no'} classes)"),
        ("params", f"{report['params']:,} ({report['params_trainable']:,} trainable)"),
    ]  # fmt: skip
    weights = report.get("weights")
    if weights:
        fix = "; ImageNet std-in-variance slot corrected" if weights["stddev_fix"] else ""
        loaded = f"{weights['tensors_loaded']} tensors from {weights['path']} ({weights['layout']})"
        rows.append(("weights", loaded + fix))
    else:
        seed = report.get("seed")
        rows.append(("weights", "random" + (f" (seed {seed})" if seed is not None else "")))
    rows.append(("build time", f"{report['build_s']:.2f} s"))
    output = report.get("output")
    if output:
        rows.append(("written", f"{output['path']} ({output['format']}, {size(output['bytes'])})"))
    _pairs(out(), rows)


# ---------------------------------------------------------------------------- scale-table


def scale_documents(rows: list[C.ScaleRow], origin: C.Costs) -> list[dict[str, Any]]:
    """Flat rows of raw numbers (CSV-ready); ratios are to `origin`, the family's φ = 0 member."""
    documents = []
    for row in rows:
        spec, costs = row.released, row.released_costs
        published = S.PUBLISHED.get(spec.base) if spec else None
        doc: dict[str, Any] = dict.fromkeys(SCALE_COLUMNS)
        doc.update(name=spec.name if spec else None, phi=row.phi)
        if spec is not None and costs is not None:
            doc.update(
                width=spec.width, depth=spec.depth, resolution=spec.resolution,
                dropout=spec.dropout, params=costs.params,
                params_trainable=costs.params_trainable, macs=costs.macs,
                peak_activation_bytes=costs.peak_activation_bytes,
            )  # fmt: skip
            doc.update(
                params_ratio=costs.params / origin.params, macs_ratio=costs.macs / origin.macs
            )
        if published is not None:
            doc.update(
                published_params=published.params and int(published.params),
                published_macs=published.macs and int(published.macs),
                published_top1=published.top1,
                published_train_resolution=published.train_resolution,
                published_dropout=published.dropout,
            )
        if row.rule is not None and row.rule_costs is not None:
            doc.update(
                rule_width=row.rule.width, rule_depth=row.rule.depth,
                rule_resolution=row.rule.resolution, rule_params=row.rule_costs.params,
                rule_macs=row.rule_costs.macs,
            )  # fmt: skip
        documents.append(doc)
    return documents


def rule_document(alpha: float, beta: float, gamma: float) -> dict[str, float | str]:
    return {
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "alpha_beta2_gamma2": alpha * beta**2 * gamma**2,
        "resolution_rounding": "224 * gamma**phi to the nearest integer",
    }


def rule_footer(alpha: float, beta: float, gamma: float) -> str:
    product = alpha * beta**2 * gamma**2
    return (
        f"compound rule: depth = {alpha:g}^φ, width = {beta:g}^φ, resolution = 224·{gamma:g}^φ "
        f"(nearest integer); α·β²·γ² = {product:.3f}. Widths then round to multiples of 8 "
        "(V1: never below 90 %; V2: to the nearest), repeats round up."
    )


def scale_notes(documents: list[dict[str, Any]]) -> list[str]:
    """What the rows need said beside them: members off the rule, V2's two resolutions and two
    dropouts. Only the notes that the rows shown need."""
    notes = []
    off_rule = [d["name"] for d in documents if d["name"] and d["rule_params"] is None]
    if off_rule:
        notes.append(
            f"{', '.join(off_rule)}: no compound rule (scaled by hand, not from a φ = 0 member), "
            "so no rule columns; ratios are to the family's first member."
        )
    if any(d["published_train_resolution"] for d in documents):
        notes.append(
            "res: the default input size, which is the official evaluation size; train res: the "
            "size official training ended at (EfficientNetV2's progressive learning)."
        )
    if any(d["published_dropout"] not in (None, d["dropout"]) for d in documents):
        notes.append(
            "dropout: the rate the model is built with (keras.applications builds every V2 with "
            "0.2; --dropout changes it); official dropout: automl's training configuration."
        )
    return notes


SCALE_TABLE = (
    Column("model", "name", left=True),
    Column("φ", "phi"),
    Column("width", "width", "coef", priority=2),
    Column("depth", "depth", "coef", priority=2),
    Column("res", "resolution"),
    Column("train res", "published_train_resolution", priority=3),
    Column("dropout", "dropout", priority=6),
    Column("official dropout", "published_dropout", priority=6),
    Column("params", "params", "count"),
    Column("trainable", "params_trainable", "count", priority=9, in_table=False),
    Column("MACs", "macs", "count"),
    Column("act. peak", "peak_activation_bytes", "bytes", priority=5),
    Column("params ×φ0", "params_ratio", "ratio", priority=4),
    Column("MACs ×φ0", "macs_ratio", "ratio", priority=4),
    Column("paper params", "published_params", "count", priority=3),
    Column("paper MACs", "published_macs", "count", priority=3),
    Column("top-1 %", "published_top1", priority=2),
    Column("rule width", "rule_width", "coef", priority=7),
    Column("rule depth", "rule_depth", "coef", priority=7),
    Column("rule res", "rule_resolution", priority=7),
    Column("rule params", "rule_params", "count", priority=5),
    Column("rule MACs", "rule_macs", "count", priority=5),
)  # fmt: skip
SCALE_COLUMNS = tuple(c.key for c in SCALE_TABLE)  # the CSV's and the JSON rows' fields


def print_scale_table(documents: list[dict[str, Any]], footer: str, fmt: str) -> None:
    if fmt == "csv":
        sys.stdout.write(columns_csv(SCALE_TABLE, documents))
        sys.stdout.flush()
        return
    if fmt == "markdown":
        sys.stdout.write(columns_markdown(SCALE_TABLE, documents) + f"\n{footer}\n")
        sys.stdout.flush()
        return
    console = out()
    print_columns(console, None, SCALE_TABLE, documents)
    console.print(footer, markup=False)


def plot_scale(families: Mapping[str, list[dict[str, Any]]], path: Any) -> None:
    """Params and MACs against φ (log scale): released members and the compound rule per family,
    in the spirit of the paper's Figure 1, labelled with the published top-1."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs")):
        for family, documents in families.items():
            released = [d for d in documents if d[key] is not None and d["phi"] is not None]
            axis.plot([d["phi"] for d in released], [d[key] for d in released], "o-",
                      label=f"{family}: released coefficients")  # fmt: skip
            ruled = [d for d in documents if d[f"rule_{key}"] is not None]
            axis.plot([d["phi"] for d in ruled], [d[f"rule_{key}"] for d in ruled], "s--",
                      label=f"{family}: compound rule")  # fmt: skip
            for d in released:
                if d["published_top1"] is not None:
                    axis.annotate(f"{d['published_top1']}%", (d["phi"], d[key]), fontsize=8,
                                  textcoords="offset points", xytext=(4, -12))  # fmt: skip
        axis.set_yscale("log")
        axis.set_xlabel("φ (compound coefficient)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("EfficientNet cost against φ (labels: published ImageNet top-1 %)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- export


def export_documents(artifacts: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "format": a.target.backend,
            "path": str(a.target.path),
            "precision": a.target.precision,
            "bytes": a.bytes,
            "time_s": a.seconds,
            "kept": a.kept,
            "verification": None if a.verification is None else vars(a.verification),
            "real_images": a.real_images,
        }
        for a in artifacts
    ]


def _checked(text: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """A verification figure, or '–' for an artifact that was not verified."""
    return lambda doc: "–" if doc["verification"] is None else text(doc["verification"])


EXPORT_TABLE = (
    Column("format", "format", left=True),
    Column("path", "path", left=True, wrap=True,
           show=lambda d: d["path"] + ("" if d["kept"] else " (removed)")),
    Column("precision", "precision", left=True, priority=2),
    Column("size", "bytes", "bytes"),
    Column("time", "time_s", "f1", unit="s", priority=3),
    Column("drift", "max_rel_diff", priority=2, show=_checked(
        lambda v: _gated(f"{v['max_rel_diff']:.1e}", v["tolerance"]))),
    Column("top-1", "top1_agreement", priority=2, show=_checked(
        lambda v: _gated(f"{v['top1_agreement']:.0%}", v["min_top1_agreement"] or None, "≥", "%"))),
    Column("verified", "passed", show=lambda d: "skipped" if d["verification"] is None else (
        "yes" if d["verification"]["passed"] else "FAILED")),
)  # fmt: skip


def export_result(model: Mapping[str, Any], artifacts: Sequence[Any], as_json: bool) -> None:
    documents = export_documents(artifacts)
    if as_json:
        emit_json("export", {"model": model, "artifacts": documents})
        return
    print_columns(out(), model["name"], EXPORT_TABLE, documents)
    compared = {d["verification"]["compared"] for d in documents if d["verification"]}
    sizes = sorted({n for d in documents if d["verification"] for n in d["verification"]["sizes"]})
    at = f" at {' and '.join(f'{n}×{n}' for n in sizes)}" if len(sizes) > 1 else ""
    for what in sorted(compared):
        note(f"drift: max |Δ| / max |Keras| of the {what}, on seeded random images{at}")
    print_real_image_agreement(documents)


def _gated(value: str, limit: float | None, relation: str = "≤", unit: str = "") -> str:
    """A verification figure beside the limit it had to meet, if it had one."""
    if limit is None:
        return value
    shown = f"{limit:.0%}" if unit == "%" else f"{limit:g}"
    return f"{value} {relation} {shown}"


# ---------------------------------------------------------------------------- inspect


TENSOR_TABLE = (
    Column("", "role", left=True),
    Column("name", "name", left=True, wrap=True),
    Column("shape", "shape", show=lambda t: "×".join("?" if d is None else str(d)
                                                     for d in t["shape"])),
    Column("dtype", "dtype"),
)  # fmt: skip
OPS_TABLE = (Column("op", "op", left=True), Column("count", "count"))


FITS_TABLE = (
    Column("model", "model", left=True),
    Column("head", "include_top", left=True,
           show=lambda f: f"classifier, {f['classes']} classes" if f["include_top"] else "none"),
    Column("preprocessing", "preprocessing", "yes", left=True),
)  # fmt: skip


def _meta(value: Any) -> str:
    if isinstance(value, list):
        return "×".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_inspect(doc: Mapping[str, Any]) -> None:
    console = out()
    keras = doc.get("metadata", {}).get("keras_params")
    beside = f"; Keras count_params: {keras:,}" if isinstance(keras, int) else ""
    pairs = [("file", f"{doc['path']} ({doc['format']}, {size(doc['bytes'])})"),
             ("params", f"{doc['params']:,} ({doc['params_counted']}{beside})")]  # fmt: skip
    pairs += [(key, _meta(value)) for key, value in doc.get("metadata", {}).items()]
    _pairs(console, pairs)
    if "fits" in doc:  # a weights file: what it fits instead of tensors and ops
        print_columns(console, "fits", FITS_TABLE, doc["fits"])
        if not doc["fits"]:
            console.print("fits no effnet variant (any head, any class count)", markup=False)
        return
    tensors = [{"role": role[:-1], **t} for role in ("inputs", "outputs") for t in doc[role]]
    print_columns(console, None, TENSOR_TABLE, tensors)
    ops = [{"op": op, "count": number} for op, number in doc["ops"].items()]
    print_columns(console, "ops", OPS_TABLE, ops)


# ---------------------------------------------------------------------------- doctor


PACKAGE_TABLE = (
    Column("package", "name", left=True),
    Column("version", "version", left=True, show=lambda p: p["version"] or (
        "MISSING" if p["required"] else "not installed")),
    Column("needed for", "purpose", left=True, wrap=True),
)  # fmt: skip


def print_doctor(report: Mapping[str, Any]) -> None:
    console = out()
    print_columns(console, None, PACKAGE_TABLE, report["packages"])
    console.print(f"python {report['python']} · {report['platform']}", markup=False)
    console.print(f"CPU: {report.get('cpu', '?')} ({report['cpu_count']} cores)", markup=False)
    console.print(
        f"GPUs visible to TensorFlow: {', '.join(report['gpus']) or 'none'}", markup=False
    )
    providers = ", ".join(report["onnxruntime_providers"]) or "–"
    console.print(f"onnxruntime providers: {providers}", markup=False)
    for backend in report["backends"]:
        ways = ", ".join(f"{p} ({how})" for p, how in backend["precisions"].items())
        console.print(f"backend {backend['name']}: {backend['summary']}; {ways}", markup=False)
    for problem in report["incompatible"]:
        console.print(f"incompatible: {problem}", markup=False)
    if report["missing"]:
        console.print(f"missing: {', '.join(report['missing'])}", markup=False)
    console.print("ok" if report["ok"] else "not ok", markup=False)


# ---------------------------------------------------------------------------- predict


def _prediction_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (image, rank): the table's, the CSV's."""
    return [
        {"path": image["path"], "rank": entry["rank"], "class": entry["class"],
         "label": entry["label"] or "", "probability": entry["probability"]}
        for image in result["images"]
        for entry in image["top"]
    ]  # fmt: skip


PREDICT_TABLE = (
    Column("image", "path", left=True, wrap=True,
           show=lambda r: r["path"] if r["rank"] == 1 else ""),  # named on its first row
    Column("rank", "rank"),
    Column("class", "class"),
    Column("probability", "probability", "f4"),
    Column("label", "label", left=True, wrap=True, priority=2),
)  # fmt: skip


def print_predict(result: Mapping[str, Any]) -> None:
    """One table: each image's top classes."""
    print_columns(out(), None, PREDICT_TABLE, _prediction_rows(result))


def predict_csv(result: Mapping[str, Any]) -> str:
    return columns_csv(PREDICT_TABLE, _prediction_rows(result))


def _overlap_key(row: Mapping[str, Any]) -> str:
    """'top5_overlap' (or top-k's, when --top gives another k)."""
    return next(k for k in row if k.startswith("top") and k.endswith("_overlap"))


def _agreement_columns(k: str) -> tuple[Column, ...]:
    return (
        Column("top-1 agree", "top1_agreement", "pct"),
        Column(f"top-{k} overlap", f"top{k}_overlap", "pct"),
        Column("max |Δ prob|", "max_abs_diff_prob", "sci", priority=2),
    )


def print_compare(result: Mapping[str, Any]) -> None:
    """Each artifact against the first (the reference) on the same images."""
    rows = result["rows"]
    k = _overlap_key(rows[0]).removeprefix("top").removesuffix("_overlap")
    columns = (
        Column("artifact", "path", left=True, wrap=True),
        Column("runtime", "runtime", left=True),
        Column("precision", "precision", left=True),
        Column("size", "resolution", unit="px", priority=3, show=lambda r: str(r["resolution"][0])),
        *_agreement_columns(k),
    )
    title = f"{result['images']} images · against {result['reference']}"
    print_columns(out(), title, columns, rows)


def compare_csv(result: Mapping[str, Any]) -> str:
    import csv

    rows = result["rows"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def print_real_image_agreement(documents: Sequence[Mapping[str, Any]]) -> None:
    """`export --verify-images`: each artifact against Keras on real images (reported)."""
    rows = [{**d, **d["real_images"]} for d in documents if d.get("real_images")]
    if not rows:
        return
    k = _overlap_key(rows[0]["real_images"]).removeprefix("top").removesuffix("_overlap")
    columns = (
        Column("format", "format", left=True),
        Column("path", "path", left=True, wrap=True, priority=2),
        Column("precision", "precision", left=True),
        *_agreement_columns(k),
    )
    title = f"real images ({rows[0]['images']}), against Keras: reported, not gated"
    print_columns(out(), title, columns, rows)
