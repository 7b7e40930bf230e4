"""`effnet evaluate`'s view: one column table (output/table.py's mechanism), its CSV from the same
columns. Accuracies are fractions in JSON and CSV, percentages in the table."""

from __future__ import annotations

from effnet_cli.output.sink import current
from effnet_cli.output.table import Column, columns_csv, print_columns
from effnet_cli.records.evaluate import EvaluateResult


def _percent(key: str) -> Column:
    return Column(
        key[:4].replace("top", "top-"), key, unit="%", show=lambda row: f"{100 * row[key]:.2f}"
    )


def _points(key: str, priority: int = 1) -> Column:
    header = "Δ " + key[:4].replace("top", "top-")  # the drop: positive is worse
    return Column(header, key, unit="pts", priority=priority, show=lambda row: f"{row[key]:.2f}")


EVALUATE_TABLE = (
    Column("artifact", "path", left=True, wrap=True),
    Column("runtime", "runtime", left=True, priority=2),
    Column("precision", "precision", left=True),
    Column("size", "resolution", unit="px", priority=3, show=lambda r: str(r["resolution"][0])),
    Column("images", "images", in_table=False),
    Column("top-1 right", "top1_correct", in_table=False),
    Column("top-5 right", "top5_correct", in_table=False),
    _percent("top1_accuracy"),
    _percent("top5_accuracy"),
    _points("top1_drop_points"),
    _points("top5_drop_points", priority=2),
    Column("time", "inference_s", "f1", unit="s", priority=3),
)


def title(result: EvaluateResult) -> str:
    truth = result.truth
    labelled = (
        f"{truth.naming} folders in {truth.path}"
        if truth.source == "folders"
        else f"labels from {truth.path}"
    )
    line = f"{truth.images} images of {truth.classes} classes ({labelled})"
    if len(result.rows) > 1:
        line += f" · drop against {result.reference}"
    return line


def print_evaluate(result: EvaluateResult) -> None:
    """The table (its rows: the rows' JSON documents, whose keys are the columns'); one
    artifact alone has no drop to show (its JSON and CSV say 0.0)."""
    rows = result.rows
    columns = [c for c in EVALUATE_TABLE if len(rows) > 1 or not c.key.endswith("_drop_points")]
    print_columns(current().out(), title(result), columns, [row.to_json() for row in rows])


def evaluate_csv(result: EvaluateResult) -> str:
    return columns_csv(EVALUATE_TABLE, [row.to_json() for row in result.rows])
