"""The backend registry: every command learns a backend from its record alone."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from effnet_cli import backends

from . import fake_backend

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "fake", fake_backend.RECORD)


def test_export_bench_inspect_and_doctor_know_a_registered_backend(
    cli, fake, tmp_path, idle_probes
):
    exported = cli("export", "--resolution", "64", "--seed", "0", "-f", "fake", "-o", tmp_path,
                   "--json")  # fmt: skip
    assert exported.code == 0, exported.stderr
    (artifact,) = json.loads(exported.stdout)["artifacts"]
    assert artifact["format"] == "fake" and artifact["verification"]["passed"]
    path = tmp_path / "efficientnet-b0-r64.fake"
    assert artifact["path"] == str(path) and path.is_file()

    inspected = json.loads(cli("inspect", path, "--json").stdout)
    assert inspected["format"] == "fake" and inspected["ops"]["Conv2D"] > 40

    benched = cli("bench", "--resolution", "64", "--runtime", "fake", "--batch", "1",
                  "--iterations", "2", "--warmup", "0", "--json")  # fmt: skip
    assert benched.code == 0, benched.stderr
    (row,) = json.loads(benched.stdout)["rows"]
    assert row["runtime"] == "fake" and row["drift_max_rel"] <= 1e-4

    doctor = json.loads(cli("doctor", "--json").stdout)
    assert "fake" in [b["name"] for b in doctor["backends"]]
    assert "pytest" in [p["name"] for p in doctor["packages"]]


def test_help_lists_a_registered_backend():
    script = (
        "from tests import fake_backend; from effnet_cli import backends; "
        "backends.register(fake_backend.RECORD); from effnet_cli.cli.app import main; "
        "import sys; sys.exit(main(sys.argv[1:]))"
    )
    for command in ("export", "bench", "inspect"):
        argv = [sys.executable, "-c", script, command, "--help"]
        wide = {**os.environ, "COLUMNS": "200"}
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=wide)
        assert result.returncode == 0, result.stderr
        assert "fake" in result.stdout, command


def test_a_quantize_mode_a_format_lacks_is_refused_naming_who_has_it(cli, tmp_path):
    result = cli("export", "-f", "onnx,tflite", "--quantize", "dynamic", "-o", tmp_path)
    assert result.code == 2
    assert result.stderr.startswith(
        "error: --quantize dynamic is not a precision of onnx; it applies to tflite"
    )


def test_an_artifact_is_keyed_by_backend_and_precision():
    tflite, openvino = backends.get("tflite"), backends.get("openvino")
    assert tflite.artifact_name("efficientnet-b0", "int8") == "efficientnet-b0-int8.tflite"
    assert tflite.artifact_name("efficientnet-b0", "fp32") == "efficientnet-b0.tflite"
    # a runtime hint runs the fp32 file: no file of its own
    assert openvino.artifact_name("efficientnet-b0", "bf16") == "efficientnet-b0_openvino"
    assert {p: w.how for p, w in openvino.precisions.items()} == {
        "fp32": "file", "bf16": "hint", "fp16": "hint", "int8": "file"}  # fmt: skip
    # NNCF's int8 is a file of its own, calibrated like ONNX's and TFLite's
    assert openvino.artifact_name("efficientnet-b0", "int8") == "efficientnet-b0-int8_openvino"
    assert openvino.precisions["int8"] == backends.get("onnx").precisions["int8"]
    assert backends.get("keras").precisions["bf16"].how == "policy"


def test_every_file_precision_has_a_gate_and_nothing_else_does():
    ways = [(b.name, p, w) for b in backends.BACKENDS.values() for p, w in b.precisions.items()]
    assert {way.how for _, _, way in ways} >= {"file", "hint", "policy"}  # each kind is checked
    for name, precision, way in ways:
        assert (way.gate is not None) == (way.how == "file"), (name, precision)


def test_a_runtime_over_another_backends_format_needs_no_special_case(monkeypatch, tmp_path):
    """Keras on another runtime (JAX, torch) is one record over the Keras format: it reads and
    names `.keras` files as Keras does, `export -f` still writes the format once, and a file is
    still its format's own runtime's."""
    from dataclasses import replace

    keras = backends.get("keras")
    twin = replace(keras, name="keras-twin", summary="Keras over another runtime")
    monkeypatch.setitem(backends.BACKENDS, twin.name, twin)
    assert twin.format is keras.format and twin.write is None and keras.write is not None
    assert "keras-twin" not in backends.formats() and "keras-twin" in backends.bench_runtimes()
    assert twin.artifact_name("efficientnet-b0", "fp32") == "efficientnet-b0.keras"
    (tmp_path / "m.keras").write_bytes(b"")
    assert backends.of_path(tmp_path / "m.keras") is keras


def test_a_file_loaded_for_its_outputs_is_labelled_by_its_metadata_on_a_copy():
    """predict's outputs-only loader labels the runner with the precision the file's metadata
    names, whatever its loader assumed, and reads its contract from the same metadata; the
    loader's own runner, which a caller may hold, keeps its label."""
    from types import SimpleNamespace

    from effnet_cli.backends.runtimes import Runner
    from effnet_cli.workflows import classify

    metadata = {"resolution": "64x64", "precision": "int8", "model": "efficientnet-b0-r64"}
    loaded = Runner("onnx", "cpu", "CPU", "fp32", lambda images: images, metadata=metadata)
    backend = SimpleNamespace(load_outputs=lambda path, threads: loaded)
    notes: list[str] = []
    runner, contract = classify.load_outputs(backend, Path("m.onnx"), notes.append, None)
    assert (contract.precision, contract.resolution) == ("int8", 64)
    assert contract.name == "efficientnet-b0-r64"
    assert (runner.precision, runner.run, runner.metadata) == ("int8", loaded.run, metadata)
    assert loaded.precision == "fp32" and notes == []


def test_onnx_export_is_optimized_by_default(cli, tmp_path, b0_r64):
    import onnx

    # the session's B0 (tests/conftest.py): `effnet export --resolution 64` without --no-optimize
    optimized = b0_r64.path("onnx")
    raw = cli("export", "--resolution", "64", "-f", "onnx", "-o", tmp_path / "raw",
              "--no-optimize")  # fmt: skip
    assert raw.code == 0, raw.stderr

    def ops(path):
        return [node.op_type for node in onnx.load(str(path)).graph.node]

    # onnxslim folds the four stride-2 Pads into their convolutions
    assert "Pad" not in ops(optimized)
    assert ops(tmp_path / "raw" / "efficientnet-b0-r64.onnx").count("Pad") == 4


@pytest.mark.slow
def test_onnx_fp16_and_int8_are_files_of_their_own_verified_and_benched(
    cli, tmp_path, b0_r64, b0_r64_onnx_fp16, prewritten, idle_probes
):
    import numpy as np
    import onnx

    calibration = tmp_path / "calibration.npy"
    np.save(
        calibration, np.random.default_rng(0).uniform(0, 255, (16, 64, 64, 3)).astype("float32")
    )
    # the session's B0 at 64 (seed 0, calibrated): no build here
    options = ["--from", b0_r64.path("keras"), "-f", "onnx", "--keep-failed", "--json"]

    # fp16: the session's `export *options --quantize fp16` (tests/conftest.py
    # `b0_r64_onnx_fp16`; it exited 0), its file and its report
    fp16_path, fp16_report = b0_r64_onnx_fp16
    (artifact,) = fp16_report["artifacts"]
    assert artifact["path"] == str(fp16_path)
    assert artifact["path"].endswith("-fp16.onnx") and artifact["precision"] == "fp16"
    assert artifact["verification"]["passed"] and artifact["verification"]["max_rel_diff"] <= 5e-2
    model = onnx.shape_inference.infer_shapes(onnx.load(artifact["path"]))
    elem = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    means = [n for n in model.graph.node if n.op_type in ("ReduceMean", "GlobalAveragePool")]
    assert means and all(elem.get(n.input[0]) == onnx.TensorProto.FLOAT for n in means)

    int8 = cli("export", *options, "--quantize", "int8", "--calibration", calibration,
               "-o", tmp_path / "int8")  # fmt: skip
    (artifact,) = json.loads(int8.stdout)["artifacts"]
    check = artifact["verification"]
    # random weights: no accuracy on real photos to keep, so the file is only run (drift on
    # noise, reported) and kept; the gate that fails on real photos: test_torch_weights.py
    assert check["batches"] == [1, 3] and check["accuracy"]["not_judged"] == "random weights"
    assert check["passed"] and int8.code == 0 and artifact["kept"], int8.stderr
    model = onnx.load(artifact["path"])
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops  # QDQ
    scale_sizes = {i.name: math.prod(i.dims) for i in model.graph.initializer}
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    per_channel = [n for n in dequantize if scale_sizes.get(n.input[1], 1) > 1]
    assert len(per_channel) >= 40  # every convolution's weights, one scale per output channel

    # bench runs the three files just checked (copied in place of its conversions) on the
    # weights `--seed 0` builds again: what is benched is what was verified
    prewritten({("onnx", "fp32"): b0_r64.path("onnx"), ("onnx", "fp16"): fp16_path,
                ("onnx", "int8"): Path(artifact["path"])})  # fmt: skip
    benched = cli("bench", "--resolution", "64", "--seed", "0", "--runtime", "onnx",
                  "--precision", "fp32,fp16,int8", "--calibration", calibration, "--batch", "1",
                  "--iterations", "2", "--warmup", "0", "--json")  # fmt: skip
    assert benched.code == 0, benched.stderr
    rows = {row["precision"]: row for row in json.loads(benched.stdout)["rows"]}
    assert set(rows) == {"fp32", "fp16", "int8"}
    assert rows["fp32"]["drift_max_rel"] <= 1e-4 and rows["fp16"]["drift_max_rel"] <= 5e-2
    assert rows["int8"]["drift_max_rel"] > rows["fp16"]["drift_max_rel"]  # integer weights
