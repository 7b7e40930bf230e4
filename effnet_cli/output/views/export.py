"""`effnet export`: each artifact written, its size and its verification: drift on seeded random
images, and agreement with Keras on real images (the accuracy gate of reduced precisions)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from effnet_cli import samples
from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, print_columns
from effnet_cli.records.export import Artifact, ExportResult, RecipeAttempt, Verification


def _checked(text: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """A verification figure, or '–' for an artifact that was not verified."""
    return lambda doc: "–" if doc["verification"] is None else text(doc["verification"])


def _accuracy(text: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """A figure on real images: '–' where none was measured, 'not judged' where it was
    reported for a model that has no accuracy to keep."""

    def show(doc: Mapping[str, Any]) -> str:
        accuracy = (doc["verification"] or {}).get("accuracy")
        if accuracy is None:
            return "–"
        if not accuracy["images"]:
            return "not judged"
        return text(accuracy)

    return show


def _percent(key: str, limit: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda a: _gated(f"{a[key]:.0%}", a[limit], "≥", "%")


def _sqnr(accuracy: Mapping[str, Any]) -> str:
    value = "equal" if accuracy["sqnr_db"] is None else f"{accuracy['sqnr_db']:.1f}"
    return _gated(value, accuracy["min_sqnr_db"], "≥")


EXPORT_TABLE = (
    Column("format", "format", left=True),
    Column("path", "path", left=True, wrap=True, path=True,
           show=lambda d: d["path"] + ("" if d["kept"] else " (removed)")),
    Column("precision", "precision", left=True, priority=2),
    Column("size", "bytes", "bytes"),
    Column("time", "time_s", "f1", unit="s", priority=3),
    Column("drift", "max_rel_diff", priority=2, show=_checked(
        lambda v: "not finite" if v["non_finite"] else _gated(f"{v['max_rel_diff']:.1e}",
                                                              v["tolerance"]))),
    Column("top-1", "top1_agreement", priority=2,
           show=_accuracy(_percent("top1_agreement", "min_top1_agreement"))),
    Column("top-5", "top5_overlap", priority=3,
           show=_accuracy(_percent("top5_overlap", "min_top5_overlap"))),
    Column("SQNR", "sqnr_db", unit="dB", priority=3, show=_accuracy(_sqnr)),
    Column("verified", "passed", show=lambda d: "skipped" if d["verification"] is None else (
        "yes" if d["verification"]["passed"] else "FAILED")),
)  # fmt: skip


def view(sink: Sink, result: ExportResult) -> None:
    """The artifacts' table, and what each gate was judged on."""
    rows = [artifact.to_json() for artifact in result.artifacts]  # the columns read JSON keys
    print_columns(sink.out(), result.model.name, EXPORT_TABLE, rows)
    verified = [a.verification for a in result.artifacts if a.verification]
    if verified:
        first = verified[0]
        sizes = sorted({n for v in verified for n in v.sizes})
        at = f" at {' and '.join(f'{n}×{n}' for n in sizes)}" if len(sizes) > 1 else ""
        sink.note(
            f"drift: max |Δ| / max |Keras| of the {first.compared}, on "
            f"{first.drift_images} seeded random images{at}"
        )
    for line in accuracy_notes(verified):
        sink.note(line)
    calibrated = next((a.calibration for a in result.artifacts if a.calibration), None)
    if calibrated:
        sink.note(
            f"int8 calibrated on {calibrated.images} images: {calibrated.source}"
            + (
                " (your own images calibrate better: --calibration DIR)"
                if calibrated.source == samples.CALIBRATION_VIEWS
                else ""
            )
        )
    for line in recipe_notes(result.artifacts):
        sink.note(line)


def recipe_notes(artifacts: Sequence[Artifact]) -> list[str]:
    """For each int8 file that was repaired, or written with another recipe than the default:
    which recipe it took, what that did, and what each recipe tried before reached."""
    lines = []
    for artifact in artifacts:
        int8 = artifact.int8
        if int8 is None or (int8.recipe == "default" and len(int8.tried) == 1):
            continue
        earlier = [_attempt(t) for t in int8.tried[:-1]]
        passed = int8.figures.passed if int8.figures else None
        taken = "took" if passed is not False else "ended with"
        lines.append(
            f"{artifact.path.name}: {taken} int8 recipe {_attempt(int8)}"
            + (f", after {'; '.join(earlier)}" if earlier else "")
        )
    return lines


def _attempt(attempt: RecipeAttempt) -> str:
    """'keep-float (24 of 66 layers in float: top-1 88%, top-5 93%, 14.2 dB)'."""
    figures = []
    if attempt.float_layers is not None:
        figures.append(f"{attempt.float_layers} of {attempt.layers} layers in float")
    measured = attempt.figures
    if measured is not None:
        sqnr = "equal" if measured.sqnr_db is None else f"{measured.sqnr_db:.1f} dB"
        figures.append(
            f"top-1 {measured.top1_agreement:.0%}, top-5 {measured.top5_overlap:.0%}, {sqnr}"
        )
    return attempt.recipe + (f" ({': '.join(figures)})" if figures else "")


def accuracy_notes(verified: Sequence[Verification]) -> list[str]:
    """What top-1, top-5 and SQNR were measured on, and why some were not judged."""
    accuracies = [v.accuracy for v in verified if v.accuracy]
    lines = []
    measured = next((a for a in accuracies if a.images), None)
    if measured:
        gated = any(a.passed is not None for a in accuracies)
        verdict = "gated where a limit is shown" if gated else "reported"
        lines.append(
            f"top-1, top-5, SQNR: agreement with Keras fp32 on {measured.images} "
            f"real images ({measured.judged_on}); {verdict}"
        )
    reasons = sorted({a.not_judged for a in accuracies if a.not_judged})
    for reason in reasons:
        lines.append(
            f"accuracy not judged: {reason}"
            + (
                " (no accuracy to keep; the files ran with the right shapes)"
                if reason == "random weights"
                else ""
            )
        )
    return lines


def _gated(value: str, limit: float | None, relation: str = "≤", unit: str = "") -> str:
    """A verification figure beside the limit it had to meet, if it had one."""
    if limit is None:
        return value
    shown = f"{limit:.0%}" if unit == "%" else f"{limit:g}"
    return f"{value} {relation} {shown}"
