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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli import __version__, runtimes
from effnet_cli import spec as S
from effnet_cli.errors import UsageError, WorkError

RUNTIMES = ("keras", "onnx", "tflite", "openvino")
# Dense SGEMM rate of this project's reference machine (2-core AMD EPYC, oneDNN, 2 threads),
# measured 2026-11; `--ceiling` measures the machine at hand instead.
REFERENCE_GEMM_FLOPS = 450e9
ESTIMATE_NOTE = "estimate: the reference 2-core machine's SGEMM (pass --ceiling to measure)"


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


def parse_precisions(value: str) -> list[str]:
    chosen: list[str] = []
    for part in (p.strip().lower() for p in value.split(",")):
        options = runtimes.PRECISIONS if part == "all" else (part,)
        for precision in options:
            if precision not in runtimes.PRECISIONS:
                raise UsageError(f"unknown --precision {part!r}; valid: fp32, bf16, fp16 or all")
            if precision not in chosen:
                chosen.append(precision)
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
    """Every runtime × precision × batch row, the environment, and the ceiling.

    `request.device` is already resolved to cpu or gpu (`resolve_device`). Each row also
    carries its drift against the fp32 Keras model on the same images.
    """
    from effnet_cli import files
    from effnet_cli.builder import calibrate_batchnorm, fresh_batchnorm

    if request.device == "gpu":
        for cpu_only in ("tflite", "openvino"):
            if cpu_only in request.runtimes:
                progress(f"{cpu_only} runs on the CPU here: its rows are skipped on --device gpu")
        request.runtimes = [r for r in request.runtimes if r not in ("tflite", "openvino")]
    if fresh_batchnorm(model):  # random weights: drift and agreement would compare noise
        calibrate_batchnorm(model, seed=request.seed)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with files.scratch_dir(prefix="effnet-bench-") as scratch:
        artifacts = convert_all(model, request.runtimes, scratch, progress)
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
                    continue
                setup_s = time.perf_counter() - started + artifacts.get(runtime, (None, 0.0))[1]
                for batch in request.batches:
                    progress(f"timing {runtime} {precision} at batch {batch}")
                    rows.append(
                        time_row(runner, inputs[batch], reference[batch], setup_s, macs, request,
                                 progress)
                    )  # fmt: skip
    ceiling = measure_gemm_flops(request.threads) if request.measure_ceiling else None
    result = finish(rows, macs, ceiling, request, spec, model)
    result["skipped"] = skipped
    return result


def convert_all(
    model: Any, chosen: list[str], scratch: Path, progress: Callable[[str], None]
) -> dict[str, tuple[Path, float]]:
    """Write each runtime's artifact before any forward pass (tf2onnx's memory, FACTS.md)."""
    from effnet_cli import export as E
    from effnet_cli import files

    artifacts = {}
    for runtime in chosen:
        if runtime == "keras":
            continue
        progress(f"converting to {runtime}")
        path = scratch / f"model.{runtime}"
        started = time.perf_counter()
        with files.stdout_to_stderr(), files.silenced_stderr():
            E.WRITERS[runtime](model, path, opset=E.DEFAULT_OPSET, batch=None, meta={},
                               quantize="none")  # fmt: skip
        artifacts[runtime] = (path, time.perf_counter() - started)
    return artifacts


def reference_batches(model: Any, request: BenchRequest) -> tuple[dict[int, Any], dict[int, Any]]:
    """Seeded images per batch size and the fp32 Keras model's outputs on them."""
    import numpy as np

    height, width = model.input.shape[1:3]
    rng = np.random.default_rng(request.seed)
    inputs = {
        b: rng.uniform(0, 255, (b, height, width, 3)).astype("float32") for b in request.batches
    }
    keras_run = runtimes.keras_runner(model, request.device).run  # a tf.function: less memory
    return inputs, {b: np.asarray(keras_run(x)) for b, x in inputs.items()}


def native_bf16_cpu() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_runner(
    runtime: str,
    precision: str,
    model: Any,
    spec: S.ModelSpec | None,
    artifacts: dict[str, tuple[Path, float]],
    request: BenchRequest,
) -> runtimes.Runner:
    if runtime != "keras":
        path = artifacts[runtime][0]
        if runtime == "tflite" and precision != "fp32":
            raise runtimes.PrecisionUnavailable(
                "effnet benches TFLite in fp32; export --quantize fp16 gives an fp16 file"
            )
        return runtimes.load_runner(runtime, path, request.device, request.threads, precision)
    if precision == "fp32":
        return runtimes.keras_runner(model, request.device, request.xla)
    if precision != "bf16" or spec is None:
        raise runtimes.PrecisionUnavailable(
            "Keras runs fp32, or bf16 through the mixed_bfloat16 policy on a model built from "
            "options (not --from)"
        )
    runner = runtimes.keras_runner(mixed_bfloat16_twin(model, spec), request.device, request.xla)
    native = request.device == "gpu" or native_bf16_cpu()
    runner.precision = "bf16" if native else "bf16-emulated"
    return runner


def mixed_bfloat16_twin(model: Any, spec: S.ModelSpec) -> Any:
    """The same network and weights under Keras' mixed_bfloat16 policy (bf16 compute)."""
    from effnet_cli.builder import build_model, import_keras

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
    runner: runtimes.Runner,
    images: Any,
    reference: Any,
    setup_s: float,
    macs: int | None,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    import numpy as np

    from effnet_cli.export import compare

    batch = len(images)
    row: dict[str, Any] = {
        "runtime": runner.runtime, "device": runner.device, "provider": runner.provider,
        "precision": runner.precision, "batch": batch, "setup_s": setup_s, "error": None,
    }  # fmt: skip
    try:
        row.update(time_runner(runner, images, request))
        outputs = np.asarray(runner.run(images), dtype="float32")
    except Exception as exc:
        if not _is_oom(exc):
            raise WorkError(f"{runner.runtime} failed at batch {batch}: {exc}") from None
        row["error"] = "out of memory"
        progress(f"{runner.runtime} at batch {batch}: out of memory (row skipped)")
        return row
    row["drift_max_rel"], row["top1_agreement"] = compare(outputs, reference)
    if macs:
        row["macs_per_s"] = macs * row["images_per_s"]
    return row


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
