"""`effnet predict`: each image's top classes; with --compare, each artifact's agreement."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, columns_csv, pairs, print_columns


def prediction_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (image, rank): the table's, the CSV's; an image that failed, one row that
    says why."""
    rows = []
    for image in result["images"]:
        if "error" in image:
            rows.append(
                {
                    "path": image["path"],
                    "rank": 1,
                    "class": None,
                    "label": f"error: {image['error']}",
                    "probability": None,
                }
            )
        rows += [
            {
                "path": image["path"],
                "rank": entry["rank"],
                "class": entry["class"],
                "label": entry["label"] or "",
                "probability": entry["probability"],
            }
            for entry in image["top"]
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


def view(sink: Sink, result: Mapping[str, Any]) -> None:
    """One table: each image's top classes."""
    print_columns(sink.out(), None, PREDICT_TABLE, prediction_rows(result))


def summary_view(sink: Sink, result: Mapping[str, Any]) -> None:
    """A run whose rows went to --output: what it did, in a few lines."""
    run_summary(sink, result["run"], result["output"])


def run_summary(sink: Sink, run: Mapping[str, Any], output: Mapping[str, Any] | None) -> None:
    """predict's and evaluate's summary of a run over many images, in three lines."""
    counted = f"{run['images']:,}: {run['classified']:,} classified, {run['failed']:,} failed"
    first = run["first_error"]
    if first:
        counted += f" (first: {first['path']}: {first['error']})"
    if run["skipped"]:
        counted += f"; {run['skipped']:,} already in the output, skipped"
    lines = [("images", counted)]
    if output is not None:
        lines.append(("output", f"{output['path']} ({output['format']})"))
    lines.append(("speed", f"{_speed(run)} · {_engine(run)}"))
    pairs(sink.out(), lines)


def _speed(run: Mapping[str, Any]) -> str:
    if run["images"] == run["skipped"]:
        return "nothing left to classify"
    return f"{run['images_per_s']:.1f} images/s ({run['wall_s']:.1f} s)"


def _engine(run: Mapping[str, Any]) -> str:
    workers = run["workers"]
    if run["engine"] == "ray":
        return f"Ray ({run['where']}), {workers} actor{'s' if workers > 1 else ''}"
    said = f"local engine, {workers} decoding worker{'s' if workers > 1 else ''}"
    if run.get("decode_s") is not None and run["wall_s"] > 0 and run["images"] > run["skipped"]:
        said += f" {run['decode_s'] / (workers * run['wall_s']):.0%} busy"
    return said


def predict_csv(result: Mapping[str, Any]) -> str:
    return columns_csv(PREDICT_TABLE, prediction_rows(result))


def overlap_k(row: Mapping[str, Any]) -> str:
    """'5' of 'top5_overlap' (or top-k's, when --top gives another k)."""
    key = next(k for k in row if k.startswith("top") and k.endswith("_overlap"))
    return key.removeprefix("top").removesuffix("_overlap")


def agreement_columns(k: str) -> tuple[Column, ...]:
    return (
        Column("top-1 agree", "top1_agreement", "pct"),
        Column(f"top-{k} overlap", f"top{k}_overlap", "pct"),
        Column("max |Δ prob|", "max_abs_diff_prob", "sci", priority=2),
    )


def compare_view(sink: Sink, result: Mapping[str, Any]) -> None:
    """Each artifact against the first (the reference) on the same images."""
    rows = result["rows"]
    k = overlap_k(rows[0])
    columns = (
        Column("artifact", "path", left=True, wrap=True, path=True),
        Column("runtime", "runtime", left=True),
        Column("precision", "precision", left=True),
        Column("size", "resolution", unit="px", priority=3, show=lambda r: str(r["resolution"][0])),
        *agreement_columns(k),
    )
    title = f"{result['images']} images · against {result['reference']}"
    print_columns(sink.out(), title, columns, rows)


def compare_csv(result: Mapping[str, Any]) -> str:
    import csv

    rows = result["rows"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
