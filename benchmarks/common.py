"""What every benchmark section shares: where effnet is and how it is run, the timers, the typed
rows that set an effnet figure beside its reference, and the markdown that renders them.

The benchmarks run as scripts (`python benchmarks/run.py`), so this folder is on sys.path and
the sections import this module as `common`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
EFFNET = (
    [str(BIN / "effnet")] if (BIN / "effnet").exists() else [sys.executable, "-m", "effnet_cli"]
)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@dataclass(frozen=True)
class Options:
    """What the command line asked of every section."""

    repeats: int  # runs per median (3 under --quick)
    quick: bool  # --quick: fewer repeats, for a smoke run
    b7_export: bool  # --b7-export: the export section also exports B7


@dataclass(frozen=True)
class TimeRow:
    """An effnet command's wall time beside its reference's, measured in the same run."""

    effnet: str
    effnet_s: float
    reference: str
    reference_s: float

    def cells(self) -> tuple[str, float, str, float]:
        return self.effnet, self.effnet_s, self.reference, self.reference_s


@dataclass(frozen=True)
class RateRow:
    """An effnet runner's images per second beside its reference's (higher is better)."""

    effnet: str
    effnet_images_per_s: float
    reference: str
    reference_images_per_s: float

    def cells(self) -> tuple[str, float, str, float]:
        return self.effnet, self.effnet_images_per_s, self.reference, self.reference_images_per_s


@dataclass(frozen=True)
class MemoryRow:
    """An effnet command's peak resident set beside its reference's."""

    effnet: str
    effnet_gb: float
    reference: str
    reference_gb: float

    def cells(self) -> tuple[str, float, str, float]:
        return self.effnet, self.effnet_gb, self.reference, self.reference_gb


Row: TypeAlias = TimeRow | RateRow | MemoryRow


@dataclass(frozen=True)
class Timed:
    """One whole command, through GNU time."""

    wall_s: float
    peak_rss_gb: float


class FnRunner:
    """A plain function dressed as a runner, for workflows.bench's time_runner."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.run = fn


def wall_seconds(argv: list[str], repeats: int) -> float:
    """Median wall time of a whole command, start-up included."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn so drift hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def timed(argv: list[str]) -> Timed:
    """Wall seconds and peak RSS of a whole command, through GNU time."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True, env=ENV
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed: {result.stderr[-500:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return Timed(wall_s=seconds, peak_rss_gb=peak_kb / 1e6)


def ort_options(ort: Any, threads: int) -> Any:
    """onnxruntime.SessionOptions with `threads` intra-op threads (onnxruntime passed in: it
    loads only inside the sections that use it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return options


def markdown(title: str, rows: Sequence[Row], higher_is_better: bool = False) -> str:
    """A section of the report: each effnet figure beside its reference, and their ratio."""
    unit = "value" if higher_is_better else "s"
    lines = [
        f"## {title}",
        "",
        f"| effnet | {unit} | reference | {unit} | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for row in rows:
        ours, ours_v, ref, ref_v = row.cells()
        lines.append(f"| `{ours}` | {ours_v:.3f} | `{ref}` | {ref_v:.3f} | {ours_v / ref_v:.2f}× |")
    return "\n".join(lines) + "\n"
