"""Multiply-adds counted from a built Keras model's layers (`bench --from FILE.keras`), the
way model/costs.py counts a spec: every convolution and dense layer costs (output positions) ×
(kernel elements)."""

from __future__ import annotations

import math
from typing import Any

MAC_LAYERS = frozenset(
    {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense"}
)


def keras_macs(model: Any) -> int | None:
    """Multiply-adds of one image through a Keras model; None where an output size is unknown
    (an input without fixed height and width)."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            inner = keras_macs(layer)
            if inner is None:
                return None
            total += inner
            continue
        if type(layer).__name__ not in MAC_LAYERS:
            continue
        shape = tuple(layer.output.shape)[1:-1]  # without batch and channels
        if any(d is None for d in shape):
            return None
        total += math.prod(shape) * math.prod(layer.kernel.shape)
    return total
