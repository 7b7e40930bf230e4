"""What `effnet export` reports, as frozen records (the schema's `export` definition): each file
written, its size, its verification (drift on seeded random images, agreement with Keras on real
images) and, for int8, what it was calibrated on and which recipe wrote it.

An int8 recipe's attempt carries its agreement figures only where they were measured, but a
measured figure may itself be null (SQNR of equal logits, a verdict not judged): no omit rule of
records/base.py says that, so the attempt leaves its figures beside its own keys itself
(`RecipeAttempt.to_json`), and the records that hold one print it through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli.records.base import OMIT_NONE, Record
from effnet_cli.records.model import ModelIdentity


@dataclass(frozen=True, kw_only=True)
class Accuracy(Record):
    """Agreement with the float Keras model on real images (the gate of fp16, dynamic and
    int8 files on a trained model; reported for the rest): `--verify-images`, else the
    shipped photos. Not judged, with the reason, where the model has no accuracy to keep."""

    judged_on: str  # what the images are: "the shipped photos", or "--verify-images"
    images: int = 0
    top1_agreement: float | None = None
    top5_overlap: float | None = None
    sqnr_db: float | None = None  # None: equal logits, or not measured
    min_top1_agreement: float | None = None  # the gate's limits; None: reported, not gated
    min_top5_overlap: float | None = None
    min_sqnr_db: float | None = None
    passed: bool | None = None  # None: reported, or not judged
    not_judged: str | None = None  # why: "random weights", "no classifier head"


@dataclass(frozen=True, kw_only=True)
class Verification(Record):
    """A file run by its own runtime on the inputs the Keras model answered."""

    batches: tuple[int, ...]
    sizes: tuple[int, ...]  # input heights (= widths) verified: the resolution, one more if dynamic
    compared: str  # "logits" (the tensor before a softmax head) or the model's "outputs"
    max_rel_diff: float | None  # drift on seeded random images (the gate of fp32 and fp16
    top1_agreement: float | None  # files) and agreement there; None where `non_finite`
    tolerance: float | None
    min_top1_agreement: float | None = None  # always None: kept for effnet.export/1 readers
    passed: bool
    drift_images: int = 0  # random images the drift was measured on
    accuracy: Accuracy | None = None
    non_finite: str | None = None  # "its outputs hold 1,000 NaN values of 1,000": failed


@dataclass(frozen=True, kw_only=True)
class Calibration(Record):
    """int8: the images its ranges were fitted on."""

    source: str
    images: int


@dataclass(frozen=True, kw_only=True)
class RecipeFigures(Record):
    """An int8 file's agreement with Keras on the real images, as its recipe's attempt says it."""

    top1_agreement: float | None
    top5_overlap: float | None
    sqnr_db: float | None  # None: equal logits
    passed: bool | None  # None: reported, not judged


@dataclass(frozen=True, kw_only=True)
class RecipeAttempt(Record):
    """One int8 recipe a file was written with: what it did (keep-float: the layers it left in
    float, of those it ranked) and the file's figures, where measured."""

    recipe: str  # default, percentile or keep-float
    float_layers: int | None = field(default=None, metadata=OMIT_NONE)
    layers: int | None = field(default=None, metadata=OMIT_NONE)
    figures: RecipeFigures | None = None  # in the JSON, beside the keys above; absent if None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for key, value in super().to_json().items():
            if key == "figures":
                document |= value or {}
            else:
                document[key] = value
        return document


@dataclass(frozen=True, kw_only=True)
class Int8Recipe(RecipeAttempt):
    """The recipe the file was written with (the last tried), and every recipe tried in turn."""

    tried: tuple[RecipeAttempt, ...]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "tried": [attempt.to_json() for attempt in self.tried]}


def taken(attempt: RecipeAttempt, tried: tuple[RecipeAttempt, ...]) -> Int8Recipe:
    """The file's recipe: its last attempt, with the attempts before it."""
    return Int8Recipe(
        recipe=attempt.recipe,
        float_layers=attempt.float_layers,
        layers=attempt.layers,
        figures=attempt.figures,
        tried=tried,
    )


@dataclass(frozen=True, kw_only=True)
class Artifact(Record):
    """One file export wrote: kept in place when it passed (or with --keep-failed)."""

    format: str  # the backend that wrote it
    path: Path
    precision: str  # converted into the file: fp32, or a --quantize mode
    bytes: int
    time_s: float  # writing it, and every int8 recipe tried
    kept: bool
    calibration: Calibration | None = None
    int8: Int8Recipe | None = None
    verification: Verification | None  # None: --no-verify

    @property
    def passed(self) -> bool:
        """Verified and passed, or written without verification (--no-verify)."""
        return self.verification is None or self.verification.passed

    def to_json(self) -> dict[str, Any]:
        document = super().to_json()
        if self.int8 is not None:
            document["int8"] = self.int8.to_json()
        return document


@dataclass(frozen=True, kw_only=True)
class ExportResult(Record):
    """A whole export, or what a failed one wrote and refused. `model` is the model object every
    command's JSON shares: a built model's spec (records/spec.py), or a file's name alone."""

    model: ModelIdentity
    artifacts: tuple[Artifact, ...]

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "artifacts": [a.to_json() for a in self.artifacts]}
