"""How far one runtime's outputs are from the reference's, measured one way for export's
verification and bench's rows: the largest difference relative to the largest reference value,
and the share of images whose top-1 class agrees."""

from __future__ import annotations

from typing import Any


def compare(outputs: Any, reference: Any) -> tuple[float, float]:
    """(max |diff| relative to the largest |reference|, top-1 agreement)."""
    import numpy as np

    scale = float(np.max(np.abs(reference))) or 1.0
    rel = float(np.max(np.abs(outputs - reference))) / scale
    flat_out, flat_ref = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    agreement = float(np.mean(np.argmax(flat_out, axis=1) == np.argmax(flat_ref, axis=1)))
    return rel, agreement
