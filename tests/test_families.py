"""Families beyond B0-B7: Lite, B8, L2, the seed notebook's model, and free compound scaling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from effnet_cli import costs as C
from effnet_cli import spec as S

NOTEBOOK = Path(__file__).parent / "data" / "seed-notebook.txt"  # ../shared/reference's copy

# The official TPU builder's test (lite/efficientnet_lite_builder_test.py) pins these.
LITE_TRAINABLE = {"lite0": 4_652_008, "lite1": 5_416_680, "lite2": 6_092_072,
                  "lite3": 8_197_096, "lite4": 13_006_568}  # fmt: skip


@pytest.mark.parametrize(("name", "trainable"), LITE_TRAINABLE.items())
def test_lite_trainable_params_equal_the_official_builder(name, trainable):
    assert C.count(S.get_spec(name)).params_trainable == trainable


def test_b8_and_l2_totals():
    assert C.count(S.get_spec("b8")).params == 87_793_181
    assert C.count(S.get_spec("l2")).params == 481_400_003
    assert C.count(S.get_spec("l2", preprocessing=False)).params == 481_399_996


def test_the_shared_notebook_copy_is_current():
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference" / "seed-notebook.txt"
    if shared.exists():  # in CI and sessions, shared/ lies beside the checkout
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
def test_seed_model_matches_the_notebook_layer_by_layer(phi):
    from effnet_cli.builder import build_model, import_keras

    keras = import_keras()
    keras.backend.clear_session()
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
def test_b8_equals_keras_reference_builder():
    from keras.src.applications.efficientnet import EfficientNet

    from effnet_cli.builder import build_model, import_keras

    keras = import_keras()
    keras.backend.clear_session()
    reference = EfficientNet(2.2, 3.6, 672, 0.5, weights=None)
    ours = build_model("b8")
    assert [(layer.name, layer.count_params()) for layer in ours.layers] == [
        (layer.name, layer.count_params()) for layer in reference.layers
    ]
    assert ours.count_params() == reference.count_params() == 87_793_181


def test_lite_network_shape():
    from effnet_cli.builder import build_model

    model = build_model("lite0", resolution=64)
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
    assert doc["model"]["resolution"] == round(224 * 1.15**2.5)
    custom = json.loads(cli("summary", "--model", "lite1", "--width", "1.3", "--resolution", "200",
                            "--json").stdout)  # fmt: skip
    assert custom["model"]["name"] == "efficientnet-lite1-w1.3-r200"
    lite_rule = json.loads(cli("summary", "--model", "lite0", "--depth", "2", "--json").stdout)
    assert lite_rule["model"]["depth"] == 2.0


def test_seed_summary_lists_its_deviations(cli):
    result = cli("summary", "--model", "seed-b0")
    assert result.code == 0
    assert result.stdout.count("deviation from the paper:") == len(S.FAMILIES["seed"].deviations)
    assert "softmax" in result.stdout and "5,352,756" in result.stdout


def test_l2_build_warns_of_its_size(cli, monkeypatch):
    from effnet_cli import builder

    def refuse(*args, **kwargs):
        raise KeyboardInterrupt  # stop before spending minutes building 480 M parameters

    monkeypatch.setattr(builder, "build_model", refuse)
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
    result = cli("export", "--model", name, "--resolution", "96", "-f", "onnx,tflite",
                 "-o", tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    for artifact in json.loads(result.stdout)["artifacts"]:
        assert artifact["verification"]["passed"]
