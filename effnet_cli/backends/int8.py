"""What int8 recipes share across backends: the real images a steered recipe searches with
(`Steer`), and how many layers `keep-float` tries in float (`float_counts`).

The recipes themselves are records (record.RECIPES); each backend's writer carries them out
with its own tools: onnxruntime's `nodes_to_exclude`, LiteRT's quantization debugger's
denylist, NNCF's accuracy control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from effnet_cli.backends.record import Gate
from effnet_cli.util.drift import agreement_on

# keep-float keeps the worst 4 layers in float, then 8, 16, ... and at most half of the layers
# that were quantized: past that the file is a float model with some int8 in it, slower than
# the fp16 or fp32 file that the user would do better to ship.
FIRST_FLOAT_COUNT = 4
MAX_FLOAT_SHARE = 0.5


def float_counts(layers: int) -> list[int]:
    """How many of `layers` ranked layers keep-float tries in float, in turn: 4, 8, 16, ...,
    the last being half of them."""
    most = max(1, int(layers * MAX_FLOAT_SHARE))
    counts, count = [], FIRST_FLOAT_COUNT
    while count < most:
        counts.append(count)
        count *= 2
    return [*counts, most]


@dataclass(frozen=True)
class Steer:
    """The real images the gate judges on (NHWC, prepared as the model is fed) and the float
    model's logits on them: what a steered recipe searches with."""

    images: Any
    expected: Any
    gate: Gate

    def figures(self, answers: Any) -> dict[str, Any]:
        return agreement_on(answers, self.expected)

    def reached(self, answers: Any) -> bool:
        figures = self.figures(answers)
        return self.gate.reached(
            figures["top1_agreement"], figures["top_k_overlap"], figures["sqnr_db"]
        )

    def score(self, answers: Any) -> float:
        """1.0 where the answers reach the gate, else the share of the worst limit reached: a
        label-free metric whose drop from the float model's 1.0 says how far the file is off
        (NNCF's accuracy control reverts layers until it is 0)."""
        figures = self.figures(answers)
        sqnr = figures["sqnr_db"]
        gate = self.gate
        shares = [
            figures["top1_agreement"] / gate.min_top1_agreement if gate.min_top1_agreement else 1,
            figures["top_k_overlap"] / gate.min_top5_overlap if gate.min_top5_overlap else 1,
            1 if sqnr is None or not gate.min_sqnr_db else max(sqnr, 0) / gate.min_sqnr_db,
        ]
        return min(1.0, *shares)
