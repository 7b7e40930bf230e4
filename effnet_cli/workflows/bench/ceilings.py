"""What this machine can do at most, per precision: dense-GEMM rates and memory bandwidth.

A row's MACs/s means little alone: B0 at 270 images/s is 105 GMAC/s, which is near the top on
one CPU and a third of it on another (FACTS.md: speeds differ 2.5× between machines of one
kind). So bench measures, on the machine at hand and on the threads the rows ran on:

- a **GEMM ceiling per precision** (fp32, bf16, int8), each run by OpenVINO's CPU plugin, whose
  convolutions and matrix multiplies are oneDNN's `brgemm` kernels for all three precisions: the
  engine family that runs bench's fp32, bf16 and int8 OpenVINO rows (and, through oneDNN,
  TensorFlow's). bf16 and int8 get a figure only where the CPU computes them natively (AVX512-
  BF16 / AMX-BF16; AVX512-VNNI / AVX-VNNI / AMX-INT8) and OpenVINO says so too; elsewhere the
  figure is None with the reason, never an emulated or made-up number.
- the **memory bandwidth**: a streaming triad `a = b + s·c` over arrays far larger than the
  last-level cache, on the same number of threads.

Each probe times several short windows and keeps the best (a ceiling is what the machine can do;
other processes only slow a window), and watches whether the machine was busy while it ran
(`observe`): the spread between its windows, the load average, and the CPU time other
processes took during the probe. A figure measured on a busy machine is returned, flagged
`busy` with the reason, and never cached; an idle one is cached per CPU, thread count and
precision, and read back as "cached" until `refresh` (`--ceiling`) measures again.

Heavy imports (openvino, numpy) happen inside the probes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from effnet_cli.backends import openvino as openvino_backend
from effnet_cli.backends import runtimes
from effnet_cli.records.bench import (
    Bandwidth,
    Ceilings,
    Conditions,
    GemmCeiling,
    Precision,
)
from effnet_cli.util import capabilities
from effnet_cli.workflows.bench.cache import (
    machine_cache_path,
    read_cache_entry,
    write_cache_entry,
)

# Part of every cache key: changing a probe's method re-measures. (The single TensorFlow fp32
# ceiling these replace was version 1, under another file prefix.)
PROBE_VERSION = 2

PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8")

# The CPU flags (/proc/cpuinfo) that give a precision native matrix arithmetic: bf16's are
# capabilities' own; int8 needs 8-bit dot products (VNNI) or AMX's int8 tiles. Without VNNI,
# AVX2 multiplies u8×s8 into saturating s16 pairs: OpenVINO runs int8 there, but not natively.
GEMM_FLAGS: dict[Precision, frozenset[str]] = {
    "fp32": frozenset(),
    "bf16": capabilities.NATIVE_FLAGS["bf16"],
    "int8": frozenset({"avx512_vnni", "avx_vnni", "amx_int8"}),
}
FLAG_WORDS = {"bf16": "AVX512-BF16 or AMX-BF16", "int8": "AVX512-VNNI, AVX-VNNI or AMX-INT8"}

# The element types (OpenVINO's names) a GEMM of each precision runs in and reads.
RUNTIME_TYPES: dict[Precision, frozenset[str]] = {
    "fp32": frozenset({"f32"}),
    "bf16": frozenset({"bf16"}),
    "int8": frozenset({"u8", "i8"}),
}

GEMM_N = 1024  # n×n by n×n: n³ MACs a call, about 1–10 ms on two cores
PROBE_SECONDS = 1.0  # each probe's timed windows together
PROBE_WINDOWS = 10
TRIAD_SCALAR = 3.0
TRIAD_BLOCK = 65_536  # elements a thread computes at once: s·c stays in its L2 (512 KB)
TRIAD_FALLBACK_BYTES = 256 * 2**20  # each array, where the L3's size cannot be read
TRIAD_MIN_BYTES, TRIAD_MAX_BYTES = 64 * 2**20, 512 * 2**20

# Busy: a probe's slowest window below this share of its fastest,
SPREAD_LIMIT = 0.85
# other processes' load (1-minute average, this process's own share taken off) above the cores
# the probe leaves free plus this many,
LOAD_MARGIN = 1.0
# or other processes' CPU use during the probe (CPU-seconds a second) above the free cores plus
# this many. The load average is slow (a minute) and bench's own rows precede the probe, so it
# gets the wider margin; the CPU time taken during the probe is the direct signal.
OTHER_CPU_MARGIN = 0.2


R = TypeVar("R", "GemmCeiling", "Bandwidth")


class ProbeError(Exception):
    """A probe that ran but cannot give a figure (OpenVINO did not run the precision asked)."""


@dataclass(frozen=True)
class Windows:
    """What a probe returns: each window's rate (MACs/s or bytes/s), and how it measured."""

    rates: tuple[float, ...]
    method: str
    array_bytes: int | None = None  # the triad's


# ---------------------------------------------------------------------------- load sources
# Small functions so that tests can fake a busy or an idle machine (monkeypatch) without
# burning CPU.


def load_average() -> float | None:
    """The 1-minute load average (runnable tasks), None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine_cores() -> int:
    """The CPUs the load average and /proc/stat count: the machine's, not this process's."""
    return os.cpu_count() or 1


def machine_cpu_seconds() -> float | None:
    """CPU time every process has used since boot (/proc/stat's first line: user, nice, system,
    irq, softirq and steal; idle and iowait are not busy; guest time is inside user already);
    None where it cannot be read. Steal is time the hypervisor gave to someone else."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return (user + nice + system + irq + softirq + steal) / ticks


def own_cpu_seconds() -> float:
    """CPU time this process (every thread of it: OpenVINO's, the triad's) has used."""
    return time.process_time()


def own_load() -> float | None:
    """This process's (and its finished children's) part of the load average: its CPU time
    over its age, an estimate of its last minute's (the load average holds no per-process
    share; bench's rows run just before the probe). None where /proc cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text()
        started = int(stat[stat.rindex(")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        import resource

        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    except (OSError, ValueError, IndexError, AttributeError, ImportError):
        return None
    age = uptime - started
    used = own_cpu_seconds() + children.ru_utime + children.ru_stime
    return used / age if age > 0 else None


# ---------------------------------------------------------------------------- busy detection


@dataclass(frozen=True)
class _Sample:
    wall: float
    machine_cpu: float | None
    own_cpu: float


def _sample() -> _Sample:
    return _Sample(time.perf_counter(), machine_cpu_seconds(), own_cpu_seconds())


def judge(
    rates: Sequence[float],
    seconds: float,
    threads: int,
    *,
    cores: int,
    load: float | None,
    own: float | None,
    other_cpu_s: float | None,
) -> Conditions:
    """Busy or not, from the three signals, with a reason a person can read (what tripped)."""
    free = max(cores - threads, 0)
    worst_over_best = min(rates) / max(rates)
    reasons = []
    if load is not None and load - (own or 0.0) > free + LOAD_MARGIN:
        mine = f" (this process about {own:.1f} of it)" if own and own >= 0.05 else ""
        reasons.append(f"load average {load:.1f} on {cores} cores{mine}")
    if other_cpu_s is not None and other_cpu_s / seconds > free + OTHER_CPU_MARGIN:
        reasons.append(
            f"other processes used {other_cpu_s:.1f} CPU-s of {cores * seconds:.1f} "
            "during the probe"
        )
    if len(rates) > 1 and worst_over_best < SPREAD_LIMIT:
        reasons.append(
            f"the slowest of {len(rates)} windows ran at {100 * worst_over_best:.0f} % "
            "of the fastest"
        )
    return Conditions(
        busy=bool(reasons),
        reason="; ".join(reasons) or None,
        windows=len(rates),
        worst_over_best=worst_over_best,
        seconds=seconds,
        cores=cores,
        load_average=load,
        own_load=own,
        other_cpu_s=other_cpu_s,
    )


def observe(probe: Callable[[], Windows], threads: int) -> tuple[Windows, Conditions]:
    """Run `probe` and watch the machine meanwhile: other processes' CPU time is the machine's
    busy time (/proc/stat) less this process's own over the probe's wall time."""
    before = _sample()
    windows = probe()
    after = _sample()
    rates = windows.rates
    if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
        raise ProbeError(f"the probe's windows are not positive finite rates: {rates}")
    other = None
    if before.machine_cpu is not None and after.machine_cpu is not None:
        busy_s = after.machine_cpu - before.machine_cpu
        other = max(busy_s - (after.own_cpu - before.own_cpu), 0.0)
    seconds = max(after.wall - before.wall, 1e-9)
    cores = machine_cores()
    return windows, judge(
        rates, seconds, threads, cores=cores, load=load_average(), own=own_load(), other_cpu_s=other
    )


# ---------------------------------------------------------------------------- the probes


def timed_windows(
    step: Callable[[], tuple[float, float]], seconds: float, windows: int
) -> tuple[float, ...]:
    """`windows` windows of `seconds / windows` each (at least one step each). Each `step()`
    does some work and returns it with the seconds it took; a window's rate is its steps' work
    over their seconds."""
    rates = []
    for _ in range(windows):
        steps, work, took, started = 0, 0.0, 0.0, time.perf_counter()
        while steps == 0 or time.perf_counter() - started < seconds / windows:
            done, spent = step()
            steps, work, took = steps + 1, work + done, took + spent
        rates.append(work / took if took > 0 else math.inf)  # inf: refused by `observe`
    return tuple(rates)


def gemm_method(
    precision: Precision,
    threads: int,
    n: int = GEMM_N,
    ran: str = "",
    seconds: float = PROBE_SECONDS,
    windows: int = PROBE_WINDOWS,
) -> str:
    """How a GEMM ceiling is measured; `ran` says what the runtime graph showed it ran."""
    how = {
        "fp32": "inference precision f32",
        "bf16": "inference precision bf16",
        "int8": "both inputs through FakeQuantize, inference precision f32",
    }[precision]
    return (
        f"OpenVINO CPU MatMul {n}×{n}×{n}, {how}{ran}, {threads} threads, timed by the "
        f"MatMul's own profiled time, best of {windows} windows over {seconds:g} s"
    )


def gemm_model(precision: Precision, n: int = GEMM_N) -> Any:
    """An n×n·n×n MatMul of two inputs. For int8 each input goes through a FakeQuantize (the
    first 256 levels over [0, 1]: u8; the second 255 levels over [-1, 1]: i8), which OpenVINO's
    low-precision transformations turn into a u8×i8 GEMM with the scales folded after it.
    Both are inputs, not a constant: a constant second input makes the CPU plugin a
    FullyConnected, which runs fp32 on MLAS, not oneDNN."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    a = ops.parameter([n, n], ov.Type.f32, name="a")
    b = ops.parameter([n, n], ov.Type.f32, name="b")
    left, right = a, b
    if precision == "int8":

        def quantized(node: Any, low: float, high: float, levels: int) -> Any:
            lo, hi = (ops.constant(np.array(v, dtype=np.float32)) for v in (low, high))
            return ops.fake_quantize(node, lo, hi, lo, hi, levels)

        left, right = quantized(a, 0.0, 1.0, 256), quantized(b, -1.0, 1.0, 255)
    return ov.Model([ops.matmul(left, right, False, False)], [a, b], f"gemm-{precision}")


@dataclass(frozen=True)
class GemmLayer:
    """The compiled GEMM as the CPU plugin runs it (its runtime graph)."""

    name: str  # the runtime graph's node, as its profiling names it
    runtime: str  # `runtimePrecision`: the precision it computes in
    inputs: tuple[str, ...]  # its inputs' element types (u8, i8, bf16, f32)
    kernel: str  # `primitiveType`: oneDNN's kernel, e.g. brgemm_avx512_I8


def gemm_layer(compiled: Any) -> GemmLayer:
    """The one MatMul of a compiled `gemm_model`, read from the CPU plugin's runtime graph."""
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("MatMul", "FullyConnected"):
            return GemmLayer(
                name=op.get_friendly_name(),
                runtime=info["runtimePrecision"].astype(str),
                inputs=tuple(op.get_input_element_type(i).get_type_name() for i in range(2)),
                kernel=info["primitiveType"].astype(str),
            )
    raise ProbeError("OpenVINO's runtime graph holds no MatMul")


def check_gemm_runs_in(precision: Precision, layer: GemmLayer) -> None:
    """Refuse a figure whose GEMM did not run in `precision`: the runtime graph's MatMul must
    run in it and read it on both inputs (int8: u8 or i8 on each, else its FakeQuantize would be
    float arithmetic; bf16: bf16 on each, after the plugin's reorders)."""
    wanted = RUNTIME_TYPES[precision]
    if layer.runtime not in wanted or not all(t in wanted for t in layer.inputs):
        raise ProbeError(
            f"OpenVINO ran the {precision} GEMM in {layer.runtime} on "
            f"{' × '.join(layer.inputs)} ({layer.kernel}), not in {precision}"
        )


def openvino_gemm_windows(
    precision: Precision,
    threads: int,
    seconds: float = PROBE_SECONDS,
    windows: int = PROBE_WINDOWS,
    n: int = GEMM_N,
) -> Windows:
    """One precision's GEMM rate (MACs/s) in each window, run by OpenVINO's CPU plugin on
    `threads` threads, one stream, after checking in its runtime graph that the MatMul runs in
    that precision (`gemm_layer`, `check_gemm_runs_in`).

    A window's rate is its MACs over the MatMul node's own time, as OpenVINO's per-node
    profiling (`PERF_COUNT`) reports it: the FakeQuantize that turns int8's float inputs into
    u8 and i8 on every call (about 13 % of a call here), and bf16's reorders (3 %), are not the
    GEMM, and a ceiling that counted them would sit below the kernel a row's convolutions run
    on. fp32 has nothing beside its MatMul: there the profiled and the wall-clock rates agree.

    Why OpenVINO for fp32 too, rather than TensorFlow's matmul (the single ceiling before
    this one): one engine, one graph and one kernel family (oneDNN brgemm:
    `brgemm_avx512_f32`, `_bf16`, `_I8` on AVX-512) for all three precisions, so their ratios
    compare kernels and not engines; the thread count is a compile setting here, where
    TensorFlow's pool is sized once, when it loads (`configure_threads`), and a probe in a
    process that loaded it earlier would silently run on other threads; the runtime graph
    says what ran; and OpenVINO imports in 0.14 s where TensorFlow takes 2.4 s and 0.5 GB.
    TensorFlow runs oneDNN's older `gemm_api` (sgemm) kernel on its own thread pool. Measured
    in one process, alternately, on a busy 2-core AVX-512 EPYC (load average 3, 2026-12), it
    read 82–91 GFLOP/s where this probe read 62–65: under contention the two pools differ.
    No idle comparison could be made then; where the two differ idle, TensorFlow's keras rows
    may pass the fp32 ceiling, and that is the place to look."""
    import numpy as np
    import openvino as ov

    hint = openvino_backend.OPENVINO_HINTS["fp32" if precision == "int8" else precision]
    config = {
        "INFERENCE_PRECISION_HINT": hint,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": True,
    }
    compiled = ov.Core().compile_model(gemm_model(precision, n), "CPU", config)
    layer = gemm_layer(compiled)
    check_gemm_runs_in(precision, layer)
    request = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    request.set_input_tensor(0, ov.Tensor(rng.uniform(0.0, 1.0, (n, n)).astype(np.float32)))
    request.set_input_tensor(1, ov.Tensor(rng.uniform(-1.0, 1.0, (n, n)).astype(np.float32)))
    request.infer()  # warm up: first-call allocations

    def step() -> tuple[float, float]:
        request.infer()  # inputs stay bound: no copy in or out
        took = [
            i.real_time.total_seconds()
            for i in request.get_profiling_info()
            if i.node_name == layer.name
        ]
        if not took or not sum(took) > 0:
            raise ProbeError(f"OpenVINO's profiling holds no time for {layer.name}")
        return float(n**3), sum(took)

    rates = timed_windows(step, seconds, windows)
    ran = f" (ran {'×'.join(layer.inputs)}, {layer.kernel})"
    return Windows(rates, gemm_method(precision, threads, n, ran, seconds, windows))


def last_level_cache_bytes() -> int | None:
    """The sum of the machine's L3 caches (/sys: each distinct one once), None where unreadable."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    caches: dict[str, int] = {}
    try:
        for index in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cache/index[0-9]*"):
            if (index / "level").read_text().strip() != "3":
                continue
            size = (index / "size").read_text().strip()
            scale = units.get(size[-1:], 1)
            caches[(index / "shared_cpu_list").read_text().strip()] = (
                int(size.rstrip("KMG") or 0) * scale
            )
    except (OSError, ValueError):
        return None
    return sum(caches.values()) or None


def triad_array_bytes() -> int:
    """Each array 4× the L3s together (STREAM's rule), 64–512 MiB; 256 MiB where unreadable."""
    cache = last_level_cache_bytes()
    if cache is None:
        return TRIAD_FALLBACK_BYTES
    return min(max(4 * cache, TRIAD_MIN_BYTES), TRIAD_MAX_BYTES)


def triad_bytes(elements: int, itemsize: int = 8) -> int:
    """Bytes one triad sweep counts: `b` and `c` read and `a` written, `elements` each (the
    write-allocate read of `a` not counted)."""
    return 3 * elements * itemsize


def triad_method(
    threads: int,
    array_bytes: int,
    seconds: float = PROBE_SECONDS,
    windows: int = PROBE_WINDOWS,
) -> str:
    return (
        f"numpy triad a = b + {TRIAD_SCALAR:g}·c over 3 × {array_bytes / 2**20:.0f} MiB float64, "
        f"{threads} threads, 3 arrays counted (write-allocate not), "
        f"best of {windows} windows over {seconds:g} s"
    )


def triad_windows(
    threads: int,
    seconds: float = PROBE_SECONDS,
    windows: int = PROBE_WINDOWS,
    array_bytes: int | None = None,
) -> Windows:
    """The triad's bandwidth (bytes/s) in each window. numpy has no fused `b + s·c` and runs a
    ufunc on one thread: each of `threads` threads takes a contiguous part of the arrays and
    computes it in blocks (s·c into a small buffer that stays in cache, then + b into a), so
    memory sees exactly one read of b and c and one write of a; numpy releases the GIL inside
    each block. A window is whole sweeps over all three arrays."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    size = array_bytes or triad_array_bytes()
    n = size // 8
    a, b, c = np.zeros(n), np.full(n, 1.0), np.full(n, 2.0)  # filled: the pages are mapped
    edges = [n * i // threads for i in range(threads + 1)]
    buffers = [np.empty(TRIAD_BLOCK) for _ in range(threads)]

    def part(i: int) -> None:
        buffer = buffers[i]
        for start in range(edges[i], edges[i + 1], TRIAD_BLOCK):
            end = min(start + TRIAD_BLOCK, edges[i + 1])
            tmp = buffer[: end - start]
            np.multiply(c[start:end], TRIAD_SCALAR, out=tmp)
            np.add(b[start:end], tmp, out=a[start:end])

    with ThreadPoolExecutor(threads) as pool:

        def sweep() -> tuple[float, float]:
            started = time.perf_counter()
            for done in [pool.submit(part, i) for i in range(threads)]:
                done.result()
            return float(triad_bytes(n)), time.perf_counter() - started

        sweep()  # warm up: threads started, caches and TLB in their steady state
        rates = timed_windows(sweep, seconds, windows)
    if a[0] != 1.0 + TRIAD_SCALAR * 2.0 or a[-1] != a[0]:
        raise ProbeError(f"the triad computed {a[0]}, not {1.0 + TRIAD_SCALAR * 2.0}")
    return Windows(rates, triad_method(threads, n * 8, seconds, windows), array_bytes=n * 8)


# ---------------------------------------------------------------------------- the entry point


def gemm_unavailable_reason(precision: Precision) -> str | None:
    """Why this CPU gets no `precision` GEMM figure (the CPU's flags, then OpenVINO's own
    reading), or None where it computes it natively."""
    if precision == "fp32":
        return None
    if not GEMM_FLAGS[precision] & capabilities.cpu_flags():
        return (
            f"this CPU has no {FLAG_WORDS[precision]} ({', '.join(sorted(GEMM_FLAGS[precision]))} "
            f"absent from its flags): {precision} would not be native, and no figure is made up"
        )
    try:
        native = openvino_backend.native_in_openvino(precision)
    except Exception as exc:  # OpenVINO absent or failing: nothing to measure with
        return f"OpenVINO cannot read this CPU's capabilities: {_first_line(exc)}"
    if not native:
        listed = ", ".join(openvino_backend.openvino_capabilities())
        return (
            f"OpenVINO does not run {precision} natively on this CPU (its capabilities: {listed})"
        )
    return None


def measure_ceilings(
    threads: int | None,
    device: str,
    refresh: bool,
    progress: Callable[[str], None],
) -> Ceilings:
    """Every ceiling of this machine on `threads` threads: each read from the cache where an idle
    measurement is there (and not `refresh`), else measured; a busy measurement is returned and
    flagged but not cached; a precision the CPU does not run natively, or a probe that fails,
    gets None and the reason. The probes never fail the benchmark."""
    count = runtimes.threads_or_default(threads)
    gemm = tuple(_gemm_ceiling(p, count, device, refresh, progress) for p in PRECISIONS)
    return Ceilings(
        threads=count,
        device=device,
        gemm=gemm,
        bandwidth=_bandwidth(count, device, refresh, progress),
    )


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _engine_version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cache_path(kind: str, threads: int, engine: str) -> Path:
    key = {"probe": kind, "threads": threads, "version": PROBE_VERSION}
    key[engine] = _engine_version(engine)
    return machine_cache_path(f"ceiling-{kind}-{threads}t", key)


def _gemm_ceiling(
    precision: Precision,
    threads: int,
    device: str,
    refresh: bool,
    progress: Callable[[str], None],
) -> GemmCeiling:
    unavailable = GemmCeiling(
        precision=precision,
        macs_per_s=None,
        source="unavailable",
        method=gemm_method(precision, threads),
        threads=threads,
        cpu=capabilities.cpu_name(),
    )
    if device != "cpu":
        return replace(unavailable, reason="the ceilings are the CPU's; not for --device gpu")
    why = gemm_unavailable_reason(precision)
    if why is not None:
        return replace(unavailable, reason=why)
    path = _cache_path(f"gemm-{precision}", threads, "openvino")
    cached = None if refresh else _cached(GemmCeiling, path, "macs_per_s")
    if cached is not None:
        return replace(cached, source="cached", cache=str(path))
    progress(f"measuring this CPU's {precision} GEMM ceiling on {threads} threads (about 1 s)")
    try:
        windows, conditions = observe(lambda: openvino_gemm_windows(precision, threads), threads)
    except Exception as exc:  # a side measurement: never fail the benchmark on it
        return replace(unavailable, reason=f"the {precision} GEMM probe failed: {_first_line(exc)}")
    measured = replace(
        unavailable,
        macs_per_s=max(windows.rates),
        source="measured",
        method=windows.method,
        measured_at=_now(),
        **_busy_fields(conditions),
    )
    return _store(measured, path, conditions, progress)


def _bandwidth(
    threads: int, device: str, refresh: bool, progress: Callable[[str], None]
) -> Bandwidth:
    unavailable = Bandwidth(
        bytes_per_s=None,
        source="unavailable",
        method=triad_method(threads, triad_array_bytes()),
        threads=threads,
        cpu=capabilities.cpu_name(),
    )
    if device != "cpu":
        return replace(unavailable, reason="the ceilings are the CPU's; not for --device gpu")
    path = _cache_path("triad", threads, "numpy")
    cached = None if refresh else _cached(Bandwidth, path, "bytes_per_s")
    if cached is not None:
        return replace(cached, source="cached", cache=str(path))
    progress(f"measuring this machine's memory bandwidth on {threads} threads (about 1 s)")
    try:
        windows, conditions = observe(lambda: triad_windows(threads), threads)
    except Exception as exc:
        return replace(unavailable, reason=f"the triad probe failed: {_first_line(exc)}")
    measured = replace(
        unavailable,
        bytes_per_s=max(windows.rates),
        source="measured",
        method=windows.method,
        array_bytes=windows.array_bytes,
        measured_at=_now(),
        **_busy_fields(conditions),
    )
    return _store(measured, path, conditions, progress)


def _busy_fields(conditions: Conditions) -> dict[str, Any]:
    return {"busy": conditions.busy, "busy_reason": conditions.reason, "conditions": conditions}


def _store(measured: R, path: Path, conditions: Conditions, progress: Callable[[str], None]) -> R:
    """Cache an idle measurement; a busy one is only returned (said on progress)."""
    if conditions.busy:
        progress(f"measured on a busy machine, so not cached: {conditions.reason}")
        return measured
    try:
        write_cache_entry(path, measured.to_json())
    except OSError as exc:
        progress(f"could not cache the ceiling in {path.parent}: {exc.strerror or exc}")
        return measured
    return replace(measured, cache=str(path))


def _cached(kind: type[R], path: Path, rate: str) -> R | None:
    """A cached idle measurement as its record, or None where there is none, it is unreadable,
    or it holds no positive rate."""
    entry = read_cache_entry(path)
    if entry is None:
        return None
    value = entry.get(rate)
    if not isinstance(value, int | float) or not value > 0 or entry.get("busy") is not False:
        return None
    names = {f.name for f in fields(kind)}
    try:
        conditions = entry.get("conditions")
        if isinstance(conditions, dict):
            entry = {**entry, "conditions": Conditions(**conditions)}
        return kind(**{k: v for k, v in entry.items() if k in names})
    except (TypeError, ValueError):
        return None
