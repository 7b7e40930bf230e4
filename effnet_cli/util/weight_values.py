"""The one judgement of a weight's values, whatever file it came from: floating point, and
finite. Keras casts an int64 kernel into its float variable without a word, and a NaN or an
infinity loads as readily as a number, then turns every output into NaN (issue #34)."""

from __future__ import annotations

from typing import Any

from effnet_cli.util.drift import non_finite
from effnet_cli.util.errors import UsageError

# numpy's own float kinds, and ml_dtypes' bfloat16 (kind "V", a void to numpy) where h5py or
# Keras hand one over
FLOAT_NAMES = ("bfloat16",)
HINT = "the file is damaged, or was written from a broken model; load a sound copy"


def refuse_unfit(where: str, name: str, array: Any) -> None:
    """Refuse a tensor bound to become a model weight unless it holds finite floats: one line
    naming the file (`where`), the tensor and what is wrong with it.

    One pass over the array in the usual case (`isfinite`)."""
    import numpy as np

    dtype = np.dtype(array.dtype)
    if dtype.kind != "f" and dtype.name not in FLOAT_NAMES:
        raise UsageError(
            f"{where}: {name} is {dtype.name} where float weights are expected", hint=HINT
        )
    found = non_finite(array)
    if found:
        raise UsageError(f"{where}: {name} holds {found}", hint=HINT)
