"""Every gate and every report fails on non-finite numbers (issue #34): drift, agreement and
SQNR refuse NaN and infinities instead of comparing them, an ONNX file whose weights hold NaN
is marked by `predict` (the image's row) and by `bench` (the row, and exit 1), and export
fails a file that answers NaN. The file is the shared B0 at 64 px with one initializer NaN."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from effnet_cli.util import drift
from effnet_cli.util.drift import NonFinite

from .conftest import run_cli

PHOTO = Path(__file__).resolve().parent.parent / "effnet_cli" / "samples" / "cat.jpg"


@pytest.fixture(scope="module")
def nan_onnx(b0_r64, tmp_path_factory) -> Path:
    """b0_r64's ONNX file with its largest float initializer set to NaN."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(b0_r64.path("onnx"))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(largest).copy()
    values[...] = np.nan
    largest.CopyFrom(numpy_helper.from_array(values, largest.name))
    path = tmp_path_factory.mktemp("nan") / "nan.onnx"
    onnx.save(model, path)
    return path


def one_error_line(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in stderr
    return line


# ------------------------------------------------------------------ the measures themselves


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("side", ["outputs", "reference"])
def test_drift_and_agreement_refuse_what_is_not_finite(bad, side):
    """One non-finite value on either side is named, never measured: compare's `max` and
    argmax would skip a NaN, and agreement_on's SQNR would be nan."""
    good = np.random.default_rng(0).normal(size=(4, 10)).astype(np.float32)
    broken = good.copy()
    broken[2, 3] = bad
    outputs, reference = (broken, good) if side == "outputs" else (good, broken)
    whose = "its outputs" if side == "outputs" else "the reference's outputs"
    kind = "NaN value" if np.isnan(bad) else "infinite value"
    for measure in (drift.compare, drift.agreement_on):
        with pytest.raises(NonFinite, match=f"^{whose} hold 1 {kind} of 40$"):
            measure(outputs, reference)
    assert drift.compare(good, good) == (0.0, 1.0)  # and finite ones are measured


def test_non_finite_counts_each_kind():
    values = np.array([np.nan, np.nan, np.inf, 1.0, -np.inf], np.float32)
    assert drift.non_finite(values) == "2 NaN values and 2 infinite values"
    assert drift.non_finite(np.ones(3, np.float32)) is None


def test_export_fails_a_file_that_answers_nan(monkeypatch):
    """verify() on a file whose outputs are NaN: failed, no drift figure, the reason kept (a
    runner stands in for the runtime; the CLI path is in tests/test_hostile_weights.py)."""
    from effnet_cli import backends
    from effnet_cli.workflows import export as E

    target = E.Target(backend="onnx", precision="fp32", path=Path("x.onnx"))

    def nan_logits(images):
        return np.full((len(images), 10), np.nan, np.float32)

    runner = SimpleNamespace(compared="logits", fixed_batch=None, comparable_all=nan_logits)
    monkeypatch.setattr(backends, "load_runner", lambda *a, **k: runner)
    inputs = {(2, 8): np.zeros((2, 8, 8, 3), np.float32)}
    expected = {(2, 8): np.ones((2, 10), np.float32)}
    verification = E.verify(target, Path("x.onnx"), inputs, expected, "logits")
    assert verification.passed is False and verification.max_rel_diff is None
    assert verification.non_finite == "its outputs hold 20 NaN values of 20"
    artifact = E.Artifact(format="onnx", path=Path("x.onnx"), precision="fp32", bytes=1,
                          time_s=0.0, kept=False, verification=verification)  # fmt: skip
    assert E.non_finite_note(artifact) == " (its outputs hold 20 NaN values of 20)"


# ------------------------------------------------------------------------- the commands


def test_predict_marks_an_image_whose_scores_are_nan(nan_onnx, tmp_path):
    """No class is shown for NaN scores: the image's row says why, and the run ends with
    exit 4 (some images failed), as for an unreadable image."""
    out = tmp_path / "rows.jsonl"
    result = run_cli("predict", "--from", nan_onnx, PHOTO, "--output", out)
    assert result.code == 4, result.stderr
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["error"] == f"{nan_onnx} gave non-finite scores", row
    assert row["class_1"] is None and row["probability_1"] is None
    assert "0 classified, 1 failed" in result.stdout + result.stderr


def test_predict_compare_refuses_an_artifact_that_answers_nan(b0_r64, nan_onnx):
    result = run_cli("predict", "--from", b0_r64.path("onnx"), "--compare", nan_onnx, PHOTO)
    assert result.code == 1, result.stderr
    assert one_error_line(result.stderr) == (
        f"error: {nan_onnx} answered 1,000 NaN values of 1,000 probabilities"
    )


def test_bench_marks_a_row_whose_outputs_are_nan_and_exits_1(nan_onnx, idle_probes):
    """The row is printed, marked "not finite" in place of a drift, and bench exits 1: a
    broken file's speed is no result a CI job may read as one."""
    args = ["bench", "--from", nan_onnx, "--batch", "1", "--warmup", "1", "--iterations", "2",
            "--mode", "latency"]  # fmt: skip
    shown = run_cli(*args)
    assert shown.code == 1, shown.stderr
    assert "not finite" in shown.stdout
    assert one_error_line(shown.stderr).startswith(
        "error: 1 row answered NaN or infinities; first: onnx fp32 at batch 1: "
        "not finite: its outputs hold "
    )
    document = json.loads(run_cli(*args, "--json").stdout)
    (row,) = document["rows"]
    assert row["drift"].startswith("not finite: its outputs hold ")
    assert row.get("drift_max_rel") is None
