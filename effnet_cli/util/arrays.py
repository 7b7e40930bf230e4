"""The arrays that cross functions, named for the type checker: import them under
`if TYPE_CHECKING:` (numpy loads only inside the functions that compute)."""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

# A batch of images as every runner takes it: float32 NHWC, prepared as the model is fed.
Images: TypeAlias = NDArray[np.float32]
# What a model answers: float32 logits or probabilities, one row per image.
Floats: TypeAlias = NDArray[np.float32]
# Class indices (top-k), one row per image.
Indices: TypeAlias = NDArray[np.intp]
# An array of whatever dtype a file or a tensor holds (weights, raw tensors).
Array: TypeAlias = NDArray[Any]
