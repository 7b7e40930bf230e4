"""What a benchmark run times, parsed and validated: a frozen `BenchRequest`, built by keyword."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from effnet_cli import backends
from effnet_cli.backends import runtimes
from effnet_cli.util.errors import UsageError, choices, split_list

# latency: one synchronous call at a time (single stream); throughput: several requests in
# flight for a fixed time (each runtime's own way), reported apart as wall images/s and the
# per-request latency *under load*.
MODES = runtimes.MODES
DEFAULT_ITERATIONS = 20


@dataclass(frozen=True, kw_only=True)
class BenchRequest:
    """The runtimes × precisions × batches × modes to time, and how (validated when built)."""

    runtimes: tuple[str, ...]
    precisions: tuple[str, ...] = ("fp32",)
    device: str = "cpu"
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 3
    iterations: int | None = DEFAULT_ITERATIONS
    duration_s: float | None = None
    threads: int | None = None
    seed: int = 0
    xla: bool = False
    measure_ceiling: bool = False
    calibration: Path | None = None  # images for precisions calibrated into the file (int8)
    verify_images: tuple[Path, ...] | None = None  # accuracy judged on these, not the photos
    modes: tuple[str, ...] = ("latency",)
    streams: int | None = None  # requests in flight in throughput mode (None: tuned/default)
    tune: bool = False  # search threads and requests in flight again (else the cached search)

    def __post_init__(self) -> None:
        check_request(self)

    @property
    def threads_or_default(self) -> int:
        """The thread budget: --threads, else every core."""
        return runtimes.threads_or_default(self.threads)


def build_request(
    *,
    runtime: str,
    precision: str,
    device: str,
    batch: str,
    warmup: int,
    iterations: int | None,
    duration_s: float | None,
    threads: int | None,
    seed: int,
    xla: bool,
    measure_ceiling: bool,
    calibration: Path | None,
    verify_images: tuple[Path, ...] | None,
    mode: str,
    streams: int | None,
    tune: bool,
) -> BenchRequest:
    """The request from the command line's strings, each parsed and checked (in this order)."""
    return BenchRequest(
        runtimes=parse_runtimes(runtime),
        precisions=parse_precisions(precision),
        device=device,
        batches=parse_batches(batch),
        warmup=warmup,
        iterations=timed_calls(iterations, duration_s),
        duration_s=duration_s,
        threads=threads,
        seed=seed,
        xla=xla,
        measure_ceiling=measure_ceiling,
        calibration=calibration,
        verify_images=verify_images,
        modes=parse_modes(mode),
        streams=streams,
        tune=tune,
    )


def timed_calls(iterations: int | None, duration_s: float | None) -> int | None:
    """Timed calls per row: a count or a duration, never both (one would be ignored)."""
    if duration_s is not None and iterations is not None:
        raise UsageError("--duration and --iterations exclude each other: give one of them")
    if duration_s is not None:
        return None
    return DEFAULT_ITERATIONS if iterations is None else iterations


def parse_runtimes(value: str) -> tuple[str, ...]:
    return _parse_choices("--runtime", value, backends.bench_runtimes())


def parse_precisions(value: str) -> tuple[str, ...]:
    return _parse_choices("--precision", value, backends.precisions())


def _parse_choices(option: str, value: str, valid: tuple[str, ...]) -> tuple[str, ...]:
    """'a,b' or 'all' -> the chosen values in order, each once (validated)."""
    chosen: list[str] = []
    for part in (p.lower() for p in split_list(option, value)):
        if part != "all" and part not in valid:
            raise UsageError(f"unknown {option} {part!r}; valid: {choices((*valid, 'all'))}")
        chosen.extend(v for v in (valid if part == "all" else (part,)) if v not in chosen)
    return tuple(chosen)


def parse_modes(value: str) -> tuple[str, ...]:
    if value == "both":
        return MODES
    if value not in MODES:
        raise UsageError(f"unknown --mode {value!r}; valid: {choices((*MODES, 'both'))}")
    return (value,)


def parse_batches(value: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(part) for part in split_list("--batch", value))
    except ValueError:
        raise UsageError(
            f"--batch takes comma-separated sizes such as 1,8,32, not {value!r}"
        ) from None
    if not batches or any(not 1 <= b <= 1024 for b in batches):
        raise UsageError(f"--batch sizes must lie between 1 and 1024, not {value!r}")
    return batches


def check_request(request: BenchRequest) -> None:
    if request.device not in runtimes.DEVICES:
        raise UsageError(f"unknown --device {request.device!r}; valid: cpu, gpu or auto")
    if request.iterations is not None and not 1 <= request.iterations <= 100_000:
        raise UsageError(f"--iterations must lie between 1 and 100000, not {request.iterations}")
    if request.duration_s is not None and not 0 < request.duration_s <= 3600:
        raise UsageError(
            f"--duration must lie between 0 and 3600 seconds, not {request.duration_s}"
        )
    if not 0 <= request.warmup <= 10_000:
        raise UsageError(f"--warmup must lie between 0 and 10000, not {request.warmup}")
    if request.calibration is not None and not request.calibration.exists():
        raise UsageError(f"calibration data {str(request.calibration)!r} does not exist")
    if request.threads is not None and not 1 <= request.threads <= 1024:
        raise UsageError(f"--threads must lie between 1 and 1024, not {request.threads}")
    if request.streams is not None and not 1 <= request.streams <= 256:
        raise UsageError(f"--streams must lie between 1 and 256, not {request.streams}")
    if "throughput" not in request.modes and request.streams is not None:
        raise UsageError("--streams applies to --mode throughput or both")
    if request.streams is not None and request.tune:
        raise UsageError("--streams fixes the requests in flight; --tune searches them: give one")
