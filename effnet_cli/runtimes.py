"""One adapter per runtime: load an artifact, say where it runs, run a batch.

Export's verification and bench's timing both go through these adapters, so each format is
loaded and run in exactly one place. Every framework is imported inside its loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli.errors import UsageError, WorkError

RUNTIMES = ("keras", "savedmodel", "onnx", "tflite", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16")


class PrecisionUnavailable(UsageError):
    """A precision this runtime or this CPU cannot run natively: refused, never emulated."""


DEVICES = ("cpu", "gpu", "auto")


@dataclass
class Runner:
    """A loaded artifact: `run(batch)` maps float32 NHWC images to the model's output."""

    runtime: str
    device: str  # what actually runs it: "cpu" or "gpu"
    provider: str  # the execution provider / delegate / backend, as reported by the runtime
    precision: str
    run: Callable[[Any], Any]
    fixed_batch: int | None = None  # a batch size the artifact is pinned to, else None
    notes: list[str] = field(default_factory=list)


def threads_or_default(threads: int | None) -> int:
    return threads if threads else (os.cpu_count() or 1)


def gpus_visible() -> list[str]:
    """GPU names TensorFlow can see (empty on a CPU-only machine)."""
    from effnet_cli.builder import import_keras

    import_keras()
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def keras_runner(model: Any, device: str = "cpu", xla: bool = False) -> Runner:
    """A compiled `tf.function` around `model(x, training=False)` (never `predict` in a loop)."""
    import tensorflow as tf

    target = "/GPU:0" if device == "gpu" else "/CPU:0"

    # One trace per batch size, with its static shape: a relaxed (None, ...) signature costs
    # about 7 % on CPU (measured in benchmarks/run.py).
    @tf.function(jit_compile=xla)
    def infer(images: Any) -> Any:
        return model(images, training=False)

    def run(images: Any) -> Any:
        if device == "cpu":
            return infer(tf.constant(images)).numpy()
        with tf.device(target):
            return infer(tf.constant(images)).numpy()

    provider = "TensorFlow " + ("XLA " if xla else "") + device.upper()
    return Runner("keras", device, provider, "fp32", run)


def savedmodel_runner(path: Path, device: str = "cpu") -> Runner:
    import tensorflow as tf

    from effnet_cli.builder import import_keras

    import_keras()
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1].keys()
    (output_name,) = signature.structured_outputs.keys()
    target = "/GPU:0" if device == "gpu" else "/CPU:0"

    def run(images: Any) -> Any:
        with tf.device(target):
            return signature(**{input_name: tf.constant(images)})[output_name].numpy()

    return Runner("savedmodel", device, f"TensorFlow {device.upper()}", "fp32", run)


def onnx_runner(path: Path, device: str = "cpu", threads: int | None = None) -> Runner:
    """onnxruntime; on `gpu` the CUDA provider must really be active (a fallback is an error)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads_or_default(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "gpu" else [
        "CPUExecutionProvider"]  # fmt: skip
    if device == "gpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UsageError(
            "onnxruntime here has no CUDA provider (available: "
            + ", ".join(ort.get_available_providers()) + ")",
            hint="pip install onnxruntime-gpu, or use --device cpu",
        )  # fmt: skip
    session = ort.InferenceSession(str(path), options, providers=wanted)
    active = session.get_providers()
    if device == "gpu" and active[0] != "CUDAExecutionProvider":
        raise WorkError(f"onnxruntime fell back to {active[0]} instead of CUDA")
    meta = session.get_inputs()[0]
    batch = meta.shape[0] if isinstance(meta.shape[0], int) else None
    input_name, output_name = meta.name, session.get_outputs()[0].name

    def run(images: Any) -> Any:
        return session.run([output_name], {input_name: images})[0]

    return Runner("onnx", device, active[0], _onnx_precision(meta.type), run, batch)


def _onnx_precision(tensor_type: str) -> str:
    return "fp16" if "float16" in tensor_type else "fp32"


def tflite_runner(path: Path, threads: int | None = None, precision: str = "fp32") -> Runner:
    """`precision` describes the file (fp16/int8 weights come from the converter)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads_or_default(threads))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    signature = list(detail.get("shape_signature", detail["shape"]))
    state = {"batch": int(detail["shape"][0])}

    def run(images: Any) -> Any:
        if images.shape[0] != state["batch"]:
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
            state["batch"] = images.shape[0]
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    fixed = None if signature[0] == -1 else int(signature[0])
    return Runner("tflite", "cpu", "LiteRT XNNPACK", precision, run, fixed)


OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
OPENVINO_NATIVE = {"bf16": "BF16", "fp16": "FP16"}  # OPTIMIZATION_CAPABILITIES that run them


def openvino_xml(path: Path) -> Path:
    return path if path.suffix == ".xml" else next(path.glob("*.xml"))


def openvino_runner(path: Path, threads: int | None = None, precision: str = "fp32") -> Runner:
    """OpenVINO on the CPU with the inference precision pinned: it would otherwise pick bf16
    by itself on CPUs that have it, and report nothing."""
    import openvino as ov

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    needed = OPENVINO_NATIVE.get(precision)
    if needed and needed not in capabilities:
        raise PrecisionUnavailable(
            f"{precision} is not native on this CPU (OpenVINO capabilities: "
            f"{', '.join(capabilities)}); refused rather than emulated"
        )
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
        "INFERENCE_NUM_THREADS": threads_or_default(threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(str(openvino_xml(path)), "CPU", config)
    actual = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
    used = (
        "bf16"
        if "bf16" in actual
        else "fp16"
        if ("f16" in actual or "float16" in actual)
        else "fp32"
    )
    request = compiled.create_infer_request()
    output = compiled.outputs[0]

    def run(images: Any) -> Any:
        return request.infer({0: images})[output].copy()

    shape = compiled.inputs[0].get_partial_shape()
    fixed = None if shape[0].is_dynamic else shape[0].get_length()
    return Runner("openvino", "cpu", "OpenVINO CPU", used, run, fixed)


def load_runner(runtime: str, path: Path, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32") -> Runner:  # fmt: skip
    """Load an exported artifact with its own runtime, at `precision` where it has a choice."""
    if precision != "fp32" and runtime in ("onnx", "savedmodel", "keras"):
        raise PrecisionUnavailable(f"effnet runs {runtime} in fp32 only")
    if runtime == "onnx":
        return onnx_runner(path, device, threads)
    if runtime == "tflite":
        if device == "gpu":
            raise UsageError("the LiteRT runtime runs on the CPU here; use --device cpu")
        return tflite_runner(path, threads, precision)
    if runtime == "savedmodel":
        return savedmodel_runner(path, device)
    if runtime == "openvino":
        if device == "gpu":
            raise UsageError("effnet runs OpenVINO on the CPU; use --device cpu")
        return openvino_runner(path, threads, precision)
    if runtime == "keras":
        from effnet_cli.builder import load_keras_file

        return keras_runner(load_keras_file(path), device)
    raise UsageError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")
