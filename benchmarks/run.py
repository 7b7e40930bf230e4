"""`make bench`: effnet beside the reference it replaces, in one run, reported as ratios.

Absolute times drift by up to a third on this shared 2-core machine, so every figure is the
median of several runs and each effnet figure sits next to its reference measured in the same
run. Writes benchmarks/results/report.md and prints it.

    python benchmarks/run.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
EFFNET = (
    [str(BIN / "effnet")] if (BIN / "effnet").exists() else [sys.executable, "-m", "effnet_cli"]
)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


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


def startup_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """Commands that must not load TensorFlow, beside `python -c "import tensorflow"`."""
    import_tf = wall_seconds([sys.executable, "-c", "import tensorflow"], repeats)
    rows = []
    for argv in (["--help"], ["summary", "--phi", "7"], ["scale-table"]):
        if argv[0] == "scale-table" and not _has_command("scale-table"):
            continue
        seconds = wall_seconds([*EFFNET, *argv], repeats)
        rows.append(
            (f"effnet {' '.join(argv)}", seconds, "python -c 'import tensorflow'", import_tf)
        )
    return rows


def _has_command(name: str) -> bool:
    result = subprocess.run([*EFFNET, name, "--help"], capture_output=True, env=ENV)
    return result.returncode == 0


def build_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """effnet's builder beside keras.applications' for B7, in one process, interleaved."""
    from effnet_cli import build_model
    from effnet_cli.builder import import_keras

    keras = import_keras()  # TensorFlow's start-up noise silenced, as in effnet itself

    def ours() -> None:
        keras.backend.clear_session()
        build_model("b7")

    def reference() -> None:
        keras.backend.clear_session()
        keras.applications.EfficientNetB7(weights=None)

    ours(), reference()  # warm both code paths
    median = interleaved({"ours": ours, "reference": reference}, repeats)
    cli = wall_seconds([*EFFNET, "build", "--phi", "7"], max(1, repeats // 2))
    reference_cli = wall_seconds(
        [sys.executable, "-c", "import keras; keras.applications.EfficientNetB7(weights=None)"],
        max(1, repeats // 2),
    )
    return [
        ("build_model('b7') in-process", median["ours"],
         "keras.applications.EfficientNetB7", median["reference"]),
        ("effnet build --phi 7 (whole process)", cli,
         "python -c 'keras.applications.EfficientNetB7()'", reference_cli),
    ]  # fmt: skip


def markdown(title: str, rows: list[tuple[str, float, str, float]]) -> str:
    lines = [
        f"## {title}",
        "",
        "| effnet | s | reference | s | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for ours, ours_s, ref, ref_s in rows:
        lines.append(f"| `{ours}` | {ours_s:.3f} | `{ref}` | {ref_s:.3f} | {ours_s / ref_s:.2f}× |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    sections = [
        markdown("Start-up (goal: under 0.3 s, no TensorFlow)", startup_rows(repeats)),
        markdown("Building B7 (goal: within 1.1× of keras.applications)", build_rows(repeats)),
    ]
    report = (
        f"# effnet benchmark report\n\n{time.strftime('%Y-%m-%d %H:%M')} · "
        f"{os.cpu_count()} CPUs · median of {repeats} runs\n\n" + "\n".join(sections)
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
