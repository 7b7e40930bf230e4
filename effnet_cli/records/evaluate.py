"""What `effnet evaluate` reports, as frozen records: the labelled images, each artifact's
accuracy and drop against the first, and the run (predict's `RunSummary`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from effnet_cli.records.base import Record
from effnet_cli.records.model import ModelIdentity
from effnet_cli.records.predict import OutputFile, RunSummary


@dataclass(frozen=True, kw_only=True)
class TruthSummary(Record):
    """Where the labels came from: class subfolders, a `--truth` CSV, or an `--inputs` list."""

    source: Literal["folders", "csv", "list"]
    path: str  # the folder, or the CSV or list file
    naming: str  # "synset", "index" or "synset and index"
    images: int
    classes: int  # distinct classes among the labels


@dataclass(frozen=True, kw_only=True)
class AccuracyRow(Record):
    """One artifact: correct counts over the images classified, accuracies (fractions), and the
    drop against the first in percentage points (positive: worse than the first; 0.0 for the
    first itself)."""

    path: str
    runtime: str
    precision: str
    resolution: tuple[int, int]
    images: int  # classified (failed images are left out of the accuracies)
    top1_correct: int
    top5_correct: int
    top1_accuracy: float
    top5_accuracy: float
    inference_s: float | None  # this artifact's inference seconds (local engine only)
    top1_drop_points: float
    top5_drop_points: float


@dataclass(frozen=True, kw_only=True)
class EvaluateResult(Record):
    """`effnet evaluate`: the first model's identity, the truth, a row per artifact, the run."""

    model: ModelIdentity
    truth: TruthSummary
    resize: str
    top_k: int  # the k of top-k accuracy: 5, or the classes of a smaller head
    reference: str  # the first artifact, every drop's baseline
    rows: tuple[AccuracyRow, ...]
    run: RunSummary
    output: OutputFile | None
