"""OpenVINO: an IR (model.xml + model.bin) made from the ONNX export, int8 quantized into it by
NNCF, run by OpenVINO on the CPU with its inference precision pinned (bf16 and fp16 are hints to
the runtime over the fp32 IR, not files of their own).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import artifact
from effnet_cli.backends.artifact import calibration_batches
from effnet_cli.backends.int8 import MAX_FLOAT_SHARE
from effnet_cli.backends.onnx import write_onnx
from effnet_cli.backends.record import (
    DEFAULT_RECIPE,
    FP32,
    INT8,
    KEEP_FLOAT,
    PERCENTILE,
    Backend,
    Declared,
    Format,
    Precision,
    Recipe,
    Steer,
)
from effnet_cli.backends.runtimes import (
    Interval,
    PrecisionUnavailable,
    Runner,
    Streams,
    split_threads,
    threads_or_default,
)
from effnet_cli.util.errors import WorkError

if TYPE_CHECKING:
    from effnet_cli.backends.runtimes import Run
    from effnet_cli.util.arrays import Floats, Images

OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# Precisions of the IR itself, and the hint their float parts run with. NNCF's int8 IR leaves
# swish, squeeze-and-excitation's gates and the softmax in float, which a CPU with bf16 would
# run in bf16 by itself (its INFERENCE_PRECISION_HINT reads back bf16 when none is given):
# pinned to f32, so that an int8 row differs from the fp32 row by the quantization alone.
OPENVINO_FILE_PRECISIONS = {"int8": "fp32"}
# Layers whose runtime precision says whether the CPU plugin really runs the IR in int8.
OPENVINO_INT8_LAYERS = ("Convolution", "FullyConnected", "MatMul")


def openvino_xml(path: Path) -> Path:
    return path if path.suffix == ".xml" else next(path.glob("*.xml"))


def openvino_label(element_type: Any) -> str:
    """effnet's name of the element type OpenVINO compiled with, compared as types: the text of
    bf16 is "bfloat16", which contains "float16"."""
    import openvino as ov

    for label, hint in OPENVINO_HINTS.items():
        if element_type == getattr(ov.Type, hint):
            return label
    raise WorkError(f"OpenVINO compiled the model in {element_type}, which effnet does not name")


def compiled_precision(compiled: Any) -> Any:
    """The element type OpenVINO actually infers in (a test fakes it with the capabilities)."""
    return compiled.get_property("INFERENCE_PRECISION_HINT")


def fake_quantize_ops(model: Any) -> int:
    """How many FakeQuantize operations the IR holds: NNCF's int8 is written as FakeQuantize."""
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def compiled_int8_layers(compiled: Any) -> int:
    """How many convolution and dense layers the CPU plugin runs on int8 inputs (its runtime
    graph's `runtimePrecision`; a test fakes it). A CPU without int8 kernels would run the
    FakeQuantize as float arithmetic instead."""
    count = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in OPENVINO_INT8_LAYERS and info[
            "runtimePrecision"
        ].astype(str) in ("i8", "u8"):
            count += 1
    return count


# OpenVINO's OPTIMIZATION_CAPABILITIES entry that means it runs a precision natively.
OPENVINO_NATIVE = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


@functools.cache
def openvino_capabilities() -> tuple[str, ...]:
    """OpenVINO's own reading of the CPU (`OPTIMIZATION_CAPABILITIES`); a test replaces it
    (monkeypatch) so that both branches of each precision decision run on every machine."""
    import openvino as ov

    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def native_in_openvino(precision: str) -> bool:
    return OPENVINO_NATIVE[precision] in openvino_capabilities()


def openvino_runner(
    path: Path,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    batch: int | None = None,
) -> Runner:
    """OpenVINO on the CPU with the inference precision pinned: it would otherwise pick bf16
    by itself on CPUs that have it, and report nothing. A row is labelled with the precision
    that was compiled, and a precision the CPU lacks is refused rather than emulated. int8 is
    the IR's own (NNCF's FakeQuantize), run with f32 for what stays float, and labelled int8
    only when the IR is quantized and the CPU plugin runs its convolutions in int8.

    `batch` compiles the IR with its batch dimension pinned to that size: the CPU plugin then
    runs static-shape kernels (the runner's `pinned` gives that runner for each batch)."""
    import openvino as ov

    if not native_in_openvino(precision):
        raise PrecisionUnavailable(
            f"{precision} is not native on this CPU (OpenVINO capabilities: "
            f"{', '.join(openvino_capabilities())}); refused rather than emulated"
        )
    hinted = OPENVINO_FILE_PRECISIONS.get(precision, precision)
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[hinted],
        "INFERENCE_NUM_THREADS": threads_or_default(threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    core = ov.Core()
    model = read_ir(path, batch, core)
    quantizers = fake_quantize_ops(model)
    if (precision in OPENVINO_FILE_PRECISIONS) != bool(quantizers):
        holds = f"{quantizers} FakeQuantize operations" if quantizers else "no FakeQuantize"
        raise WorkError(f"{path.name} holds {holds}: it is not an OpenVINO {precision} IR")
    compiled = compile_cpu(core, model, config)
    used = openvino_label(compiled_precision(compiled))
    if used != hinted:
        raise PrecisionUnavailable(f"OpenVINO compiled {used} when asked for {hinted}")
    if precision == "int8":
        if not compiled_int8_layers(compiled):
            raise PrecisionUnavailable(
                "OpenVINO runs no convolution of the int8 IR in int8 on this CPU "
                "(its FakeQuantize would be float arithmetic); refused rather than emulated"
            )
        used = precision
    shape = compiled.inputs[0].get_partial_shape()
    fixed = None if shape[0].is_dynamic else shape[0].get_length()
    settings = (
        f"LATENCY hint, {config['INFERENCE_NUM_THREADS']} threads, inference precision "
        f"{config['INFERENCE_PRECISION_HINT']}"
    )
    if batch:
        settings += f", static batch {batch}"
    source = model.get_results()[0].input_value(0).get_node()
    run_logits = None
    if source.get_type_name() == "Softmax":

        @functools.cache
        def with_logits() -> Any:  # compiled on first use: timing runs the model as written
            model.add_outputs([source.input_value(0)])
            return compile_cpu(core, model, config)

        def run_logits(images: Images) -> Floats:
            return _openvino_caller(with_logits(), output=1)(images)

    return Runner(
        "openvino",
        "cpu",
        "OpenVINO CPU",
        used,
        _openvino_caller(compiled),
        fixed,
        run_logits=run_logits,
        threads=int(compiled.get_property("INFERENCE_NUM_THREADS")),
        streams=lambda n: openvino_streams(core, read_ir(path, batch, core), config, n),
        settings=settings,
        pinned=(lambda size: openvino_runner(path, device, threads, precision, size))
        if fixed is None
        else None,
        threaded=lambda n: openvino_runner(path, device, n, precision, batch),
    )


def read_ir(path: Path, batch: int | None = None, core: Any = None) -> Any:
    """The IR, with its batch dimension pinned to `batch` where it is dynamic and one is given:
    the one place that reads one (by `core`, the Core that is to compile it, if any)."""
    import openvino as ov

    model = (core or ov.Core()).read_model(str(openvino_xml(path)))
    shape = model.inputs[0].get_partial_shape()
    if batch and shape[0].is_dynamic:
        shape[0] = batch
        model.reshape({model.inputs[0]: shape})
    return model


def openvino_streams(core: Any, model: Any, config: dict[str, Any], n: int | None) -> Streams:
    """OpenVINO's own throughput mode: the model compiled under the THROUGHPUT hint (with
    `n` streams where given, else its choice) and driven by an AsyncInferQueue of its optimal
    number of requests, each request's interval taken from its start to its callback."""
    import time

    import openvino as ov

    wanted = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
    if n:
        wanted["NUM_STREAMS"] = n
    compiled = compile_cpu(core, model, wanted)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    streams = int(compiled.get_property("NUM_STREAMS"))
    threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))

    def drive(images: Images, seconds: float) -> list[Interval]:
        queue = ov.AsyncInferQueue(compiled, requests)
        intervals: list[Interval] = []
        started: dict[int, float] = {}
        queue.set_callback(
            lambda request, slot: intervals.append((started[slot], time.perf_counter()))
        )
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            slot = queue.get_idle_request_id()  # waits for a request to come back
            started[slot] = time.perf_counter()
            queue.start_async({0: images}, userdata=slot)
        queue.wait_all()
        return intervals

    settings = (
        f"THROUGHPUT hint, {streams} stream{'s' if streams > 1 else ''}, "
        f"AsyncInferQueue of {requests} requests, {threads} threads"
    )
    batch = model.inputs[0].get_partial_shape()[0]
    if batch.is_static:
        settings += f", static batch {batch.get_length()}"
    return Streams(requests, settings, drive, split_threads(threads, streams))


def compile_cpu(core: Any, model: Any, config: dict[str, Any]) -> Any:
    """The model compiled for the CPU plugin: the one place effnet compiles an IR."""
    return core.compile_model(model, "CPU", config)


def _openvino_caller(compiled: Any, output: int = 0) -> Run:
    request = compiled.create_infer_request()
    port = compiled.outputs[output]

    def run(images: Images) -> Floats:
        answers: Floats = request.infer({0: images})[port].copy()
        return answers

    return run


# ---------------------------------------------------------------------------- write


def write_openvino(
    model: Any,
    path: Path,
    *,
    opset: int,
    batch: int | None,
    meta: dict[str, str],
    optimize: bool = True,
    precision: str = "fp32",
    calibration: Images | None = None,
    recipe: Recipe = DEFAULT_RECIPE,
    steer: Steer | None = None,
    **_: Any,
) -> dict[str, Any] | None:
    """OpenVINO IR (model.xml + model.bin) through the (optimized) ONNX export, fp32 weights;
    int8 is quantized into the IR by NNCF.

    `ov.save_model` would compress the weights to fp16 by default; effnet writes what it
    verified, so it turns that off (NNCF's int8 weights are stored as int8 all the same).
    int8 follows `recipe` (steered by `steer`'s real images for keep-float); what it did is
    returned ({"float_layers", "layers"} for keep-float).
    """
    import openvino as ov

    path.mkdir()
    onnx_path = path / "model.onnx"
    write_onnx(model, onnx_path, opset=opset, batch=batch, meta=meta, optimize=optimize)
    converted = ov.convert_model(str(onnx_path))
    done = None
    if precision == "int8":
        converted, done = _openvino_int8(
            converted,
            calibration_batches(artifact.int8_calibration(calibration), batch),
            recipe,
            steer,
            batch,
        )
    for key, value in meta.items():
        converted.set_rt_info(value, ["effnet", key])
    ov.save_model(converted, str(path / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()
    return done


def _openvino_int8(
    model: Any,
    batches: list[Images],
    recipe: Recipe = DEFAULT_RECIPE,
    steer: Steer | None = None,
    batch: int | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """NNCF's post-training quantization: FakeQuantize before every convolution and the dense
    layer, per-channel symmetric int8 weights, ranges calibrated on `batches` of (n, H, W, 3)
    images: min/max (`default`), a quantile of each batch (`percentile`), or min/max with the
    layers NNCF's accuracy control ranks worst reverted to float (`keep-float`), as few as make
    the files agree with the float model on `steer`'s images.

    The MIXED preset quantizes activations asymmetrically: NNCF recommends it for activations
    that are not ReLU, and swish's outputs reach below zero (B0 at 224 px, random weights:
    top-1 agreement 0.83 against 0.58 with the default symmetric preset). The softmax is kept
    out explicitly: its input is the logits that verification compares.
    """
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.ERROR)
    common = {
        "preset": nncf.QuantizationPreset.MIXED,
        "subset_size": len(batches),
        "ignored_scope": nncf.IgnoredScope(types=["Softmax"], validate=False),
    }
    if recipe == PERCENTILE:
        ranges = RangeEstimatorParametersSet.MEAN_QUANTILE
        parameters = AdvancedQuantizationParameters(activations_range_estimator_params=ranges)
        return nncf.quantize(
            model, nncf.Dataset(batches), advanced_parameters=parameters, **common
        ), None
    if recipe != KEEP_FLOAT:
        return nncf.quantize(model, nncf.Dataset(batches), **common), None
    assert steer is not None, "keep-float is steered by the real images"
    import numpy as np

    layers = _weighted_layers(model)
    extra = _add_logits_output(model)
    count = len(steer.images)

    def agreement(compiled: Any, images: list[Images]) -> float:
        answers = np.concatenate([compiled(batch)[compiled.outputs[-1]] for batch in images])
        return steer.score(answers[:count])  # a pinned batch's fill dropped

    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=int(layers * MAX_FLOAT_SHARE))
    quantized = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(batches),
        nncf.Dataset(calibration_batches(steer.images, batch)),
        agreement,
        max_drop=0.0,
        advanced_accuracy_restorer_parameters=restorer,
        **common,
    )
    if extra:
        quantized.remove_result(quantized.get_results()[-1])
    return quantized, {
        "float_layers": layers - _weighted_layers(quantized, int8=True),
        "layers": layers,
    }


# The layers NNCF quantizes: convolutions and the dense layer; and the operations that may stand
# between one and its FakeQuantize without changing values.
WEIGHTED_LAYERS = ("Convolution", "GroupConvolution", "MatMul")
LAYOUT_OPS = ("Transpose", "Reshape", "Squeeze", "Unsqueeze")


def _weighted_layers(model: Any, int8: bool = False) -> int:
    """How many convolution and dense layers `model` has (`int8`: that read a FakeQuantize)."""

    def reads_int8(op: Any) -> bool:
        source = op.input_value(0).get_node()
        while source.get_type_name() in LAYOUT_OPS:
            source = source.input_value(0).get_node()
        kind: str = source.get_type_name()
        return kind == "FakeQuantize"

    return sum(
        op.get_type_name() in WEIGHTED_LAYERS and (not int8 or reads_int8(op))
        for op in model.get_ops()
    )


def _add_logits_output(model: Any) -> bool:
    """Make the softmax's input the model's last output, if it ends in one: keep-float's metric
    compares logits. Whether an output was added."""
    source = model.get_results()[0].input_value(0).get_node()
    if source.get_type_name() != "Softmax":
        return False
    model.add_outputs([source.input_value(0)])
    return True


# ---------------------------------------------------------------------------- read


def read_openvino(path: Path) -> dict[str, Any]:
    model = read_ir(path)

    def port(p: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else None for d in p.get_partial_shape()]
        return artifact.tensor(p.get_any_name(), shape, p.get_element_type().get_type_name())

    ops = [op.get_type_name() for op in model.get_ops()]
    constants = [op for op in model.get_ops() if op.get_type_name() == "Constant"]
    info = model.get_rt_info()
    metadata = {}
    if "effnet" in info:
        metadata = {key: value.astype(str) for key, value in info["effnet"].items()}
    graph_ops = Counter(op for op in ops if op not in ("Constant", "Parameter", "Result"))
    shapes = [op.get_output_shape(0) for op in constants]
    return {
        "inputs": [port(p) for p in model.inputs],
        "outputs": [port(p) for p in model.outputs],
        "ops": dict(graph_ops.most_common()),
        "params": int(sum(math.prod(shape) for shape in shapes if len(shape))),
        "params_counted": f"Constant elements; {artifact.FOLDED}",
        "metadata": metadata,
    }


def openvino_precision(path: Path) -> str:
    """int8 when the IR holds FakeQuantize (NNCF's int8), else fp32."""
    return "int8" if fake_quantize_ops(read_ir(path)) else "fp32"


def declared(path: Path) -> Declared:
    """effnet's rt_info and the input's shape; an IR effnet did not write says int8 by its
    FakeQuantize."""
    model = read_ir(path)
    info = model.get_rt_info()
    meta = {k: v.astype(str) for k, v in info["effnet"].items()} if "effnet" in info else {}
    if "precision" not in meta and fake_quantize_ops(model):
        meta["precision"] = "int8"
    shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()]
    return Declared(meta, shape, effnet=bool(meta))


def check_ir(path: Path) -> str | None:
    """What is wrong with an IR OpenVINO refused, from its two files: OpenVINO says "Empty
    weights data in bin file or bin file cannot be found" of a missing .bin, "Incorrect weights
    in bin file" of a short one and "Could not determine tag type at offset N" of a cut .xml,
    naming neither file. The .xml is parsed (without OpenVINO) only for its constants' extents."""
    import xml.etree.ElementTree as ET

    xml = openvino_xml(path)
    weights = xml.with_suffix(".bin")
    if xml.stat().st_size == 0:
        return f"{xml.name} is empty (0 bytes)"
    if not weights.is_file():
        return f"it has no weights file {weights.name} beside {xml.name}"
    try:
        ends = [
            int(data.get("offset", 0)) + int(data.get("size", 0))
            for layer in ET.parse(xml).getroot().iter("layer")
            if layer.get("type") == "Const"
            for data in layer.iter("data")
            if "offset" in data.attrib
        ]
    except ET.ParseError as exc:
        return f"{xml.name} does not parse as XML ({exc})"
    needed, held = max(ends, default=0), weights.stat().st_size
    if held < needed:
        return (
            f"{weights.name} is truncated: it holds {held:,} bytes, the constants of "
            f"{xml.name} need {needed:,}"
        )
    return None


def _hint(precision: str) -> Precision:
    """A precision the runtime is asked for over the fp32 IR."""
    applied = f"the fp32 IR compiled with INFERENCE_PRECISION_HINT {OPENVINO_HINTS[precision]}"
    return Precision("hint", applied=applied)


FORMAT = Format(
    name="openvino",
    suffix="_openvino",
    read=read_openvino,
    write=write_openvino,
    folder=True,
    marker="*.xml",
    precision_of=openvino_precision,
    declared=declared,
    check=check_ir,
)

# NHWC only, although the IR is made from the ONNX export: OpenVINO sets a deployment's layout
# at load time (its PrePostProcessor converts NHWC or NCHW tensors in the compiled model), so an
# NCHW IR would add nothing but a second input path for its runner to feed and verify.
BACKEND = Backend(
    name="openvino",
    summary="OpenVINO IR (from the ONNX export; int8 by NNCF), run by OpenVINO",
    format=FORMAT,
    load=openvino_runner,
    packages=("openvino", "nncf"),
    precisions={
        "fp32": FP32,
        # hints to the runtime over the fp32 IR: no file of their own (docs/bench.md)
        "bf16": _hint("bf16"),
        "fp16": _hint("fp16"),
        # NNCF's post-training quantization written into an IR of its own
        "int8": replace(INT8, recipes=(DEFAULT_RECIPE, PERCENTILE, KEEP_FLOAT)),
    },
)
