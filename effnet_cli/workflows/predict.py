"""`effnet predict`: classify images with a model or any artifact, and compare artifacts.

Loading and running an artifact on images is classify.py's (export verifies on real images with
it too); this module is predict's requests and results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from effnet_cli.data import images
from effnet_cli.model import spec as S
from effnet_cli.records.predict import (
    CompareResult,
    CompareRow,
    Prediction,
    PredictResult,
    Ranked,
)
from effnet_cli.util.drift import NonFinite, non_finite
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows import engine, stream
from effnet_cli.workflows.classify import (
    Loaded,
    Note,
    agreement,
    head_classes,
    identity,
    load_artifact,
    load_built,
    probabilities,
)

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Images

__all__ = [
    "Loaded",
    "head_classes",
    "load_artifact",
    "load_built",
    "probabilities",
]  # what the command runs


def check_request(spec: S.ModelSpec | None, artifacts: list[Path], comparing: bool) -> None:
    """What can be refused before any model loads."""
    if spec is not None and not spec.include_top:
        raise UsageError("predict needs a classifier head; drop --no-top")
    if comparing and len(artifacts) < 2:
        raise UsageError(
            f"--compare needs at least two artifacts (the first is the reference), got "
            f"{len(artifacts)}",
            hint="--compare a.keras,b.onnx, or --from a.keras --compare b.onnx",
        )


def check_top(top: int) -> None:
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")


def job(
    item: Loaded,
    resize: str,
    top: int,
    labels: list[str] | None,
    threads: int | None,
    draft: bool,
    classes: int,
) -> stream.Job:
    """What the engines compute for each image."""
    names = tuple(labels) if labels else None
    size = item.contract.resolution
    return stream.Job(
        "predict", (item.label,), (size,), resize, min(top, classes), names, threads, draft
    )


def prediction(row: stream.Row, top: int) -> Prediction:
    """A kept row as its image's prediction: its top classes, or its error."""
    ranked = tuple(
        Ranked(
            rank=rank,
            class_=row[f"class_{rank}"],
            label=row[f"label_{rank}"],
            probability=row[f"probability_{rank}"],
        )
        for rank in range(1, top + 1)
        if row[f"class_{rank}"] is not None
    )
    return Prediction(path=row["path"], top=ranked, error=row["error"])


def result(
    item: Loaded,
    spec: S.ModelSpec | None,
    classes: int,
    work: stream.Job,
    outcome: engine.Outcome,
    output: Path | None,
) -> PredictResult:
    """predict's result: per image predictions where the rows were kept (no --output), and the
    run's counts."""
    runner = item.runner
    return PredictResult(
        model=identity(item, spec, classes),
        source=item.label,
        runtime=runner.runtime,
        provider=runner.provider,
        precision=runner.precision,
        resize=work.resize,
        images=tuple(prediction(row, work.top) for row in outcome.rows or ()),
        run=outcome.summary(),
        output=engine.output_file(output),
    )


def compare(loaded: list[Loaded], paths: list[Path], resize: str, note: Note) -> CompareResult:
    """Every artifact on the same images (each at its own resolution), against the first."""
    if len(loaded) < 2:
        raise UsageError("--compare needs at least two artifacts; the first is the reference")
    rows: list[CompareRow] = []
    reference = None
    batches: dict[int, Images] = {}  # decoded once per resolution, not once per artifact
    for item in loaded:
        size = item.contract.resolution
        if size not in batches:
            batches[size] = images.load_batch(paths, size, resize, note)
        probs = probabilities(item, batches[size])
        found = non_finite(probs)
        if found:  # no agreement can be read from NaN: that artifact is the error
            raise NonFinite(f"{item.label} answered {found} of {probs.size:,} probabilities")
        if reference is None:
            reference = probs
        elif probs.shape != reference.shape:
            raise UsageError(
                f"{item.label} has {probs.shape[1]} classes and {loaded[0].label} "
                f"{reference.shape[1]}: they cannot be compared"
            )
        agreed = agreement(reference, probs)
        rows.append(
            CompareRow(
                path=item.label,
                runtime=item.runner.runtime,
                precision=item.runner.precision,
                resolution=(size, size),
                top1_agreement=agreed.top1_agreement,
                top_k_overlap=agreed.top_k_overlap,
                max_abs_diff_prob=agreed.max_abs_diff_prob,
                k=agreed.k,
            )
        )
    return CompareResult(images=len(paths), reference=loaded[0].label, rows=tuple(rows))


def describe_run(loaded: Loaded, count: int, resize: str) -> str:
    """One line for stderr: what ran, on what, prepared how."""
    size = loaded.contract.resolution
    how = "centre crop (size/(size+32) of the shorter side)" if resize == "crop" else "plain"
    return (
        f"{loaded.label}: {loaded.runner.runtime} ({loaded.runner.provider}, "
        f"{loaded.runner.precision}) on {images.count_text(count)}, {how}, bicubic to "
        f"{size}×{size}"
    )
