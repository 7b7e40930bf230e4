"""How far one runtime's outputs are from the reference's, measured one way for export's
verification and bench's rows: the largest difference relative to the largest reference value,
and the share of images whose top-1 class agrees."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict

from effnet_cli.util.errors import WorkError

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Array, Floats, Indices


class NonFinite(WorkError):
    """Outputs that hold NaN or infinities: no drift, agreement or class can be read from them
    (NaN compares false with everything, and `max` and `argmax` pass it over in silence)."""


def non_finite(array: Array) -> str | None:
    """What is not finite in `array` ("864 NaN values", "3 NaN values and 1 infinite value"),
    or None where every value is finite: one `isfinite` pass, counts only when one is not."""
    import numpy as np

    if np.isfinite(array).all():
        return None
    counts = (
        (int(np.count_nonzero(np.isnan(array))), "NaN"),
        (int(np.count_nonzero(np.isinf(array))), "infinite"),
    )
    return " and ".join(
        f"{count:,} {kind} value{'' if count == 1 else 's'}" for count, kind in counts if count
    )


def require_finite(outputs: Array, reference: Array) -> None:
    """Refuse to measure where either side holds a non-finite number (NonFinite names it)."""
    for array, whose in ((reference, "the reference's outputs"), (outputs, "its outputs")):
        found = non_finite(array)
        if found:
            raise NonFinite(f"{whose} hold {found} of {array.size:,}")


def compare(outputs: Floats, reference: Floats) -> tuple[float, float]:
    """(max |diff| relative to the largest |reference|, top-1 agreement); NonFinite where
    either side is not finite."""
    import numpy as np

    require_finite(outputs, reference)
    scale = float(np.max(np.abs(reference))) or 1.0
    rel = float(np.max(np.abs(outputs - reference))) / scale
    flat_out, flat_ref = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    agreement = float(np.mean(np.argmax(flat_out, axis=1) == np.argmax(flat_ref, axis=1)))
    return rel, agreement


def top_k(scores: Array, k: int) -> Indices:
    """Indices of the k largest scores per row, largest first; ties go to the lower index, as
    numpy's argmax has it (int8 logits tie often: they take a few dozen levels)."""
    import numpy as np

    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


class Ranking(TypedDict):
    """`agreement_on`'s figures (a dict: they go into documents as they are)."""

    top1_agreement: float
    top_k_overlap: float  # k: at most the number of classes
    sqnr_db: float | None  # None: equal tensors, no noise to measure


def agreement_on(outputs: Floats, reference: Floats, k: int = 5) -> Ranking:
    """How a file's logits (or outputs) keep the reference's ranking on the same images:
    top-1 agreement, the mean share of the reference's top-k found in the file's top-k, and
    the signal-to-quantization-noise ratio of the whole tensor in dB (None where the tensors are
    equal: no noise to measure, and JSON has no infinity). NonFinite where either side is not
    finite."""
    import numpy as np

    require_finite(outputs, reference)
    flat_out = outputs.reshape(len(outputs), -1).astype(np.float64)
    flat_ref = reference.reshape(len(reference), -1).astype(np.float64)
    k = min(k, flat_ref.shape[1])
    ref_top, out_top = top_k(flat_ref, k), top_k(flat_out, k)
    overlap = [len(set(a) & set(b)) / k for a, b in zip(ref_top, out_top, strict=True)]
    noise = float(np.sum((flat_out - flat_ref) ** 2))
    signal = float(np.sum(flat_ref**2))
    return {
        "top1_agreement": float(np.mean(ref_top[:, 0] == out_top[:, 0])),
        "top_k_overlap": float(np.mean(overlap)),  # k: at most the number of classes
        "sqnr_db": None if noise == 0 else 10 * math.log10(signal / noise),
    }
