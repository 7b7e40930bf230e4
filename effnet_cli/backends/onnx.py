"""ONNX: tf2onnx's conversion of the Keras model (slimmed by onnxslim; fp16 and int8 converted
in by onnxruntime's tools), run by onnxruntime.

The OpenVINO IR is made from this format's writer (openvino.py): one tf2onnx conversion of a
model serves every artifact made from it within `reusing_conversions`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import math
import mmap
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import artifact
from effnet_cli.backends.artifact import INPUT_NAME, calibration_batches, output_name
from effnet_cli.backends.int8 import float_counts
from effnet_cli.backends.record import (
    DEFAULT_RECIPE,
    FP16,
    FP32,
    INT8,
    KEEP_FLOAT,
    PERCENTILE,
    Backend,
    Declared,
    Format,
    Recipe,
    Steer,
)
from effnet_cli.backends.runtimes import Runner, session_streams, threads_or_default
from effnet_cli.util.errors import UsageError, WorkError

if TYPE_CHECKING:
    from effnet_cli.backends.runtimes import Run
    from effnet_cli.util.arrays import Floats, Images

DEFAULT_OPSET = 17


def load(path: Path, external_data: bool = True) -> Any:
    """The file's ModelProto: the one place effnet parses an ONNX file (`external_data=False`
    reads the graph and metadata without the weights stored beside it)."""
    import onnx

    return onnx.load(str(path), load_external_data=external_data)


# ---------------------------------------------------------------------------- write


def write_onnx(
    model: Any,
    path: Path,
    *,
    opset: int,
    batch: int | None,
    meta: dict[str, str],
    optimize: bool = True,
    precision: str = "fp32",
    calibration: Images | None = None,
    nchw: bool = False,
    recipe: Recipe = DEFAULT_RECIPE,
    steer: Steer | None = None,
    **_: Any,
) -> dict[str, Any] | None:
    """tf2onnx with an explicit input signature (Keras 3 needs one), then onnxslim unless
    `optimize` is off, then the precision converted in, then effnet's metadata.

    The signature's height and width are the model's: None for a model built on a
    (None, None, 3) input (`--dynamic-size`). `nchw` makes the input [N, 3, H, W]: tf2onnx's
    `inputs_as_nchw` puts one Transpose in front of the NHWC graph.
    onnxslim folds the stride-2 `Pad`s into their convolutions and halves the `Reshape`s;
    onnxruntime runs the result 10–15 % faster (benchmarks/run.py, section "runtimes").
    int8 follows `recipe` (with `steer`, the real images, for a steered one); what the recipe
    did is returned ({"float_layers", "layers"} for keep-float).
    """
    import onnx

    proto = _converted(model, opset, batch, nchw, optimize)
    done = None
    if precision == "fp16":
        proto = _onnx_fp16(proto)
    elif precision == "int8":
        batches = calibration_batches(artifact.int8_calibration(calibration), batch)
        proto, done = _onnx_int8(proto, batches, path.parent, nchw, recipe, steer)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return done


# tf2onnx's graphs of the command at hand, serialized, by (model, opset, batch, layout, slimmed);
# None outside `reusing_conversions`.
_conversions: dict[tuple[int, int, int | None, bool, bool], bytes] | None = None


@contextlib.contextmanager
def reusing_conversions() -> Iterator[None]:
    """Within it, each model is converted by tf2onnx and slimmed by onnxslim once: every
    artifact made from that graph (ONNX fp32, fp16 and int8, the OpenVINO IR and its int8)
    starts from the first conversion (~7 s for B0, a minute for B7, each time saved). The
    models' weights must not change within it: export and bench write every artifact of one
    model in a row."""
    global _conversions
    _conversions = {}
    try:
        yield
    finally:
        _conversions = None


def _converted(model: Any, opset: int, batch: int | None, nchw: bool, slimmed: bool) -> Any:
    """tf2onnx's graph of `model`, slimmed or not, or a copy of this command's earlier one."""
    import onnx

    key = (id(model), opset, batch, nchw, slimmed)
    if _conversions is not None and key in _conversions:
        return onnx.ModelProto.FromString(_conversions[key])
    proto = _tf2onnx(model, opset, batch, nchw)
    if slimmed:  # a command's artifacts are all slimmed or none: only what they start from is kept
        import onnxslim

        proto = onnxslim.slim(proto)
    if _conversions is not None:
        _conversions[key] = proto.SerializeToString()
    return proto


def _tf2onnx(model: Any, opset: int, batch: int | None, nchw: bool) -> Any:
    """tf2onnx's graph of `model` with an explicit input signature (Keras 3 needs one) and the
    output named by `output_name`."""
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    height, width = model.input.shape[1:3]
    signature = (tf.TensorSpec((batch, height, width, 3), tf.float32, name=INPUT_NAME),)
    with _frozen_heap():
        proto, _ = tf2onnx.convert.from_keras(
            model,
            input_signature=signature,
            opset=opset,
            optimizers=_collecting_optimizers(),
            inputs_as_nchw=[INPUT_NAME] if nchw else None,
        )
    proto.graph.output[0].name = _rename_output(proto, output_name(model))
    return proto


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Move every object alive now (TensorFlow's and Keras' modules, the model) out of the
    garbage collector's sight, so that the collections of `_collecting_optimizers` only walk
    what the conversion makes."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _collecting_optimizers() -> dict[str, Any]:
    """tf2onnx's own graph optimizers, each preceded by a garbage collection.

    tf2onnx deep-copies the graph before each of its ~12 optimizers (36 passes on
    EfficientNet) so that a failing one can be skipped; each discarded copy is cyclic garbage
    that Python frees only at its rare full collections. On B7 the copies pile up to 10.7 GB
    peak; collected before each pass it stays at 4 GB, and freezing TensorFlow's graph
    (5.7 GB) becomes the peak (benchmarks/run.py, section "export").
    """
    from tf2onnx import optimizer

    def collected_first(factory: Any) -> Any:
        def make() -> Any:
            gc.collect()
            return factory()

        return make

    # tf2onnx exposes its optimizer table only as this function; `optimizers=` is public.
    return {name: collected_first(f) for name, f in optimizer._get_optimizers().items()}


# Reductions stay in fp32: fp16 ReduceMean over a large feature map is reported to give zeros or
# NaN (onnxruntime issue 13350), and squeeze-and-excitation's gate is such a mean.
FP32_IN_FP16_ONNX = ("ReduceMean", "GlobalAveragePool", "Softmax")


def _onnx_fp16(proto: Any) -> Any:
    """fp16 weights and compute with float32 inputs and outputs kept (onnxruntime's converter,
    the same as onnxconverter-common's); meant for GPU execution providers."""
    from onnxruntime.transformers import float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    blocked = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *FP32_IN_FP16_ONNX})
    converted = OnnxModel(
        float16.convert_float_to_float16(proto, keep_io_types=True, op_block_list=blocked)
    )
    converted.topological_sort()  # the converter appends its input Casts at the end
    return converted.model


def _reader(batches: list[Images], nchw: bool) -> Any:
    """Calibration batches of (n, H, W, 3) images as onnxruntime's quantizer reads them (fed
    transposed to an `nchw` input)."""
    from onnxruntime import quantization as q

    class Images(q.CalibrationDataReader):  # type: ignore[misc]  # onnxruntime ships no types
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {INPUT_NAME: batch.transpose(0, 3, 1, 2).copy() if nchw else batch}

    return Images()


# Calibration images keep-float measures each layer's error on: every intermediate tensor of
# both models is kept in memory for each (B7 at 600 px: ~1 GB an image).
RANKING_IMAGES = 4
# Float tensors' SQNR is infinite; the first quantized ones are measured against this.
MAX_SQNR_DB = 100.0


def _onnx_int8(
    proto: Any,
    batches: list[Images],
    scratch: Path,
    nchw: bool = False,
    recipe: Recipe = DEFAULT_RECIPE,
    steer: Steer | None = None,
) -> tuple[Any, dict[str, Any] | None]:
    """onnxruntime's static quantization: QDQ, int8 activations and per-channel int8 weights
    (per-tensor depthwise weights are reported to collapse EfficientNet's accuracy), ranges
    calibrated on `batches` of (n, H, W, 3) images: min/max (`default`), the 99.999th
    percentile (`percentile`), or min/max with the worst layers in float (`keep-float`)."""
    import onnx
    from onnxruntime import quantization as q

    source, target = scratch / ".effnet-fp32.onnx", scratch / ".effnet-int8.onnx"
    onnx.save(proto, str(source))
    # The softmax head stays float: its input is the logits that verification compares.
    softmax = [node.name for node in proto.graph.node if node.op_type == "Softmax"]

    method = q.CalibrationMethod.Percentile if recipe == PERCENTILE else q.CalibrationMethod.MinMax

    def quantize(excluded: Sequence[str] = ()) -> None:
        q.quantize_static(
            str(source),
            str(target),
            _reader(batches, nchw),
            quant_format=q.QuantFormat.QDQ,
            per_channel=True,
            activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=[*softmax, *excluded],
        )

    # onnxruntime advises its pre-processing (shape inference, graph optimization) on the root
    # logger, and prints its histograms' progress: lines about its API, not effnet's.
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(None):
            quantize()
            if recipe != KEEP_FLOAT:
                return load(target), None
            assert steer is not None, "keep-float is steered by the real images"
            ranked = _worst_layers(source, target, batches[:RANKING_IMAGES], nchw)
            for count in float_counts(len(ranked)):
                quantize([name for group in ranked[:count] for name in group])
                if steer.reached(onnx_runner(target).comparable_all(steer.images)):
                    break
        return load(target), {"float_layers": count, "layers": len(ranked)}
    finally:
        logging.disable(logging.NOTSET)
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def _worst_layers(
    source: Path, quantized: Path, batches: list[Images], nchw: bool
) -> list[list[str]]:
    """The float graph's layers, worst first, by the accuracy each loses: the SQNR against the
    float model (onnxruntime's qdq_loss_debug) lost between the layer's quantized inputs and its
    quantized output. A layer is the nodes between them (a Conv and its Clip)."""
    from onnxruntime.quantization import qdq_loss_debug as debug

    errors: dict[str, float] = {}
    augmented = [source.with_suffix(".float.onnx"), source.with_suffix(".qdq.onnx")]
    try:
        activations = []
        for model, copy in zip((source, quantized), augmented, strict=True):
            debug.modify_model_output_intermediate_tensors(
                str(model), str(copy), save_as_external_data=False
            )
            activations.append(debug.collect_activations(str(copy), _reader(batches, nchw)))
        matched = debug.create_activation_matching(activations[1], activations[0])
        for name, error in debug.compute_activation_error(matched).items():
            if "xmodel_err" in error:
                errors[name] = error["xmodel_err"]
    finally:
        for copy in augmented:
            copy.unlink(missing_ok=True)
    graph = load(source).graph
    producers = {out: node for node in graph.node for out in node.output}
    weights = {init.name for init in graph.initializer}

    @functools.cache  # a tensor read by several layers is walked once
    def layer(tensor: str) -> tuple[float, list[str]]:
        """The SQNR at the quantized tensors that feed `tensor`, and the nodes in between."""
        node = producers.get(tensor)
        if node is None:  # the graph input: the float image, no error upstream
            return math.inf, []
        upstream, nodes = math.inf, [node.name]
        for name in node.input:
            if name in errors:
                upstream = min(upstream, errors[name])
            elif name and name not in weights:
                sqnr, more = layer(name)
                upstream, nodes = min(upstream, sqnr), nodes + more
        return upstream, nodes

    losses = []
    for tensor, sqnr in errors.items():
        upstream, nodes = layer(tensor)
        if nodes and all(nodes):
            losses.append((min(upstream, MAX_SQNR_DB) - sqnr, nodes))
    return [nodes for _, nodes in sorted(losses, key=lambda loss: -loss[0])]


def _rename_output(proto: Any, name: str) -> str:
    """Give the graph output a meaningful name, rewiring the node that produces it."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
    return name


# ---------------------------------------------------------------------------- load


def onnx_runner(
    path: Path,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    find_logits: bool = True,
    spin: bool = True,
) -> Runner:
    """onnxruntime; on `gpu` the CUDA provider must really be active (a fallback is an error).

    `find_logits=False` skips looking for the softmax's input (no `run_logits`): it needs the
    `onnx` package, whose import alone costs ~0.4 s, and `predict` reads only the outputs.
    `spin=False`: idle intra-op threads sleep instead of spinning for work (for a runtime that
    shares the cores with other threads)."""
    import onnxruntime as ort

    options = _onnx_options(ort, threads)
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wanted = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "gpu"
        else ["CPUExecutionProvider"]
    )
    if device == "gpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UsageError(
            "onnxruntime here has no CUDA provider (available: "
            + ", ".join(ort.get_available_providers())
            + ")",
            hint="pip install onnxruntime-gpu, or use --device cpu",
        )
    session = ort.InferenceSession(str(path), options, providers=wanted)
    active = session.get_providers()
    if device == "gpu" and active[0] != "CUDAExecutionProvider":
        raise WorkError(f"onnxruntime fell back to {active[0]} instead of CUDA")
    meta = session.get_inputs()[0]
    batch = meta.shape[0] if isinstance(meta.shape[0], int) else None
    input_name, output_name = meta.name, session.get_outputs()[0].name
    feed = _nchw if onnx_layout(session) == "NCHW" else _unchanged

    def run(images: Images) -> Floats:
        answers: Floats = session.run([output_name], {input_name: feed(images)})[0]
        return answers

    metadata = dict(session.get_modelmeta().custom_metadata_map)

    def session_of(threads_each: int) -> Run:
        own = ort.InferenceSession(str(path), _onnx_options(ort, threads_each), providers=wanted)
        return lambda images: own.run([output_name], {input_name: feed(images)})[0]

    logits_name = _onnx_softmax_input(path, output_name) if find_logits else None
    run_logits = None
    if logits_name is not None:

        @functools.cache
        def logits_session() -> Any:
            """A second session whose graph also outputs the softmax's input, built on first use
            so that timing runs the graph exactly as written."""
            import onnx

            proto = load(path)
            proto.graph.output.append(onnx.ValueInfoProto(name=logits_name))
            return ort.InferenceSession(proto.SerializeToString(), options, providers=wanted)

        def run_logits(images: Images) -> Floats:
            logits: Floats = logits_session().run([logits_name], {input_name: feed(images)})[0]
            return logits

    return Runner(
        "onnx",
        device,
        active[0],
        precision,
        run,
        batch,
        run_logits=run_logits,
        threads=options.intra_op_num_threads,
        metadata=metadata,
        streams=session_streams(session_of, options.intra_op_num_threads, "session"),
        settings=_onnx_settings(options),
        threaded=lambda n: onnx_runner(path, device, n, precision, find_logits),
    )


def outputs_runner(path: Path, threads: int | None = None) -> Runner:
    """onnxruntime on the CPU without looking for the logits, which needs the `onnx` package
    (0.4 s to import): for predict, which reads the output as it is (an int8 QDQ file keeps
    its softmax in float) and its contract from the metadata the session read. Its threads do
    not spin: predict's runtime shares the cores with the threads decoding the next images,
    whose CPU spinning took (Lite0 on 600 photos, 2-core EPYC: 16-19 % more images/s)."""
    return onnx_runner(path, "cpu", threads, find_logits=False, spin=False)


def _onnx_settings(options: Any) -> str:
    return f"1 session × {options.intra_op_num_threads} threads, all graph optimizations"


def onnx_layout(session: Any) -> str:
    """The input layout, NCHW or NHWC, that effnet's metadata records (`export --nchw`); for a
    file effnet did not write, read from the input's shape ([N, 3, H, W]: channels second)."""
    recorded = session.get_modelmeta().custom_metadata_map.get("input_layout")
    if recorded in ("NCHW", "NHWC"):
        return str(recorded)
    shape = session.get_inputs()[0].shape
    return "NCHW" if len(shape) == 4 and shape[1] == 3 and shape[3] != 3 else "NHWC"


def _nchw(images: Images) -> Images:
    import numpy as np

    return np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))


def _unchanged(images: Images) -> Images:
    return images


def _onnx_softmax_input(path: Path, output_name: str) -> str | None:
    """The tensor a final Softmax reads (the logits), or None when the output is no softmax."""
    graph = load(path, external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(output_name)
    while node is not None and node.op_type in PASS_THROUGH:  # fp16's Cast, int8's Q/DQ
        node = producers.get(node.input[0])
    return node.input[0] if node is not None and node.op_type == "Softmax" else None


# Ops a converter may put between the softmax and the graph output without changing its values.
PASS_THROUGH = ("Cast", "QuantizeLinear", "DequantizeLinear", "Identity")


def _onnx_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads_or_default(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


# ---------------------------------------------------------------------------- read


def read_onnx(path: Path) -> dict[str, Any]:
    from onnx import helper

    model = load(path)
    initializers = {init.name for init in model.graph.initializer}

    def value_info(info: Any) -> dict[str, Any]:
        dims = [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
        dtype = helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
        return artifact.tensor(info.name, dims, dtype)

    return {
        "inputs": [value_info(i) for i in model.graph.input if i.name not in initializers],
        "outputs": [value_info(o) for o in model.graph.output],
        "ops": dict(Counter(node.op_type for node in model.graph.node).most_common()),
        "params": sum(math.prod(init.dims) for init in model.graph.initializer),
        "params_counted": f"initializer elements; {artifact.FOLDED}",
        "metadata": {prop.key: prop.value for prop in model.metadata_props},
        "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
    }


def onnx_precision(path: Path) -> str:
    """int8 when the graph holds Q/DQ nodes, fp16 when its weights are float16."""
    import onnx

    model = load(path, external_data=False)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        return "int8"
    float16 = onnx.TensorProto.FLOAT16
    return "fp16" if any(t.data_type == float16 for t in model.graph.initializer) else "fp32"


def declared(path: Path) -> Declared:
    """effnet's metadata_props and the first input's shape, read without the weights."""
    proto = load(path, external_data=False)
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    first = proto.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in first]
    return Declared(meta, shape, effnet=bool(meta))


# ModelProto's top-level fields (onnx/onnx.proto): number -> (name, protobuf wire type: 0 a
# varint, 2 a length and that many bytes). A file whose fields are not these is not ONNX.
MODEL_FIELDS = {
    1: ("IR version", 0), 2: ("producer name", 2), 3: ("producer version", 2), 4: ("domain", 2),
    5: ("model version", 0), 6: ("doc string", 2), 7: ("graph", 2), 8: ("opset import", 2),
    14: ("metadata", 2), 20: ("training info", 2), 25: ("functions", 2), 26: ("configuration", 2),
}  # fmt: skip
GRAPH_FIELD = 7


def check_onnx(path: Path) -> str | None:
    """What is wrong with a .onnx file onnxruntime refused, read from its top-level protobuf
    fields without parsing them: onnxruntime says only "Protobuf parsing failed" of a truncated
    file and of a foreign one alike. Walks a few dozen fields, skipping the graph's bytes."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size, at, fields = len(data), 0, set()
        while at < size:
            start = at
            tag, at = _varint(data, at)
            name, wire = MODEL_FIELDS.get(tag >> 3, ("", -1))
            if tag < 0 or wire != tag & 7:
                return f"corrupt protobuf: byte {start:,} starts no field an ONNX model has"
            value, at = _varint(data, at)  # a varint field's value, or the length of its bytes
            if value < 0:
                return f"truncated protobuf: the file ends inside its {name}"
            at += value if wire == 2 else 0
            if at > size:
                return (
                    f"truncated protobuf: its {name} runs to byte {at:,} but the file ends "
                    f"at byte {size:,}"
                )
            fields.add(tag >> 3)
    return None if GRAPH_FIELD in fields else "its protobuf holds no graph"


def _varint(data: Any, at: int) -> tuple[int, int]:
    """The protobuf varint at `at` and the offset after it; -1 where the data ends inside it or
    it runs past 64 bits (garbage, not a number)."""
    value = shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    return -1, at


FORMAT = Format(
    name="onnx",
    suffix=".onnx",
    read=read_onnx,
    write=write_onnx,
    layouts=("NHWC", "NCHW"),
    dynamic_size=True,
    precision_of=onnx_precision,
    declared=declared,
    check=check_onnx,
)

BACKEND = Backend(
    name="onnx",
    summary="ONNX through tf2onnx and onnxslim, run by onnxruntime",
    format=FORMAT,
    load=onnx_runner,
    load_outputs=outputs_runner,
    devices=("cpu", "gpu"),
    packages=("tf2onnx", "onnx", "onnxslim", "onnxruntime"),
    precisions={
        "fp32": FP32,
        "fp16": FP16,  # for GPU execution providers (docs/export.md)
        "int8": replace(INT8, recipes=(DEFAULT_RECIPE, PERCENTILE, KEEP_FLOAT)),
    },
)
