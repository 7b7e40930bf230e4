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
    drift_max_rel: float | None = field(default=None, metadata=OMIT_ON_ERROR)  # seeded images
    drift: str | None = field(
        default=None, metadata=OMIT_NONE
    )  # "unmeasured": an artifact with no reference
    # agreement with fp32 Keras on real images (`Agreement`): None where not judged (why)
    top1_agreement: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    top5_overlap: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    sqnr_db: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    not_judged: str | None = field(default=None, metadata=OMIT_NONE)
    macs_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    batch_pinned: bool = False  # timed on its artifact compiled for this batch
    ceiling_fraction: float | None = field(default=None, metadata=OMIT_NONE)  # its precision's
    limit_images_per_s: float | None = field(default=None, metadata=OMIT_NONE)  # the roofline's
    limit_fraction: float | None = field(default=None, metadata=OMIT_NONE)
    measurement_problem: str | None = field(default=None, metadata=OMIT_NONE)  # above 100 %
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
    drift: str | None = field(default=None, metadata=OMIT_NONE)
    top1_agreement: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    top5_overlap: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    sqnr_db: float | None = field(default=None, metadata=OMIT_ON_ERROR)
    not_judged: str | None = field(default=None, metadata=OMIT_NONE)
    setup_s: float
    batch_pinned: bool = False
    macs_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    ceiling_fraction: float | None = field(default=None, metadata=OMIT_NONE)
    limit_images_per_s: float | None = field(default=None, metadata=OMIT_NONE)
    limit_fraction: float | None = field(default=None, metadata=OMIT_NONE)
    measurement_problem: str | None = field(default=None, metadata=OMIT_NONE)


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


Precision = Literal["fp32", "bf16", "int8"]  # the GEMM ceilings measured
Source = Literal["measured", "cached", "unavailable"]


@dataclass(frozen=True, kw_only=True)
class Conditions(Record):
    """How the machine looked while one probe ran, and whether that makes it busy."""

    busy: bool
    reason: str | None = field(default=None, metadata=OMIT_NONE)
    windows: int
    worst_over_best: float  # the slowest window's rate over the fastest's
    seconds: float  # the probe's wall time, setup included
    cores: int  # the machine's (what the load average and /proc/stat count)
    load_average: float | None = field(default=None, metadata=OMIT_NONE)  # 1 minute
    own_load: float | None = field(default=None, metadata=OMIT_NONE)  # this process's share
    other_cpu_s: float | None = field(default=None, metadata=OMIT_NONE)  # during the probe


@dataclass(frozen=True, kw_only=True)
class GemmCeiling(Record):
    """One precision's dense-GEMM rate in MACs/s (a GEMM's FLOP/s is twice it), or why none."""

    precision: Precision
    macs_per_s: float | None
    source: Source
    method: str
    threads: int
    cpu: str
    measured_at: str | None = None
    busy: bool = False
    busy_reason: str | None = field(default=None, metadata=OMIT_NONE)
    conditions: Conditions | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)  # why macs_per_s is None
    cache: str | None = field(default=None, metadata=OMIT_NONE)  # the cache file's path


@dataclass(frozen=True, kw_only=True)
class Bandwidth(Record):
    """The machine's streaming memory bandwidth (triad), or why none.

    `bytes_per_s` counts the three arrays a triad names (STREAM's convention): `b` and `c` read,
    `a` written. The store of `a` first reads each cache line it writes (write-allocate): that
    read is not counted, so the bus carries about 4/3 of the figure."""

    bytes_per_s: float | None
    source: Source
    method: str
    threads: int
    cpu: str
    array_bytes: int | None = None  # each of the three
    arrays_counted: int = 3
    write_allocate_counted: bool = False
    measured_at: str | None = None
    busy: bool = False
    busy_reason: str | None = field(default=None, metadata=OMIT_NONE)
    conditions: Conditions | None = field(default=None, metadata=OMIT_NONE)
    reason: str | None = field(default=None, metadata=OMIT_NONE)
    cache: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class Ceilings(Record):
    """Every ceiling of one machine and thread count: a GEMM rate per precision, the bandwidth."""

    threads: int
    device: str
    gemm: tuple[GemmCeiling, ...]  # in PRECISIONS' order
    bandwidth: Bandwidth

    def for_precision(self, precision: str) -> GemmCeiling | None:
        return next((c for c in self.gemm if c.precision == precision), None)


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
    ceilings: Ceilings
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
