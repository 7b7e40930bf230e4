"""OpenVINO int8: NNCF's post-training quantization written into an IR of its own, verified
against the quantized gate, labelled int8 only when it is, and benched beside fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow  # tf2onnx and NNCF: about 50 s an IR at 64 px on 2 cores


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("calibration") / "cal.npy"
    np.save(path, np.random.default_rng(0).uniform(0, 255, (16, 64, 64, 3)).astype("float32"))
    return path


@pytest.fixture(scope="module")
def int8_export(calibration, tmp_path_factory):
    folder = tmp_path_factory.mktemp("openvino-int8")
    result = run_cli("export", "--resolution", "64", "--seed", "0", "-f", "openvino", "--quantize",
                     "int8", "--calibration", calibration, "--keep-failed", "-o", folder,
                     "--json")  # fmt: skip
    (artifact,) = json.loads(result.stdout)["artifacts"]
    return result.code, artifact, result.stderr


def test_int8_export_writes_its_own_ir_verified_against_the_quantized_gate(int8_export):
    code, artifact, stderr = int8_export
    assert artifact["path"].endswith("efficientnet-b0-r64-int8_openvino")
    assert artifact["format"] == "openvino" and artifact["precision"] == "int8"
    check = artifact["verification"]
    # random weights: no accuracy on real photos to keep; the IR is run (drift reported) and kept
    assert check["batches"] == [1, 3] and check["accuracy"]["not_judged"] == "random weights"
    assert check["passed"] and code == 0 and artifact["kept"], stderr
    assert check["compared"] == "logits" and check["tolerance"] is None


def test_the_int8_ir_holds_fake_quantize_int8_weights_and_a_float_softmax(int8_export):
    import openvino as ov

    _, artifact, _ = int8_export
    model = ov.Core().read_model(f"{artifact['path']}/model.xml")
    ops = [op.get_type_name() for op in model.get_ops()]
    assert ops.count("FakeQuantize") >= 60  # before every convolution and the dense layer
    weights = {op.get_output_element_type(0).get_type_name() for op in model.get_ops()
               if op.get_type_name() == "Constant"}  # fmt: skip
    assert "i8" in weights and "f16" not in weights  # int8 weights; no fp16 compression
    softmax = model.get_results()[0].input_value(0).get_node()
    assert softmax.get_type_name() == "Softmax"
    logits = softmax.input_value(0).get_node()  # the dense layer: float logits, not quantized
    assert logits.get_type_name() != "FakeQuantize"
    assert logits.get_output_element_type(0) == ov.Type.f32


def test_inspect_shows_the_int8_ir(int8_export, cli):
    _, artifact, _ = int8_export
    report = json.loads(cli("inspect", artifact["path"], "--json").stdout)
    assert report["format"] == "openvino" and report["metadata"]["precision"] == "int8"
    assert report["ops"]["FakeQuantize"] >= 60


def test_the_runner_labels_int8_with_its_float_parts_pinned_to_f32(int8_export, monkeypatch):
    """On a CPU with bf16 OpenVINO would run what stays float in bf16 unless told f32."""
    import openvino as ov

    from effnet_cli import backends
    from effnet_cli.backends import openvino

    _, artifact, _ = int8_export
    seen = []
    real = openvino.compiled_precision
    monkeypatch.setattr(openvino, "compiled_precision", lambda c: seen.append(real(c)) or seen[-1])
    runner = backends.load_runner("openvino", Path(artifact["path"]), precision="int8")
    assert runner.precision == "int8" and seen == [ov.Type.f32]
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    probabilities, logits = runner.run(images), runner.comparable(images)
    assert probabilities.shape == logits.shape == (2, 1000) and runner.compared == "logits"
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(probabilities, shifted / shifted.sum(axis=1, keepdims=True), atol=1e-5)


def test_an_ir_is_never_labelled_with_a_precision_it_does_not_hold(int8_export):
    from effnet_cli import backends
    from effnet_cli.util.errors import WorkError

    _, artifact, _ = int8_export
    with pytest.raises(WorkError, match="FakeQuantize operations: it is not an OpenVINO fp32 IR"):
        backends.load_runner("openvino", Path(artifact["path"]), precision="fp32")


def test_int8_that_the_cpu_would_not_run_in_int8_is_refused(int8_export, monkeypatch):
    from effnet_cli import backends
    from effnet_cli.backends import openvino, runtimes

    _, artifact, _ = int8_export
    monkeypatch.setattr(openvino, "compiled_int8_layers", lambda _: 0)
    with pytest.raises(runtimes.PrecisionUnavailable, match="refused rather than emulated"):
        backends.load_runner("openvino", Path(artifact["path"]), precision="int8")
    monkeypatch.setattr(openvino, "openvino_capabilities", lambda: ("FP32", "BIN"))
    with pytest.raises(runtimes.PrecisionUnavailable, match="int8 is not native on this CPU"):
        backends.load_runner("openvino", Path(artifact["path"]), precision="int8")


def test_bench_gives_fp32_and_int8_rows_from_two_irs(
    cli, int8_export, b0_r64, prewritten, idle_probes
):
    """Bench's two IRs are the session's fp32 IR and int8_export's (copied in place of its
    conversions: the int8 writer is what int8_export and the pinned-batch test run), of the
    weights `--seed 0` builds again here. Without --calibration the int8 row is not skipped:
    bench calibrates as export does, on the shipped photos."""
    _, artifact, _ = int8_export
    prewritten({("openvino", "fp32"): b0_r64.path("openvino"),
                ("openvino", "int8"): Path(artifact["path"])})  # fmt: skip
    result = cli("bench", "--runtime", "openvino", "--precision", "fp32,int8",
                 "--resolution", "64", "--seed", "0", "--batch", "1",
                 "--iterations", "2", "--warmup", "0", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {row["precision"]: row for row in document["rows"]}
    assert set(rows) == {"fp32", "int8"} and document["skipped"] == []
    assert rows["fp32"]["drift_max_rel"] <= 1e-4  # random weights: accuracy is not judged
    assert all(row["not_judged"] == "random weights" for row in rows.values())
    assert rows["int8"]["drift_max_rel"] > rows["fp32"]["drift_max_rel"]  # integer weights
    assert all(row["runtime"] == "openvino" and row["threads"] for row in rows.values())
    # Seeded, bench's model is `export --seed 0`'s (the session's b0_r64 .keras holds it): the
    # int8 row's drift is the int8 IR's against Keras on bench's one image, the first of rng(0),
    # computed here without bench.
    from effnet_cli import backends
    from effnet_cli.workflows.export import compare

    image = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    keras_logits = backends.load_runner("keras", b0_r64.path("keras")).comparable(image)
    int8 = backends.load_runner("openvino", Path(artifact["path"]), precision="int8")
    drift, _ = compare(np.asarray(int8.comparable(image), "float32"), keras_logits)
    assert rows["int8"]["drift_max_rel"] == pytest.approx(drift, rel=1e-3)


def test_calibration_batches_take_the_pinned_batch_size():
    from effnet_cli.backends.artifact import calibration_batches

    images = np.arange(6, dtype="float32").reshape(6, 1, 1, 1)
    one = calibration_batches(images, None)
    assert len(one) == 6 and all(b.shape == (1, 1, 1, 1) for b in one)
    four = calibration_batches(images, 4)
    assert [b.ravel().tolist() for b in four] == [[0, 1, 2, 3], [4, 5, 0, 1]]  # the last filled
    assert calibration_batches(images[:2], 4)[0].ravel().tolist() == [0, 1, 0, 1]


def test_int8_of_a_pinned_batch_calibrates_and_verifies_in_that_batch(cli, calibration, tmp_path):
    """`--recommend` prints `export -f openvino --batch 8 --quantize int8 …` for an OpenVINO
    int8 row: a static-batch graph takes its calibration images in batches of its size (one at
    a time, onnxruntime and NNCF refuse the shape), and the real images (8, run 3 at a time, the
    last batch filled) are all answered, not only one batch's worth."""
    from effnet_cli import samples

    result = cli("export", "--resolution", "64", "--seed", "0", "-f", "onnx,openvino",
                 "--batch", "3", "--quantize", "int8", "--calibration", calibration,
                 "--verify-images", samples.folder(), "-o", tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    artifacts = json.loads(result.stdout)["artifacts"]
    assert [a["format"] for a in artifacts] == ["onnx", "openvino"]
    for artifact in artifacts:
        check = artifact["verification"]
        accuracy = check["accuracy"]
        assert check["batches"] == [3] and accuracy["images"] == len(samples.paths()), check
        assert accuracy["not_judged"] == "random weights" and accuracy["passed"] is None
        assert accuracy["sqnr_db"] is not None  # measured: int8 never equals Keras exactly
        shown = json.loads(cli("inspect", artifact["path"], "--json").stdout)
        assert shown["inputs"][0]["shape"] == [3, 64, 64, 3], shown["inputs"]
        assert shown["metadata"]["precision"] == "int8"
