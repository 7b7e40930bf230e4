"""The writers: one function per backend that turns a Keras model into its artifact.

Each takes the model, the path to write and the export options it needs, and writes exactly
one file or folder; export.py stages, verifies and commits what they wrote. Converters are
imported inside the functions (they load TensorFlow).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from effnet_cli import __version__
from effnet_cli.model import spec as S

DEFAULT_OPSET = 17
# The input's name in every artifact (ONNX, SavedModel's signature, OpenVINO, TFLite); the output
# is named by `output_name`.
INPUT_NAME = "input"


def metadata(
    spec: S.ModelSpec | None, model: Any, layout: str = "NHWC", dynamic_size: bool = False
) -> dict[str, str]:
    """effnet's description of an artifact, written into ONNX metadata_props, OpenVINO's
    rt_info and TFLite's metadata table.

    `model` is the model as built (its resolution is the one it was made and verified for, also
    when the artifact takes any size); `layout` is the artifact's input layout, which runners
    read (runtimes.onnx_runner) to feed it.
    """
    height, width = model.input.shape[1:3]
    doc = {
        "effnet_version": __version__,
        "model": model.name,
        "resolution": f"{height}x{width}",
        "input_layout": layout,
        "input_size": "dynamic" if dynamic_size else "fixed",
        "input_dtype": "float32",
        # inspect shows it beside the file's own count, which folding changes
        "keras_params": str(model.count_params()),
    }
    if spec is not None:
        contract = S.input_contract(spec)
        doc.update(
            family=spec.family.name,
            width=f"{spec.width:g}",
            depth=f"{spec.depth:g}",
            num_classes=str(spec.num_classes),
            classifier_activation=spec.classifier_activation,
            input_range=str(contract["range"]),
            preprocessing_inside=str(contract["preprocessing_inside"]).lower(),
            preprocessing=str(contract["preprocessing"]),
        )
    return doc


def output_name(model: Any) -> str:
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if last.name == "predictions":
        return "probabilities" if activation == "softmax" else "logits"
    return "features"


# ---------------------------------------------------------------------------- writers


def write_keras(model: Any, path: Path, **_: Any) -> None:
    model.save(path)


def write_savedmodel(model: Any, path: Path, **_: Any) -> None:
    """Keras 3's export path, with a serving signature of a named input and output."""
    import keras
    import tensorflow as tf

    from effnet_cli.keras.builder import logits_function

    height, width = model.input.shape[1:3]
    name = output_name(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec((None, height, width, 3), tf.float32, name=INPUT_NAME)]
    archive.add_endpoint(
        name="serving_default",
        fn=lambda images: {name: model(images, training=False)},
        input_signature=signature,
    )
    logits = logits_function(model)
    if logits is not None:  # what verification compares, for deployers who want it too
        archive.add_endpoint(
            name="logits", fn=lambda images: {"logits": logits(images)}, input_signature=signature
        )
    archive.write_out(str(path), verbose=False)


def write_onnx(model: Any, path: Path, *, opset: int, batch: int | None, meta: dict[str, str],
               optimize: bool = True, precision: str = "fp32", calibration: Any = None,
               nchw: bool = False, **_: Any) -> None:  # fmt: skip
    """tf2onnx with an explicit input signature (Keras 3 needs one), then onnxslim unless
    `optimize` is off, then the precision converted in, then effnet's metadata.

    The signature's height and width are the model's: None for a model built on a
    (None, None, 3) input (`--dynamic-size`). `nchw` makes the input [N, 3, H, W]: tf2onnx's
    `inputs_as_nchw` puts one Transpose in front of the NHWC graph.
    onnxslim folds the stride-2 `Pad`s into their convolutions and halves the `Reshape`s;
    onnxruntime runs the result 10–15 % faster (benchmarks/run.py, section "runtimes").
    """
    import onnx

    proto = _tf2onnx(model, opset, batch, nchw)
    if optimize:
        import onnxslim

        proto = onnxslim.slim(proto)
    if precision == "fp16":
        proto = _onnx_fp16(proto)
    elif precision == "int8":
        proto = _onnx_int8(proto, calibration_batches(calibration, batch), path.parent, nchw)
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)


# tf2onnx's graphs of the command at hand, serialized, by (model, opset, batch, layout); None
# outside `reusing_conversions`.
_conversions: dict[tuple[int, int, int | None, bool], bytes] | None = None


@contextlib.contextmanager
def reusing_conversions() -> Iterator[None]:
    """Within it, each model is converted by tf2onnx once: every artifact made from that graph
    (ONNX fp32, fp16 and int8, the OpenVINO IR and its int8) starts from the first conversion
    (~7 s for B0, a minute for B7, each time saved). The models' weights must not change
    within it: export and bench write every artifact of one model in a row."""
    global _conversions
    _conversions = {}
    try:
        yield
    finally:
        _conversions = None


def _tf2onnx(model: Any, opset: int, batch: int | None, nchw: bool) -> Any:
    """tf2onnx's graph of `model` with an explicit input signature (Keras 3 needs one) and the
    output named by `output_name`, or a copy of this command's earlier conversion of it."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    key = (id(model), opset, batch, nchw)
    if _conversions is not None and key in _conversions:
        return onnx.ModelProto.FromString(_conversions[key])
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    height, width = model.input.shape[1:3]
    signature = (tf.TensorSpec((batch, height, width, 3), tf.float32, name=INPUT_NAME),)
    with _frozen_heap():
        proto, _ = tf2onnx.convert.from_keras(
            model, input_signature=signature, opset=opset, optimizers=_collecting_optimizers(),
            inputs_as_nchw=[INPUT_NAME] if nchw else None,
        )  # fmt: skip
    proto.graph.output[0].name = _rename_output(proto, output_name(model))
    if _conversions is not None:
        _conversions[key] = proto.SerializeToString()
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


def calibration_batches(images: Any, batch: int | None) -> list[Any]:
    """Calibration images as the model takes them: one a call, or `batch` a call where the
    export pins the batch size (`--batch 8`), the last batch filled from the first images."""
    import numpy as np

    size = batch or 1
    count = max(1, math.ceil(len(images) / size))
    return [np.take(images, range(i * size, (i + 1) * size), axis=0, mode="wrap")
            .astype("float32") for i in range(count)]  # fmt: skip


def _onnx_int8(proto: Any, batches: list[Any], scratch: Path, nchw: bool = False) -> Any:
    """onnxruntime's static quantization: QDQ, int8 activations and per-channel int8 weights
    (per-tensor depthwise weights are reported to collapse EfficientNet's accuracy), ranges
    calibrated on `batches` of (n, H, W, 3) images (fed transposed to an `nchw` input)."""
    import onnx
    from onnxruntime import quantization as q

    class Images(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {INPUT_NAME: batch.transpose(0, 3, 1, 2).copy() if nchw else batch}

    source, target = scratch / ".effnet-fp32.onnx", scratch / ".effnet-int8.onnx"
    onnx.save(proto, str(source))
    try:
        # The softmax head stays float: its input is the logits that verification compares.
        softmax = [node.name for node in proto.graph.node if node.op_type == "Softmax"]
        q.quantize_static(str(source), str(target), Images(), quant_format=q.QuantFormat.QDQ,
                          per_channel=True, activation_type=q.QuantType.QInt8,
                          weight_type=q.QuantType.QInt8, nodes_to_exclude=softmax)  # fmt: skip
        return onnx.load(str(target))
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def _rename_output(proto: Any, name: str) -> str:
    """Give the graph output a meaningful name, rewiring the node that produces it."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
    return name


def write_tflite(model: Any, path: Path, *, precision: str = "fp32", calibration: Any = None,
                 meta: dict[str, str] | None = None, **_: Any) -> None:  # fmt: skip
    """The TFLite converter; fp16, dynamic-range and int8 are converted into the file. Then the
    input and output are given the names of effnet's other artifacts, and effnet's metadata
    goes into the file's metadata table (tflite_file.py): the converter does neither."""
    import tensorflow as tf

    from effnet_cli.backends import tflite_file

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":

        def representative() -> Any:
            for image in calibration:
                yield [image[None].astype("float32")]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    flatbuffer = tflite_file.unpack(converter.convert())
    tflite_file.name_io(flatbuffer, INPUT_NAME, output_name(model))
    if meta:
        tflite_file.add_metadata(flatbuffer, meta)
    path.write_bytes(tflite_file.pack(flatbuffer))


def write_openvino(model: Any, path: Path, *, opset: int, batch: int | None,
                   meta: dict[str, str], optimize: bool = True, precision: str = "fp32",
                   calibration: Any = None, **_: Any) -> None:  # fmt: skip
    """OpenVINO IR (model.xml + model.bin) through the (optimized) ONNX export, fp32 weights;
    int8 is quantized into the IR by NNCF.

    `ov.save_model` would compress the weights to fp16 by default; effnet writes what it
    verified, so it turns that off (NNCF's int8 weights are stored as int8 all the same).
    """
    import openvino as ov

    path.mkdir()
    onnx_path = path / "model.onnx"
    write_onnx(model, onnx_path, opset=opset, batch=batch, meta=meta, optimize=optimize)
    converted = ov.convert_model(str(onnx_path))
    if precision == "int8":
        converted = _openvino_int8(converted, calibration_batches(calibration, batch))
    for key, value in meta.items():
        converted.set_rt_info(value, ["effnet", key])
    ov.save_model(converted, str(path / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()


def _openvino_int8(model: Any, batches: list[Any]) -> Any:
    """NNCF's post-training quantization: FakeQuantize before every convolution and the dense
    layer, per-channel symmetric int8 weights, ranges calibrated on `batches` of (n, H, W, 3)
    images.

    The MIXED preset quantizes activations asymmetrically: NNCF recommends it for activations
    that are not ReLU, and swish's outputs reach below zero (B0 at 224 px, random weights:
    top-1 agreement 0.83 against 0.58 with the default symmetric preset). The softmax is kept
    out explicitly: its input is the logits that verification compares.
    """
    import nncf

    nncf.set_log_level(logging.ERROR)
    return nncf.quantize(
        model, nncf.Dataset(batches), preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(batches),
        ignored_scope=nncf.IgnoredScope(types=["Softmax"], validate=False),
    )  # fmt: skip
