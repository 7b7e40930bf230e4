"""Timing loops, statistics, environment capture, baselines and the regression gate.

Runs go through the backends' runners (the ones export's verification uses). The conventions follow
the field's tools: warm-up calls are not timed, every timed call is one synchronous inference
of a whole batch, percentiles are over per-call latencies (MLPerf's single-stream style), and
throughput is batch / mean latency.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from effnet_cli import __version__, backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.keras import gpus_visible, keras_runner
from effnet_cli.model import spec as S
from effnet_cli.util import capabilities
from effnet_cli.util.errors import RegressionError, UsageError, WorkError, choices, split_list

# latency: one synchronous call at a time (single stream); throughput: several requests in
# flight for a fixed time (each runtime's own way), reported apart as wall images/s and the
# per-request latency *under load*.
MODES = runtimes.MODES
THROUGHPUT_DEFAULT_S = 2.0  # a throughput row's run, when --duration does not say
# --tune: each candidate (intra-op threads for a latency row, requests in flight for a throughput
# row) runs this long, a row's search at most TUNE_BUDGET_S (the rest of the candidates are
# skipped and the search says so).
TUNE_TRIAL_S = 0.7
TUNE_BUDGET_S = 8.0
TUNE_VERSION = 2  # part of the tuning cache's key: a changed search tunes again
# --recommend never names a row whose top-1 agreement with fp32 Keras is under this (the gate
# export applies to quantized files).
RECOMMEND_MIN_AGREEMENT = 0.9
DEFAULT_MAX_REGRESSION_PCT = 10.0
# The ceiling probe: its version is part of the cache key, so changing the method re-measures.
PROBE_VERSION = 1
PROBE_METHOD = "TensorFlow float32 matmul 1024×1024 on the CPU (oneDNN), best 0.1 s window of 1 s"


@dataclass
class BenchRequest:
    runtimes: list[str]
    precisions: list[str] = field(default_factory=lambda: ["fp32"])
    device: str = "cpu"
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 3
    iterations: int | None = 20
    duration_s: float | None = None
    threads: int | None = None
    seed: int = 0
    xla: bool = False
    measure_ceiling: bool = False
    calibration: Path | None = None  # images for precisions calibrated into the file (int8)
    modes: tuple[str, ...] = ("latency",)
    streams: int | None = None  # requests in flight in throughput mode (None: tuned/default)
    tune: bool = False  # search threads and requests in flight again (else the cached search)


def parse_runtimes(value: str) -> list[str]:
    return _parse_choices("--runtime", value, backends.bench_runtimes())


def parse_precisions(value: str) -> list[str]:
    return _parse_choices("--precision", value, backends.precisions())


def _parse_choices(option: str, value: str, valid: tuple[str, ...]) -> list[str]:
    """'a,b' or 'all' -> the chosen values in order, each once (validated)."""
    chosen: list[str] = []
    for part in (p.lower() for p in split_list(option, value)):
        if part != "all" and part not in valid:
            raise UsageError(f"unknown {option} {part!r}; valid: {choices((*valid, 'all'))}")
        chosen.extend(v for v in (valid if part == "all" else (part,)) if v not in chosen)
    return chosen


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


def configure_threads(threads: int | None) -> None:
    """TensorFlow reads its thread pools' sizes once, at start-up: set them before it loads."""
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def resolve_device(device: str, progress: Callable[[str], None]) -> str:
    """`gpu` must exist (never a silent fallback); `auto` says what it picked."""
    if device == "cpu":
        return "cpu"
    gpus = gpus_visible()
    if device == "gpu" and not gpus:
        raise UsageError(
            "--device gpu, but no GPU is visible: TensorFlow found none "
            f"(CPU: {cpu_name()}, {os.cpu_count()} cores)",
            hint="use --device cpu, or install effnet-cli[gpu] on a machine with a CUDA GPU",
        )
    picked = "gpu" if gpus else "cpu"
    if device == "auto":
        progress(f"--device auto picked {picked}" + (f" ({', '.join(gpus)})" if gpus else ""))
    return picked


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int | None) -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for package in backends.packages_needed():
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "effnet": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus_visible(),
        "threads": runtimes.threads_or_default(threads),
        "versions": versions,
    }


def measure_gemm_flops(seconds: float = 1.0, windows: int = 10) -> float:
    """This CPU's dense float32 matrix-multiply rate (FLOP/s), with TensorFlow's thread pool.

    Why TensorFlow's matmul (oneDNN) rather than numpy's (OpenBLAS): bench has TensorFlow loaded
    anyway (every model is a Keras model, `--from` included) and `configure_threads` sized its
    pool to `--threads` before it loaded, so the probe runs on exactly the threads the rows ran
    on, at no import cost; numpy's OpenBLAS fixes its threads when it loads and, on a busy 2-core
    machine, fell to 60 % of oneDNN's 2-thread rate (75–85 vs 120–140 GFLOP/s, 2026-11); and
    oneDNN is what TensorFlow's and OpenVINO's convolutions run on. The best of short windows,
    not the mean: a ceiling is what the machine can do, and other processes only slow a window.
    """
    import tensorflow as tf

    n = 1024
    with tf.device("/CPU:0"):
        a = tf.random.stateless_uniform((n, n), seed=(1, 2))
        b = tf.random.stateless_uniform((n, n), seed=(3, 4))

    @tf.function
    def matmul() -> Any:
        with tf.device("/CPU:0"):
            return tf.reduce_sum(tf.linalg.matmul(a, b))  # one number back, not 4 MB

    matmul().numpy()  # trace and warm up
    best, deadline = 0.0, time.perf_counter() + seconds  # ~`windows` windows; fewer if slow
    while best == 0.0 or time.perf_counter() < deadline:
        calls, started = 0, time.perf_counter()
        while calls == 0 or time.perf_counter() - started < seconds / windows:
            matmul().numpy()
            calls += 1
        best = max(best, 2 * n**3 * calls / (time.perf_counter() - started))
    return best


def cache_dir() -> Path:
    """Where effnet keeps per-machine measurements: $EFFNET_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("EFFNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "effnet"


def machine_cache_path(prefix: str, key: dict[str, Any]) -> Path:
    """One file per measurement on this machine: `key` with the CPU model and its flags, hashed
    (a measurement on another CPU, or with other flags, is never reused)."""
    import hashlib
    import json

    flags = " ".join(sorted(capabilities.cpu_flags()))
    text = json.dumps({**key, "cpu": cpu_name(), "flags": flags}, sort_keys=True)
    return cache_dir() / f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def read_cache_entry(path: Path) -> dict[str, Any] | None:
    """A cached measurement, or None where there is none or it is unreadable."""
    import json

    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def read_cached_ceiling(path: Path) -> dict[str, Any] | None:
    """A cached ceiling, or None where there is none or it holds no positive rate."""
    entry = read_cache_entry(path)
    flops = entry.get("gemm_flops") if entry is not None else None
    return entry if isinstance(flops, int | float) and flops > 0 else None


def write_cache_entry(path: Path, entry: dict[str, Any]) -> None:
    """One cached measurement (the ceiling, a tuning), written atomically: a temporary file
    beside it, then renamed."""
    import json
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(entry, indent=2) + "\n")
    os.replace(tmp.name, path)


def gemm_ceiling(
    threads: int | None, device: str, refresh: bool, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The machine's dense-GEMM rate: cached per CPU and thread count, measured where absent or
    `refresh` (`--ceiling`). Where it cannot be measured, `gemm_flops` is None and `reason` says
    why: no made-up number."""
    from datetime import datetime, timezone

    cpu, count = cpu_name(), runtimes.threads_or_default(threads)
    document: dict[str, Any] = {"gemm_flops": None, "source": "unavailable", "measured_at": None,
                                "threads": count, "cpu": cpu, "method": PROBE_METHOD}  # fmt: skip
    if device != "cpu":
        return {**document, "reason": "the ceiling is the CPU's GEMM rate; not for --device gpu"}
    path = machine_cache_path(
        f"gemm-ceiling-{count}t", {"threads": count, "version": PROBE_VERSION}
    )
    cached = None if refresh else read_cached_ceiling(path)
    if cached is not None:
        return {**document, **cached, "source": "cached", "cache": str(path)}
    progress(f"measuring this CPU's GEMM ceiling on {count} threads (about 1 s)")
    try:
        flops = measure_gemm_flops()
    except Exception as exc:  # the probe is a side measurement: never fail the benchmark on it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {**document, "reason": f"the GEMM probe failed: {first}"}
    entry = {"gemm_flops": flops, "measured_at": datetime.now(timezone.utc).isoformat(
        timespec="seconds"), "threads": count, "cpu": cpu, "method": PROBE_METHOD}  # fmt: skip
    try:
        write_cache_entry(path, entry)
    except OSError as exc:
        progress(f"could not cache the ceiling in {path.parent}: {exc.strerror or exc}")
    return {**document, **entry, "source": "measured", "cache": str(path)}


def keras_macs(model: Any) -> int | None:
    """Multiply-adds of one image through a Keras model, counted from its layers: every
    convolution and dense layer costs (output positions) × (kernel elements), as costs.py counts
    a spec. None where an output size is unknown (an input without fixed height and width)."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            inner = keras_macs(layer)
            if inner is None:
                return None
            total += inner
            continue
        if type(layer).__name__ not in MAC_LAYERS:
            continue
        shape = tuple(layer.output.shape)[1:-1]  # without batch and channels
        if any(d is None for d in shape):
            return None
        total += math.prod(shape) * math.prod(layer.kernel.shape)
    return total


MAC_LAYERS = frozenset({"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                        "Dense"})  # fmt: skip


def keras_file_model_name(path: Path) -> str | None:
    """The model name a `.keras` file records (its config.json), read without loading it."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return str(config["config"]["name"])
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None


def latency_stats(latencies_ms: list[float], batch: int) -> dict[str, float]:
    ordered = sorted(latencies_ms)

    def percentile(q: float) -> float:  # nearest rank: the smallest value >= q of the samples
        rank = math.ceil(q * len(ordered) - 1e-9)
        return ordered[min(len(ordered), max(1, rank)) - 1]

    mean = statistics.fmean(ordered)
    return {
        "latency_ms_mean": mean,
        "latency_ms_std": statistics.pstdev(ordered),
        "latency_ms_min": ordered[0],
        "latency_ms_p50": percentile(0.50),
        "latency_ms_p90": percentile(0.90),
        "latency_ms_p99": percentile(0.99),
        "images_per_s": batch * 1000.0 / mean,
        "iterations": len(ordered),
    }


def time_runner(runner: runtimes.Runner, images: Any, request: BenchRequest) -> dict[str, Any]:
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
    return {"first_inference_ms": first_ms, **latency_stats(latencies, len(images))}


def max_overlap(intervals: list[runtimes.Interval]) -> int:
    """The most requests that were running at one instant (a start and an end at the same
    instant do not overlap)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda event: (event[0], event[1]))  # fmt: skip
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def throughput_stats(intervals: list[runtimes.Interval], batch: int) -> dict[str, Any]:
    """Wall-clock images/s over the whole run, and each request's latency under that load."""
    wall_s = max(end for _, end in intervals) - min(start for start, _ in intervals)
    load = latency_stats([(end - start) * 1000 for start, end in intervals], batch)
    return {
        "images_per_s": batch * len(intervals) / wall_s,
        "wall_s": wall_s,
        "requests": len(intervals),
        "in_flight_observed": max_overlap(intervals),
        **{f"load_{k}": v for k, v in load.items() if k.startswith("latency_ms_")},
    }


def time_streams(streams: runtimes.Streams, images: Any, seconds: float) -> dict[str, Any]:
    streams.drive(images, 0.0)  # warm-up: one request on each stream
    intervals = streams.drive(images, seconds)
    if not intervals:
        raise WorkError("no request finished in throughput mode")
    return throughput_stats(intervals, len(images))


def stream_candidates(threads: int) -> list[int | None]:
    """Requests in flight to try: the runtime's own choice (None), then 1..threads (one stream
    per thread is the usual optimum of a CPU; more only queue)."""
    return [None, *range(1, max(threads, 2) + 1)]


def thread_candidates(threads: int) -> list[int]:
    """Intra-op threads to try for one call at a time: the whole budget, then halves of it down
    to 1 (hyperthreads and memory-bound layers can make fewer threads faster)."""
    found = [threads]
    while found[-1] > 1:
        found.append(found[-1] // 2)
    return found


def search(
    trials: list[tuple[int | None, Callable[[], float]]],
    what: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Run each candidate's trial (images/s) within TUNE_BUDGET_S; the fastest wins."""
    from datetime import datetime, timezone

    tried: dict[str, float] = {}
    best: tuple[float, int | None] = (0.0, None)
    started = time.perf_counter()
    for candidate, trial in trials:
        if tried and time.perf_counter() - started > TUNE_BUDGET_S:
            progress(f"tuning {what}: {TUNE_BUDGET_S:g} s spent, the rest not tried")
            break
        speed = trial()
        tried["auto" if candidate is None else str(candidate)] = speed
        if speed > best[0]:
            best = (speed, candidate)
    return {"best": best[1], "tried_images_per_s": tried,
            "searched_s": time.perf_counter() - started,
            "tuned_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip


def search_streams(
    runner: runtimes.Runner, images: Any, threads: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Requests in flight: each candidate kept in flight for TUNE_TRIAL_S."""
    assert runner.streams is not None
    streams = runner.streams
    trials = [(n, lambda n=n: time_streams(streams(n), images, TUNE_TRIAL_S)["images_per_s"])
              for n in stream_candidates(threads)]  # fmt: skip
    return search(trials, f"{runner.runtime}'s requests in flight", progress)


def search_threads(
    runner: runtimes.Runner, images: Any, threads: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Intra-op threads for one call at a time: each candidate loaded and called back to back
    for TUNE_TRIAL_S."""
    assert runner.threaded is not None
    threaded = runner.threaded
    trials = [(n, lambda n=n: calls_per_second(threaded(n), images))
              for n in thread_candidates(threads)]  # fmt: skip
    return search(trials, f"{runner.runtime}'s threads", progress)


def calls_per_second(runner: runtimes.Runner, images: Any) -> float:
    """Images/s of synchronous calls for TUNE_TRIAL_S, after one warm-up call."""
    runner.run(images)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < TUNE_TRIAL_S:
        runner.run(images)
        calls += 1
    return calls * len(images) / (time.perf_counter() - started)


Search = Callable[[runtimes.Runner, Any, int, Callable[[str], None]], dict[str, Any]]


def tuned(
    setting: str,
    search_now: Search,
    runner: runtimes.Runner,
    images: Any,
    key: dict[str, Any],
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[int | None, str]:
    """A tuned setting and where it comes from: `search_now` within the --threads budget
    (--tune, then cached), the cached search of an earlier --tune, or none (the default)."""
    path = machine_cache_path(f"tuned-{setting}-{key['runtime']}-{key['precision']}",
                              {**key, "setting": setting, "version": TUNE_VERSION})  # fmt: skip
    if not request.tune:
        cached = read_cache_entry(path)
        if cached is None or "best" not in cached or "tuned_at" not in cached:
            return None, "default (--tune searches)"
        return cached["best"], f"tuned {cached['tuned_at']} (cached; --tune searches again)"
    progress(f"tuning {key['runtime']} {key['precision']} {setting} at batch {key['batch']} "
             f"(at most {TUNE_BUDGET_S:g} s)")  # fmt: skip
    found = search_now(runner, images, runtimes.threads_or_default(request.threads), progress)
    try:
        write_cache_entry(path, {**key, **found})
    except OSError as exc:
        progress(f"could not cache the tuning in {path.parent}: {exc.strerror or exc}")
    return found["best"], f"tuned now in {found['searched_s']:.0f} s (cached)"


def chosen_streams(
    runner: runtimes.Runner,
    images: Any,
    key: dict[str, Any],
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[int | None, str]:
    """The requests in flight for a throughput row (None: the runtime's own choice), and
    where they come from: --streams, or `tuned`."""
    if request.streams is not None:
        return request.streams, "--streams"
    return tuned("streams", search_streams, runner, images, key, request, progress)


def chosen_threads(
    runner: runtimes.Runner,
    images: Any,
    key: dict[str, Any],
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[runtimes.Runner, str | None]:
    """The runner a latency row times — loaded on its tuned threads, within the --threads
    budget — and where they come from (None: its threads are the process's, never tuned)."""
    if runner.threaded is None:
        return runner, None
    threads, source = tuned("threads", search_threads, runner, images, key, request, progress)
    if threads is None or threads == runner.threads:
        return runner, source
    return runner.threaded(threads), source


def row_head(
    runner: runtimes.Runner, mode: str, batch: int, request: BenchRequest
) -> dict[str, Any]:
    """What every row, latency or throughput, says first: what ran, how, and no error yet."""
    return {
        "runtime": runner.runtime, "device": runner.device, "provider": runner.provider,
        "precision": runner.precision, "mode": mode, "batch": batch,
        "threads": runner.threads or runtimes.threads_or_default(request.threads),
        "error": None,
    }  # fmt: skip


def throughput_row(
    runner: runtimes.Runner,
    images: Any,
    key: dict[str, Any],
    request: BenchRequest,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    batch = len(images)
    row = row_head(runner, "throughput", batch, request)
    if runner.streams is None:
        row["error"] = "no throughput mode"
        return row
    wanted, source = chosen_streams(runner, images, key, request, progress)
    try:
        streams = runner.streams(wanted)
        row.update(in_flight=streams.in_flight, settings=streams.settings, settings_source=source,
                   threads_per_request=streams.threads_per_request)  # fmt: skip
        row.update(time_streams(streams, images, request.duration_s or THROUGHPUT_DEFAULT_S))
    except Exception as exc:
        if not _is_oom(exc):
            raise WorkError(f"{runner.runtime} failed in throughput mode at batch {batch}: "
                            f"{exc}") from None  # fmt: skip
        row["error"] = "out of memory"
    return row


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "resourceexhausted" in text or "out of memory" in text or "oom" in text.split()


def run_bench(
    model: Any,
    spec: S.ModelSpec | None,
    macs: int | None,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every runtime × precision × batch row, the environment, and the ceiling.

    `request.device` is already resolved to cpu or gpu (`resolve_device`). Each row also
    carries its drift against the fp32 Keras model on the same images.
    """
    from effnet_cli.keras.builder import calibrate_batchnorm, fresh_batchnorm
    from effnet_cli.util import files

    for runtime in list(request.runtimes):
        if request.device not in backends.get(runtime).devices:
            progress(f"{runtime} runs on the CPU here: its rows are skipped on --device gpu")
            request.runtimes.remove(runtime)
    if fresh_batchnorm(model):  # random weights: drift and agreement would compare noise
        calibrate_batchnorm(model, seed=request.seed)
    rows: list[dict[str, Any]] = []
    loaded: list[dict[str, Any]] = []  # throughput rows: a shape of their own (README)
    skipped: list[dict[str, str]] = []
    per_pair = len(request.batches) * len(request.modes)
    count = RowCount(len(request.runtimes) * len(request.precisions) * per_pair)
    with files.scratch_dir(prefix="effnet-bench-") as scratch:
        artifacts = convert_all(model, request, scratch, progress)
        inputs, reference = reference_batches(model, request)
        for runtime in request.runtimes:
            for precision in request.precisions:
                started = time.perf_counter()
                try:
                    with files.stdout_to_stderr(), files.silenced_stderr():
                        runner = make_runner(runtime, precision, model, spec, artifacts, request)
                except runtimes.PrecisionUnavailable as exc:
                    skipped.append(
                        {"runtime": runtime, "precision": precision, "reason": exc.message}
                    )
                    count.done += per_pair  # its rows will not come: the bar moves past them
                    continue
                converted = artifacts.get(artifact_key(runtime, precision), (None, 0.0))[1]
                setup_s = time.perf_counter() - started + converted
                timed = time_modes(runner, inputs, reference, setup_s, macs, request,
                                   model.name, progress, count)  # fmt: skip
                rows += timed["latency"]
                loaded += timed["throughput"]
    ceiling = gemm_ceiling(request.threads, request.device, request.measure_ceiling, progress)
    result = finish(rows, macs, ceiling, request, spec, model)
    result["skipped"] = skipped
    if "throughput" in request.modes:
        result["throughput_rows"] = with_macs(loaded, macs, ceiling)
    return result


@dataclass
class RowCount:
    """Rows timed so far of those planned: progress says "(n/N)", and draws a bar from it."""

    total: int
    done: int = 0

    def next(self) -> str:
        self.done += 1
        return f" ({self.done}/{self.total})"


def time_modes(
    general: runtimes.Runner,
    inputs: dict[int, Any],
    reference: dict[int, Any] | None,
    setup_s: float,
    macs: int | None,
    request: BenchRequest,
    model_name: str,
    progress: Callable[[str], None],
    count: RowCount | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """One runner's rows at every batch size, in each requested mode (latency rows first)."""
    count = count or RowCount(len(request.batches) * len(request.modes))
    timed: dict[str, list[dict[str, Any]]] = {"latency": [], "throughput": []}
    for batch in request.batches:
        images = inputs[batch]
        expected = reference[batch] if reference is not None else None
        started = time.perf_counter()
        runner = at_batch(general, batch)
        loaded_s = setup_s + time.perf_counter() - started  # a pinned runner's compile counts
        pinned = {"batch_pinned": runner is not general}  # --recommend exports that batch
        # what a tuning is cached under: this machine (the path), model, runtime, batch, budget
        key = {"model": model_name, "resolution": list(images.shape[1:3]),
               "runtime": runner.runtime, "precision": runner.precision, "batch": batch,
               "threads": runtimes.threads_or_default(request.threads)}  # fmt: skip
        if "latency" in request.modes:
            progress(f"timing {runner.runtime} {runner.precision} at batch {batch}{count.next()}")
            timed["latency"].append(
                time_row(runner, images, expected, loaded_s, macs, key, request, progress) | pinned
            )
        if "throughput" in request.modes:
            progress(f"timing {runner.runtime} {runner.precision} at batch {batch}, throughput"
                     f"{count.next()}")  # fmt: skip
            row = throughput_row(runner, images, key, request, progress)
            if not row["error"]:
                row.update(drift_fields(runner, images, expected))
            row.update(setup_s=loaded_s, **pinned)
            timed["throughput"].append(row)
    return timed


def at_batch(runner: runtimes.Runner, batch: int) -> runtimes.Runner:
    """The runner to time `batch` with: its artifact compiled for that batch where the runtime
    runs a static shape faster (the row's settings say so), else the runner itself."""
    return runner.pinned(batch) if runner.pinned is not None else runner


def with_macs(
    rows: list[dict[str, Any]], macs: int | None, ceiling: dict[str, Any]
) -> list[dict[str, Any]]:
    gemm = ceiling.get("gemm_flops")
    for row in rows:
        if macs and not row.get("error"):
            row["macs_per_s"] = macs * row["images_per_s"]
            if gemm:
                row["ceiling_fraction"] = 2 * row["macs_per_s"] / gemm
    return rows


def drift_fields(runner: runtimes.Runner, images: Any, reference: Any | None) -> dict[str, Any]:
    """Drift and top-1 agreement against fp32 Keras; None (said unmeasured) without a reference."""
    import numpy as np

    from effnet_cli.workflows.export import compare

    if reference is None:
        return {"drift_max_rel": None, "top1_agreement": None, "drift": "unmeasured"}
    outputs = np.asarray(runner.comparable(images), dtype="float32")
    drift, agreement = compare(outputs, reference)
    return {"drift_max_rel": drift, "top1_agreement": agreement}


def artifact_key(runtime: str, precision: str) -> tuple[str, str]:
    """The artifact a (runtime, precision) row runs: a file precision has its own file; a
    runtime hint or a dtype policy runs the fp32 file."""
    way = backends.get(runtime).precisions.get(precision)
    return (runtime, precision if way is not None and way.how == "file" else "fp32")


def files_needed(request: BenchRequest) -> list[tuple[str, str]]:
    """The (backend, precision) artifacts to convert; Keras runs the model itself."""
    needed: dict[tuple[str, str], None] = {}
    for runtime in request.runtimes:
        backend = backends.get(runtime)
        for precision in request.precisions:
            if backend.runs_model is None and precision in backend.precisions:
                needed[artifact_key(runtime, precision)] = None
    return list(needed)


def convert_all(
    model: Any, request: BenchRequest, scratch: Path, progress: Callable[[str], None]
) -> dict[tuple[str, str], tuple[Path, float]]:
    """Write every artifact before any forward pass: tf2onnx needs far more memory in a process
    that already ran the model forward (B7: 17 GB instead of 9.4 GB, measured here). An artifact
    that needs calibration images is written only with --calibration; else its rows are skipped."""
    from effnet_cli.util import files
    from effnet_cli.workflows.export import load_calibration

    artifacts = {}
    calibration = None
    with backends.reusing_conversions():
        for runtime, precision in files_needed(request):
            backend = backends.get(runtime)
            if backend.precisions[precision].calibration:
                if request.calibration is None:
                    continue
                if calibration is None:
                    calibration = load_calibration(request.calibration, model.input.shape[1])
            progress(f"converting to {runtime} {precision}")
            path = scratch / backend.artifact_name("model", precision)
            started = time.perf_counter()
            with files.stdout_to_stderr(), files.silenced_stderr():
                backend.write(model, path, opset=backends.DEFAULT_OPSET, batch=None, meta={},  # type: ignore[misc]
                              precision=precision, calibration=calibration)  # fmt: skip
            artifacts[(runtime, precision)] = (path, time.perf_counter() - started)
    return artifacts


def reference_batches(model: Any, request: BenchRequest) -> tuple[dict[int, Any], dict[int, Any]]:
    """Seeded images per batch size and the fp32 Keras model's logits on them (its outputs where
    it has no softmax: a saturated softmax would hide the drift, as in export's verification)."""
    import numpy as np

    height, width = model.input.shape[1:3]
    rng = np.random.default_rng(request.seed)
    inputs = {
        b: rng.uniform(0, 255, (b, height, width, 3)).astype("float32") for b in request.batches
    }
    keras = keras_runner(model, request.device)  # tf.functions: less memory than eager
    return inputs, {b: np.asarray(keras.comparable(x)) for b, x in inputs.items()}


def make_runner(
    runtime: str,
    precision: str,
    model: Any,
    spec: S.ModelSpec | None,
    artifacts: dict[tuple[str, str], tuple[Path, float]],
    request: BenchRequest,
) -> runtimes.Runner:
    way = backends.get(runtime).precisions.get(precision)
    if way is None:
        offered = backends.get(runtime).precisions
        raise runtimes.PrecisionUnavailable(f"{runtime} offers {choices(offered)}")
    if way.calibration and request.calibration is None:
        raise runtimes.PrecisionUnavailable(
            f"{runtime} {precision} is calibrated into the file: pass --calibration DIR or FILE.npy"
        )
    runs_model = backends.get(runtime).runs_model
    if runs_model is None:
        path = artifacts[artifact_key(runtime, precision)][0]
        return backends.load_runner(runtime, path, request.device, request.threads, precision)
    if precision == "fp32":
        return runs_model(model, request.device, request.xla)
    if spec is None:  # the dtype policy rebuilds the network from its spec
        raise runtimes.PrecisionUnavailable(
            "Keras runs bf16 through the mixed_bfloat16 policy on a model built from options "
            "(not --from)"
        )
    runner = runs_model(mixed_bfloat16_twin(model, spec), request.device, request.xla)
    native = request.device == "gpu" or capabilities.native_on_cpu("bf16")
    return replace(runner, precision="bf16" if native else "bf16-emulated")


def mixed_bfloat16_twin(model: Any, spec: S.ModelSpec) -> Any:
    """The same network and weights under Keras' mixed_bfloat16 policy (bf16 compute)."""
    from effnet_cli.keras.builder import build_model, import_keras

    keras = import_keras()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        twin = build_model(spec)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # set_weights alone does not reach the outputs
    return twin


def time_row(
    given: runtimes.Runner,
    images: Any,
    reference: Any | None,
    setup_s: float,
    macs: int | None,
    key: dict[str, Any],
    request: BenchRequest,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    batch = len(images)
    runner, source = chosen_threads(given, images, key, request, progress)
    row = {**row_head(runner, "latency", batch, request), "settings": runner.settings,
           "settings_source": source, "setup_s": setup_s}  # fmt: skip
    try:
        row.update(time_runner(runner, images, request))
        row.update(drift_fields(runner, images, reference))
    except Exception as exc:
        if not _is_oom(exc):
            raise WorkError(f"{runner.runtime} failed at batch {batch}: {exc}") from None
        row["error"] = "out of memory"
        progress(f"{runner.runtime} at batch {batch}: out of memory (row skipped)")
        return row
    if macs:
        row["macs_per_s"] = macs * row["images_per_s"]
    return row


def finish(
    rows: list[dict[str, Any]],
    macs: int | None,
    ceiling: dict[str, Any],
    request: BenchRequest,
    spec: S.ModelSpec | None,
    model: Any,
) -> dict[str, Any]:
    """Attach the ceiling fraction to each row: achieved FLOP/s (2 per MAC) ÷ GEMM FLOP/s."""
    gemm = ceiling.get("gemm_flops")
    for row in rows:
        if row.get("macs_per_s") and gemm:
            row["ceiling_fraction"] = 2 * row["macs_per_s"] / gemm
    height, width = model.input.shape[1:3]
    return {
        "model": {
            "name": model.name,
            "resolution": [height, width],
            "macs": macs,
            "family": spec.family.name if spec else None,
            # the model object every command's JSON shares (model/identity.py)
            "classes": spec.num_classes if spec is not None and spec.include_top else None,
            "preprocessing": spec.preprocessing if spec else None,
        },
        "settings": {
            "device": request.device,
            "batches": list(request.batches),
            "warmup": request.warmup,
            "iterations": request.iterations,
            "duration_s": request.duration_s,
            "threads": runtimes.threads_or_default(request.threads),
            "seed": request.seed,
            "xla": request.xla,
            "modes": list(request.modes),
        },
        "ceiling": ceiling,
        "environment": environment(request.threads),
        "rows": rows,
    }


GateKey = tuple[str, str, str, int, int]  # runtime, precision, mode, batch, threads
GATE_FIELDS = ("runtime", "precision", "mode", "batch", "threads")


def gate_key(row: dict[str, Any], threads: int) -> GateKey:
    """What a row is compared on; rows of results older than `mode`/`threads` in rows get the
    defaults of their time (latency; the run's threads)."""
    return (str(row["runtime"]), str(row["precision"]), str(row.get("mode", "latency")),
            int(row["batch"]), int(row.get("threads", threads)))  # fmt: skip


def baseline_rows(baseline: dict[str, Any]) -> dict[GateKey, dict[str, Any]]:
    """The baseline's timed rows (rows with an error have no latency), by gate key."""
    threads = int(baseline["settings"]["threads"])
    return {
        gate_key(row, threads): row
        for row in baseline["rows"]
        if not row.get("error") and row.get("latency_ms_p50")
    }


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier `effnet bench --json` result, checked before any benchmark runs."""
    import json

    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"baseline {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read baseline {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(baseline, dict) or not str(baseline.get("schema", "")).startswith(
        "effnet.bench/"
    ):
        raise UsageError(f"{path} is not an `effnet bench --json` result")
    try:
        str(baseline["model"]["name"]), str(baseline["settings"]["device"])
        baseline_rows(baseline)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a complete `effnet bench --json` result (missing or malformed: {exc})"
        ) from None
    return baseline


def gate_threshold(baseline: Path | None, max_regression_pct: float | None) -> float:
    """The allowed p50 slowdown in percent; `--max-regression` means nothing without a baseline."""
    if baseline is None:
        if max_regression_pct is not None:
            raise UsageError(
                "--max-regression applies only with --baseline FILE",
                hint="give an earlier `effnet bench --json` result to compare with",
            )
        return DEFAULT_MAX_REGRESSION_PCT
    pct = DEFAULT_MAX_REGRESSION_PCT if max_regression_pct is None else max_regression_pct
    if not 0 <= pct <= 10_000:
        raise UsageError(f"--max-regression must lie between 0 and 10000 percent, not {pct:g}")
    return pct


def expected_model_name(spec: S.ModelSpec | None, source: Path | None) -> str:
    """The name the benchmarked model will carry, known without building or loading it."""
    if spec is not None:
        return spec.name
    assert source is not None
    return keras_file_model_name(source) or source.stem


def _check_same_model_and_device(baseline: dict[str, Any], name: str, device: str) -> None:
    theirs = baseline["model"]["name"]
    if theirs != name:
        raise UsageError(
            f"baseline is for {theirs}, this run is {name}",
            hint="compare with a baseline of the same model, resolution and options",
        )
    ran_on = baseline["settings"]["device"]
    if ran_on != device:
        raise UsageError(
            f"baseline ran on --device {ran_on}, this run is on {device}",
            hint="compare with a baseline recorded on the same device",
        )


def _listed(values: set[Any]) -> str:
    return ",".join(str(v) for v in sorted(values))


def check_baseline(baseline: dict[str, Any], name: str, request: BenchRequest) -> None:
    """Refuse, before anything is built or timed, a baseline this run cannot be compared with:
    another model, another device, or no row that the requested runtimes × precisions × batches
    × threads could match (a `bf16` request matches a `bf16-emulated` row: the label is known
    only after the run)."""
    _check_same_model_and_device(baseline, name, request.device)
    ours: dict[str, set[Any]] = {
        "runtime": set(request.runtimes), "precision": set(request.precisions),
        "mode": {"latency"}, "batch": set(request.batches),
        "threads": {runtimes.threads_or_default(request.threads)},
    }  # fmt: skip

    def comparable(key: GateKey) -> tuple[Any, ...]:
        return (key[0], key[1].split("-")[0], *key[2:])

    theirs = [comparable(key) for key in baseline_rows(baseline)]
    if not theirs:
        raise UsageError("the baseline has no timed row to compare with")
    if any(all(v in ours[f] for f, v in zip(GATE_FIELDS, key, strict=True)) for key in theirs):
        return
    differing = [
        f"{field_} {_listed(values)} (this run: {_listed(ours[field_])})"
        for i, field_ in enumerate(GATE_FIELDS)
        if not (values := {key[i] for key in theirs}) & ours[field_]
    ]
    raise UsageError(
        "the baseline has no row this run could match: it has "
        + ("; ".join(differing) or "no row with this run's runtime, precision, batch and "
           "threads together"),
        hint="run with the baseline's runtimes, precisions, batches and --threads, "
        "or record a new baseline",
    )  # fmt: skip


def compare_baseline(
    result: dict[str, Any], baseline: dict[str, Any], max_regression_pct: float
) -> list[dict[str, Any]]:
    """One comparison of p50 latency for each row of this run that the baseline has under the
    same key (runtime, precision, mode, batch, threads): fp32 and bf16 rows never meet."""
    _check_same_model_and_device(baseline, result["model"]["name"], result["settings"]["device"])
    before = baseline_rows(baseline)
    compared = []
    for row in result["rows"]:
        if row.get("error"):
            continue
        key = gate_key(row, result["settings"]["threads"])
        old = before.get(key)
        if old is None:
            continue
        change = (row["latency_ms_p50"] / old["latency_ms_p50"] - 1) * 100
        row["regression_pct"] = change
        compared.append({
            **dict(zip(GATE_FIELDS, key, strict=True)),
            "latency_ms_p50": row["latency_ms_p50"],
            "baseline_latency_ms_p50": old["latency_ms_p50"],
            "change_pct": change,
            "allowed_pct": max_regression_pct,
            "passed": change <= max_regression_pct,
        })  # fmt: skip
    return compared


def enforce_gate(compared: list[dict[str, Any]]) -> None:
    """Exit 2 when nothing was compared (a gate that checks nothing must not pass), 3 when a
    compared row is slower than allowed."""
    if not compared:
        raise UsageError(
            "no row of this run matches a baseline row (runtime, precision, mode, batch and "
            "threads): nothing was compared",
            hint="run with the baseline's settings, or record a new baseline",
        )
    slower = [c for c in compared if not c["passed"]]
    if slower:
        raise RegressionError(
            f"{len(slower)} of {len(compared)} row(s) slower than the baseline beyond "
            f"{slower[0]['allowed_pct']:g} %: "
            + "; ".join(
                f"{c['runtime']} {c['precision']} batch {c['batch']} threads {c['threads']} "
                f"{c['change_pct']:+.0f} %"
                for c in slower
            )
        )


def recommend(
    result: dict[str, Any], model_args: list[str] | None, calibration: Path | None
) -> list[dict[str, Any]]:
    """`--recommend`: per precision and mode, the fastest row fit to deploy, and the exact
    `effnet export` command that writes its artifact (`model_args` None: the benched file is
    the artifact). Never a row with an error, an emulated
    precision, drift that was not measured, or top-1 agreement under RECOMMEND_MIN_AGREEMENT."""
    answers = []
    every = result["rows"] + result.get("throughput_rows", [])
    for mode in result["settings"]["modes"]:
        rows = result["rows"] if mode == "latency" else result.get("throughput_rows", [])
        for precision in dict.fromkeys(row["precision"].split("-")[0] for row in rows):
            candidates = [r for r in rows if r["precision"].split("-")[0] == precision]
            fit = [r for r in candidates if unfit_reason(r, every) is None]
            if not fit:
                reasons = sorted({str(unfit_reason(r, every)) for r in candidates})
                answers.append({"precision": precision, "mode": mode, "none": "; ".join(reasons)})
                continue
            best = max(fit, key=lambda row: row["images_per_s"])
            answers.append(deploy_answer(best, mode, model_args, calibration, result["model"]))
    return answers


def unfit_reason(row: dict[str, Any], every: list[dict[str, Any]]) -> str | None:
    """Why a row may not be recommended, or None. Agreement is the artifact's, not the row's:
    the lowest over all its rows (a batch of one image agrees 100 % or 0 %)."""
    if row.get("error"):
        return f"{row['runtime']}: {row['error']}"
    if row["precision"].endswith("-emulated"):
        return f"{row['runtime']} runs {row['precision']}"
    same = [r.get("top1_agreement") for r in every
            if (r["runtime"], r["precision"]) == (row["runtime"], row["precision"])
            and not r.get("error")]  # fmt: skip
    if row.get("top1_agreement") is None or None in same:
        return f"{row['runtime']}: drift unmeasured"
    if min(same) < RECOMMEND_MIN_AGREEMENT:
        return (f"{row['runtime']} {row['precision']}: top-1 agreement {min(same):.0%} under "
                f"{RECOMMEND_MIN_AGREEMENT:.0%}")  # fmt: skip
    return None


def deploy_answer(
    row: dict[str, Any],
    mode: str,
    model_args: list[str] | None,
    calibration: Path | None,
    model: dict[str, Any],
) -> dict[str, Any]:
    """The row, its artifact and the command that writes it. A hint (OpenVINO bf16/fp16) or a
    dtype policy (Keras bf16) runs the fp32 file: the settings say how to run it."""
    import shlex

    backend = backends.get(row["runtime"])
    way = backend.precisions[row["precision"]]
    file_precision = row["precision"] if way.how == "file" else "fp32"
    command = ["effnet", "export", *(model_args or []), "-f", row["runtime"]]
    if row.get("batch_pinned"):  # timed on the artifact compiled for its batch: deploy that
        command += ["--batch", str(row["batch"])]
    if file_precision != "fp32":
        command += ["--quantize", file_precision]
    if way.calibration and calibration is not None:
        command += ["--calibration", str(calibration)]
    command += ["-o", "deploy"]
    name, result_artifact = model["name"], model.get("artifact")
    settings = row.get("settings") or ""
    if way.applied:  # a hint or a policy: how the fp32 file is run
        settings = f"{settings}; {way.applied}"
    return {
        "precision": row["precision"], "mode": mode, "runtime": row["runtime"],
        "batch": row["batch"], "images_per_s": row["images_per_s"],
        "drift_max_rel": row["drift_max_rel"], "top1_agreement": row["top1_agreement"],
        "settings": settings, "how": way.how, "file_precision": file_precision,
        "artifact": f"deploy/{backend.artifact_name(name, file_precision)}"
        if model_args is not None else result_artifact,
        "command": shlex.join(command) if model_args is not None else None,
    }  # fmt: skip


def artifact_resolution(document: dict[str, Any]) -> tuple[int, int] | None:
    """Height and width of an artifact's (NHWC or NCHW) image input, from `inspect`'s document;
    None where they are not fixed."""
    shape = document["inputs"][0]["shape"]
    if len(shape) != 4:
        return None
    height, width = (shape[2], shape[3]) if shape[1] == 3 and shape[3] != 3 else shape[1:3]
    return (height, width) if height and width else None


def run_artifact_bench(
    path: Path,
    reference: Any | None,
    resolution: int | None,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """`bench --from FILE` for any backend's artifact: that file timed with its own runtime,
    labelled with the precision read from it; drift against `reference` (a Keras model) when
    given, else said to be unmeasured."""
    import numpy as np

    from effnet_cli.backends import describe
    from effnet_cli.util import files

    backend = backends.of_path(path)
    if backend.runs_model is not None:
        raise UsageError("a .keras file is benched as a model: bench --from FILE.keras")
    document = describe.describe(path)  # inspect's reading: typed metadata, the model object
    size = artifact_resolution(document) or ((resolution, resolution) if resolution else None)
    if size is None:
        raise UsageError(f"{path.name} takes any input size: give --resolution")
    precision = document["metadata"].get("precision") or describe.artifact_precision(
        backend.name, path
    )
    started = time.perf_counter()
    with files.stdout_to_stderr(), files.silenced_stderr():
        runner = backend.load(path, request.device, request.threads, precision)
    runner = replace(runner, runtime=backend.name)
    setup_s = time.perf_counter() - started
    rng = np.random.default_rng(request.seed)
    inputs = {b: rng.uniform(0, 255, (b, *size, 3)).astype("float32") for b in request.batches}
    expected = None
    if reference is not None:
        from effnet_cli.keras.builder import fresh_batchnorm

        if fresh_batchnorm(reference):  # export gave its model statistics before writing
            progress("the reference's BatchNorm statistics are fresh (random weights): give the "
                     ".keras that `export -f keras` wrote with the artifact")  # fmt: skip
        keras = keras_runner(reference, request.device)
        expected = {b: np.asarray(keras.comparable(x)) for b, x in inputs.items()}
    name = document.get("metadata", {}).get("model") or path.stem
    timed = time_modes(runner, inputs, expected, setup_s, None, request, name, progress)
    ceiling = gemm_ceiling(request.threads, request.device, request.measure_ceiling, progress)
    result = {
        # the one model object (README "Output for scripts"), from what the file says
        "model": {**document["model"], "name": name, "resolution": list(size), "macs": None,
                  "artifact": str(path), "precision": precision},
        "settings": {"device": request.device, "batches": list(request.batches),
                     "warmup": request.warmup, "iterations": request.iterations,
                     "duration_s": request.duration_s,
                     "threads": runtimes.threads_or_default(request.threads),
                     "seed": request.seed, "xla": False, "modes": list(request.modes)},
        "ceiling": ceiling,
        "environment": environment(request.threads),
        "rows": timed["latency"],
        "skipped": [],
    }  # fmt: skip
    if "throughput" in request.modes:
        result["throughput_rows"] = timed["throughput"]
    return result
