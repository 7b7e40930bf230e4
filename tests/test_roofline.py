"""The per-layer roofline (effnet_cli/model/roofline.py) against figures worked out by hand.

The model is B0 at resolution 64: the stem halves it to 32×32, block 1a keeps 32×32, block 2a
expands 16 → 96 channels at 32×32 and its stride-2 depthwise conv reads the 33×33 padded map
(keras' correct_pad on an even size: (0, 1)) and writes 16×16. Every expected figure below is
written out from those shapes, never taken from the code under test.
"""

from __future__ import annotations

import json
import math

import pytest

from effnet_cli.model import costs as C
from effnet_cli.model import roofline as R
from effnet_cli.model import spec as S

FP32 = 4


@pytest.fixture(scope="module")
def costs() -> C.Costs:
    return C.count(S.get_spec("b0", resolution=64))


def _layer(traffic: R.Traffic, name: str) -> R.LayerTraffic:
    (layer,) = [t for t in traffic.layers if t.name == name]
    return layer


# (name, MACs, input elements, output elements, weights) at batch 1
EXPAND_1X1 = (
    "block2a_expand_conv",
    32 * 32 * 16 * 96,  # every output pixel: 16 inputs × 96 filters
    32 * 32 * 16,  # block1a_project_bn's output
    32 * 32 * 96,
    16 * 96,  # no bias
)
DEPTHWISE_3X3 = (
    "block2a_dwconv",
    16 * 16 * 3 * 3 * 96,  # one 3×3 filter per channel, at each of the 16×16 outputs
    33 * 33 * 96,  # block2a_dwconv_pad's output: 32×32 padded by (0, 1) on each axis
    16 * 16 * 96,
    3 * 3 * 96,
)
# Squeeze-excitation of block 2a: 96 channels squeezed to max(1, int(16 × 0.25)) = 4
SE = [
    ("block2a_se_squeeze", 0, 16 * 16 * 96, 96, 0),  # global average pool: no MACs
    ("block2a_se_reshape", 0, 0, 0, 0),  # a view: moves nothing
    ("block2a_se_reduce", 96 * 4, 96, 4, 96 * 4 + 4),  # 1×1 conv with bias
    ("block2a_se_expand", 4 * 96, 4, 96, 4 * 96 + 96),
    ("block2a_se_excite", 0, 16 * 16 * 96 + 96, 16 * 16 * 96, 0),  # reads features and gate
]


@pytest.mark.parametrize("figures", [EXPAND_1X1, DEPTHWISE_3X3, *SE], ids=lambda f: f[0])
@pytest.mark.parametrize("batch", [1, 8])
def test_layers_against_hand_figures(costs, figures, batch):
    name, macs, read, written, weights = figures
    layer = _layer(R.traffic(costs, "fp32", batch), name)
    assert layer.macs == macs * batch
    assert layer.input_bytes == read * FP32 * batch
    assert layer.output_bytes == written * FP32 * batch
    assert layer.weight_bytes == weights * FP32  # once per call, whatever the batch
    assert layer.bytes == (read + written) * FP32 * batch + weights * FP32


def test_hand_figures_in_bytes_and_intensity(costs):
    traffic = R.traffic(costs)
    expand, depthwise = _layer(traffic, "block2a_expand_conv"), _layer(traffic, "block2a_dwconv")
    # (16 384 + 98 304) × 4 + 1 536 × 4 = 464 896 bytes for 1 572 864 MACs
    assert expand.bytes == 464_896 and expand.macs == 1_572_864
    assert expand.macs_per_byte == pytest.approx(1_572_864 / 464_896)  # 3.38
    # (104 544 + 24 576) × 4 + 864 × 4 = 519 936 bytes for 221 184 MACs
    assert depthwise.bytes == 519_936 and depthwise.macs == 221_184
    assert depthwise.macs_per_byte == pytest.approx(221_184 / 519_936)  # 0.43
    excite = _layer(traffic, "block2a_se_excite")
    assert excite.bytes == 196_992 and excite.macs_per_byte == 0.0
    assert _layer(traffic, "block2a_se_reshape").macs_per_byte is None


def test_two_inputs_are_both_read(costs):
    """A residual add reads the block's output and its input: twice the elements it writes."""
    add = _layer(R.traffic(costs), "block2b_add")  # 16×16×24 at resolution 64
    assert add.input_bytes == 2 * 16 * 16 * 24 * FP32 and add.output_bytes == 16 * 16 * 24 * FP32


def test_batch_multiplies_all_but_the_weights(costs):
    one, eight = R.traffic(costs, batch=1), R.traffic(costs, batch=8)
    weights = sum(layer.weight_bytes for layer in one.layers)
    assert weights == costs.params * FP32  # every weight read once, moving statistics included
    assert sum(layer.weight_bytes for layer in eight.layers) == weights
    assert eight.bytes - weights == 8 * (one.bytes - weights)
    assert eight.bytes < 8 * one.bytes


@pytest.mark.parametrize("batch", [1, 3])
def test_total_macs_are_the_costs_macs_times_the_batch(costs, batch):
    assert R.traffic(costs, batch=batch).macs == costs.macs * batch
    assert R.traffic(C.count(S.get_spec("b0")), batch=batch).macs == 385_814_752 * batch


@pytest.mark.parametrize(
    ("precision", "activation", "weight"),
    [("fp32", 4, 4), ("bf16", 2, 2), ("fp16", 2, 2), ("int8", 1, 1), ("dynamic", 4, 1)],
)
def test_bytes_scale_with_the_precision(costs, precision, activation, weight):
    _, _, read, written, weights = EXPAND_1X1
    layer = _layer(R.traffic(costs, precision), "block2a_expand_conv")
    assert layer.bytes == (read + written) * activation + weights * weight
    assert layer.macs == 1_572_864  # the arithmetic does not change with the element size
    whole, fp32 = R.traffic(costs, precision), R.traffic(costs, "fp32")
    if activation == weight:
        assert whole.bytes * 4 == fp32.bytes * activation


def test_the_input_reshape_and_dropout_move_nothing(costs):
    traffic = R.traffic(costs)
    idle = {t.keras_class for t in traffic.layers if t.bytes == 0}
    assert idle == {"InputLayer", "Reshape", "Dropout"}
    # their consumers read the tensor all the same: Rescaling reads the 64×64×3 images
    assert _layer(traffic, "rescaling").input_bytes == 64 * 64 * 3 * FP32


def test_a_made_up_machine_bounds_a_1x1_by_compute_and_a_depthwise_by_memory(costs):
    # ridge point 2 MACs per byte: the 1×1 conv (3.38) is above it, the depthwise (0.43) below
    machine = R.Machine(peak_macs_per_s=2e9, bandwidth_bytes_per_s=1e9)
    assert machine.ridge_macs_per_byte == 2.0
    limits = {layer.name: layer for layer in R.limit(R.traffic(costs), machine).layers}
    expand, depthwise = limits["block2a_expand_conv"], limits["block2a_dwconv"]
    assert expand.bound == "compute" and expand.seconds == pytest.approx(1_572_864 / 2e9)
    assert depthwise.bound == "memory" and depthwise.seconds == pytest.approx(519_936 / 1e9)
    assert limits["block2a_se_excite"].bound == "memory"  # no MACs, bytes moved
    assert (
        limits["block2a_se_reshape"].bound == "none" and limits["block2a_se_reshape"].seconds == 0
    )
    # a machine with ten times the bandwidth makes the depthwise conv compute bound (0.43 > 0.2)
    fast = R.limit(R.traffic(costs), R.Machine(2e9, 1e10))
    assert next(x for x in fast.layers if x.name == "block2a_dwconv").bound == "compute"


def test_the_limit_is_the_sum_of_the_layers(costs):
    machine = R.Machine(peak_macs_per_s=1e12, bandwidth_bytes_per_s=1e11)
    traffic = R.traffic(costs, "fp16", batch=4)
    result = R.limit(traffic, machine)
    expected = sum(max(t.macs / 1e12, t.bytes / 1e11) for t in traffic.layers)
    assert result.seconds == pytest.approx(expected)
    assert result.images_per_s == pytest.approx(4 / expected)
    assert result.seconds_bound_by("compute") + result.seconds_bound_by("memory") == pytest.approx(
        expected
    )
    assert (result.precision, result.batch) == ("fp16", 4)
    # no layer beats either roof
    assert result.seconds >= traffic.macs / 1e12 and result.seconds >= traffic.bytes / 1e11


def test_bad_inputs_name_the_choices(costs):
    with pytest.raises(ValueError, match="fp32, bf16, fp16, int8"):
        R.traffic(costs, "fp8")
    with pytest.raises(ValueError, match="batch"):
        R.traffic(costs, batch=0)
    with pytest.raises(ValueError, match="bandwidth_bytes_per_s"):
        R.Machine(1e9, 0)
    with pytest.raises(ValueError, match="peak_macs_per_s"):
        R.Machine(math.nan, 1e9)


def test_summary_layers_carry_bytes_and_intensity(cli):
    result = cli("summary", "--resolution", "64", "--layers", "--json")
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)["layers"]}
    expand = layers["block2a_expand_conv"]
    assert list(expand)[-2:] == ["bytes", "macs_per_byte"]  # added at the end
    assert expand["bytes"] == 464_896
    assert expand["macs_per_byte"] == pytest.approx(1_572_864 / 464_896)
    assert layers["block2a_dwconv"]["bytes"] == 519_936
    assert layers["block2a_se_reshape"]["macs_per_byte"] is None
    plain = json.loads(cli("summary", "--resolution", "64", "--json").stdout)
    assert "layers" not in plain and "macs_per_byte" not in json.dumps(plain)
