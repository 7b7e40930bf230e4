"""`effnet bench`: statistics, device honesty, CSV/JSON/plot, and the CI regression gate."""

from __future__ import annotations

import csv
import io
import json

import pytest

from effnet_cli import bench as B

STATS = ("latency_ms_mean", "latency_ms_std", "latency_ms_min", "latency_ms_p50",
         "latency_ms_p90", "latency_ms_p99", "images_per_s", "macs_per_s", "ceiling_fraction",
         "first_inference_ms", "setup_s")  # fmt: skip


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """B0 at 64×64 over every runtime and two batch sizes, a few iterations each."""
    from typer.testing import CliRunner

    from effnet_cli.cli import main

    folder = tmp_path_factory.mktemp("bench")
    args = ["bench", "--resolution", "64", "--runtime", "all", "--batch", "1,4", "--warmup", "1",
            "--iterations", "5", "--threads", "2", "--csv", str(folder / "rows.csv"),
            "--plot", str(folder / "bench.png"), "--json"]  # fmt: skip
    with CliRunner().isolation() as (out, err, _):
        code = main(args)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert code == 0, stderr
    return folder, json.loads(stdout), stdout


def test_every_statistic_is_positive_and_ordered(short_run):
    _, result, _ = short_run
    assert result["schema"] == "effnet.bench/1"
    rows = result["rows"]
    assert {(r["runtime"], r["batch"]) for r in rows} == {
        (runtime, batch) for runtime in ("keras", "onnx", "tflite", "openvino") for batch in (1, 4)
    }
    for row in rows:
        assert row["error"] is None
        assert all(row[key] > 0 for key in STATS if key != "latency_ms_std")
        assert row["latency_ms_std"] >= 0 and row["iterations"] == 5
        assert (
            row["latency_ms_min"]
            <= row["latency_ms_p50"]
            <= row["latency_ms_p90"]
            <= row["latency_ms_p99"]
        )
        assert row["images_per_s"] == pytest.approx(row["batch"] * 1000 / row["latency_ms_mean"])
    providers = {row["runtime"]: row["provider"] for row in rows}
    assert providers["onnx"] == "CPUExecutionProvider"


def test_environment_is_in_every_result(short_run):
    _, result, _ = short_run
    env = result["environment"]
    assert env["cpu_count"] >= 1 and env["threads"] == 2 and env["cpu"]
    assert env["versions"]["tensorflow"] and env["versions"]["onnxruntime"]
    assert result["model"]["macs"] > 0 and result["ceiling"]["gemm_flops"] > 0


def test_csv_and_plot(short_run):
    from PIL import Image

    folder, _, _ = short_run
    rows = list(csv.DictReader(io.StringIO((folder / "rows.csv").read_text())))
    assert len(rows) == 8 and float(rows[0]["latency_ms_p50"]) > 0
    with Image.open(folder / "bench.png") as image:
        assert image.format == "PNG"


def test_regression_gate(short_run, cli, tmp_path):
    _, result, stdout = short_run
    same = tmp_path / "same.json"
    same.write_text(stdout)
    gate = ["bench", "--resolution", "64", "--runtime", "onnx", "--batch", "1,4",
            "--iterations", "5", "--warmup", "1", "--threads", "2", "--baseline"]  # fmt: skip
    assert cli(*gate, same, "--max-regression", "400").code == 0
    doctored = json.loads(stdout)
    for row in doctored["rows"]:
        row["latency_ms_p50"] /= 2  # a baseline twice as fast
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(doctored))
    result = cli(*gate, fast, "--max-regression", "10")
    assert result.code == 3
    assert "slower than the baseline" in result.stderr and "onnx batch 1" in result.stderr


def test_compare_baseline_refuses_another_model(short_run, tmp_path):
    _, result, stdout = short_run
    other = json.loads(stdout)
    other["model"]["name"] = "efficientnet-b7"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    with pytest.raises(Exception, match="baseline is for efficientnet-b7"):
        B.compare_baseline(result, B.load_baseline(path), 10)


def test_latency_percentiles_use_nearest_rank():
    stats = B.latency_stats([float(v) for v in range(1, 101)], batch=2)
    assert (stats["latency_ms_p50"], stats["latency_ms_p90"], stats["latency_ms_p99"]) == (
        50,
        90,
        99,
    )
    assert stats["latency_ms_min"] == 1 and stats["images_per_s"] == pytest.approx(2000 / 50.5)
