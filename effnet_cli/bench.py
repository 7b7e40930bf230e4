"""Timing loops, statistics, environment capture, baselines and the regression gate.

Runs go through runtimes.py (the adapters export's verification uses). The conventions follow
the field's tools: warm-up calls are not timed, every timed call is one synchronous inference
of a whole batch, percentiles are over per-call latencies (MLPerf's single-stream style), and
throughput is batch / mean latency.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli import __version__, runtimes
from effnet_cli import spec as S
from effnet_cli.errors import UsageError, WorkError

RUNTIMES = ("keras", "onnx", "tflite")
# Dense SGEMM rate of this project's reference machine (2-core AMD EPYC, oneDNN, 2 threads),
# measured 2026-11; `--ceiling` measures the machine at hand instead.
REFERENCE_GEMM_FLOPS = 450e9
ESTIMATE_NOTE = "estimate: the reference 2-core machine's SGEMM (pass --ceiling to measure)"


@dataclass
class BenchRequest:
    runtimes: list[str]
    device: str = "cpu"
    batches: tuple[int, ...] = (1, 8)
    warmup: int = 3
    iterations: int | None = 20
    duration_s: float | None = None
    threads: int | None = None
    seed: int = 0
    xla: bool = False
    measure_ceiling: bool = False


def parse_runtimes(value: str) -> list[str]:
    chosen: list[str] = []
    for part in (p.strip().lower() for p in value.split(",")):
        if part == "all":
            chosen.extend(r for r in RUNTIMES if r not in chosen)
        elif part in RUNTIMES:
            chosen.append(part) if part not in chosen else None
        else:
            raise UsageError(f"unknown --runtime {part!r}; valid: {', '.join(RUNTIMES)} or all")
    return chosen


def parse_batches(value: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(part) for part in value.split(",") if part.strip())
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
    if request.threads is not None and not 1 <= request.threads <= 1024:
        raise UsageError(f"--threads must lie between 1 and 1024, not {request.threads}")


def configure_threads(threads: int | None) -> None:
    """TensorFlow reads its thread pools' sizes once, at start-up: set them before it loads."""
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def resolve_device(device: str, progress: Callable[[str], None]) -> str:
    """`gpu` must exist (never a silent fallback); `auto` says what it picked."""
    if device == "cpu":
        return "cpu"
    gpus = runtimes.gpus_visible()
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
    for package in ("tensorflow", "keras", "onnxruntime", "ai-edge-litert", "tf2onnx", "onnx",
                    "numpy", "openvino"):  # fmt: skip
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
        "gpus": runtimes.gpus_visible(),
        "threads": runtimes.threads_or_default(threads),
        "versions": versions,
    }


def measure_gemm_flops(threads: int | None, seconds: float = 1.0) -> float:
    """The machine's dense float32 matrix-multiply rate through TensorFlow (oneDNN/Eigen)."""
    import tensorflow as tf

    n = 1024
    a = tf.random.uniform((n, n))
    b = tf.random.uniform((n, n))
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    matmul().numpy()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        matmul().numpy()
        calls += 1
    return 2 * n**3 * calls / (time.perf_counter() - started)


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
    """Every runtime × batch row, the environment, and the ceiling it is measured against.

    `request.device` is already resolved to cpu or gpu (`resolve_device`)."""
    import numpy as np

    from effnet_cli import export as E
    from effnet_cli import files

    device = request.device
    if device == "gpu" and "tflite" in request.runtimes:
        progress("LiteRT runs on the CPU here: the tflite rows are skipped on --device gpu")
        request.runtimes = [r for r in request.runtimes if r != "tflite"]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="effnet-bench-") as scratch:
        artifacts = {}
        for runtime in request.runtimes:  # convert before any forward pass (memory, FACTS.md)
            if runtime in ("onnx", "tflite"):
                progress(f"converting to {runtime}")
                path = Path(scratch) / f"model.{runtime}"
                started = time.perf_counter()
                with files.stdout_to_stderr(), files.silenced_stderr():
                    E.WRITERS[runtime](model, path, opset=E.DEFAULT_OPSET, batch=None,
                                       meta={}, quantize="none")  # fmt: skip
                artifacts[runtime] = (path, time.perf_counter() - started)
        height, width = model.input.shape[1:3]
        rng = np.random.default_rng(request.seed)
        for runtime in request.runtimes:
            started = time.perf_counter()
            with files.stdout_to_stderr(), files.silenced_stderr():
                if runtime == "keras":
                    runner = runtimes.keras_runner(model, device, request.xla)
                else:
                    path = artifacts[runtime][0]
                    runner = runtimes.load_runner(runtime, path, device, request.threads)
            setup_s = time.perf_counter() - started + (artifacts.get(runtime, (None, 0.0))[1])
            for batch in request.batches:
                progress(f"timing {runtime} at batch {batch}")
                images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
                row: dict[str, Any] = {
                    "runtime": runtime, "device": runner.device, "provider": runner.provider,
                    "precision": runner.precision, "batch": batch, "setup_s": setup_s,
                    "error": None,
                }  # fmt: skip
                try:
                    row.update(time_runner(runner, images, request))
                except Exception as exc:
                    if not _is_oom(exc):
                        raise WorkError(f"{runtime} failed at batch {batch}: {exc}") from None
                    row["error"] = "out of memory"
                    progress(f"{runtime} at batch {batch}: out of memory (row skipped)")
                if macs and row["error"] is None:
                    row["macs_per_s"] = macs * row["images_per_s"]
                rows.append(row)
    ceiling = measure_gemm_flops(request.threads) if request.measure_ceiling else None
    return finish(rows, macs, ceiling, request, spec, model)


def finish(
    rows: list[dict[str, Any]],
    macs: int | None,
    measured: float | None,
    request: BenchRequest,
    spec: S.ModelSpec | None,
    model: Any,
) -> dict[str, Any]:
    """Attach the ceiling fraction to each row: achieved FLOP/s (2 per MAC) ÷ GEMM FLOP/s."""
    gemm = measured or REFERENCE_GEMM_FLOPS
    for row in rows:
        if row.get("macs_per_s"):
            row["ceiling_fraction"] = 2 * row["macs_per_s"] / gemm
    height, width = model.input.shape[1:3]
    return {
        "model": {
            "name": model.name,
            "resolution": [height, width],
            "macs": macs,
            "family": spec.family.name if spec else None,
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
        },
        "ceiling": {
            "gemm_flops": gemm,
            "source": "measured (TensorFlow SGEMM)" if measured else ESTIMATE_NOTE,
        },
        "environment": environment(request.threads),
        "rows": rows,
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
    return baseline


def compare_baseline(
    result: dict[str, Any], baseline: dict[str, Any], max_regression_pct: float
) -> list[str]:
    """Rows slower than the baseline's by more than `max_regression_pct` (p50 latency)."""
    if baseline["model"]["name"] != result["model"]["name"]:
        raise UsageError(
            f"baseline is for {baseline['model']['name']}, this run is {result['model']['name']}"
        )
    before = {(r["runtime"], r["batch"]): r for r in baseline["rows"] if not r.get("error")}
    regressions = []
    for row in result["rows"]:
        old = before.get((row["runtime"], row["batch"]))
        if old is None or row.get("error"):
            continue
        change = (row["latency_ms_p50"] / old["latency_ms_p50"] - 1) * 100
        row["regression_pct"] = change
        if change > max_regression_pct:
            regressions.append(
                f"{row['runtime']} batch {row['batch']}: p50 {row['latency_ms_p50']:.2f} ms vs "
                f"{old['latency_ms_p50']:.2f} ms (+{change:.0f} % > {max_regression_pct:g} %)"
            )
    return regressions
