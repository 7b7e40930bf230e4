"""spec.py and costs.py: pure Python, pinned against the paper and the official builders."""

from __future__ import annotations

import pytest

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

from .test_scale_table import KERAS_COUNT_PARAMS, KERAS_TRAINABLE_PARAMS

B_FAMILY = [f"b{i}" for i in range(8)]
# B0's MACs at 224, counted independently over keras.applications.EfficientNetB0's layers by
# tests/test_builder.py::test_macs_equal_a_count_over_keras_applications_layers (paper: 0.39B).
B0_MACS = 385_814_752


@pytest.mark.parametrize(
    ("filters", "width", "expected"),
    [(32, 1.0, 32), (32, 1.1, 32), (32, 1.2, 40), (16, 1.2, 24), (1280, 1.4, 1792),
     (320, 2.0, 640), (24, 1.8, 40), (16, 0.1, 8), (40, 4.3, 176)],
)  # fmt: skip
def test_round_filters(filters, width, expected):
    assert S.round_filters(filters, width) == expected


def test_round_filters_never_loses_more_than_ten_percent():
    for filters in range(8, 400, 4):
        for width in (0.5, 0.75, 1.1, 1.3, 2.2, 4.3):
            assert S.round_filters(filters, width) >= 0.9 * filters * width
            assert S.round_filters(filters, width) % 8 == 0


def test_round_repeats_rounds_up():
    assert [S.round_repeats(r, 3.1) for r in (1, 2, 3, 4)] == [4, 7, 10, 13]
    assert S.round_repeats(3, 1.0) == 3


def test_block_strings_round_trip():
    for stage in S.B0_STAGES:
        assert S.StageSpec.decode(stage.encode()) == stage
    # The TPU builder's string plus the kind (automl's conv type: c0 MBConv) and the SE ratio.
    assert S.B0_STAGES[0].encode() == "r1_k3_s11_e1_i32_o16_c0_se0.25"
    with pytest.raises(ValueError):
        S.StageSpec.decode("r1_k3_s12_e1_i32_o16_c0_se0.25")


def test_block_letters_go_past_z():
    assert [S.block_letter(i) for i in (0, 1, 25, 26, 27)] == ["a", "b", "z", "aa", "ab"]


def test_b0_blocks_names_strides_and_drop_rates():
    blocks = S.expand_blocks(S.get_spec("b0"))
    assert [b.name for b in blocks] == [
        "block1a_", "block2a_", "block2b_", "block3a_", "block3b_", "block4a_", "block4b_",
        "block4c_", "block5a_", "block5b_", "block5c_", "block6a_", "block6b_", "block6c_",
        "block6d_", "block7a_",
    ]  # fmt: skip
    assert [b.strides for b in blocks if b.name.endswith("a_")] == [1, 2, 2, 2, 1, 2, 1]
    assert all(b.strides == 1 for b in blocks if not b.name.endswith("a_"))
    # Drop-connect grows linearly over the 16 scaled blocks, from 0 towards 0.2.
    assert [round(b.drop_rate, 6) for b in blocks[:3]] == [0.0, 0.0125, 0.025]
    assert blocks[-1].drop_rate == pytest.approx(0.2 * 15 / 16)
    # SE width is a quarter of the block's input filters.
    assert [b.se_filters for b in blocks[:3]] == [8, 4, 6]


def test_b7_block_count_uses_scaled_repeats():
    blocks = S.expand_blocks(S.get_spec("b7"))
    assert len(blocks) == sum(S.round_repeats(s.repeats, 3.1) for s in S.B0_STAGES) == 55


@pytest.mark.parametrize("name", B_FAMILY)
def test_macs_within_six_percent_of_the_paper(name):
    macs = C.count(S.get_spec(name)).macs
    assert abs(macs / S.PUBLISHED[name].macs - 1) < 0.06


@pytest.mark.parametrize("name", B_FAMILY)
def test_trainable_params_round_to_the_papers_figure(name):
    published = S.PUBLISHED[name].params
    trainable = C.count(S.get_spec(name)).params_trainable
    assert abs(trainable / published - 1) < 0.05


def test_b0_counts_exactly():
    costs = C.count(S.get_spec("b0"))
    assert costs.params_trainable == KERAS_TRAINABLE_PARAMS["efficientnet-b0"]  # the paper's
    assert costs.params == KERAS_COUNT_PARAMS["efficientnet-b0"]  # Keras' count_params()
    assert costs.params_preprocessing == 3 + 3 + 1  # Normalization: mean, variance, count
    assert costs.params_bn_moving == costs.params - costs.params_trainable - 7 == 42_016
    assert costs.macs == B0_MACS


def test_totals_are_sums_of_rows():
    costs = C.count(S.get_spec("b3"))
    assert sum(stage.params for stage in costs.stages) == costs.params
    assert sum(stage.macs for stage in costs.stages) == costs.macs
    assert max(stage.peak_activation_bytes for stage in costs.stages) == costs.peak_activation_bytes


def test_peak_activation_counts_the_skip_tensor():
    # block2b's input stays alive across the block for the residual add: its 56x56x24 floats
    # are part of the peak inside block2b, beyond the expand conv's input and output.
    costs = C.count(S.get_spec("b0"))
    expand = next(c for c in costs.layers if c.name == "block2b_expand_conv")
    skip_bytes = 56 * 56 * 24 * 4
    stage2 = next(s for s in costs.stages if s.stage == "2")
    assert stage2.peak_activation_bytes >= expand.activation_bytes + skip_bytes


def test_head_options_change_the_counts():
    base = C.count(S.get_spec("b0"))
    ten = C.count(S.get_spec("b0", num_classes=10))
    assert base.params - ten.params == 1280 * 990 + 990
    notop = C.count(S.get_spec("b0", include_top=False))
    assert base.params - notop.params == 1280 * 1000 + 1000
    raw = C.count(S.get_spec("b0", preprocessing=False))
    assert base.params - raw.params == 7


def test_unknown_model_names_the_valid_choices():
    with pytest.raises(UsageError, match="valid: b0, b1"):
        S.get_spec("b9")


@pytest.mark.parametrize(
    "overrides",
    [{"resolution": 8}, {"resolution": 5000}, {"width": 0.0}, {"num_classes": 0},
     {"dropout": 1.5}, {"pooling": "sum"}, {"classifier_activation": "relu"}],
)  # fmt: skip
def test_invalid_overrides_are_usage_errors(overrides):
    with pytest.raises(UsageError):
        S.get_spec("b0", **overrides)


def test_phi_selects_released_members_and_the_rule_between_them():
    assert S.get_spec(phi=3) == S.get_spec("b3")
    rule = S.get_spec(phi=2.5)
    assert rule.name == "efficientnet-phi2.5"
    assert rule.width == pytest.approx(1.1**2.5)
    assert rule.depth == pytest.approx(1.2**2.5)
    assert rule.resolution == round(224 * 1.15**2.5)


def test_overrides_are_named():
    spec = S.get_spec("b0", resolution=128, width=1.2)
    assert spec.name == "efficientnet-b0-w1.2-r128"
    assert S.get_spec("b0", resolution=224).name == "efficientnet-b0"


@pytest.mark.parametrize(
    ("name", "drop_connect", "preprocessing"),
    [("b0", 0.2, True), ("b7", 0.2, True), ("lite0", 0.2, True), ("seed-b0", 0.0, False)],
)
def test_options_left_out_take_the_familys_values(name, drop_connect, preprocessing):
    spec, variant = S.get_spec(name), S.VARIANTS[name]
    assert (spec.drop_connect, spec.preprocessing) == (drop_connect, preprocessing)
    assert (spec.width, spec.depth, spec.resolution, spec.dropout) == (
        variant.width, variant.depth, variant.resolution, variant.dropout
    )  # fmt: skip
    assert S.get_spec(name, drop_connect=0.3, dropout=0.1).drop_connect == 0.3


def test_preprocessing_cannot_be_asked_of_a_family_without_any():
    assert S.get_spec("seed-b0", preprocessing=False) == S.get_spec("seed-b0")
    with pytest.raises(UsageError, match="no input preprocessing"):
        S.get_spec("seed-b0", preprocessing=True)
