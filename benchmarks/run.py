"""`make bench`: effnet beside the reference it replaces, in one run, reported as ratios.

Absolute times drift by up to a third on this shared 2-core machine, so every figure is the
median of several runs and each effnet figure sits next to its reference measured in the same
run. Writes benchmarks/results/report.md and prints it.

    python benchmarks/run.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # common, sections, scale

from common import RESULTS, Options
from sections import (
    b7_memory,
    build,
    export,
    hand,
    lite0,
    precisions,
    predict,
    repair,
    roofline,
    runtimes,
    scale,
    startup,
    v2,
)

# Every section, in the order the report shows them; --sections picks among them by name.
SECTIONS: dict[str, Callable[[Options], str]] = {
    "startup": startup.report,
    "build": build.report,
    "runtimes": runtimes.report,  # and the ceiling section, on its rows
    "precisions": precisions.report,
    "lite0": lite0.report,
    "repair": repair.report,
    "export": export.report,
    "predict": predict.report,
    "hand": hand.report,
    "v2": v2.report,
    "b7-memory": b7_memory.report,
    "scale": scale.report,
    "roofline": roofline.report,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--sections",
                        default="startup,build,runtimes,precisions,lite0,repair,export,"
                        "predict,hand",
                        help="comma-separated: startup, build, runtimes, precisions, export, "
                        "predict, hand (effnet against tuning by hand, ~5 minutes), "
                        "lite0 (the trained Lite0, int8 against fp32 per runtime), "
                        "repair (the trained Lite0's int8 calibrated on noise, repaired), "
                        "v2 (off by default: builds V2-L and exports three models, ~10 "
                        "minutes), b7-memory (off by default: B7's verified ONNX export and "
                        "its peak memory, minutes and ~10 GB), scale (off by default: "
                        "`effnet predict` on 1,000-16,000 photos beside a by-hand script, "
                        "bench, Ray, draft decode, int8 and knobs, ~25 minutes; "
                        "--quick: ~4), roofline (off by default: B0 and the trained Lite0 on "
                        "every runtime and precision against the GEMM ceilings and the "
                        "per-layer roofline, and the fastest rows' layers from the runtimes' "
                        "profilers, ~15 minutes)")  # fmt: skip
    parser.add_argument("--b7-export", action="store_true",
                        help="also export B7 (minutes, ~10 GB)")  # fmt: skip
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    options = Options(repeats=repeats, quick=args.quick, b7_export=args.b7_export)
    chosen = args.sections.split(",")
    sections = [section(options) for name, section in SECTIONS.items() if name in chosen]
    report = (
        f"# effnet benchmark report\n\n{time.strftime('%Y-%m-%d %H:%M')} · "
        f"{os.cpu_count()} CPUs · median of {repeats} runs\n\n" + "\n".join(sections)
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
