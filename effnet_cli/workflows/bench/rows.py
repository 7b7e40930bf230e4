"""One runner's rows: at every batch size, in each requested mode, with its drift against fp32
Keras on the same seeded images (numerical drift only: accuracy is judged on real images,
workflow.agreement_of)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import runtimes
from effnet_cli.records.bench import LatencyRow, ThroughputRow
from effnet_cli.util.errors import WorkError, runtime_reason
from effnet_cli.workflows.bench import timing, tuning
from effnet_cli.workflows.bench.request import BenchRequest

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Floats, Images

THROUGHPUT_DEFAULT_S = 2.0  # a throughput row's run, when --duration does not say


@dataclass
class RowCount:
    """Rows timed so far of those planned: progress says "(n/N)", and draws a bar from it."""

    total: int
    done: int = 0

    def next(self) -> str:
        self.done += 1
        return f" ({self.done}/{self.total})"


@dataclass(frozen=True)
class Drift:
    """Drift against fp32 Keras on seeded images; None (said unmeasured) without a reference."""

    drift_max_rel: float | None
    drift: str | None = None


NOT_FINITE = "not finite"  # how a row whose outputs hold NaN or infinities is marked


def drift(runner: runtimes.Runner, images: Images, reference: Floats | None) -> Drift:
    """The row's drift against `reference`; with or without one, outputs that hold NaN or
    infinities mark the row (a file that answers NaN is broken, however fast)."""
    import numpy as np

    from effnet_cli.util.drift import NonFinite, compare, non_finite

    outputs = np.asarray(runner.comparable(images), dtype="float32")
    found = non_finite(outputs)
    if found:
        return Drift(None, f"{NOT_FINITE}: its outputs hold {found} of {outputs.size:,}")
    if reference is None:
        return Drift(None, "unmeasured")
    try:
        return Drift(compare(outputs, reference)[0])
    except NonFinite as exc:  # the reference's side
        return Drift(None, f"{NOT_FINITE}: {exc}")


def refuse_not_finite(rows: Sequence[LatencyRow | ThroughputRow]) -> None:
    """Exit 1 after the table where a row's outputs were not finite: a broken file is no
    benchmark result, and CI must not read it as one."""
    marked = [r for r in rows if (r.drift or "").startswith(NOT_FINITE)]
    if marked:
        first = marked[0]
        raise WorkError(
            f"{len(marked)} row{'s' * (len(marked) > 1)} answered NaN or infinities; first: "
            f"{first.runtime} {first.precision} at batch {first.batch}: {first.drift}"
        )


def at_batch(runner: runtimes.Runner, batch: int) -> runtimes.Runner:
    """The runner to time `batch` with: its artifact compiled for that batch where the runtime
    runs a static shape faster (the row's settings say so), else the runner itself."""
    return runner.pinned(batch) if runner.pinned is not None else runner


def time_modes(
    general: runtimes.Runner,
    inputs: dict[int, Any],
    reference: dict[int, Any] | None,
    setup_s: float,
    request: BenchRequest,
    model_name: str,
    progress: Callable[[str], None],
    count: RowCount | None = None,
) -> tuple[list[LatencyRow], list[ThroughputRow]]:
    """One runner's rows at every batch size, in each requested mode (latency rows first)."""
    count = count or RowCount(len(request.batches) * len(request.modes))
    latency: list[LatencyRow] = []
    loaded: list[ThroughputRow] = []
    for batch in request.batches:
        images = inputs[batch]
        expected = reference[batch] if reference is not None else None
        started = time.perf_counter()
        runner = at_batch(general, batch)
        loaded_s = setup_s + time.perf_counter() - started  # a pinned runner's compile counts
        pinned = runner is not general  # --recommend exports that batch
        key = tuning.TuneKey(
            model=model_name,
            resolution=tuple(images.shape[1:3]),
            runtime=runner.runtime,
            precision=runner.precision,
            batch=batch,
            threads=request.threads_or_default,
        )
        if "latency" in request.modes:
            progress(f"timing {runner.runtime} {runner.precision} at batch {batch}{count.next()}")
            latency.append(
                time_row(runner, images, expected, loaded_s, pinned, key, request, progress)
            )
        if "throughput" in request.modes:
            progress(
                f"timing {runner.runtime} {runner.precision} at batch {batch}, throughput"
                f"{count.next()}"
            )
            row = throughput_row(runner, images, key, request, progress)
            if row.error is None:
                row = replace(row, **asdict(drift(runner, images, expected)))
            loaded.append(replace(row, setup_s=loaded_s, batch_pinned=pinned))
    return latency, loaded


def row_head(runner: runtimes.Runner, batch: int, request: BenchRequest) -> dict[str, Any]:
    """What every row, latency or throughput, says first: what ran, how, and no error yet."""
    return {
        "runtime": runner.runtime,
        "device": runner.device,
        "provider": runner.provider,
        "precision": runner.precision,
        "batch": batch,
        "threads": runner.threads or request.threads_or_default,
    }


def time_row(
    given: runtimes.Runner,
    images: Images,
    reference: Any | None,
    setup_s: float,
    pinned: bool,
    key: tuning.TuneKey,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> LatencyRow:
    batch = len(images)
    runner, source = tuning.chosen_threads(given, images, key, request, progress)
    row = LatencyRow(
        **row_head(runner, batch, request),
        settings=runner.settings,
        settings_source=source,
        setup_s=setup_s,
        batch_pinned=pinned,
    )
    try:
        timed = timing.time_runner(runner, images, request)
        row = replace(row, first_inference_ms=timed.first_inference_ms, **asdict(timed.stats))
        return replace(row, **asdict(drift(runner, images, reference)))
    except Exception as exc:
        if not _is_oom(exc):
            reason = runtime_reason(exc)  # one line: a runtime's text names its C++ lines first
            raise WorkError(f"{runner.runtime} failed at batch {batch}: {reason}") from None
        progress(f"{runner.runtime} at batch {batch}: out of memory (row skipped)")
        return replace(row, error="out of memory")


def throughput_row(
    runner: runtimes.Runner,
    images: Images,
    key: tuning.TuneKey,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> ThroughputRow:
    batch = len(images)
    row = ThroughputRow(**row_head(runner, batch, request), setup_s=0.0)
    if runner.streams is None:
        return replace(row, error="no throughput mode")
    wanted, source = tuning.chosen_streams(runner, images, key, request, progress)
    try:
        streams = runner.streams(wanted)
        row = replace(
            row,
            in_flight=streams.in_flight,
            settings=streams.settings,
            settings_source=source,
            threads_per_request=streams.threads_per_request,
        )
        stats = timing.time_streams(streams, images, request.duration_s or THROUGHPUT_DEFAULT_S)
    except Exception as exc:
        if not _is_oom(exc):
            raise WorkError(
                f"{runner.runtime} failed in throughput mode at batch {batch}: "
                f"{runtime_reason(exc)}"
            ) from None
        return replace(row, error="out of memory")
    load = {f"load_{k}": v for k, v in asdict(stats.load).items() if k.startswith("latency_ms_")}
    return replace(
        row,
        images_per_s=stats.images_per_s,
        wall_s=stats.wall_s,
        requests=stats.requests,
        in_flight_observed=stats.in_flight_observed,
        **load,
    )


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "resourceexhausted" in text or "out of memory" in text or "oom" in text.split()
