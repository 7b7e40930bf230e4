"""The timing loops and their statistics.

The conventions follow the field's tools: warm-up calls are not timed, every timed call is one
synchronous inference of a whole batch, percentiles are over per-call latencies (MLPerf's
single-stream style), and throughput is batch / mean latency. Throughput mode keeps several
requests in flight for a fixed time and reports wall images/s and each request's latency under
that load.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from effnet_cli.backends import runtimes
from effnet_cli.util.errors import WorkError
from effnet_cli.workflows.bench.request import BenchRequest

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Images


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Per-call latencies of one batch size, summarised (nearest-rank percentiles)."""

    latency_ms_mean: float
    latency_ms_std: float
    latency_ms_min: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float
    images_per_s: float
    iterations: int


@dataclass(frozen=True, kw_only=True)
class Timing:
    """A latency row's measurements: the first call apart, then the timed calls."""

    first_inference_ms: float
    stats: LatencyStats


@dataclass(frozen=True, kw_only=True)
class ThroughputStats:
    """Wall-clock images/s over a run with requests in flight, and each request's latency under
    that load (`load`; its images/s is a single request's, not the run's)."""

    images_per_s: float
    wall_s: float
    requests: int
    in_flight_observed: int
    load: LatencyStats


def latency_stats(latencies_ms: list[float], batch: int) -> LatencyStats:
    ordered = sorted(latencies_ms)

    def percentile(q: float) -> float:  # nearest rank: the smallest value >= q of the samples
        rank = math.ceil(q * len(ordered) - 1e-9)
        return ordered[min(len(ordered), max(1, rank)) - 1]

    mean = statistics.fmean(ordered)
    return LatencyStats(
        latency_ms_mean=mean,
        latency_ms_std=statistics.pstdev(ordered),
        latency_ms_min=ordered[0],
        latency_ms_p50=percentile(0.50),
        latency_ms_p90=percentile(0.90),
        latency_ms_p99=percentile(0.99),
        images_per_s=batch * 1000.0 / mean,
        iterations=len(ordered),
    )


def time_runner(runner: runtimes.Runner, images: Images, request: BenchRequest) -> Timing:
    started = time.perf_counter()
    runner.run(images)
    first_ms = (time.perf_counter() - started) * 1000
    for _ in range(request.warmup):
        runner.run(images)
    latencies: list[float] = []
    deadline = time.perf_counter() + request.duration_s if request.duration_s else None
    while True:
        started = time.perf_counter()
        runner.run(images)
        latencies.append((time.perf_counter() - started) * 1000)
        if deadline is not None:
            if time.perf_counter() >= deadline:
                break
        elif len(latencies) >= (request.iterations or 1):
            break
    return Timing(first_inference_ms=first_ms, stats=latency_stats(latencies, len(images)))


def max_overlap(intervals: list[runtimes.Interval]) -> int:
    """The most requests that were running at one instant (a start and an end at the same
    instant do not overlap)."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def throughput_stats(intervals: list[runtimes.Interval], batch: int) -> ThroughputStats:
    """Wall-clock images/s over the whole run, and each request's latency under that load."""
    wall_s = max(end for _, end in intervals) - min(start for start, _ in intervals)
    return ThroughputStats(
        images_per_s=batch * len(intervals) / wall_s,
        wall_s=wall_s,
        requests=len(intervals),
        in_flight_observed=max_overlap(intervals),
        load=latency_stats([(end - start) * 1000 for start, end in intervals], batch),
    )


def time_streams(streams: runtimes.Streams, images: Images, seconds: float) -> ThroughputStats:
    streams.drive(images, 0.0)  # warm-up: one request on each stream
    intervals = streams.drive(images, seconds)
    if not intervals:
        raise WorkError("no request finished in throughput mode")
    return throughput_stats(intervals, len(images))
