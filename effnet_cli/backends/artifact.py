"""What every backend's artifact shares: the names of its input and output, effnet's metadata
written into it, the calibration batches its quantizer reads, and the rows of `inspect`'s
document that describe its tensors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from effnet_cli import __version__
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Images

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
    read (onnx.onnx_runner) to feed it.
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


def int8_calibration(images: Images | None) -> Images:
    """The calibration images an int8 writer needs (export loads them for every int8 file)."""
    if images is None:
        raise UsageError("int8 conversion needs calibration images")
    return images


def calibration_batches(images: Images, batch: int | None) -> list[Images]:
    """Calibration images as the model takes them: one a call, or `batch` a call where the
    export pins the batch size (`--batch 8`), the last batch filled from the first images."""
    import numpy as np

    size = batch or 1
    count = max(1, math.ceil(len(images) / size))
    return [
        np.take(images, range(i * size, (i + 1) * size), axis=0, mode="wrap").astype("float32")
        for i in range(count)
    ]


# What each format's "params" counts: not the same thing, so each says which (issue 15 item 5).
KERAS_COUNT = "Keras count_params: weights, BatchNorm moving statistics, preprocessing constants"
FOLDED = (
    "BatchNorm is usually folded into the convolutions and shape constants count too, so this "
    "differs from the Keras count"
)


def tensor(name: str, shape: Any, dtype: Any) -> dict[str, Any]:
    return {
        "name": name,
        "shape": [None if d is None or int(d) == -1 else int(d) for d in shape],  # numpy ints too
        "dtype": str(dtype),
    }
