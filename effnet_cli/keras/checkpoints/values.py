"""The one judgement of a weight's values, whatever file it came from: floating point, and
finite. Keras casts an int64 kernel into its float variable without a word, and a NaN or an
infinity loads as readily as a number, then turns every output into NaN (issue #34)."""

from __future__ import annotations

from typing import Any

from effnet_cli.util.drift import non_finite
from effnet_cli.util.errors import UsageError

NAME_CHARS = 120  # a name a file gives, cut to this in an error line


def shown(name: str, limit: int = NAME_CHARS) -> str:
    """A name a file gives (a tensor's, a dataset's, a global's), as one short line of an error:
    printable text as it is, a line break or another control character escaped as `repr` would,
    anything past `limit` characters cut. A file's names are its author's words, and an error
    line must stay one line however they are spelled (issue #34)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


# numpy's own float kinds, and ml_dtypes' bfloat16 (kind "V", a void to numpy) where h5py or
# Keras hand one over
FLOAT_NAMES = ("bfloat16",)
HINT = "the file is damaged, or was written from a broken model; load a sound copy"


def refuse_unfit(where: str, name: str, array: Any) -> None:
    """Refuse a tensor bound to become a model weight unless it holds finite floats: one line
    naming the file (`where`), the tensor and what is wrong with it.

    One pass over the array in the usual case (`isfinite`)."""
    import numpy as np

    dtype, name = np.dtype(array.dtype), shown(name)
    if dtype.kind != "f" and dtype.name not in FLOAT_NAMES:
        raise UsageError(
            f"{where}: {name} is {shown(dtype.name, 40)} where float weights are expected",
            hint=HINT,
        )
    found = non_finite(array)
    if found:
        raise UsageError(f"{where}: {name} holds {found}", hint=HINT)
