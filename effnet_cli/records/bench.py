"""What `effnet bench` reports, as frozen records (the schema's `bench` definition names the
same fields: tests/test_schemas.py holds them together)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from effnet_cli.records.base import OMIT_NONE, OMIT_ON_ERROR, OMIT_WITHOUT_STREAMS, Record


@dataclass(frozen=True, kw_only=True)
class LatencyRow(Record):
    """One runtime × precision × batch timed one call at a time."""

    runtime: str
    device: str
    provider: str | None
    precision: str
    mode: str = "latency"
    batch: int
    threads: int
    error: str | None = None  # "out of memory": the row was not timed
    settings: str | None
    settings_source: str | None
    setup_s: float
    first_inference_ms: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_mean: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_std: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_min: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_p50: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_p90: float | None = field(default=None, metadata=OMIT_NONE)
    latency_ms_p99: float | None = field(default=None, metadata=OMIT_NONE)
    images_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    iterations: int | None = field(default=None, metadata=OMIT_NONE)
    drift_max_rel: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    top1_agreement: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    drift: str | None = field(
        default=None, metadata=OMIT_NONE
    )  # "unmeasured": an artifact with no reference
    macs_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    batch_pinned: bool = False  # timed on its artifact compiled for this batch
    ceiling_fraction: float | None = field(default=None, metadata=OMIT_NONE)
    regression_pct: float | None = field(
        default=None, metadata=OMIT_NONE
    )  # against --baseline's row


@dataclass(frozen=True, kw_only=True)
class ThroughputRow(Record):
    """One runtime × precision × batch with several requests in flight for a fixed time."""

    runtime: str
    device: str
    provider: str | None
    precision: str
    mode: str = "throughput"
    batch: int
    threads: int
    error: str | None = None
    in_flight: int | None = field(default=None, metadata=OMIT_NONE)
    settings: str | None = field(default=None, metadata=OMIT_WITHOUT_STREAMS)
    settings_source: str | None = field(default=None, metadata=OMIT_WITHOUT_STREAMS)
    threads_per_request: int | None = field(default=None, metadata=OMIT_WITHOUT_STREAMS)
    images_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    wall_s: float | None = field(default=None, metadata=OMIT_NONE)
    requests: int | None = field(default=None, metadata=OMIT_NONE)
    in_flight_observed: int | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_mean: float | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_std: float | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_min: float | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_p50: float | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_p90: float | None = field(default=None, metadata=OMIT_NONE)
    load_latency_ms_p99: float | None = field(default=None, metadata=OMIT_NONE)
    drift_max_rel: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    top1_agreement: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    drift: str | None = field(default=None, metadata=OMIT_NONE)
    setup_s: float
    batch_pinned: bool = False
    macs_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    ceiling_fraction: float | None = field(default=None, metadata=OMIT_NONE)


Row = LatencyRow | ThroughputRow


@dataclass(frozen=True, kw_only=True)
class Skipped(Record):
    """A runtime × precision this run could not time, and why."""

    runtime: str
    precision: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Settings(Record):
    device: str
    batches: tuple[int, ...]
    warmup: int
    iterations: int | None
    duration_s: float | None
    threads: int
    seed: int
    xla: bool
    modes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Ceiling(Record):
    """This CPU's dense-GEMM rate, or why there is none (`gemm_flops` None, `reason` said)."""

    gemm_flops: float | None
    source: Literal["measured", "cached", "unavailable"]
    measured_at: str | None
    threads: int
    cpu: str
    method: str
    reason: str | None = field(default=None, metadata=OMIT_NONE)
    cache: str | None = field(default=None, metadata=OMIT_NONE)  # the cache file's path


@dataclass(frozen=True, kw_only=True)
class Environment(Record):
    effnet: str
    python: str
    platform: str
    cpu: str
    cpu_count: int | None
    gpus: tuple[str, ...]
    threads: int
    versions: Mapping[str, str | None]


@dataclass(frozen=True, kw_only=True)
class Comparison(Record):
    """One row of this run against the baseline's row under the same gate key."""

    runtime: str
    precision: str
    mode: str
    batch: int
    threads: int
    latency_ms_p50: float
    baseline_latency_ms_p50: float
    change_pct: float
    allowed_pct: float
    passed: bool


@dataclass(frozen=True, kw_only=True)
class Gate(Record):
    baseline: str
    max_regression_pct: float
    compared: tuple[Comparison, ...]


@dataclass(frozen=True, kw_only=True)
class Agreement(Record):
    """`--recommend`: one runtime × precision's agreement with fp32 Keras on real images (the
    shipped photos), against export's accuracy gate; `passed` None where it is not judged."""

    runtime: str
    precision: str
    judged_on: str
    images: int
    top1_agreement: float | None
    top5_overlap: float | None
    sqnr_db: float | None  # None: equal logits, or not measured
    passed: bool | None
    not_judged: str | None = None  # "random weights", "no classifier head"


@dataclass(frozen=True, kw_only=True)
class Recommendation(Record):
    """`--recommend`: the fastest row fit to deploy for a precision and mode, and how to make
    its artifact (`command` None: the benched file is the artifact)."""

    precision: str
    mode: str
    runtime: str
    batch: int
    images_per_s: float
    drift_max_rel: float | None
    top1_agreement: float | None
    settings: str
    how: str
    file_precision: str
    artifact: str | None
    command: str | None
    why: str  # what it was chosen on: speed, and its agreement on real images or why none


@dataclass(frozen=True, kw_only=True)
class NoRecommendation(Record):
    precision: str
    mode: str
    none: str  # why nothing is recommended


@dataclass(frozen=True, kw_only=True)
class BenchResult(Record):
    """A whole run. `model` is the model object every command's JSON shares
    (model/identity.py), with the MACs of one image."""

    model: Mapping[str, Any]
    settings: Settings
    ceiling: Ceiling
    environment: Environment
    rows: tuple[LatencyRow, ...]
    skipped: tuple[Skipped, ...] = ()
    throughput_rows: tuple[ThroughputRow, ...] | None = field(default=None, metadata=OMIT_NONE)
    gate: Gate | None = field(default=None, metadata=OMIT_NONE)
    recommendations: tuple[Recommendation | NoRecommendation, ...] | None = field(
        default=None, metadata=OMIT_NONE
    )
    # --recommend: each runtime × precision's agreement on real images
    agreement: tuple[Agreement, ...] | None = field(default=None, metadata=OMIT_NONE)
