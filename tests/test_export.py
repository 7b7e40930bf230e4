"""`effnet export` and `effnet inspect`, checked by runtimes we did not write."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from effnet_cli import backends
from effnet_cli.keras.builder import import_keras

from .conftest import B0_224_FORMATS, relative_diff

keras = import_keras()
FORMATS = B0_224_FORMATS


@pytest.fixture(scope="module")
def b0_export(b0_224):
    """B0 (logits, seeded random weights) in every format, from one `effnet export` run: the
    session's (tests/conftest.py `b0_224`, whose OpenVINO IR tests/test_openvino.py checks)."""
    return b0_224


def _images(batch: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(batch).uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _reference(folder):
    """The exported .keras model: the same (calibrated) weights every other artifact holds."""
    return keras.saving.load_model(folder / "efficientnet-b0.keras", safe_mode=True)


def test_every_format_is_written_and_verified(b0_export):
    folder, report = b0_export
    assert report["schema"] == "effnet.export/1"
    artifacts = {a["format"]: a for a in report["artifacts"]}
    assert set(artifacts) == set(FORMATS.split(","))
    for artifact in artifacts.values():
        check = artifact["verification"]
        assert check["passed"] and check["max_rel_diff"] <= 1e-4 and check["batches"] == [1, 3]
        assert artifact["kept"] and artifact["bytes"] > 10_000_000
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "efficientnet-b0.keras",
        "efficientnet-b0.onnx",
        "efficientnet-b0.tflite",
        "efficientnet-b0_openvino",
        "efficientnet-b0_savedmodel",
    ]  # fmt: skip  (and no temporary left)


def test_onnx_matches_keras_in_onnxruntime_at_batch_1_and_3(b0_export):
    import onnx
    import onnxruntime as ort

    folder, _ = b0_export
    path = folder / "efficientnet-b0.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert metadata["model"] == "efficientnet-b0" and metadata["resolution"] == "224x224"
    assert metadata["input_range"] == "[0, 255]" and metadata["preprocessing_inside"] == "true"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] != 1  # dynamic batch
    reference = _reference(folder)
    for batch in (1, 3):
        images = _images(batch)
        expected = reference(images).numpy()
        assert np.abs(expected).max() > 1e-2  # calibrated BatchNorm: real logits, not ~1e-5
        (got,) = session.run(None, {"input": images})
        assert relative_diff(got, expected) <= 1e-4


def test_tflite_matches_keras_in_the_litert_interpreter(b0_export):
    from ai_edge_litert.interpreter import Interpreter

    folder, _ = b0_export
    interpreter = Interpreter(model_path=str(folder / "efficientnet-b0.tflite"))
    interpreter.allocate_tensors()
    images = _images(1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = _reference(folder)(images).numpy()
    assert np.abs(expected).max() > 1e-2
    assert relative_diff(got, expected) <= 1e-4


def test_savedmodel_has_a_named_serving_signature(b0_export, cli):
    folder, _ = b0_export
    report = json.loads(cli("inspect", folder / "efficientnet-b0_savedmodel", "--json").stdout)
    assert report["format"] == "savedmodel"
    assert report["inputs"] == [{"name": "input", "shape": [None, 224, 224, 3], "dtype": "float32"}]
    assert report["outputs"][0]["name"] == "logits"


def test_tflite_names_its_input_and_output_as_onnx_and_savedmodel_do(b0_export, cli):
    """Names as LiteRT reports them (tensors and the serving signature), against onnxruntime's
    and the SavedModel's; the renamed file still runs through its signature."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    folder, _ = b0_export
    session = ort.InferenceSession(str(folder / "efficientnet-b0.onnx"),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    onnx_names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    assert onnx_names == (["input"], ["logits"])  # a logits head (--classifier-activation none)
    interpreter = Interpreter(model_path=str(folder / "efficientnet-b0.tflite"))
    tensors = ([d["name"] for d in interpreter.get_input_details()],
               [d["name"] for d in interpreter.get_output_details()])  # fmt: skip
    signature = interpreter.get_signature_list()["serving_default"]
    assert tensors == (signature["inputs"], signature["outputs"]) == onnx_names
    saved = json.loads(cli("inspect", folder / "efficientnet-b0_savedmodel", "--json").stdout)
    assert ([t["name"] for t in saved["inputs"]], [t["name"] for t in saved["outputs"]]) == tensors
    images = _images(1)
    (got,) = interpreter.get_signature_runner("serving_default")(input=images).values()
    assert relative_diff(got, _reference(folder)(images).numpy()) <= 1e-4


def test_tflite_carries_the_metadata_onnx_carries(b0_export, cli):
    """effnet's metadata in the TFLite file's metadata table, read back by TensorFlow's own
    flatbuffer tools, and by inspect, typed as ONNX's."""
    import onnx
    from tensorflow.lite.tools import flatbuffer_utils

    from .test_schemas import validate

    folder, _ = b0_export
    onnx_file, tflite_file = folder / "efficientnet-b0.onnx", folder / "efficientnet-b0.tflite"
    written = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    flatbuffer = flatbuffer_utils.read_model(str(tflite_file))
    (entry,) = [m for m in flatbuffer.metadata if m.name == b"effnet"]
    assert json.loads(bytes(flatbuffer.buffers[entry.buffer].data)) == written
    onnx_report, tflite_report = (
        json.loads(cli("inspect", path, "--json").stdout) for path in (onnx_file, tflite_file)
    )
    validate(tflite_report)
    assert tflite_report["metadata"] == onnx_report["metadata"]
    assert tflite_report["model"] == onnx_report["model"]
    keras_params = tflite_report["metadata"]["keras_params"]
    assert keras_params == _reference(folder).count_params()
    assert tflite_report["metadata"]["resolution"] == [224, 224]
    assert f"Keras count_params: {keras_params:,}" in cli("inspect", tflite_file).stdout


@pytest.mark.parametrize(
    ("name", "fmt", "first_op"),
    [("efficientnet-b0.onnx", "onnx", "Conv"), ("efficientnet-b0.tflite", "tflite", "CONV_2D"),
     ("efficientnet-b0.keras", "keras", "Conv2D")],
)  # fmt: skip
def test_inspect(b0_export, cli, name, fmt, first_op):
    folder, _ = b0_export
    result = cli("inspect", folder / name, "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == fmt and report["ops"][first_op] >= 65
    assert report["inputs"][0]["shape"][1:] == [224, 224, 3]
    assert report["outputs"][0]["shape"][-1] == 1000
    assert 5_200_000 < report["params"] < 5_340_000  # converters fold BatchNorm into convs
    table = cli("inspect", folder / name).stdout
    assert f"({fmt}, " in table and f"{report['params']:,}" in table  # the JSON's figures


def test_second_export_without_force_keeps_the_first(b0_export, cli):
    folder, _ = b0_export
    before = (folder / "efficientnet-b0.onnx").read_bytes()
    result = cli("export", "-f", "onnx", "-o", folder)
    assert result.code == 2 and "already exists" in result.stderr
    assert (folder / "efficientnet-b0.onnx").read_bytes() == before


# Every reduced precision of the session's B0 (`b0_r64`: random weights, BatchNorm calibrated):
# fp16 is still held to its drift gate on noise (measured 1e-3..2e-2 ≤ 5e-2); dynamic and int8
# have no drift gate, and a random-weight model has no accuracy on real photos to keep, so
# they are kept with "accuracy not judged: random weights", having run with the right shapes.
# That each accuracy gate can fail is shown on the real Lite0 (test_torch_weights.py).
@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["fp16", "int8"])  # dynamic is gated as int8 is
def test_quantized_tflite_of_random_weights_is_kept_with_its_accuracy_not_judged(
    cli, b0_r64, quantize
):
    """The session's quantized exports (tests/conftest.py `b0_r64`), from their JSON reports."""
    (artifact,) = json.loads(b0_r64.export_report(quantize).read_text())["artifacts"]
    assert artifact["precision"] == quantize and artifact["path"].endswith(f"-{quantize}.tflite")
    check, gate = artifact["verification"], backends.get("tflite").precisions[quantize].gate
    assert check["passed"] and artifact["kept"] and check["batches"] == [1, 3], check
    assert gate.judges_accuracy  # judged on a trained model, not on this one
    assert (
        check["accuracy"]["not_judged"] == "random weights" and check["accuracy"]["passed"] is None
    )
    if quantize == "fp16":  # held to its drift gate even on noise
        assert gate.max_rel_diff is not None and check["max_rel_diff"] <= gate.max_rel_diff
    else:  # no drift gate: integer weights drift by design, real photos judge them
        assert gate.max_rel_diff is None
    if quantize == "int8":
        assert artifact["calibration"] == {"source": str(b0_r64.calibration), "images": 16}
    from ai_edge_litert.interpreter import Interpreter  # its names and metadata, as every file

    interpreter = Interpreter(model_path=artifact["path"])
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["input"], "outputs": ["probabilities"]}
    }
    report = json.loads(cli("inspect", artifact["path"], "--json").stdout)
    assert report["metadata"]["precision"] == quantize
    assert report["model"]["resolution"] == [64, 64]


@pytest.mark.slow
def test_odd_feature_maps_at_every_stride_2_export_to_onnx_and_tflite(cli, tmp_path):
    # B0 at 97: 97 -> 49 -> 25 -> 13 -> 7 -> 4, an odd map into every stride-2 convolution, where
    # the explicit padding differs from 'same' (B3 at 300 meets only two: 75 and 19).
    result = cli("export", "--resolution", "97", "--classifier-activation", "none", "-f",
                 "onnx,tflite", "-o", tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    artifacts = json.loads(result.stdout)["artifacts"]
    assert [a["format"] for a in artifacts] == ["onnx", "tflite"]
    for artifact in artifacts:
        assert artifact["verification"]["passed"] and artifact["verification"]["sizes"] == [97]
        assert artifact["verification"]["max_rel_diff"] <= 1e-4


def test_a_failed_file_exits_1_and_is_removed_while_the_passing_one_stays(
    cli, tmp_path, monkeypatch, b0_r64, prewritten
):
    # the gate and the clean-up are under test, not the converter: the .onnx is a copy of the
    # session's, of the same weights (tests/conftest.py `prewritten`)
    prewritten({("onnx", "fp32"): b0_r64.path("onnx")})
    strict = backends.Precision("file", backends.Gate(0.0))  # no drift passes zero
    record = backends.get("onnx")  # the copying record: its gate made strict below
    precisions = {**record.precisions, "fp32": strict}
    monkeypatch.setitem(backends.BACKENDS, "onnx", replace(record, precisions=precisions))
    source = b0_r64.path("keras")  # the session's B0 at 64: no build, no calibration here
    result = cli("export", "--from", source, "-f", "onnx,keras", "-o", tmp_path, "--json")
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "error: verification failed for efficientnet-b0-r64.onnx" in result.stderr
    kept = {a["format"]: a["kept"] for a in json.loads(result.stdout)["artifacts"]}
    assert kept == {"onnx": False, "keras": True}  # one failure never costs the files that passed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["efficientnet-b0-r64.keras"]


def test_comparable_all_fills_the_last_batch_of_a_fixed_batch_file_and_drops_the_fill():
    from effnet_cli.backends.runtimes import Runner

    def mean(images):  # a file that takes batches of exactly 3, answering each image's mean
        assert len(images) == 3
        return images.reshape(3, -1).mean(axis=1, keepdims=True)

    fixed = Runner("fixed", "cpu", "cpu", "fp32", mean, fixed_batch=3)
    images = np.arange(8, dtype="float32").reshape(8, 1, 1, 1)
    assert fixed.comparable_all(images).ravel().tolist() == list(range(8))


def _with_changed_head(source: Path, target: Path, change):
    """The .keras at `source` saved to `target` with its classifier's bias `change`d in place;
    returns the changed model."""
    model = keras.saving.load_model(source, safe_mode=True)
    layer = model.get_layer("predictions")
    kernel, bias = layer.get_weights()
    change(bias)
    layer.set_weights([kernel, bias])
    target.parent.mkdir(parents=True)
    model.save(target)
    return model


@pytest.mark.slow
def test_an_artifact_with_changed_weights_fails_verification_on_its_logits(
    cli, tmp_path, prewritten, b0_r64
):
    """Each format's file holds the session's weights (tests/conftest.py `b0_r64`: written by
    the real writers, each verified there), while the model export verifies it against has one
    class's bias moved by 1 (the largest logit is a few units): each artifact, verified by its
    own runtime, fails. What is under test is verification, not the writers: the files are
    copied in place of conversions (`prewritten`), and one export of every format but ONNX
    runs them all.

    The ONNX file is checked against a model with 3 added to every class's logit, which leaves
    a softmax's output exactly as it was: a check on probabilities would pass it, the check on
    logits must not."""

    def one_weight(bias):
        bias[7] += 1.0

    def shift_all(bias):
        bias += 3.0

    formats = backends.formats()
    prewritten({(fmt, "fp32"): b0_r64.path(fmt) for fmt in formats})
    name = f"{b0_r64.name}.keras"  # the artifacts' names, as export takes them from the file
    artifacts, models = [], {}
    for group, change in ((tuple(f for f in formats if f != "onnx"), one_weight),
                          (("onnx",), shift_all)):  # fmt: skip
        source = tmp_path / change.__name__ / name
        models[group] = _with_changed_head(b0_r64.path("keras"), source, change)
        out = tmp_path / f"out-{change.__name__}"  # export makes the folder, not its parent
        result = cli("export", "--from", source, "-f", ",".join(group), "-o", out,
                     "--keep-failed", "--json")  # fmt: skip
        assert result.code == 1, result.stderr
        artifacts += json.loads(result.stdout)["artifacts"]
        assert [a["format"] for a in artifacts[-len(group) :]] == list(group)
    assert sorted(a["format"] for a in artifacts) == sorted(formats)
    for artifact in artifacts:
        check = artifact["verification"]
        assert check["compared"] == "logits" and not check["passed"], artifact["format"]
        assert check["max_rel_diff"] > 100 * backends.FP32_GATE.max_rel_diff, artifact["format"]
        # failed, and kept only because --keep-failed asks (removed without it: the test above)
        assert artifact["kept"] and Path(artifact["path"]).exists(), artifact["format"]
    (artifact,) = (a for a in artifacts if a["format"] == "onnx")
    assert artifact["verification"]["top1_agreement"] == 1.0  # the ranking did not change
    import onnxruntime as ort

    session = ort.InferenceSession(artifact["path"], providers=["CPUExecutionProvider"])
    shifted = models[("onnx",)]  # a softmax head: the logits 3 higher, the outputs the same
    images = _images(2, 64)
    (probabilities,) = session.run(None, {"input": images})
    assert relative_diff(probabilities, shifted(images).numpy()) < 1e-4  # the outputs agree


def test_keras_file_with_a_lambda_is_refused_in_safe_mode(cli, tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    result = cli("inspect", path)
    assert result.code == 2 and "safe mode" in result.stderr


def test_agreement_on_ranks_ties_by_the_first_class_and_fits_heads_under_five_classes():
    from effnet_cli.util.drift import agreement_on

    reference = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    tied = np.array([[2.0, 2.0, 0.0], [0.0, 5.0, 1.0]])  # row 0: class 0 and 1 tie
    figures = agreement_on(tied, reference)
    assert figures["top1_agreement"] == 1.0  # the tie goes to class 0, as numpy's argmax has it
    assert figures["top_k_overlap"] == 1.0  # k = 3: a 3-class head's whole ranking
    signal, noise = (reference**2).sum(), ((tied - reference) ** 2).sum()
    assert figures["sqnr_db"] == pytest.approx(10 * np.log10(signal / noise))
    assert agreement_on(reference, reference)["sqnr_db"] is None  # equal: no noise, no infinity
