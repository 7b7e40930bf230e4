"""The machine a run times on: its threads and device, its environment, its GEMM ceiling."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from effnet_cli import __version__, backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.keras import gpus_visible
from effnet_cli.records.bench import Ceiling, Environment
from effnet_cli.util.capabilities import cpu_name
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows.bench.cache import (
    machine_cache_path,
    read_cache_entry,
    write_cache_entry,
)

# The ceiling probe: its version is part of the cache key, so changing the method re-measures.
PROBE_VERSION = 1
PROBE_METHOD = "TensorFlow float32 matmul 1024×1024 on the CPU (oneDNN), best 0.1 s window of 1 s"


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


def environment(threads: int | None) -> Environment:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in backends.packages_needed():
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return Environment(
        effnet=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        gpus=tuple(gpus_visible()),
        threads=runtimes.threads_or_default(threads),
        versions=versions,
    )


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

    @tf.function  # type: ignore[untyped-decorator]  # TensorFlow ships no types
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


def read_cached_ceiling(path: Any) -> dict[str, Any] | None:
    """A cached ceiling, or None where there is none or it holds no positive rate."""
    entry = read_cache_entry(path)
    flops = entry.get("gemm_flops") if entry is not None else None
    return entry if isinstance(flops, int | float) and flops > 0 else None


def gemm_ceiling(
    threads: int | None, device: str, refresh: bool, progress: Callable[[str], None]
) -> Ceiling:
    """The machine's dense-GEMM rate: cached per CPU and thread count, measured where absent or
    `refresh` (`--ceiling`). Where it cannot be measured, `gemm_flops` is None and `reason` says
    why: no made-up number."""
    from datetime import datetime, timezone

    cpu, count = cpu_name(), runtimes.threads_or_default(threads)
    unavailable = Ceiling(
        gemm_flops=None,
        source="unavailable",
        measured_at=None,
        threads=count,
        cpu=cpu,
        method=PROBE_METHOD,
    )
    if device != "cpu":
        return replace(
            unavailable, reason="the ceiling is the CPU's GEMM rate; not for --device gpu"
        )
    path = machine_cache_path(
        f"gemm-ceiling-{count}t", {"threads": count, "version": PROBE_VERSION}
    )
    cached = None if refresh else read_cached_ceiling(path)
    if cached is not None:
        return replace(unavailable, **_entry_fields(cached), source="cached", cache=str(path))
    progress(f"measuring this CPU's GEMM ceiling on {count} threads (about 1 s)")
    try:
        flops = measure_gemm_flops()
    except Exception as exc:  # the probe is a side measurement: never fail the benchmark on it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return replace(unavailable, reason=f"the GEMM probe failed: {first}")
    measured = replace(
        unavailable,
        gemm_flops=flops,
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source="measured",
        cache=str(path),
    )
    entry = {
        "gemm_flops": flops,
        "measured_at": measured.measured_at,
        "threads": count,
        "cpu": cpu,
        "method": PROBE_METHOD,
    }
    try:
        write_cache_entry(path, entry)
    except OSError as exc:
        progress(f"could not cache the ceiling in {path.parent}: {exc.strerror or exc}")
    return measured


def _entry_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """The fields of a cached entry that a ceiling has (a cache file holds no others)."""
    return {
        k: entry[k] for k in ("gemm_flops", "measured_at", "threads", "cpu", "method") if k in entry
    }
