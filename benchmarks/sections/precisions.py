"""Precisions: every file precision of ONNX and TFLite beside fp32, from one `effnet bench`."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from common import EFFNET, ENV, Options


def precision_section(threads: int = 2) -> str:
    """Every file precision of ONNX and TFLite beside fp32, B0 at 224, one `effnet bench` run:
    speed as a ratio to the same runtime's fp32 row, with drift and top-1 agreement, so the
    report tells whether int8 or fp16 pays on this CPU (random weights: agreement is a floor)."""
    import json

    import numpy as np

    scratch = Path(tempfile.mkdtemp(prefix="effnet-precisions-"))
    calibration = scratch / "calibration.npy"
    images = np.random.default_rng(0).uniform(0, 255, (32, 224, 224, 3)).astype("float32")
    np.save(calibration, images)
    argv = [*EFFNET, "bench", "--phi", "0", "--runtime", "onnx,tflite", "--precision",
            "fp32,fp16,int8,dynamic", "--calibration", str(calibration), "--batch", "1,8",
            "--threads", str(threads), "--duration", "3", "--json"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True)
    rows = json.loads(result.stdout)["rows"]
    fp32 = {(r["runtime"], r["batch"]): r["images_per_s"] for r in rows if r["precision"] == "fp32"}
    lines = [
        f"## Precisions converted into the file, B0 224, {threads} threads",
        "",
        "| runtime | precision | batch | images/s | × fp32 | drift (logits) | top-1 agreement |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["images_per_s"] / fp32[(r["runtime"], r["batch"])]
        lines.append(
            f"| {r['runtime']} | {r['precision']} | {r['batch']} | {r['images_per_s']:.1f} | "
            f"{ratio:.2f} | {r['drift_max_rel']:.1e} | {r['top1_agreement']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def report(options: Options) -> str:
    return precision_section()
