"""OpenVINO as an export format and a bench runtime; precision pinned and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import relative_diff


@pytest.fixture(scope="module")
def b0_openvino(tmp_path_factory):
    from typer.testing import CliRunner

    from effnet_cli.cli import main

    folder = tmp_path_factory.mktemp("openvino")
    with CliRunner().isolation() as (out, err, _):
        code = main(["export", "--phi", "0", "--classifier-activation", "none", "--seed", "5",
                     "-f", "openvino,keras", "-o", str(folder), "--json"])  # fmt: skip
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert code == 0, stderr
    return folder, json.loads(stdout)


def test_b0_exports_to_openvino_ir_and_verifies_in_fp32(b0_openvino):
    folder, report = b0_openvino
    artifact = next(a for a in report["artifacts"] if a["format"] == "openvino")
    assert artifact["precision"] == "fp32" and artifact["verification"]["max_rel_diff"] <= 1e-4
    ir = folder / "efficientnet-b0_openvino"
    assert sorted(p.name for p in ir.iterdir()) == ["model.bin", "model.xml"]


def test_openvino_ir_runs_in_openvino_with_fp32_weights(b0_openvino):
    import keras
    import openvino as ov

    folder, _ = b0_openvino
    core = ov.Core()
    model = core.read_model(str(folder / "efficientnet-b0_openvino" / "model.xml"))
    weights = {op.get_output_element_type(0).get_type_name() for op in model.get_ops()
               if op.get_type_name() == "Constant" and op.get_output_size()}  # fmt: skip
    assert "f16" not in weights  # save_model's default fp16 compression was turned off
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    reference = keras.saving.load_model(folder / "efficientnet-b0.keras")
    images = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    expected = reference(images).numpy()
    assert np.abs(expected).max() > 1e-2  # calibrated statistics, real logits
    got = compiled(images)[compiled.outputs[0]]
    assert relative_diff(got, expected) <= 1e-4


def test_inspect_openvino(b0_openvino, cli):
    folder, _ = b0_openvino
    report = json.loads(cli("inspect", folder / "efficientnet-b0_openvino", "--json").stdout)
    assert report["format"] == "openvino" and report["metadata"]["model"] == "efficientnet-b0"
    assert report["inputs"][0]["shape"] == [None, 224, 224, 3] and report["ops"]["Convolution"] > 40


def test_bench_reports_the_precision_it_used(cli):
    import openvino as ov

    result = cli("bench", "--resolution", "64", "--runtime", "openvino", "--precision", "fp32,bf16",
                 "--batch", "2", "--iterations", "3", "--warmup", "1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {row["precision"]: row for row in document["rows"]}
    assert rows["fp32"]["provider"] == "OpenVINO CPU" and rows["fp32"]["drift_max_rel"] <= 1e-4
    assert rows["fp32"]["top1_agreement"] == 1.0
    native_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if native_bf16:
        assert 0 < rows["bf16"]["drift_max_rel"] < 0.5 and 0 <= rows["bf16"]["top1_agreement"] <= 1
    else:  # refused, with the reason, never silently emulated
        (skip,) = [s for s in document["skipped"] if s["precision"] == "bf16"]
        assert "not native on this CPU" in skip["reason"] and "bf16" not in rows


def test_keras_bf16_is_labelled_emulated_where_the_cpu_lacks_it(cli):
    from effnet_cli.bench import native_bf16_cpu

    result = cli("bench", "--resolution", "64", "--runtime", "keras", "--precision", "bf16",
                 "--batch", "1", "--iterations", "2", "--warmup", "1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    (row,) = json.loads(result.stdout)["rows"]
    assert row["precision"] == ("bf16" if native_bf16_cpu() else "bf16-emulated")
    # bf16 is not bit-exact: the drift is measured and reported, whatever its size
    assert 0 < row["drift_max_rel"] < float("inf") and 0 <= row["top1_agreement"] <= 1


def test_doctor_reports_openvino(cli):
    result = cli("doctor", "--json")
    report = json.loads(result.stdout)
    versions = {p["name"]: p["version"] for p in report["packages"]}
    assert versions["openvino"] and versions["onnxruntime"] and versions["tensorflow"]
    assert result.code == (0 if report["ok"] else 1)
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
