"""`effnet inspect`: what a .keras, .onnx or .tflite file, a SavedModel or an OpenVINO IR holds.

Each reader returns the same plain document: inputs, outputs, an op (or layer) histogram, the
parameter count, the size and effnet's metadata where present.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from effnet_cli.model.identity import model_identity
from effnet_cli.util import files
from effnet_cli.util.errors import UsageError

# What each format's "params" counts: not the same thing, so each says which (issue 15 item 5).
KERAS_COUNT = "Keras count_params: weights, BatchNorm moving statistics, preprocessing constants"
FOLDED = (
    "BatchNorm is usually folded into the convolutions and shape constants count too, so this "
    "differs from the Keras count"
)


def _tensor(name: str, shape: Any, dtype: Any) -> dict[str, Any]:
    return {
        "name": name,
        "shape": [None if d is None or int(d) == -1 else int(d) for d in shape],  # numpy ints too
        "dtype": str(dtype),
    }


def read_onnx(path: Path) -> dict[str, Any]:
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    initializers = {init.name for init in model.graph.initializer}

    def value_info(info: Any) -> dict[str, Any]:
        dims = [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
        dtype = helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
        return _tensor(info.name, dims, dtype)

    return {
        "inputs": [value_info(i) for i in model.graph.input if i.name not in initializers],
        "outputs": [value_info(o) for o in model.graph.output],
        "ops": dict(Counter(node.op_type for node in model.graph.node).most_common()),
        "params": sum(math.prod(init.dims) for init in model.graph.initializer),
        "params_counted": f"initializer elements; {FOLDED}",
        "metadata": {prop.key: prop.value for prop in model.metadata_props},
        "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
    }


def read_tflite(path: Path) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    from effnet_cli.backends import tflite_file

    interpreter = Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()  # LiteRT has no public op listing
    produced = {index for op in ops for index in op["outputs"]}
    inputs = interpreter.get_input_details()
    fed = {detail["index"] for detail in inputs}
    params = sum(
        math.prod(t["shape"]) for t in interpreter.get_tensor_details()
        if t["index"] not in produced and t["index"] not in fed and len(t["shape"])
    )  # fmt: skip

    def detail(d: dict[str, Any]) -> dict[str, Any]:
        return _tensor(d["name"], list(d.get("shape_signature", d["shape"])), d["dtype"].__name__)

    return {
        "inputs": [detail(d) for d in inputs],
        "outputs": [detail(d) for d in interpreter.get_output_details()],
        "ops": dict(Counter(op["op_name"] for op in ops).most_common()),
        "params": int(params),
        "params_counted": f"constant tensor elements; {FOLDED}",
        "metadata": tflite_file.read_metadata(path),
    }


def read_keras(path: Path) -> dict[str, Any]:
    from effnet_cli.keras.builder import load_keras_file

    model = load_keras_file(path)
    return {
        "inputs": [_tensor(t.name, t.shape, t.dtype) for t in model.inputs],
        "outputs": [_tensor(t.name, t.shape, t.dtype) for t in model.outputs],
        "ops": dict(Counter(type(layer).__name__ for layer in model.layers).most_common()),
        "params": int(model.count_params()),
        "params_counted": KERAS_COUNT,
        "metadata": {"model": model.name},
    }


def read_savedmodel(path: Path) -> dict[str, Any]:
    from effnet_cli.keras.builder import import_keras

    import_keras()
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    skip = {"Placeholder", "ReadVariableOp", "Identity", "NoOp", "Const"}
    graph_ops = Counter(op.type for op in signature.graph.get_operations() if op.type not in skip)
    for function in signature.graph._functions.values():  # the model body is a nested function
        graph_ops.update(n.op for n in function.definition.node_def if n.op not in skip)
    return {
        "inputs": [_tensor(k, v.shape.as_list(), v.dtype.name) for k, v in inputs.items()],
        "outputs": [_tensor(k, v.shape.as_list(), v.dtype.name) for k, v in outputs.items()],
        "ops": dict(graph_ops.most_common()),
        "params": int(sum(math.prod(v.shape) for v in getattr(loaded, "variables", []))),
        "params_counted": "variable elements: the Keras model's weights, as Keras counts them",
        "metadata": {"signatures": ", ".join(loaded.signatures.keys())},
    }


def read_openvino(path: Path) -> dict[str, Any]:
    import openvino as ov

    from effnet_cli.backends.runtimes import openvino_xml

    model = ov.Core().read_model(str(openvino_xml(path)))

    def port(p: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else None for d in p.get_partial_shape()]
        return _tensor(p.get_any_name(), shape, p.get_element_type().get_type_name())

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
        "params_counted": f"Constant elements; {FOLDED}",
        "metadata": metadata,
    }


def unreadable(path: Path, backend: str, exc: Exception) -> UsageError:
    """A file its own library could not read, in one line: the library's first."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UsageError(f"{path.name} is not a readable {backend} file: {first[:200]}")


def describe(path: Path) -> dict[str, Any]:
    from effnet_cli import backends

    backend = backends.of_path(path)
    try:
        with files.stdout_to_stderr(), files.silenced_stderr():
            document = backend.read(path)
    except UsageError:
        raise
    except Exception as exc:  # a corrupt or foreign file: each library fails in its own way
        raise unreadable(path, backend.name, exc) from None
    metadata = typed_metadata(document.pop("metadata"))
    return {
        "path": str(path),
        "format": backend.name,
        "bytes": files.size_bytes(path),
        "model": model_from_metadata(metadata),
        **document,
        "metadata": metadata,
    }


def typed_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON values: formats store strings ('true', '1.2', '224x224'); a script
    should not have to parse them again."""
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        typed[key] = _typed(key, value) if isinstance(value, str) else value
    return typed


def _typed(key: str, text: str) -> Any:
    if key == "resolution" and "x" in text:
        height, _, width = text.partition("x")
        if height.isdigit() and width.isdigit():
            return [int(height), int(width)]
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def model_from_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The `model` object of every command's JSON, from what the file says about itself; None
    where it says nothing (a file effnet did not write, or a format without metadata)."""

    resolution = metadata.get("resolution")
    classes = metadata.get("num_classes")
    return model_identity(
        str(metadata["model"]) if "model" in metadata else None,
        metadata.get("family"),
        resolution if isinstance(resolution, list) else None,
        classes if isinstance(classes, int) else None,
        metadata.get("preprocessing_inside") if "preprocessing_inside" in metadata else None,
    )


def weights_fits(params: int) -> list[dict[str, Any]]:
    """Every variant and head whose Keras count is `params`: the classifier's size follows from
    the head's input width, so any class count is found, not only ImageNet's 1000. From the
    architecture alone (no TensorFlow): params do not depend on the input resolution."""
    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S

    fits = []
    for name in S.model_names():
        family = S.get_spec(name).family
        for preprocessing in (True, False) if family.preprocessing != "none" else (False,):
            bare = C.count(S.get_spec(name, include_top=False, preprocessing=preprocessing)).params
            if params == bare:
                fits.append({"model": name, "include_top": False, "classes": None,
                             "preprocessing": preprocessing})  # fmt: skip
                continue
            topped = S.get_spec(name, num_classes=1000, preprocessing=preprocessing)
            per_class = (C.count(topped).params - bare) // 1000  # head width + 1 (the bias)
            classes, rest = divmod(params - bare, per_class)
            if rest == 0 and classes >= 1:
                fits.append({"model": name, "include_top": True, "classes": classes,
                             "preprocessing": preprocessing})  # fmt: skip
    return fits


def describe_weights(path: Path) -> dict[str, Any]:
    """`inspect FILE.weights.h5 | FILE.h5`: which variants and heads the weights fit."""
    from effnet_cli.keras import builder

    builder.check_weights_file(path)
    layout = builder.weights_layout(path)
    params = builder.file_weight_elements(path, layout)
    fits = weights_fits(params)
    only = fits[0] if len(fits) == 1 else None
    return {
        "path": str(path),
        "format": "weights",
        "bytes": files.size_bytes(path),
        "model": model_identity(
            f"efficientnet-{only['model']}" if only else None,
            None,
            None,
            only["classes"] if only else None,
            only["preprocessing"] if only else None,
        ),
        "inputs": [],
        "outputs": [],
        "ops": {},
        "params": params,
        "params_counted": "numbers in the file: " + KERAS_COUNT,
        "metadata": {"layout": layout, "tensors": builder.count_file_tensors(path, layout)},
        "fits": fits,
    }


def artifact_precision(backend: str, path: Path) -> str:
    """The precision converted into an artifact that carries no effnet metadata, read from its
    tensors' types: int8 when its convolutions read int8 activations (ONNX: Q/DQ nodes; IR:
    FakeQuantize), dynamic when only weights are int8, fp16 when weights are float16."""
    reader = {"onnx": _onnx_precision, "tflite": _tflite_precision,
              "openvino": _openvino_precision}.get(backend)  # fmt: skip
    return reader(path) if reader else "fp32"


def _onnx_precision(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        return "int8"
    float16 = onnx.TensorProto.FLOAT16
    return "fp16" if any(t.data_type == float16 for t in model.graph.initializer) else "fp32"


TFLITE_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _tflite_precision(path: Path) -> str:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
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


def _openvino_precision(path: Path) -> str:
    import openvino as ov

    from effnet_cli.backends import runtimes

    model = ov.Core().read_model(str(runtimes.openvino_xml(path)))
    return "int8" if runtimes.fake_quantize_ops(model) else "fp32"
