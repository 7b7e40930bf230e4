"""EfficientNetV2 (B0–B3, S, M, L): layer for layer keras.applications', through every command.

The pure tests pin the spec and the counter against keras.applications' own counts (V2-FACTS,
Keras 3.15) and automl's MACs; the Keras tests build both networks at 64 px (no weight depends
on the input size) and compare names, classes, configs, counts and logits.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

from .conftest import calibrate, relative_diff

# keras.applications.EfficientNetV2*(weights=None, include_top=True) under Keras 3.15:
# count_params(), trainable parameters, layers. test_same_network_as_keras_applications
# builds each reference and checks this table; the TensorFlow-free tests read it.
KERAS_COUNTS = {
    "v2-b0": (7_200_312, 7_139_704, 273),
    "v2-b1": (8_212_124, 8_141_052, 337),
    "v2-b2": (10_178_374, 10_096_086, 352),
    "v2-b3": (14_467_622, 14_358_406, 412),
    "v2-s": (21_612_360, 21_458_488, 516),
    "v2-m": (54_431_388, 54_139_356, 743),
    "v2-l": (119_027_848, 118_515_272, 1031),
}
# Multiply-adds at the default (official eval) size, as ../shared/reference/V2-FACTS.md gives
# them; google/automl's README rounds the same figures ("FLOPs" 0.72B … 56.3B).
OFFICIAL_MACS = {"v2-b0": 0.72e9, "v2-b1": 1.20e9, "v2-b2": 1.70e9, "v2-b3": 3.01e9,
                 "v2-s": 8.37e9, "v2-m": 24.6e9, "v2-l": 56.1e9}  # fmt: skip
KERAS_BUILDERS = {name: f"EfficientNetV2{name[3:].upper()}" for name in KERAS_COUNTS}
SMALL = 64  # px: every test that runs a network runs it at this size
HEAVY = {"v2-m", "v2-l"}  # 54 M and 119 M parameters: seconds and GBs to build, marked slow


def _each(names, heavy=HEAVY):
    return [pytest.param(n, marks=pytest.mark.slow) if n in heavy else n for n in names]


# ---------------------------------------------------------------------------- spec, no TensorFlow

ALL_TABLES = {"b0": S.B0_STAGES, "lite": S.FAMILIES["lite"].stages, "v2-base": S.V2_BASE_STAGES,
              "v2-s": S.V2_S_STAGES, "v2-m": S.V2_M_STAGES, "v2-l": S.V2_L_STAGES}  # fmt: skip


@pytest.mark.parametrize("table", ALL_TABLES)
def test_block_strings_carry_kind_and_se_and_round_trip(table):
    for stage in ALL_TABLES[table]:
        text = stage.encode()
        assert S.StageSpec.decode(text) == stage and S.StageSpec.decode(text).encode() == text


def test_block_string_notation():
    assert S.V2_S_STAGES[1].encode() == "r4_k3_s22_e4_i24_o48_c1_se0"  # Fused-MBConv, no SE
    assert S.V2_S_STAGES[3].encode() == "r6_k3_s22_e4_i64_o128_c0_se0.25"  # MBConv with SE
    fused = S.StageSpec.decode("r2_k3_s22_e4_i24_o48_c1_se0")
    assert (fused.kind, fused.se_ratio, fused.strides, fused.repeats) == ("fused", 0.0, 2, 2)
    for bad in ("r1_k3_s11_e1_i32_o16", "r1_k3_s11_e1_i32_o16_c2_se0", "r1_k3_s11_e1_i32_o16_c0"):
        with pytest.raises(ValueError, match="not a block string"):
            S.StageSpec.decode(bad)


def test_rounding_rule_per_family():
    # V1's 90 % floor would make V2-B3's stage 1 24 wide: 16 * 1.2 = 19.2 rounds to 16, < 90 %.
    assert S.round_filters(16, 1.2) == 24 and S.round_filters(16, 1.2, floor=0.0) == 16
    assert (S.FAMILIES["b"].filter_floor, S.FAMILIES["v2"].filter_floor) == (0.9, 0.0)
    blocks = S.expand_blocks(S.get_spec("v2-b3"))
    assert blocks[0].filters_out == 16 and S.stem_filters(S.get_spec("v2-b3")) == 40


@pytest.mark.parametrize("name", KERAS_COUNTS)
def test_counts_equal_keras_applications(name):
    params, trainable, layers = KERAS_COUNTS[name]
    costs = C.count(S.get_spec(name))
    assert (costs.params, costs.params_trainable, len(costs.layers)) == (params, trainable, layers)
    assert costs.params_preprocessing == 0  # Keras 3 holds V2's mean and variance as constants


@pytest.mark.parametrize("name", OFFICIAL_MACS)
def test_macs_within_one_percent_of_the_official_figures(name):
    assert abs(C.count(S.get_spec(name)).macs / OFFICIAL_MACS[name] - 1) < 0.01


def test_v2_s_blocks_as_keras_applications_builds_them():
    spec = S.get_spec("v2-s")
    blocks = S.expand_blocks(spec)
    per_stage = [[b for b in blocks if b.stage == i] for i in range(1, 7)]
    assert [len(stage) for stage in per_stage] == [2, 4, 4, 6, 9, 15]
    assert [stage[0].kind for stage in per_stage] == ["fused"] * 3 + ["mbconv"] * 3
    assert [b.se_filters for b in per_stage[3][:2]] == [16, 32]  # a quarter of the input filters
    assert all(b.se_filters == 0 for stage in per_stage[:3] for b in stage)
    # keras.applications' V2 divides drop-connect by the table's repeats (40 here), not scaled.
    assert blocks[-1].drop_rate == pytest.approx(0.2 * 39 / 40)
    names = [layer.name for layer in C.count(spec).layers]
    assert "block1a_project_activation" in names and "block1a_expand_conv" not in names
    assert "block2a_expand_conv" in names and "block4a_dwconv2" in names
    assert "block1a_drop" not in names and "block1b_drop" in names  # block 0's rate is 0
    assert not any(name.endswith("_pad") for name in names)  # 'same' padding, no ZeroPadding2D


def test_preprocessing_per_variant():
    b0, s = (S.input_contract(S.get_spec(n)) for n in ("v2-b0", "v2-s"))
    assert b0["preprocessing"].startswith("Rescaling(1/255), Normalization(ImageNet")
    assert s["preprocessing"] == "Rescaling: (x - 128) / 128" and s["range"] == "[0, 255]"
    raw = S.input_contract(S.get_spec("v2-s", preprocessing=False))
    assert raw["range"] == "caller-normalized" and "(x - 128) / 128" in raw["preprocessing"]
    names = [layer.name for layer in C.count(S.get_spec("v2-b0", preprocessing=False)).layers]
    assert names[:2] == ["input_layer", "stem_conv"]


def test_overrides_and_aliases():
    spec = S.get_spec("v2-s", width=1.1, depth=1.2, resolution=320)
    assert spec.name == "efficientnet-v2-s-w1.1-d1.2-r320" and spec.family.stages == S.V2_S_STAGES
    assert (
        S.get_spec("efficientnetv2-b0") == S.get_spec("EfficientNet-V2-B0") == S.get_spec("v2-b0")
    )
    # The compound rule scales V2-B0, the family's φ = 0 member, with V2's rounding.
    rule = S.get_spec("v2-s", phi=1.5)
    assert rule.name == "efficientnet-v2-phi1.5" and rule.family.stages == S.V2_BASE_STAGES


def test_a_depth_override_that_drives_drop_connect_past_one_is_refused(cli):
    with pytest.raises(UsageError, match="drop-connect reaches"):
        S.expand_blocks(S.get_spec("v2-b0", depth=6))
    result = cli("summary", "--model", "v2-b0", "--depth", "6")
    assert result.code == 2 and "lower --drop-connect or --depth" in result.stderr
    assert cli("summary", "--model", "v2-b0", "--depth", "6", "--drop-connect", "0.1").code == 0


def test_summary_stage_table_and_totals(cli):
    result = cli("summary", "--model", "v2-s")
    assert result.code == 0
    for text in (
        "Fused-MBConv1 k3x3",
        "Fused-MBConv4 k3x3",
        "MBConv6 k3x3",
        "21,612,360",
        "21,458,488",
        "8,365,617,152",
        "(x - 128) / 128",
        "83.9 (automl V2 README)",
    ):
        assert text in result.stdout  # fmt: skip
    document = json.loads(cli("summary", "--model", "v2-l", "--json").stdout)
    assert document["model"]["family"] == "v2" and len(document["stages"]) == 9
    totals = document["totals"]
    assert (totals["params"], totals["params_trainable"]) == KERAS_COUNTS["v2-l"][:2]
    assert document["stages"][7]["operator"] == "MBConv6 k3x3"


def _scale(cli, *args):
    result = cli("scale-table", *args)
    assert result.code == 0, result.stderr
    return result.stdout


def test_scale_table_v2_rows(cli):
    document = json.loads(_scale(cli, "--family", "v2", "--json"))
    rows = {row["name"].removeprefix("efficientnet-"): row for row in document["rows"]}
    assert list(rows) == list(KERAS_COUNTS)
    for name, row in rows.items():
        published = S.PUBLISHED[name]
        assert row["params"] == KERAS_COUNTS[name][0] and row["published_top1"] == published.top1
        assert row["published_train_resolution"] == published.train_resolution
        assert row["dropout"] == 0.2 and row["published_dropout"] == published.dropout
    assert (rows["v2-b3"]["resolution"], rows["v2-b3"]["published_train_resolution"]) == (300, 240)
    assert (rows["v2-l"]["dropout"], rows["v2-l"]["published_dropout"]) == (0.2, 0.4)
    # B0–B3 sit on the compound rule's axis; S, M and L do not: no rule columns, said plainly.
    assert rows["v2-b0"]["rule_params"] == rows["v2-b0"]["params"]
    assert all(rows[n]["phi"] is None and rows[n]["rule_params"] is None for n in HEAVY | {"v2-s"})
    assert any("v2-s" in note and "no compound rule" in note for note in document["notes"])


def test_scale_table_all_families_parse_in_every_format(cli):
    rows = json.loads(_scale(cli, "--family", "all", "--json"))["rows"]
    expected = 8 + 5 + 8 + 7  # B0–B7, Lite0–4, seed-b0–b7, V2-B0–B3/S/M/L
    assert len(rows) == expected and rows[-1]["name"] == "efficientnet-v2-l"
    table = list(csv.DictReader(io.StringIO(_scale(cli, "--family", "all", "--format", "csv"))))
    assert len(table) == expected and table[-1]["rule_params"] == ""
    assert int(table[-1]["published_train_resolution"]) == 384
    markdown = _scale(cli, "--family", "all", "--format", "markdown").splitlines()
    assert "train res" in markdown[0] and "official dropout" in markdown[0]
    assert len([line for line in markdown if line.startswith("| efficientnet-")]) == expected
    text = _scale(cli, "--family", "all")
    assert "efficientnet-v2-m" in text and "no compound rule" in text
    v1 = _scale(cli, "--format", "markdown").splitlines()[0]
    assert "train res" not in v1  # no V1 row has one: the column is left out, not shown empty


# ---------------------------------------------------------------------------- Keras


def _keras():
    from effnet_cli.keras.builder import import_keras

    return import_keras()


def _reference(name: str, **options):
    _keras().backend.clear_session()  # keras' automatic names ('rescaling', …) restart from scratch
    return _keras_applications(name, **options)


def _keras_applications(name: str, **options):
    builder = getattr(_keras().applications, KERAS_BUILDERS[name])
    return builder(weights=None, input_shape=(SMALL, SMALL, 3), **options)


def _layers(model):
    return [(layer.name, type(layer).__name__, layer.count_params()) for layer in model.layers]


def _size(weights) -> int:
    return int(sum(np.prod(w.shape) for w in weights))


# Config keys that differ in spelling only: the channel axis (-1 or 3) and the classifier's zero
# bias initializer (Zeros or Constant(0)).
SPELLING = {"name", "axis", "bias_initializer"}


def _configs(model):
    return [{k: v for k, v in layer.get_config().items() if k not in SPELLING}
            for layer in model.layers]  # fmt: skip


@pytest.mark.parametrize("name", _each(KERAS_COUNTS))
def test_same_network_as_keras_applications(name, no_weights):
    from effnet_cli.keras.builder import build_model

    reference = _keras_applications(name)  # no_weights cleared the session
    params, trainable, layers = KERAS_COUNTS[name]
    # The pinned table is keras.applications' own.
    assert (reference.count_params(), _size(reference.trainable_weights)) == (params, trainable)
    assert len(reference.layers) == layers
    ours = build_model(name, resolution=SMALL)
    assert _layers(ours) == _layers(reference)  # names, classes and order: weights match by them
    assert ours.count_params() == params and _size(ours.trainable_weights) == trainable
    assert _size(ours.non_trainable_weights) == _size(reference.non_trainable_weights)
    # Momentum, padding, strides, activations, SE widths, dropout and drop-connect rates.
    assert _configs(ours) == _configs(reference)
    costs = C.count(S.get_spec(name, resolution=SMALL))
    assert [(c.name, c.keras_class, c.params) for c in costs.layers] == _layers(ours)
    assert costs.params_non_trainable == _size(ours.non_trainable_weights)
    del reference, ours


def test_width_and_depth_overrides_equal_keras_builder(no_weights):
    """--width/--depth on V2-B0 against keras.applications' own EfficientNetV2 function."""
    from keras.src.applications.efficientnet_v2 import EfficientNetV2

    reference = EfficientNetV2(1.3, 1.5, SMALL, name="efficientnetv2-b0", weights=None,
                               input_shape=(SMALL, SMALL, 3))  # fmt: skip
    costs = C.count(S.get_spec("v2-b0", width=1.3, depth=1.5, resolution=SMALL))
    assert [(c.name, c.keras_class, c.params) for c in costs.layers] == _layers(reference)


@pytest.fixture(scope="module")
def keras_weights(tmp_path_factory):
    """keras.applications' model of a variant with real BatchNorm statistics, saved in both
    layouts; memoized per (variant, preprocessing): (folder, images, logits)."""
    from keras.src.legacy.saving import legacy_h5_format

    saved = {}

    def get(name: str, preprocessing: bool):
        if (name, preprocessing) not in saved:
            model = _reference(name, classifier_activation=None,
                               include_preprocessing=preprocessing)  # fmt: skip
            images = calibrate(model, SMALL, seed=3)
            folder = tmp_path_factory.mktemp(f"{name}-{preprocessing}")
            model.save_weights(folder / "model.weights.h5")
            with h5py.File(folder / "legacy.h5", "w") as f:
                legacy_h5_format.save_weights_to_hdf5_group(f, model)
            saved[name, preprocessing] = folder, images, model(images).numpy()
        return saved[name, preprocessing]

    return get


# Both weights layouts, with and without the preprocessing layers, on V2-B0 (the switch adds or
# drops the same leading layers whatever the stages); Keras 3's layout on V2-B3 (where V1's
# rounding would break loading) and V2-S (its own stage table). The legacy layout on the bigger
# variants was dropped to keep the suite within its 10 minutes (~20 s).
PARITY = [
    pytest.param(name, preprocessing, layout,
                 marks=[pytest.mark.slow] if name != "v2-b0" else [],
                 id=f"{name}-{'pre' if preprocessing else 'raw'}-{layout.split('.')[0]}")
    for name, switches, layouts in (
        ("v2-b0", (True, False), ("model.weights.h5", "legacy.h5")),
        ("v2-b3", (True,), ("model.weights.h5",)),
        ("v2-s", (True,), ("model.weights.h5",)),
    )
    for preprocessing in switches
    for layout in layouts
]  # fmt: skip


@pytest.mark.parametrize(("name", "preprocessing", "layout"), PARITY)
def test_keras_applications_weights_give_the_same_logits(
    cli, tmp_path, keras_weights, name, preprocessing, layout
):
    folder, images, expected = keras_weights(name, preprocessing)
    target = tmp_path / "ours.keras"
    switch = "--preprocessing" if preprocessing else "--no-preprocessing"
    result = cli("build", "--model", name, "--resolution", SMALL, switch, "--weights",
                 folder / layout, "--classifier-activation", "none", "-o", target,
                 "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)["weights"]
    assert report["stddev_fix"] is False  # V2's statistics are constants: nothing to correct
    model = _keras().saving.load_model(target, safe_mode=True)
    assert report["tensors_loaded"] == len(model.weights)
    assert np.abs(expected).max() > 1e-2  # calibrated: logits are not ~1e-5
    assert relative_diff(model(images).numpy(), expected) <= 1e-5


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--model", "v2-b1"], "weight tensors but efficientnet-v2-b1-r64 has"),
     (["--model", "b0"], "weight tensors but efficientnet-b0-r64 has"),
     (["--model", "v2-b0", "--no-top"], "weight tensors but efficientnet-v2-b0-r64 has")],
)  # fmt: skip
def test_other_variants_refuse_v2_b0_weights(cli, tmp_path, keras_weights, args, message):
    folder, _, _ = keras_weights("v2-b0", True)
    for layout in ("model.weights.h5", "legacy.h5"):
        result = cli("build", *args, "--resolution", SMALL, "--weights", folder / layout)
        assert result.code == 2 and message in result.stderr, result.stderr


def test_v2_normalization_holds_constants_that_are_never_fixed():
    from effnet_cli.keras.builder import build_model
    from effnet_cli.keras.checkpoints.keras_files import _fix_published_stddev

    model = build_model("v2-b0", resolution=SMALL)
    normalization = model.get_layer("normalization")
    assert normalization.weights == [] and _fix_published_stddev(model) is False
    pixel = np.full((1, SMALL, SMALL, 3), 255.0 * 0.485, "float32")
    sub = _keras().Model(model.input, normalization.output)
    assert abs(float(sub(pixel).numpy()[0, 0, 0, 0])) < 1e-5  # (0.485 - mean) / std == 0
    s = build_model("v2-s", resolution=SMALL).get_layer("rescaling")
    assert np.allclose(s(np.array([[0.0, 128.0, 255.0]])), [[-1.0, 0.0, 127 / 128]])


@pytest.fixture(scope="module")
def v2_b0_export(tmp_path_factory):
    """V2-B0 at 64 px (seed 0) exported to every runtime's file by one `effnet export --json`:
    (folder, the artifacts). The bench test below runs its .onnx."""
    from .conftest import run_cli

    folder = tmp_path_factory.mktemp("v2-b0")
    result = run_cli("export", "--model", "v2-b0", "--resolution", SMALL, "--seed", "0",
                     "-f", "onnx,tflite,openvino", "-o", folder, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    return folder, json.loads(result.stdout)["artifacts"]


@pytest.mark.slow
def test_v2_b0_exports_to_every_runtime_and_verifies(cli, v2_b0_export):
    _, artifacts = v2_b0_export
    assert [a["format"] for a in artifacts] == ["onnx", "tflite", "openvino"]
    assert all(a["verification"]["passed"] for a in artifacts)
    onnx = next(a["path"] for a in artifacts if a["format"] == "onnx")
    inspected = cli("inspect", onnx, "--json")
    assert inspected.code == 0 and json.loads(inspected.stdout)["inputs"][0]["shape"][1:] == [
        SMALL, SMALL, 3]  # fmt: skip


@pytest.mark.slow
def test_v2_benches_through_the_spec(cli, v2_b0_export, prewritten, idle_probes):
    """bench builds V2-B0 from the spec (seed 0); its ONNX conversion is a copy of the export
    above, of the same weights (tests/conftest.py `prewritten`: the converter is the export
    test's), and the row's drift against the built Keras model shows they are the same."""
    _, artifacts = v2_b0_export
    onnx = next(a["path"] for a in artifacts if a["format"] == "onnx")
    prewritten({("onnx", "fp32"): Path(onnx)})
    result = cli("bench", "--model", "v2-b0", "--resolution", SMALL, "--seed", "0", "--runtime",
                 "keras,onnx", "--batch", "1", "--iterations", "2", "--warmup", "1",
                 "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"]["family"] == "v2"
    assert document["model"]["macs"] == C.count(S.get_spec("v2-b0", resolution=SMALL)).macs
    rows = {row["runtime"]: row for row in document["rows"] if not row.get("error")}
    assert set(rows) == {"keras", "onnx"}
    assert rows["onnx"]["drift_max_rel"] <= 1e-4  # the copied file holds the built weights
