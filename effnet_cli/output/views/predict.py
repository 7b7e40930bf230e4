"""`effnet predict`: each image's top classes; with --compare, each artifact's agreement."""

from __future__ import annotations

import io

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, columns_csv, pairs, print_columns
from effnet_cli.records.predict import (
    CompareResult,
    OutputFile,
    PredictResult,
    RunSummary,
)

Cell = str | int | float | None


def prediction_rows(result: PredictResult) -> list[dict[str, Cell]]:
    """One row per (image, rank): the table's, the CSV's; an image that failed, one row that
    says why."""
    rows: list[dict[str, Cell]] = []
    for image in result.images:
        if image.error is not None:
            rows.append(
                {
                    "path": image.path,
                    "rank": 1,
                    "class": None,
                    "label": f"error: {image.error}",
                    "probability": None,
                }
            )
        rows += [
            {
                "path": image.path,
                "rank": entry.rank,
                "class": entry.class_,
                "label": entry.label or "",
                "probability": entry.probability,
            }
            for entry in image.top
        ]
    return rows


PREDICT_TABLE = (
    Column("image", "path", left=True, wrap=True, path=True,
           show=lambda r: r["path"] if r["rank"] == 1 else ""),  # named on its first row
    Column("rank", "rank"),
    Column("class", "class"),
    Column("probability", "probability", "f4"),
    Column("label", "label", left=True, wrap=True, priority=2),
)  # fmt: skip


def view(sink: Sink, result: PredictResult) -> None:
    """One table: each image's top classes."""
    print_columns(sink.out(), None, PREDICT_TABLE, prediction_rows(result))


def summary_view(sink: Sink, result: PredictResult) -> None:
    """A run whose rows went to --output: what it did, in a few lines."""
    run_summary(sink, result.run, result.output)


def run_summary(sink: Sink, run: RunSummary, output: OutputFile | None) -> None:
    """predict's and evaluate's summary of a run over many images, in three lines."""
    counted = f"{run.images:,}: {run.classified:,} classified, {run.failed:,} failed"
    first = run.first_error
    if first:
        counted += f" (first: {first.path}: {first.error})"
    if run.skipped:
        counted += f"; {run.skipped:,} already in the output, skipped"
    lines = [("images", counted)]
    if output is not None:
        lines.append(("output", f"{output.path} ({output.format})"))
    lines.append(("speed", f"{_speed(run)} · {_engine(run)}"))
    pairs(sink.out(), lines)


def _speed(run: RunSummary) -> str:
    if run.images == run.skipped:
        return "nothing left to classify"
    return f"{run.images_per_s:.1f} images/s ({run.wall_s:.1f} s)"


def _engine(run: RunSummary) -> str:
    workers = run.workers
    if run.engine == "ray":
        return f"Ray ({run.where}), {workers} actor{'s' if workers > 1 else ''}"
    said = f"local engine, {workers} decoding worker{'s' if workers > 1 else ''}"
    if run.decode_s is not None and run.wall_s > 0 and run.images > run.skipped:
        said += f" {run.decode_s / (workers * run.wall_s):.0%} busy"
    return said


def predict_csv(result: PredictResult) -> str:
    return columns_csv(PREDICT_TABLE, prediction_rows(result))


def agreement_columns(k: int) -> tuple[Column, ...]:
    return (
        Column("top-1 agree", "top1_agreement", "pct"),
        Column(f"top-{k} overlap", f"top{k}_overlap", "pct"),
        Column("max |Δ prob|", "max_abs_diff_prob", "sci", priority=2),
    )


def compare_view(sink: Sink, result: CompareResult) -> None:
    """Each artifact against the first (the reference) on the same images; the table's rows
    are the rows' JSON documents (their keys are the columns')."""
    columns = (
        Column("artifact", "path", left=True, wrap=True, path=True),
        Column("runtime", "runtime", left=True),
        Column("precision", "precision", left=True),
        Column("size", "resolution", unit="px", priority=3, show=lambda r: str(r["resolution"][0])),
        *agreement_columns(result.rows[0].k),
    )
    title = f"{result.images} images · against {result.reference}"
    print_columns(sink.out(), title, columns, [row.to_json() for row in result.rows])


def compare_csv(result: CompareResult) -> str:
    import csv

    rows = [row.to_json() for row in result.rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
