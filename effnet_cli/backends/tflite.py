"""TFLite: the TFLite converter's flatbuffer (fp16, dynamic-range and int8 converted in), run by
LiteRT's interpreter with XNNPACK.

The file is read and rewritten with LiteRT's generated schema, here only: its writer names the
input and output and adds effnet's metadata; its runner adds the logits as a second output.

The TFLite converter names tensors after TensorFlow's graph (`serving_default_input_layer:0`,
`StatefulPartitionedCall_1:0`) and has no way to add metadata of one's own; the file format
has both: tensor and SignatureDef names, and a `metadata` table of named buffers, which the
interpreter ignores (the converter writes `min_runtime_version` there).
"""

from __future__ import annotations

import functools
import json
import math
import mmap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import artifact
from effnet_cli.backends.int8 import float_counts
from effnet_cli.backends.record import (
    DEFAULT_RECIPE,
    DYNAMIC,
    FP16,
    FP32,
    INT8,
    KEEP_FLOAT,
    Backend,
    Declared,
    Format,
    Recipe,
    Steer,
)
from effnet_cli.backends.runtimes import Runner, session_streams, threads_or_default

if TYPE_CHECKING:
    from effnet_cli.backends.runtimes import Run
    from effnet_cli.util.arrays import Array, Floats, Images

METADATA_NAME = "effnet"  # the entry of the file's metadata table holding effnet's JSON
IDENTIFIER = b"TFL3"  # TFLite's flatbuffer file identifier
SIGNATURE_KEY = "serving_default"  # the SignatureDef a TFLite file is run through by name


def unpack(content: bytes) -> Any:
    """The whole file as LiteRT's object API (`ModelT`); buffers stay views of `content`."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(content, 0)


def pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output())


def name_io(model: Any, input_name: str, output_name: str) -> None:
    """Name the first graph's input and output tensors, and its SignatureDef's keys for them,
    as effnet's other artifacts name them (ONNX, SavedModel and OpenVINO: `input` and
    `probabilities`, `logits` or `features`); a file converted from a frozen graph has no
    SignatureDef, and gets `serving_default` (the one a SavedModel's conversion carries)."""
    from ai_edge_litert import schema_py_generated as schema

    graph = model.subgraphs[0]
    (input_index,), (output_index,) = graph.inputs, graph.outputs
    graph.tensors[int(input_index)].name = input_name.encode()
    graph.tensors[int(output_index)].name = output_name.encode()
    if not model.signatureDefs:
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = SIGNATURE_KEY.encode(), 0
        signature.inputs, signature.outputs = [schema.TensorMapT()], [schema.TensorMapT()]
        signature.inputs[0].tensorIndex = int(input_index)
        signature.outputs[0].tensorIndex = int(output_index)
        model.signatureDefs = [signature]
    for signature in model.signatureDefs:
        if signature.subgraphIndex != 0:
            continue
        for entry in signature.inputs or []:
            if entry.tensorIndex == input_index:
                entry.name = input_name.encode()
        for entry in signature.outputs or []:
            if entry.tensorIndex == output_index:
                entry.name = output_name.encode()


def add_metadata(model: Any, meta: dict[str, str]) -> None:
    """effnet's metadata (the strings ONNX gets in metadata_props) as one JSON buffer named
    METADATA_NAME in the file's metadata table; it replaces an entry of that name already there
    (whose buffer stays, unreferenced)."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    model.metadata = [m for m in model.metadata or [] if m.name != METADATA_NAME.encode()]
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME.encode(), len(model.buffers) - 1
    model.metadata.append(entry)


def read_metadata(path: Path) -> dict[str, str]:
    """effnet's metadata from a .tflite file, {} where it holds none (a file effnet did not
    write). Read through the flatbuffer's tables on a memory map: nothing else is parsed."""
    from ai_edge_litert import schema_py_generated as schema

    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        model = schema.Model.GetRootAs(m, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != METADATA_NAME.encode() or entry.Buffer() >= model.BuffersLength():
                continue
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            text = raw.tobytes() if hasattr(raw, "tobytes") else b""  # 0: an empty buffer
            del raw  # a view of the map, which cannot close while one exists
            try:
                doc = json.loads(text)
            except ValueError:
                return {}
            return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    return {}


def make_interpreter(source: Path | bytes, threads: int | None = None) -> Any:
    """LiteRT's interpreter of a file, or of a file's content: the one place that makes one
    (`threads` None: LiteRT's own default)."""
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(source, bytes):
        return Interpreter(model_content=source, num_threads=threads)
    return Interpreter(model_path=str(source), num_threads=threads)


# ---------------------------------------------------------------------------- write


def write_tflite(
    model: Any,
    path: Path,
    *,
    precision: str = "fp32",
    calibration: Images | None = None,
    meta: dict[str, str] | None = None,
    recipe: Recipe = DEFAULT_RECIPE,
    steer: Steer | None = None,
    **_: Any,
) -> dict[str, Any] | None:
    """The TFLite converter; fp16, dynamic-range and int8 are converted into the file. Then the
    input and output are given the names of effnet's other artifacts, and effnet's metadata
    goes into the file's metadata table (`add_metadata`): the converter does neither.
    int8 follows `recipe`; what it did is returned ({"float_layers", "layers"} for keep-float)."""
    import tensorflow as tf

    converter = frozen_converter(model)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.representative_dataset = _images(artifact.int8_calibration(calibration))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    done = None
    if precision == "int8" and recipe == KEEP_FLOAT:
        assert steer is not None, "keep-float is steered by the real images"
        content, done = _keep_float(converter, artifact.int8_calibration(calibration), steer, path)
    else:
        content = converter.convert()
    flatbuffer = unpack(content)
    name_io(flatbuffer, artifact.INPUT_NAME, artifact.output_name(model))
    if meta:
        add_metadata(flatbuffer, meta)
    path.write_bytes(pack(flatbuffer))
    return done


def frozen_converter(model: Any) -> Any:
    """TFLite's converter on the model's inference call, frozen to a graph. The Keras path
    (`from_keras_model`) first writes the model as a SavedModel and loads it twice, four times
    the CPU for the same operators and weights (B0 at 64 px: 11 s against 2.6 s); what it adds,
    a SignatureDef, `name_io` writes."""
    import tensorflow as tf

    image = model.inputs[0]
    call = tf.function(lambda images: model(images, training=False))
    function = call.get_concrete_function(tf.TensorSpec(image.shape, image.dtype))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.experimental_lower_to_saved_model = False  # no SavedModel round trip
    return converter


def _images(calibration: Images) -> Callable[[], Iterator[list[Images]]]:
    """The converter's representative dataset: one image at a time."""

    def representative() -> Iterator[list[Images]]:
        for image in calibration:
            yield [image[None].astype("float32")]

    return representative


# Calibration images LiteRT's quantization debugger measures each layer's error on.
RANKING_IMAGES = 4


def _keep_float(
    converter: Any, calibration: Images, steer: Steer, scratch: Path
) -> tuple[bytes, dict[str, Any]]:
    """int8 with the worst layers left in float (LiteRT's quantization debugger's denylist), as
    few as reach the gate on `steer`'s images. Layers are ranked by the debugger's
    root-mean-square error in units of their quantization step (its documented `rmse/scale`)."""
    import tensorflow as tf

    # The denylisted layers run float kernels: the converter must be allowed them.
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=_images(calibration[:RANKING_IMAGES])
    )
    debugger.run()
    ranked = _worst_layers(debugger)
    for count in float_counts(len(ranked)):
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=ranked[:count])
        content = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=_images(calibration[:RANKING_IMAGES]),
            debug_options=options,
        ).get_nondebug_quantized_model()
        scratch.write_bytes(content)
        if steer.reached(tflite_runner(scratch).comparable_all(steer.images)):
            break
    scratch.unlink()
    return content, {"float_layers": count, "layers": len(ranked)}


def _worst_layers(debugger: Any) -> list[str]:
    """The quantized layers' output tensors, worst first by the debugger's rmse/scale."""
    import csv
    import io

    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    dump.seek(0)
    errors = []
    for row in csv.DictReader(dump):
        scale = float(row["scale"])
        if scale > 0:
            errors.append((math.sqrt(float(row["mean_squared_error"])) / scale, row["tensor_name"]))
    return [name for _, name in sorted(errors, reverse=True)]


# ---------------------------------------------------------------------------- load


def tflite_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    """`precision` describes the file (fp16/int8 weights come from the converter)."""
    interpreter = make_interpreter(path, threads_or_default(threads))
    detail = interpreter.get_input_details()[0]
    signature = list(detail.get("shape_signature", detail["shape"]))
    fixed = None if signature[0] == -1 else int(signature[0])
    run = _tflite_caller(interpreter, interpreter.get_output_details()[0]["index"])

    def interpreter_of(threads_each: int) -> Run:
        own = make_interpreter(path, threads_each)
        return _tflite_caller(own, own.get_output_details()[0]["index"])

    # LiteRT reads only a graph's outputs (preserving every tensor instead costs gigabytes on
    # B7): the logits come from a copy of the file whose graph also outputs the softmax's input,
    # run by a second interpreter built on first use; `run` keeps the file as deployed.
    found = _tflite_with_logits(path)
    run_logits = None
    if found is not None:
        content, logits_index = found
        logits = functools.cache(
            lambda: _tflite_caller(
                make_interpreter(content, threads_or_default(threads)), logits_index
            )
        )

        def run_logits(images: Images) -> Floats:
            return logits()(images)

    return Runner(
        "tflite",
        "cpu",
        "LiteRT XNNPACK",
        precision,
        run,
        fixed,
        run_logits=run_logits,
        threads=threads_or_default(threads),
        streams=session_streams(interpreter_of, threads_or_default(threads), "interpreter"),
        settings=f"1 interpreter × {threads_or_default(threads)} threads, XNNPACK",
        metadata=read_metadata(path),
        threaded=lambda n: tflite_runner(path, device, n, precision),
    )


def _tflite_with_logits(path: Path) -> tuple[bytes, int] | None:
    """The file rewritten so that its graph also outputs the tensor a final SOFTMAX reads (past
    int8's DEQUANTIZE), and that tensor's index; None when the output is no softmax."""
    from ai_edge_litert import schema_py_generated as schema

    model = unpack(path.read_bytes())
    graph, ops = model.subgraphs[0], schema.BuiltinOperator
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producers = {int(out): op for op in graph.operators for out in op.outputs}
    op = producers.get(int(graph.outputs[0]))
    while op is not None and codes[op.opcodeIndex] in (ops.DEQUANTIZE, ops.QUANTIZE):
        op = producers.get(int(op.inputs[0]))
    if op is None or codes[op.opcodeIndex] != ops.SOFTMAX:
        return None
    logits_index = int(op.inputs[0])
    graph.outputs = [*(int(o) for o in graph.outputs), logits_index]
    return pack(model), logits_index


def _tflite_caller(interpreter: Any, tensor_index: int) -> Run:
    """Run `interpreter` on a batch (resizing its input when the batch changes) and read one
    tensor, dequantized when the file stores it as integers."""
    import numpy as np

    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    state = {"batch": int(detail["shape"][0])}
    scale, zero_point = next(
        t["quantization"] for t in interpreter.get_tensor_details() if t["index"] == tensor_index
    )

    def run(images: Images) -> Floats:
        if images.shape[0] != state["batch"]:
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
            state["batch"] = images.shape[0]
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        value: Array = interpreter.get_tensor(tensor_index)
        if np.issubdtype(value.dtype, np.integer) and scale:
            dequantized: Floats = (value.astype("float32") - zero_point) * scale
            return dequantized
        return value.copy()

    return run


# ---------------------------------------------------------------------------- read


def read_tflite(path: Path) -> dict[str, Any]:
    interpreter = make_interpreter(path)
    ops = interpreter._get_ops_details()  # LiteRT has no public op listing
    produced = {index for op in ops for index in op["outputs"]}
    inputs = interpreter.get_input_details()
    fed = {detail["index"] for detail in inputs}
    params = sum(
        math.prod(t["shape"])
        for t in interpreter.get_tensor_details()
        if t["index"] not in produced and t["index"] not in fed and len(t["shape"])
    )

    def detail(d: dict[str, Any]) -> dict[str, Any]:
        shape = list(d.get("shape_signature", d["shape"]))
        return artifact.tensor(d["name"], shape, d["dtype"].__name__)

    return {
        "inputs": [detail(d) for d in inputs],
        "outputs": [detail(d) for d in interpreter.get_output_details()],
        "ops": dict(Counter(op["op_name"] for op in ops).most_common()),
        "params": int(params),
        "params_counted": f"constant tensor elements; {artifact.FOLDED}",
        "metadata": read_metadata(path),
    }


TFLITE_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def tflite_precision(path: Path) -> str:
    """int8 when convolutions read int8 activations, dynamic when only their weights are
    int8, fp16 when weights are float16."""
    import numpy as np

    interpreter = make_interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # LiteRT has no public op listing
    convolutions = [op for op in ops if op["op_name"] in TFLITE_WEIGHTED_OPS]

    def dtype(index: int) -> Any:
        return np.dtype(tensors[index]["dtype"]) if index in tensors else None

    if any(dtype(op["inputs"][0]) == np.int8 for op in convolutions):
        return "int8"
    if any(dtype(op["inputs"][1]) == np.int8 for op in convolutions):
        return "dynamic"
    return "fp16" if any(np.dtype(t["dtype"]) == np.float16 for t in tensors.values()) else "fp32"


def declared(path: Path) -> Declared:
    """effnet's metadata from the file's metadata table, as ONNX's. A TFLite file effnet did not
    write holds none: then its precision from its tensor types, and its name from the file's."""
    shape = [int(d) for d in make_interpreter(path).get_input_details()[0]["shape"]]
    meta = read_metadata(path)
    if meta:
        return Declared(meta, shape, effnet=True)
    return Declared({"precision": tflite_precision(path), "model": path.stem}, shape, effnet=False)


def check_tflite(path: Path) -> str | None:
    """What is wrong with a .tflite file LiteRT refused, from its flatbuffer's header and the
    extents of its buffers: LiteRT says "The model is not a valid Flatbuffer buffer" of a
    foreign file and of a truncated one alike. Reads tables, never the weights."""
    import struct

    from ai_edge_litert import schema_py_generated as schema

    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
    if len(head) < 8:
        return f"too short for a TFLite flatbuffer ({size} bytes)"
    if head[4:8] != IDENTIFIER:
        return f"its flatbuffer identifier is {_shown(head[4:8])}, not TFLite's 'TFL3'"
    root = int.from_bytes(head[:4], "little")
    if root + 4 > size:
        return f"corrupt flatbuffer: its root table's offset {root:,} lies past its end"
    truncated = f"truncated flatbuffer: its tables refer to data past its {size:,} bytes"
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        try:
            model = schema.Model.GetRootAs(m, 0)
            ends = [_buffer_end(model.Buffers(i)) for i in range(model.BuffersLength())]
        except (struct.error, IndexError):  # a read past the end of the map
            return truncated
    return truncated if ends and max(ends) > size else None


def _buffer_end(buffer: Any) -> int:
    """Where a Buffer table's bytes end: its `data` vector inside the flatbuffer, or, in a file
    over 2 GB, its `offset` and `size` into the file (the schema's way past the 2 GB limit)."""
    if buffer.Offset() > 1:
        return int(buffer.Offset() + buffer.Size())
    field = buffer._tab.Offset(4)  # `data`, the table's first field (LiteRT's generated code)
    return buffer._tab.Vector(field) + buffer._tab.VectorLen(field) if field else 0


def _shown(raw: bytes) -> str:
    """Four bytes of a header as text where they are printable ASCII, else in hex."""
    text = raw.decode("ascii", "replace")
    return repr(text) if text.isprintable() and text.isascii() else raw.hex(" ")


FORMAT = Format(
    name="tflite",
    suffix=".tflite",
    read=read_tflite,
    write=write_tflite,
    precision_of=tflite_precision,
    declared=declared,
    check=check_tflite,
)

BACKEND = Backend(
    name="tflite",
    summary="TFLite through the TFLite converter, run by LiteRT (XNNPACK)",
    format=FORMAT,
    load=tflite_runner,
    packages=("ai-edge-litert",),
    precisions={
        "fp32": FP32,
        "fp16": FP16,
        "dynamic": DYNAMIC,
        "int8": replace(INT8, recipes=(DEFAULT_RECIPE, KEEP_FLOAT)),
    },
)
