"""Runners: effnet's runners beside the same runtimes driven directly on the same files, and
(the ceiling section) each one's share of this CPU's GEMM rate."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import FnRunner, Options, RateRow, markdown, ort_options

from .ceiling import ceiling_section


def runtime_rows(batches: tuple[int, ...], repeats: int) -> list[RateRow]:
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
        return ort.InferenceSession(str(path), ort_options(ort, threads),
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
            per: dict[str, list[float]] = {k: [] for k in pair}
            for _ in range(repeats):
                for k, fn in pair.items():
                    timed = time_runner(FnRunner(fn), images, request)
                    per[k].append(timed.stats.images_per_s)
            ours_ips, direct_ips = statistics.median(per["ours"]), statistics.median(per["direct"])
            rows.append(
                RateRow(
                    effnet=f"effnet {name.split('-vs-')[0]} runner, batch {batch} (img/s)",
                    effnet_images_per_s=ours_ips,
                    reference=f"{label}, batch {batch} (img/s)",
                    reference_images_per_s=direct_ips,
                )
            )
    return rows


def report(options: Options) -> str:
    rows = runtime_rows((1, 8), max(2, options.repeats // 2))
    title = (
        "Runners, B0 224, 2 threads, images/s (goal: within 5 % of the runtime driven "
        "directly; each one's share of this CPU's ceiling in the next section)"
    )
    return "\n".join(
        [markdown(title, rows, higher_is_better=True), ceiling_section(rows, threads=2)]
    )
