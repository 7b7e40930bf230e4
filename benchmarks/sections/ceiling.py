"""Ceiling: this CPU's dense fp32 GEMM rate, measured now, and each runner's share of it (shown
after the runtimes section, on its rows)."""

from __future__ import annotations

import subprocess
import sys

from common import ENV, RateRow

# What `effnet bench --ceiling` measures (workflows/bench/ceilings.py), in a fresh process:
# every precision's GEMM and the bandwidth; this section reads fp32's.
CEILING_PROBE = """
import json
from effnet_cli.workflows.bench import ceilings
print(json.dumps(ceilings.measure_ceilings({threads}, "cpu", True, lambda note: None).to_json()))
"""
# The flags that decide which precisions this CPU runs natively, named in the report.
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                 "amx_bf16", "amx_int8", "amx_fp16")  # fmt: skip


def ceiling_section(rows: list[RateRow], threads: int) -> str:
    """This CPU's dense fp32 GEMM rate, measured now, and each runner's share of it."""
    import json

    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S
    from effnet_cli.util import capabilities

    probe = subprocess.run([sys.executable, "-c", CEILING_PROBE.format(threads=threads)],
                           capture_output=True, text=True, env=ENV, check=True)  # fmt: skip
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    ceiling = next(g for g in measured["gemm"] if g["precision"] == "fp32")
    flags = " ".join(f for f in NOTABLE_FLAGS if f in capabilities.cpu_flags()) or "none of note"
    lines = ["## Ceiling: this CPU's dense fp32 GEMM", ""]
    if not ceiling["macs_per_s"]:
        return "\n".join([*lines, f"Not measured: {ceiling['reason']}.", ""])
    macs = C.count(S.get_spec("b0")).macs
    gemm = 2 * ceiling["macs_per_s"]  # FLOP/s: two per MAC
    busy = f" (busy: {ceiling['busy_reason']})" if ceiling.get("busy") else ""
    lines += ["| runner | img/s | share of the ceiling |", "|---|---:|---:|"]
    shown: dict[str, float] = {}  # a reference runs beside several of effnet's runners: once
    for row in rows:
        shown.setdefault(row.effnet, row.effnet_images_per_s)
        shown.setdefault(row.reference, row.reference_images_per_s)
    for label, ips in shown.items():
        lines.append(f"| `{label}` | {ips:.1f} | {2 * macs * ips / gemm:.0%} |")
    lines += [
        "",
        f"Ceiling {gemm / 1e9:.0f} GFLOP/s on {ceiling['threads']} threads ({ceiling['method']}), "
        f"measured {ceiling['measured_at']}{busy} on {ceiling['cpu']} (flags: {flags}): at most "
        f"{gemm / (2 * macs):.0f} B0 images/s at 224 (2 × {macs / 1e6:.1f} M MACs an image).",
        "",
    ]
    return "\n".join(lines)
