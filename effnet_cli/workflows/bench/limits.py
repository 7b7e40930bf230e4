"""How far each row is from what the machine can do: its share of its own precision's GEMM
ceiling, and of the model's roofline limit at its precision and batch (model/roofline.py).

A row faster than its GEMM ceiling is no result but a measurement problem (the probe ran on a
busy machine, or the row did): it is said, never printed as a share. A row above the roofline
limit is possible: the limit counts every tensor as read from memory, and a small model's
tensors stay in the caches; it is shown as above (">100%") and said why.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from effnet_cli.model import costs as C
from effnet_cli.model import roofline
from effnet_cli.records.bench import Ceilings, GemmCeiling, LatencyRow, ThroughputRow

AnyRow = TypeVar("AnyRow", LatencyRow, ThroughputRow)

# Which GEMM ceiling a row's precision is held to: on a CPU an fp16 file computes in fp32
# (TFLite and onnxruntime widen its weights), and dynamic quantization multiplies int8.
CEILING_OF = {"fp32": "fp32", "fp16": "fp32", "bf16": "bf16", "int8": "int8", "dynamic": "int8"}


def base_precision(precision: str) -> str:
    return precision.split("-")[0]


def gemm_for(ceilings: Ceilings, precision: str) -> GemmCeiling | None:
    """The ceiling a row of `precision` is held to, where one was measured."""
    wanted = CEILING_OF.get(base_precision(precision))
    found = ceilings.for_precision(wanted) if wanted is not None else None
    return found if found is not None and found.macs_per_s else None


class Limits:
    """The roofline limit (images/s) per precision and batch, computed once each."""

    def __init__(self, costs: C.Costs | None, ceilings: Ceilings) -> None:
        self.costs, self.ceilings = costs, ceilings
        self._done: dict[tuple[str, int], float | None] = {}

    def images_per_s(self, precision: str, batch: int) -> float | None:
        key = (base_precision(precision), batch)
        if key not in self._done:
            self._done[key] = self._limit(*key)
        return self._done[key]

    def _limit(self, precision: str, batch: int) -> float | None:
        gemm, bandwidth = gemm_for(self.ceilings, precision), self.ceilings.bandwidth.bytes_per_s
        if self.costs is None or gemm is None or gemm.macs_per_s is None or not bandwidth:
            return None
        if precision not in roofline.PRECISIONS:
            return None
        machine = roofline.Machine(gemm.macs_per_s, bandwidth)
        traffic = roofline.traffic(self.costs, precision, batch)
        return roofline.limit(traffic, machine).images_per_s


def with_limits(rows: list[AnyRow], macs: int | None, limits: Limits) -> tuple[AnyRow, ...]:
    """Each timed row's MACs/s, its share of its precision's GEMM ceiling and of the roofline
    limit; a row above either is marked as a measurement problem instead."""
    done = []
    for row in rows:
        if macs and row.error is None and row.images_per_s is not None:
            row = _placed(row, macs, limits)
        done.append(row)
    return tuple(done)


def _placed(row: AnyRow, macs: int, limits: Limits) -> AnyRow:
    assert row.images_per_s is not None
    macs_per_s = macs * row.images_per_s
    gemm = gemm_for(limits.ceilings, row.precision)
    ceiling = macs_per_s / gemm.macs_per_s if gemm and gemm.macs_per_s else None
    limit = limits.images_per_s(row.precision, row.batch)
    share = row.images_per_s / limit if limit else None
    problem = None
    if ceiling is not None and ceiling > 1:
        # No model multiplies faster than a dense GEMM of its precision: the probe ran slow.
        assert gemm is not None
        problem = (
            f"{ceiling:.0%} of its {gemm.precision} GEMM ceiling: the probe or this row was "
            "disturbed (bench --ceiling measures again on an idle machine)"
        )
        ceiling = share = None
    return replace(
        row,
        macs_per_s=macs_per_s,
        ceiling_fraction=ceiling,
        limit_images_per_s=limit,
        limit_fraction=share,
        measurement_problem=problem,
    )
