"""`effnet predict`: classify images with a model or any artifact, and compare artifacts.

Loading and running an artifact on images is classify.py's (export verifies on real images with
it too); this module is predict's requests and results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet_cli.model import spec as S
from effnet_cli.util import images
from effnet_cli.util.drift import top_k
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows.classify import (
    Loaded,
    Note,
    agreement,
    load_artifact,
    load_built,
    probabilities,
)

__all__ = ["Loaded", "load_artifact", "load_built", "probabilities"]  # what the command runs


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


def predictions(
    paths: list[Path], probs: Any, top: int, labels: list[str] | None
) -> list[dict[str, Any]]:
    """One document per image: its path and its top classes."""
    best = top_k(probs, min(top, probs.shape[1]))
    return [
        {
            "path": str(path),
            "top": [
                {
                    "rank": rank + 1,
                    "class": int(index),
                    "label": labels[index] if labels else None,
                    "probability": float(probs[row, index]),
                }
                for rank, index in enumerate(best[row])
            ],
        }
        for row, path in enumerate(paths)
    ]


def compare(loaded: list[Loaded], paths: list[Path], resize: str, note: Note) -> dict[str, Any]:
    """Every artifact on the same images (each at its own resolution), against the first."""
    if len(loaded) < 2:
        raise UsageError("--compare needs at least two artifacts; the first is the reference")
    results = []
    reference = None
    batches: dict[int, Any] = {}  # decoded once per resolution, not once per artifact
    for item in loaded:
        size = item.contract.resolution
        if size not in batches:
            batches[size] = images.load_batch(paths, size, resize, note)
        probs = probabilities(item, batches[size])
        if reference is None:
            reference = probs
        elif probs.shape != reference.shape:
            raise UsageError(
                f"{item.label} has {probs.shape[1]} classes and {loaded[0].label} "
                f"{reference.shape[1]}: they cannot be compared"
            )
        results.append({
            "path": item.label, "runtime": item.runner.runtime,
            "precision": item.runner.precision, "resolution": [size, size],
            **agreement(reference, probs),
        })  # fmt: skip
    return {"images": len(paths), "reference": loaded[0].label, "rows": results}


def describe_run(loaded: Loaded, count: int, resize: str) -> str:
    """One line for stderr: what ran, on what, prepared how."""
    size = loaded.contract.resolution
    how = "centre crop (size/(size+32) of the shorter side)" if resize == "crop" else "plain"
    return (
        f"{loaded.label}: {loaded.runner.runtime} ({loaded.runner.provider}, "
        f"{loaded.runner.precision}) on {images.count_text(count)}, {how}, bicubic to "
        f"{size}×{size}"
    )
