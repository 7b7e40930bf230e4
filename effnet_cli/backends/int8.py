"""What int8 recipes share across backends: the real images a steered recipe searches with
(`Steer`, a record of record.py, since writers take it) and how many layers `keep-float` tries
in float (`float_counts`).

The recipes themselves are records (record.RECIPES); each backend's writer carries them out
with its own tools: onnxruntime's `nodes_to_exclude`, LiteRT's quantization debugger's
denylist, NNCF's accuracy control.
"""

from __future__ import annotations

from effnet_cli.backends.record import Steer

__all__ = ["FIRST_FLOAT_COUNT", "MAX_FLOAT_SHARE", "Steer", "float_counts"]

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
