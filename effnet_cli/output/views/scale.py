"""`effnet scale-table`: released coefficients beside the compound rule (table, CSV, markdown)."""

from __future__ import annotations

from collections.abc import Sequence

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, columns_csv, columns_markdown, print_columns
from effnet_cli.records.scale import ScaleRow, ScaleTable


def rule_footer(alpha: float, beta: float, gamma: float) -> str:
    product = alpha * beta**2 * gamma**2
    return (
        f"compound rule: depth = {alpha:g}^φ, width = {beta:g}^φ, resolution = 224·{gamma:g}^φ "
        f"(nearest integer); α·β²·γ² = {product:.3f}. Widths then round to multiples of 8 "
        "(V1: never below 90 %; V2: to the nearest), repeats round up."
    )


def scale_notes(rows: Sequence[ScaleRow]) -> list[str]:
    """What the rows need said beside them: members off the rule, V2's two resolutions and two
    dropouts. Only the notes that the rows shown need."""
    notes = []
    off_rule = [r.name for r in rows if r.name and r.rule_params is None]
    if off_rule:
        notes.append(
            f"{', '.join(off_rule)}: no compound rule (scaled by hand, not from a φ = 0 member), "
            "so no rule columns; ratios are to the family's first member."
        )
    if any(r.published_train_resolution for r in rows):
        notes.append(
            "res: the default input size, which is the official evaluation size; train res: the "
            "size official training ended at (EfficientNetV2's progressive learning)."
        )
    if any(r.published_dropout not in (None, r.dropout) for r in rows):
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


def view(sink: Sink, table: ScaleTable) -> None:
    """The rows as the sink's format asks (a table, CSV or markdown), then the rule and notes."""
    rows, fmt = [row.to_json() for row in table.rows], sink.settings.format
    footer = "\n".join([rule_footer(table.alpha, table.beta, table.gamma), *table.notes])
    if fmt == "csv":
        sink.write(columns_csv(SCALE_TABLE, rows))
    elif fmt == "markdown":
        sink.write(columns_markdown(SCALE_TABLE, rows) + f"\n{footer}\n")
    else:
        console = sink.out()
        print_columns(console, None, SCALE_TABLE, rows)
        console.print(footer, markup=False)
