"""What `effnet build` reports, as frozen records (the schema's `build` definition)."""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli.records.base import Record
from effnet_cli.records.spec import InputContract, SpecModel


@dataclass(frozen=True, kw_only=True)
class LoadedWeights(Record):
    """The weights file loaded into the model."""

    path: str
    layout: str  # "keras3" (.weights.h5), "legacy-h5", "pytorch"
    tensors_loaded: int
    stddev_fix: bool  # the published files' std-in-variance slot was corrected


@dataclass(frozen=True, kw_only=True)
class SavedFile(Record):
    """The file `-o` wrote."""

    path: str
    format: str  # "keras" (a full model) or "weights"
    bytes: int


@dataclass(frozen=True, kw_only=True)
class BuildResult(Record):
    model: SpecModel
    input: InputContract
    params: int  # Keras count_params
    params_trainable: int
    seed: int | None
    weights: LoadedWeights | None  # None: random weights (`seed`)
    build_s: float
    output: SavedFile | None  # None: nothing written (no -o)
