"""What `effnet predict` reports, as frozen records: each image's top classes (or its error), the
run over the images (shared with `effnet evaluate`), and `--compare`'s agreement rows.

The per-image rows streamed to `--output` (CSV, JSONL, Parquet) stay plain rows of columns
(workflows/stream.py): a record is made for an image only where the run keeps its rows for the
`images` of the document (no `--output`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli.records.base import OMIT_NONE, Record
from effnet_cli.records.model import ModelIdentity


@dataclass(frozen=True, kw_only=True, slots=True)
class Ranked(Record):
    """One of an image's top classes (`rank` 1 is the most probable)."""

    rank: int
    class_: int = field(metadata={"key": "class"})  # the class index
    label: str | None  # its name, where the run has names
    probability: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Prediction(Record):
    """One image: its top classes, best first; or, where it could not be classified, why (and
    no classes)."""

    path: str
    top: tuple[Ranked, ...]
    error: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class FirstError(Record):
    path: str
    error: str


@dataclass(frozen=True, kw_only=True)
class RunSummary(Record):
    """What a run over many images did (the `run` object of predict's and evaluate's JSON):
    `images` counts those asked for, `skipped` those already in a resumed output."""

    engine: str  # "local" or "ray"
    where: str  # "this process", or where Ray ran
    workers: int  # decoding threads, or Ray's actors
    images: int
    skipped: int
    classified: int
    failed: int
    first_error: FirstError | None
    wall_s: float
    images_per_s: float
    decode_s: float | None  # the workers' decoding seconds (local engine only)
    inference_s: float | None


@dataclass(frozen=True, kw_only=True)
class OutputFile(Record):
    """Where the rows went (`--output`), and in what format ("csv", "jsonl", "parquet")."""

    path: Path
    format: str


@dataclass(frozen=True, kw_only=True)
class PredictResult(Record):
    """`effnet predict`: the model, what ran it, each image's prediction (none where the rows
    went to `output`), and the run."""

    model: ModelIdentity
    source: str  # the artifact file, or the model built from options
    runtime: str
    provider: str
    precision: str
    resize: str
    images: tuple[Prediction, ...]
    run: RunSummary
    output: OutputFile | None


@dataclass(frozen=True, kw_only=True)
class CompareRow(Record):
    """`--compare`: one artifact against the first (the reference) on the same images.

    Its JSON names the overlap by its k, `top5_overlap` (or `topK_overlap` for a head of K < 5
    classes); `k` itself is in that key, not a field of the JSON."""

    path: str
    runtime: str
    precision: str
    resolution: tuple[int, int]
    top1_agreement: float
    top_k_overlap: float  # the mean share of the reference's top-k in this artifact's top-k
    max_abs_diff_prob: float  # the largest |Δ probability| over every image and class
    k: int

    def to_json(self) -> dict[str, Any]:
        return {
            f"top{self.k}_overlap" if key == "top_k_overlap" else key: value
            for key, value in Record.to_json(self).items()
            if key != "k"
        }


@dataclass(frozen=True, kw_only=True)
class CompareResult(Record):
    """`effnet predict --compare`: every artifact on the same images, the first the reference
    (its own row agrees fully)."""

    images: int
    reference: str
    rows: tuple[CompareRow, ...]

    def to_json(self) -> dict[str, Any]:
        # the rows' own to_json (base.to_json does not call a nested record's): their overlap key
        return {**Record.to_json(self), "rows": [row.to_json() for row in self.rows]}
