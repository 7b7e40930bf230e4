"""OpenVINO as an export format and a bench runtime; precision pinned and reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import relative_diff


@pytest.fixture(scope="module")
def b0_openvino(b0_224):
    """B0 at 224 (logits head) as an OpenVINO IR beside its .keras, from the session's one
    export of every format (tests/conftest.py `b0_224`). Returns (folder, JSON report)."""
    return b0_224


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


def test_compiled_precision_is_named_by_type_not_text():
    import openvino as ov

    from effnet_cli.backends.openvino import openvino_label
    from effnet_cli.util.errors import WorkError

    assert "float16" in str(ov.Type.bf16)  # the trap: bf16's text contains "float16"
    assert [openvino_label(t) for t in (ov.Type.f32, ov.Type.bf16, ov.Type.f16)] == [
        "fp32", "bf16", "fp16"]  # fmt: skip
    with pytest.raises(WorkError, match="does not name"):
        openvino_label(ov.Type.i8)


# --seed 0 builds the session's B0 at 64 again (tests/conftest.py `b0_r64`), whose IR `ir_of_b0_r64`
# hands bench in place of a conversion
BENCH = ("bench", "--resolution", "64", "--seed", "0", "--runtime", "openvino", "--batch", "2",
         "--iterations", "2", "--warmup", "1", "--json")  # fmt: skip


@pytest.fixture
def ir_of_b0_r64(prewritten, b0_r64, idle_probes):
    """bench's OpenVINO conversion replaced by a copy of the session's IR of the same weights:
    the tests below are about the label a CPU earns, not the converter (tests/test_bench.py's
    run converts). The fp32 row's drift against Keras still shows the weights are the same.
    Nor are they about bench's ceilings: the probes are faked (tests/conftest.py)."""
    prewritten({("openvino", "fp32"): b0_r64.path("openvino")})


def _fake_cpu(monkeypatch, openvino_capabilities, compiled=None):
    """OpenVINO's reading of the CPU, and optionally the type it reports having compiled."""
    from effnet_cli.backends import openvino

    monkeypatch.setattr(openvino, "openvino_capabilities", lambda: openvino_capabilities)
    if compiled is not None:
        monkeypatch.setattr(openvino, "compiled_precision", lambda _: compiled)


def test_a_cpu_without_bf16_or_fp16_refuses_them_with_the_reason(cli, monkeypatch, ir_of_b0_r64):
    _fake_cpu(monkeypatch, ("FP32", "INT8", "BIN", "EXPORT_IMPORT"))  # an AVX2-only EPYC
    result = cli(*BENCH, "--precision", "fp32,bf16,fp16")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert {row["precision"] for row in document["rows"]} == {"fp32"}
    fp32 = document["rows"][0]
    assert fp32["drift_max_rel"] <= 1e-4 and fp32["not_judged"] == "random weights"
    skipped = {s["precision"]: s["reason"] for s in document["skipped"]}
    assert set(skipped) == {"bf16", "fp16"}
    assert all("not native on this CPU" in reason for reason in skipped.values())
    table = cli(*BENCH[:-1], "--precision", "fp32,bf16,fp16")
    assert "skipped openvino bf16: bf16 is not native" in " ".join(table.stdout.split())


def test_a_bf16_cpu_gives_a_row_labelled_bf16(cli, monkeypatch, ir_of_b0_r64):
    import openvino as ov

    # An AVX512_BF16 EPYC, whose compiled precision reads back as bfloat16 (faked on CPUs
    # without it, so that this branch runs on every machine)
    _fake_cpu(monkeypatch, ("BF16", "WINOGRAD", "FP32", "INT8", "BIN"), compiled=ov.Type.bf16)
    result = cli(*BENCH, "--precision", "bf16")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    (row,) = document["rows"]
    assert row["precision"] == "bf16" and row["drift_max_rel"] >= 0
    assert [s["precision"] for s in document["skipped"]] == []


def test_a_precision_other_than_the_one_asked_is_never_a_row(cli, monkeypatch, ir_of_b0_r64):
    import openvino as ov

    # OpenVINO says BF16 but compiles f32 (a hint it ignored): no row may call that bf16
    _fake_cpu(monkeypatch, ("BF16", "FP32"), compiled=ov.Type.f32)
    result = cli(*BENCH, "--precision", "bf16")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rows"] == []
    (skip,) = document["skipped"]
    assert skip["reason"] == "OpenVINO compiled fp32 when asked for bf16"


def test_each_native_precision_runs_as_labelled_on_this_cpu(b0_openvino):
    """No fakes: what this machine's OpenVINO compiles is what the runner is labelled."""
    import openvino as ov

    from effnet_cli import backends
    from effnet_cli.backends import openvino, runtimes

    folder, _ = b0_openvino
    ir = folder / "efficientnet-b0_openvino"
    for precision, hint in openvino.OPENVINO_HINTS.items():
        if not openvino.native_in_openvino(precision):
            with pytest.raises(runtimes.PrecisionUnavailable, match="not native on this CPU"):
                backends.load_runner("openvino", ir, precision=precision)
            continue
        runner = backends.load_runner("openvino", ir, precision=precision)
        compiled = ov.Core().compile_model(
            str(ir / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": hint}
        )
        assert compiled.get_property("INFERENCE_PRECISION_HINT") == getattr(ov.Type, hint)
        assert runner.precision == precision


def test_doctor_reports_openvino(cli):
    result = cli("doctor", "--json")
    report = json.loads(result.stdout)
    versions = {p["name"]: p["version"] for p in report["packages"]}
    assert versions["openvino"] and versions["onnxruntime"] and versions["tensorflow"]
    assert result.code == (0 if report["ok"] else 1)
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]


def test_bench_times_each_batch_on_the_ir_compiled_for_that_batch(b0_openvino):
    """OpenVINO runs a static shape faster than a dynamic one (benchmarks/run.py): bench pins
    the batch of each row, says so, and the pinned IR computes what the dynamic one does."""
    from effnet_cli import backends
    from effnet_cli.workflows.bench import at_batch

    folder, _ = b0_openvino
    general = backends.load_runner("openvino", folder / "efficientnet-b0_openvino", threads=2)
    assert general.fixed_batch is None and "static" not in general.settings
    pinned = at_batch(general, 3)
    assert pinned.fixed_batch == 3  # read back from the compiled model's input shape
    assert pinned.settings.endswith("static batch 3") and pinned.pinned is None
    assert "static batch 3" in pinned.streams(None).settings
    images = np.random.default_rng(1).uniform(0, 255, (3, 224, 224, 3)).astype("float32")
    expected = general.comparable(images)
    assert np.abs(expected).max() > 1e-2  # calibrated statistics, real logits
    assert relative_diff(pinned.comparable(images), expected) <= 1e-5
    assert relative_diff(pinned.run(images), general.run(images)) <= 1e-5


def test_onnx_and_openvino_of_one_export_share_one_tf2onnx_conversion(
    cli, tmp_path, monkeypatch, b0_r64
):
    """The IR is made from the same tf2onnx graph as the .onnx, slimmed once (converted once,
    ~7 s saved a model); both still verify against Keras, and nothing is kept past the
    command."""
    import onnxslim
    import tf2onnx

    from effnet_cli.backends import onnx as onnx_backend

    calls: list[str] = []
    real, slim = tf2onnx.convert.from_keras, onnxslim.slim

    def counted(model, *args, **kwargs):
        calls.append(model.name)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(tf2onnx.convert, "from_keras", counted)
    monkeypatch.setattr(onnxslim, "slim", lambda proto: calls.append("slim") or slim(proto))
    result = cli("export", "--from", b0_r64.path("keras"), "-f", "onnx,openvino", "-o",
                 tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    artifacts = json.loads(result.stdout)["artifacts"]
    assert [a["format"] for a in artifacts] == ["onnx", "openvino"]
    assert calls == [calls[0], "slim"]  # one conversion, slimmed once
    assert all(a["verification"]["max_rel_diff"] <= 1e-4 for a in artifacts)
    assert onnx_backend._conversions is None
