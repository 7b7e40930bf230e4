"""`effnet export`: each artifact written, its size and its verification."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, print_columns
from effnet_cli.output.views.predict import agreement_columns, overlap_k


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
    Column("path", "path", left=True, wrap=True, path=True,
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


def view(sink: Sink, document: Mapping[str, Any]) -> None:
    """The artifacts' table, what drift measured, and agreement on real images if asked."""
    documents = document["artifacts"]
    print_columns(sink.out(), document["model"]["name"], EXPORT_TABLE, documents)
    compared = {d["verification"]["compared"] for d in documents if d["verification"]}
    sizes = sorted({n for d in documents if d["verification"] for n in d["verification"]["sizes"]})
    at = f" at {' and '.join(f'{n}×{n}' for n in sizes)}" if len(sizes) > 1 else ""
    for what in sorted(compared):
        sink.note(f"drift: max |Δ| / max |Keras| of the {what}, on seeded random images{at}")
    real_image_view(sink, documents)


def _gated(value: str, limit: float | None, relation: str = "≤", unit: str = "") -> str:
    """A verification figure beside the limit it had to meet, if it had one."""
    if limit is None:
        return value
    shown = f"{limit:.0%}" if unit == "%" else f"{limit:g}"
    return f"{value} {relation} {shown}"


def real_image_view(sink: Sink, documents: Sequence[Mapping[str, Any]]) -> None:
    """`export --verify-images`: each artifact against Keras on real images (reported)."""
    rows = [{**d, **d["real_images"]} for d in documents if d.get("real_images")]
    if not rows:
        return
    k = overlap_k(rows[0]["real_images"])
    columns = (
        Column("format", "format", left=True),
        Column("path", "path", left=True, wrap=True, path=True, priority=2),
        Column("precision", "precision", left=True),
        *agreement_columns(k),
    )
    title = f"real images ({rows[0]['images']}), against Keras: reported, not gated"
    print_columns(sink.out(), title, columns, rows)
