"""Families beyond B0-B7: Lite, B8, L2, the seed notebook's model, and free compound scaling."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S

NOTEBOOK = Path(__file__).parent / "data" / "seed-notebook.txt"  # ../shared/reference's copy

# The official TPU builder's test (lite/efficientnet_lite_builder_test.py) pins these.
LITE_TRAINABLE = {"lite0": 4_652_008, "lite1": 5_416_680, "lite2": 6_092_072,
                  "lite3": 8_197_096, "lite4": 13_006_568}  # fmt: skip


@pytest.mark.parametrize(("name", "trainable"), LITE_TRAINABLE.items())
def test_lite_trainable_params_equal_the_official_builder(name, trainable):
    assert C.count(S.get_spec(name)).params_trainable == trainable


# count_params() of keras.applications' reference builder, keras.src.applications.efficientnet.
# EfficientNet(width, depth, resolution, dropout), at B8's (2.2, 3.6, 672, 0.5) and L2's
# (4.3, 5.3, 800, 0.5) coefficients: the slow tests below build both and check these figures.
B8_PARAMS = 87_793_181
L2_PARAMS = 481_400_003


def test_b8_and_l2_totals():
    assert C.count(S.get_spec("b8")).params == B8_PARAMS
    l2 = C.count(S.get_spec("l2"))
    assert l2.params == L2_PARAMS
    assert C.count(S.get_spec("l2", preprocessing=False)).params == L2_PARAMS - (3 + 3 + 1)
    assert round(l2.params_trainable / 1e6) == 480  # Noisy Student (Xie et al. 2020): "480M"


def test_the_shared_notebook_copy_is_current():
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference" / "seed-notebook.txt"
    if not shared.exists():  # CI checks ../shared out beside the clone: there it must be found
        if os.environ.get("CI"):
            pytest.fail(f"{shared} is missing; CI checks it out beside the clone")
        pytest.skip(f"{shared} is absent (not in CI): cannot compare tests/data's copy with it")
    assert shared.read_text() == NOTEBOOK.read_text()


def _notebook_namespace():
    """Execute the notebook's own code cells (SE_Block, round_filters, EfficientNet)."""
    cells = re.split(r"\nIn \[\d+\]:\n", NOTEBOOK.read_text())
    code = "import tensorflow as tf\nimport math\n" + "\n".join(cells[2:5])
    namespace: dict = {}
    exec(compile(code, str(NOTEBOOK), "exec"), namespace)
    return namespace


@pytest.mark.slow
@pytest.mark.parametrize("phi", range(8))
def test_seed_model_matches_the_notebook_layer_by_layer(phi, no_weights):
    from effnet_cli.keras.builder import build_model

    notebook = _notebook_namespace()["EfficientNet"](compound_coefficient=phi)
    ours = build_model(f"seed-b{phi}")

    def layers(model):
        return [(type(layer).__name__, layer.count_params()) for layer in model.layers]

    assert layers(ours) == layers(notebook)
    assert (
        ours.count_params() == notebook.count_params() == C.count(S.get_spec(f"seed-b{phi}")).params
    )
    if phi == 0:
        assert ours.count_params() == 5_352_756
    del notebook, ours


@pytest.mark.slow
def test_b8_equals_keras_reference_builder(no_weights):
    from keras.src.applications.efficientnet import EfficientNet

    from effnet_cli.keras.builder import build_model

    reference = EfficientNet(2.2, 3.6, 672, 0.5, weights=None)
    ours = build_model("b8")
    assert [(layer.name, layer.count_params()) for layer in ours.layers] == [
        (layer.name, layer.count_params()) for layer in reference.layers
    ]
    assert ours.count_params() == reference.count_params() == B8_PARAMS


@pytest.mark.slow
def test_l2_equals_keras_reference_builder(no_weights):
    """keras.applications' builder scaled to L2, at 32 px (weights do not depend on the size).

    Its 481 M weights only declared (`no_weights`), about a second, where making them took 18 s
    and 3 GB (35 s drawing random ones); the counter is compared, not our builder
    (test_builder.py shows the builder and the counter agree layer by layer).
    """
    from keras.src.applications.efficientnet import EfficientNet

    from effnet_cli.keras.builder import deep_recursion

    with deep_recursion():  # Keras recurses once per layer: L2 passes the default 1,000 frames
        reference = EfficientNet(4.3, 5.3, 800, 0.5, weights=None, input_shape=(32, 32, 3))
    costs = C.count(S.get_spec("l2"))
    assert [(c.name, c.keras_class, c.params) for c in costs.layers] == [
        (layer.name, type(layer).__name__, layer.count_params()) for layer in reference.layers
    ]
    assert costs.params == reference.count_params() == L2_PARAMS
    trainable = sum(int(np.prod(w.shape)) for w in reference.trainable_weights)
    assert costs.params_trainable == trainable
    del reference


def _summary(cli, *args: str) -> dict:
    result = cli("summary", *args, "--layers", "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def _build(cli, tmp_path, *args: str):
    """`effnet build ARGS -o FILE.keras`, loaded back (safe mode) as a Keras model."""
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    target = tmp_path / "model.keras"
    result = cli("build", *args, "-o", target)
    assert result.code == 0, result.stderr
    return keras.saving.load_model(target, safe_mode=True)


def _drop_rates(model) -> list[tuple[str, float]]:
    return [(layer.name, layer.rate) for layer in model.layers
            if type(layer).__name__ == "Dropout"]  # fmt: skip


def _check_drop_connect(drops: list[tuple[str, float]], model, final: float) -> None:
    """Drop-connect at block i of n is final·i/n (keras.applications, the TPU builders), with
    the blocks counted from the model's layer names; `drops` are the blocks' Dropout layers."""
    blocks = list(dict.fromkeys(layer.name.split("_")[0] for layer in model.layers
                                if layer.name.startswith("block")))  # fmt: skip
    names = {layer.name for layer in model.layers}
    expected = [(f"{block}_drop", final * i / len(blocks)) for i, block in enumerate(blocks)
                if f"{block}_drop" in names]  # fmt: skip
    assert expected, "no block of the model has a drop-connect layer to check"
    assert [name for name, _ in drops] == [name for name, _ in expected]
    assert [rate for _, rate in drops] == pytest.approx([rate for _, rate in expected])


@pytest.fixture(scope="module")
def notebook_b0() -> list[tuple[str, int]]:
    """The notebook's EfficientNet(0), built by its own code: (class, params) of each layer."""
    from effnet_cli.keras.builder import import_keras

    import_keras()  # TensorFlow's start-up noise silenced before the notebook imports it
    model = _notebook_namespace()["EfficientNet"](compound_coefficient=0)
    return [(type(layer).__name__, layer.count_params()) for layer in model.layers]


def test_seed_b0_from_the_cli_is_the_notebooks_network(cli, tmp_path, notebook_b0):
    doc = _summary(cli, "--model", "seed-b0")
    assert [(layer["class"], layer["params"]) for layer in doc["layers"]] == notebook_b0
    assert "Dropout" not in {kind for kind, _ in notebook_b0}  # no dropout, no drop-connect
    assert (doc["model"]["dropout"], doc["model"]["drop_connect"]) == (0, 0)
    assert doc["model"]["preprocessing"] is False and doc["input"]["preprocessing_inside"] is False
    built = _build(cli, tmp_path, "--model", "seed-b0", "--resolution", "64")
    assert [(type(layer).__name__, layer.count_params()) for layer in built.layers] == notebook_b0


def test_seed_gets_drop_connect_only_when_asked(cli, notebook_b0):
    doc = _summary(cli, "--model", "seed-b0", "--drop-connect", "0.3")
    kinds = [layer["class"] for layer in doc["layers"]]
    residual_adds = sum(kind == "Add" for kind, _ in notebook_b0)
    assert kinds.count("Dropout") == residual_adds == 9
    assert len(kinds) == len(notebook_b0) + residual_adds and doc["model"]["drop_connect"] == 0.3
    seed_b3 = _summary(cli, "--model", "seed-b3")["model"]  # the notebook's table: 300 px
    assert (seed_b3["resolution"], seed_b3["dropout"], seed_b3["drop_connect"]) == (
        [300, 300],
        0,
        0,
    )


def test_b_family_defaults_are_keras_applications(cli, tmp_path):
    from effnet_cli.keras.builder import import_keras

    b1 = _summary(cli, "--phi", "1")
    assert (b1["model"]["resolution"], b1["model"]["dropout"], b1["model"]["drop_connect"]) == (
        [240, 240], 0.2, 0.2)  # fmt: skip
    assert b1["input"]["preprocessing_inside"] is True
    # B1, not B0: its last stage has two blocks, so the last block (rate 0.2·(n-1)/n) has a drop.
    ours = _build(cli, tmp_path, "--phi", "1", "--resolution", "32")
    keras = import_keras()
    keras.backend.clear_session()
    reference = keras.applications.EfficientNetB1(weights=None, input_shape=(32, 32, 3))
    names = [name for name, _ in _drop_rates(reference)]
    assert [name for name, _ in _drop_rates(ours)] == names
    rates = [rate for _, rate in _drop_rates(reference)]
    assert [rate for _, rate in _drop_rates(ours)] == pytest.approx(rates)
    *blocks, top = _drop_rates(ours)
    _check_drop_connect(blocks, reference, 0.2)
    assert blocks[-1] == ("block7b_drop", pytest.approx(0.2 * 22 / 23))
    assert top == ("top_dropout", pytest.approx(0.2))
    names = [layer["name"] for layer in b1["layers"] if layer["class"] == "Dropout"]
    assert names == [name for name, _ in _drop_rates(ours)]


@pytest.mark.parametrize(
    ("args", "name", "resolution"),
    [(["--phi", "8"], "efficientnet-b8", 672), (["--model", "B8"], "efficientnet-b8", 672),
     (["--model", "l2"], "efficientnet-l2", 800),
     (["--model", "efficientnet-l2"], "efficientnet-l2", 800)],
)  # fmt: skip
def test_b8_and_l2_names_and_defaults(cli, args, name, resolution):
    model = json.loads(cli("summary", *args, "--json").stdout)["model"]
    assert (model["name"], model["family"], model["resolution"]) == (
        name, "b", [resolution, resolution])  # fmt: skip
    assert (model["dropout"], model["drop_connect"], model["preprocessing"]) == (0.5, 0.2, True)


def test_lite_defaults(cli):
    # The TPU repository's lite builder: efficientnet_lite_params (lite0 224 px dropout 0.2 …
    # lite4 300 px 0.3), survival probability 0.8 (drop-connect 0.2), inputs (x - 127) / 128.
    for name, resolution, dropout in (("lite0", 224, 0.2), ("lite4", 300, 0.3)):
        doc = _summary(cli, "--model", name)
        model = doc["model"]
        assert (model["resolution"], model["dropout"], model["drop_connect"]) == (
            [resolution, resolution], dropout, 0.2)  # fmt: skip
        assert doc["input"]["preprocessing"] == "Rescaling: (x - 127) / 128"
        names = {layer["name"] for layer in doc["layers"]}
        assert "rescaling" in names and "normalization" not in names


def test_lite_network_shape(cli, tmp_path):
    model = _build(cli, tmp_path, "--model", "lite0", "--resolution", "64")
    *blocks, top = _drop_rates(model)
    _check_drop_connect(blocks, model, 0.2)
    assert len(blocks) == 9 and top == ("top_dropout", pytest.approx(0.2))
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Multiply" not in kinds and "Normalization" not in kinds  # no SE, no ImageNet stats
    activations = {layer.get_config()["activation"] for layer in model.layers
                   if type(layer).__name__ == "Activation"}  # fmt: skip
    assert activations == {"relu6"}
    assert (
        model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 1280
    )
    rescale = model.get_layer("rescaling")
    assert np.allclose(rescale(np.array([[127.0, 255.0]])), [[0.0, 1.0]])


def test_lite4_keeps_the_first_and_last_stage_repeats():
    blocks = S.expand_blocks(S.get_spec("lite4"))
    per_stage = [sum(1 for b in blocks if b.stage == i) for i in range(1, 8)]
    assert per_stage == [1, 4, 4, 6, 6, 8, 1]  # B4 has 2, ..., 2 at depth 1.8


def test_free_scaling_names_the_model(cli):
    doc = json.loads(cli("summary", "--phi", "2.5", "--json").stdout)
    assert doc["model"]["name"] == "efficientnet-phi2.5"
    assert doc["model"]["resolution"] == [round(224 * 1.15**2.5)] * 2
    custom = json.loads(cli("summary", "--model", "lite1", "--width", "1.3", "--resolution", "200",
                            "--json").stdout)  # fmt: skip
    assert custom["model"]["name"] == "efficientnet-lite1-w1.3-r200"
    lite_rule = json.loads(cli("summary", "--model", "lite0", "--depth", "2", "--json").stdout)
    assert lite_rule["model"]["depth"] == 2.0


def test_seed_summary_lists_its_deviations(cli):
    result = cli("summary", "--model", "seed-b0")
    assert result.code == 0
    deviations = S.FAMILIES["seed"].deviations
    assert len(deviations) >= 1  # the notebook's own choices: none listed would print none
    assert result.stdout.count("deviation from the paper:") == len(deviations)
    assert "softmax" in result.stdout and "5,352,756" in result.stdout


def test_l2_build_warns_of_its_size(cli, monkeypatch):
    from effnet_cli.keras import archive

    def refuse(*args, **kwargs):
        raise KeyboardInterrupt  # stop before spending minutes building 480 M parameters

    monkeypatch.setattr(archive, "build_model", refuse)
    result = cli("build", "--model", "l2")
    assert "481" in result.stderr and "parameters" in result.stderr
    assert result.code == 130


def test_scale_table_families(cli):
    rows = json.loads(cli("scale-table", "--family", "seed", "--json").stdout)["rows"]
    assert [row["name"] for row in rows] == [f"efficientnet-seed-b{i}" for i in range(8)]
    assert rows[1]["width"] == 1.1 and rows[1]["depth"] == 1.0  # the notebook's swap, visible
    every = json.loads(cli("scale-table", "--family", "all", "--json").stdout)["rows"]
    assert {row["name"] for row in every} >= {"efficientnet-b0", "efficientnet-lite4",
                                              "efficientnet-seed-b7"}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lite0", "seed-b0"])
def test_every_family_exports_to_onnx_and_tflite(cli, tmp_path, name):
    result = cli("export", "--model", name, "--resolution", "64", "-f", "onnx,tflite",
                 "-o", tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    artifacts = json.loads(result.stdout)["artifacts"]
    assert [a["format"] for a in artifacts] == ["onnx", "tflite"]
    for artifact in artifacts:
        assert artifact["verification"]["passed"] is True, artifact
