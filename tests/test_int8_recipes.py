"""int8 recipes (issue #21 item 5): keep-float in each backend, carried out by the backend's own
tool and steered by a gate, on a small Lite0 (64 px, random weights). Whether a recipe repairs
a trained model on real photos is tests/test_torch_weights.py's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from effnet_cli import backends
from effnet_cli.backends.int8 import Steer, float_counts
from effnet_cli.backends.record import KEEP_FLOAT

pytestmark = pytest.mark.slow  # three converters on one small model

# Gates a steered recipe can always, or never, reach: the search stops at once, or runs to the
# most layers it may keep in float.
ALWAYS = backends.Gate(None)
NEVER = backends.Gate(None, min_top1_agreement=1.1)


def test_float_counts_double_up_to_half_of_the_layers():
    assert float_counts(65) == [4, 8, 16, 32]
    assert float_counts(64) == [4, 8, 16, 32]
    assert float_counts(50) == [4, 8, 16, 25]
    assert float_counts(6) == [3]
    assert float_counts(1) == [1]


def test_a_gate_is_reached_only_when_every_limit_is():
    gate = backends.QUANTIZED_GATE
    assert gate.reached(0.6, 0.75, 6.0) and gate.reached(1.0, 1.0, None)
    assert not gate.reached(0.5, 1.0, 20.0)
    assert not gate.reached(1.0, 0.7, 20.0)
    assert not gate.reached(1.0, 1.0, 5.9)


def test_a_refused_file_names_every_recipe_it_tried():
    from effnet_cli.records.export import RecipeAttempt, taken
    from effnet_cli.workflows.export import tried_recipes

    def tried(*names):
        attempts = tuple(RecipeAttempt(recipe=name) for name in names)
        return SimpleNamespace(int8=taken(attempts[-1], attempts) if names else None)

    assert tried_recipes(tried()) == tried_recipes(tried("default")) == ""
    assert tried_recipes(tried("default", "percentile", "keep-float")) == (
        " (int8 recipes tried: default, percentile, keep-float)")  # fmt: skip


def test_steer_score_is_one_at_the_gate_and_the_worst_share_below():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=(4, 10))
    steer = Steer(None, expected, backends.QUANTIZED_GATE)
    assert steer.score(expected) == 1.0 and steer.reached(expected)
    wrong = -expected  # every ranking reversed: nothing agrees, SQNR far below zero
    assert steer.score(wrong) == 0.0 and not steer.reached(wrong)
    ranked = np.array([[6.0, 5, 4, 3, 2, 1]] * 2)
    swapped = np.array([[6.0, 5, 4, 3, 2, 1], [5.0, 6, 4, 3, 2, 1]])  # one top-1 of two lost
    steer = Steer(None, ranked, backends.QUANTIZED_GATE)  # top-5 kept, SQNR 19.6 dB
    assert steer.score(swapped) == pytest.approx(0.5 / 0.6) and not steer.reached(swapped)


@pytest.fixture(scope="module")
def small():
    """A Lite0 at 64 px, its calibration images, and the Keras logits on four of them."""
    from effnet_cli.keras.builder import build_model
    from effnet_cli.keras.calibration import calibrate_batchnorm
    from effnet_cli.model import spec as S
    from effnet_cli.workflows.accuracy import keras_answers

    model = build_model(S.get_spec("lite0", resolution=64), seed=0)
    calibrate_batchnorm(model, seed=0)
    images = np.random.default_rng(1).uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    return model, images, keras_answers(model, images[:4])


def write(small, fmt: str, path, gate: backends.Gate):
    model, images, expected = small
    return backends.get(fmt).write(model, path, opset=17, batch=None, meta={}, precision="int8",
                                   calibration=images, recipe=KEEP_FLOAT,
                                   steer=Steer(images[:4], expected, gate))  # fmt: skip


def float_convolutions(path) -> int:
    """onnxruntime's QDQ file: convolutions that read no DequantizeLinear (they run float)."""
    from effnet_cli.backends.onnx import load

    graph = load(path).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    return sum(node.op_type == "Conv" and producers.get(node.input[0]) != "DequantizeLinear"
               for node in graph.node)  # fmt: skip


def test_onnx_keep_float_excludes_the_worst_layers_until_the_gate(small, tmp_path, monkeypatch):
    from effnet_cli.backends import int8

    reached = write(small, "onnx", tmp_path / "reached.onnx", ALWAYS)
    assert reached["float_layers"] == 4 and reached["layers"] > 40
    # a gate never reached: 4, then 8 layers in float (the most the share set here allows)
    monkeypatch.setattr(int8, "MAX_FLOAT_SHARE", 8.5 / reached["layers"])
    never = write(small, "onnx", tmp_path / "never.onnx", NEVER)
    assert never == {"float_layers": 8, "layers": reached["layers"]}
    # onnxruntime's nodes_to_exclude took them: float convolutions, more where more were kept
    few, many = (float_convolutions(tmp_path / name) for name in ("reached.onnx", "never.onnx"))
    assert 0 < few < many


def test_tflite_keep_float_denylists_the_worst_layers(small, tmp_path, b0_r64):
    from effnet_cli.backends import tflite

    done = write(small, "tflite", tmp_path / "lite0.tflite", ALWAYS)
    assert done["float_layers"] == 4 and done["layers"] > 40

    def float_ops(path) -> int:  # operators fed float32 tensors, past the input's QUANTIZE
        interpreter = tflite.make_interpreter(path)
        kinds = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
        return sum(kinds[op["inputs"][0]] == np.float32 and op["op_name"] != "QUANTIZE"
                   for op in interpreter._get_ops_details())  # fmt: skip

    assert float_ops(b0_r64.path("tflite", "int8")) == 0  # the default: every layer int8
    assert float_ops(tmp_path / "lite0.tflite") > 0
    assert tflite.tflite_precision(tmp_path / "lite0.tflite") == "int8"  # the rest stays int8


def test_openvino_keep_float_runs_nncf_accuracy_control_to_the_gate(small, tmp_path):
    """A gate reached at once: NNCF's accuracy control quantizes, measures, and reverts nothing
    (a gate never reached costs a minute of reverting here: the real Lite0's is measured in
    `benchmarks/run.py --sections repair`)."""
    done = write(small, "openvino", tmp_path / "reached_openvino", ALWAYS)
    assert done["float_layers"] == 0 and done["layers"] > 40
