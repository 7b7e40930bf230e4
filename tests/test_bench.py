"""`effnet bench`: statistics, device honesty, CSV/JSON/plot, and the CI regression gate."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from effnet_cli.output import sink
from effnet_cli.output.views import bench as bench_view
from effnet_cli.records.bench import (
    Bandwidth,
    BenchResult,
    Ceilings,
    Comparison,
    Conditions,
    Environment,
    Gate,
    GemmCeiling,
    LatencyRow,
    NoRecommendation,
    Recommendation,
    Settings,
    Skipped,
    ThroughputRow,
)
from effnet_cli.util import capabilities
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows.bench import ceilings, gate, timing

STATS = ("latency_ms_mean", "latency_ms_std", "latency_ms_min", "latency_ms_p50",
         "latency_ms_p90", "latency_ms_p99", "images_per_s", "macs_per_s", "ceiling_fraction",
         "first_inference_ms", "setup_s")  # fmt: skip


@pytest.fixture(scope="module")
def short_run(bench_every_runtime):
    """B0 at 64×64 over every runtime and two batch sizes, a few iterations each: the session's
    run (tests/conftest.py `bench_every_runtime`; its throughput rows are test_bench_modes.py's).
    Returns (folder, document, stdout)."""
    return bench_every_runtime


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own ceiling cache: nothing is read from or written to the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EFFNET_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def probe(load, probes):
    """The ceiling probes faked on an idle faked machine (tests/test_ceilings.py): fp32 GEMM at
    100 G MACs/s, the triad at 20 GB/s. Returns what was probed, in order."""
    return probes


@pytest.fixture
def untimed(monkeypatch):
    """Records any attempt to build or time a model (a refusal must come before both)."""
    from effnet_cli.keras import archive

    attempts: list[str] = []

    def refuse(what):
        def record(*args, **kwargs):
            attempts.append(what)
            raise AssertionError(f"{what} was called")

        return record

    monkeypatch.setattr(timing, "time_runner", refuse("time_runner"))
    monkeypatch.setattr(archive, "load_or_build", refuse("load_or_build"))
    return attempts


def test_every_statistic_is_positive_and_ordered(short_run):
    _, result, _ = short_run
    assert result["schema"] == "effnet.bench/2"
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
    # every runtime was given the 2 threads explicitly, and each row says what it ran on
    assert [row["threads"] for row in rows] == [2] * len(rows)
    providers = {row["runtime"]: row["provider"] for row in rows}
    assert providers["onnx"] == "CPUExecutionProvider"


def test_environment_is_in_every_result(short_run):
    _, result, _ = short_run
    env = result["environment"]
    assert env["cpu_count"] >= 1 and env["threads"] == 2 and env["cpu"]
    assert env["versions"]["tensorflow"] and env["versions"]["onnxruntime"]
    assert result["model"]["macs"] > 0


def test_the_ceilings_are_measured_on_this_machine(short_run):
    """The real probes: fp32 and the memory bandwidth always; each row's share of its own
    precision's ceiling and of the roofline limit; a busy probe is flagged and not cached."""
    folder, result, _ = short_run
    ceilings = result["ceilings"]
    fp32, band = ceilings["gemm"][0], ceilings["bandwidth"]
    assert fp32["precision"] == "fp32" and fp32["source"] == "measured" and fp32["threads"] == 2
    assert fp32["cpu"] == result["environment"]["cpu"] and fp32["measured_at"]
    # a 2-core machine of this project multiplies 20-300 G MACs/s: a wrong unit is 1e3 off
    assert 5e9 < fp32["macs_per_s"] < 1e12 and 1e9 < band["bytes_per_s"] < 1e12
    cached = list((folder / "cache").glob("*.json"))
    probes = [*ceilings["gemm"], band]
    assert len(cached) == sum(p["source"] == "measured" and not p["busy"] for p in probes)
    assert all(p["busy_reason"] for p in probes if p["busy"])
    assert len(result["rows"]) == 8  # four runtimes at batch 1 and 4
    for row in result["rows"]:
        assert row["limit_images_per_s"] > 0
        if row.get("measurement_problem"):  # faster than the probe's figure: no share
            assert "ceiling_fraction" not in row and "limit_fraction" not in row
            continue
        assert row["ceiling_fraction"] == pytest.approx(row["macs_per_s"] / fp32["macs_per_s"])
        assert row["limit_fraction"] == pytest.approx(
            row["images_per_s"] / row["limit_images_per_s"]
        )


def test_csv_and_plot(short_run):
    from PIL import Image

    folder, _, _ = short_run
    rows = list(csv.DictReader(io.StringIO((folder / "rows.csv").read_text())))
    assert len(rows) == 8 and float(rows[0]["latency_ms_p50"]) > 0
    with Image.open(folder / "bench.png") as image:
        assert image.format == "PNG"


GATE = ["bench", "--resolution", "64", "--runtime", "onnx", "--batch", "1,4", "--iterations", "5",
        "--warmup", "1", "--threads", "2", "--baseline"]  # fmt: skip


def test_regression_gate(short_run, cli, tmp_path, prewritten, b0_r64, probe):
    _, _, stdout = short_run
    # the gate is under test, not the converter: bench runs the session's .onnx of the weights
    # `--seed 0` builds again (tests/conftest.py `prewritten`)
    prewritten({("onnx", "fp32"): b0_r64.path("onnx")})
    seeded = [*GATE[:-1], "--seed", "0", GATE[-1]]
    same = tmp_path / "same.json"
    same.write_text(stdout)
    passed = cli(*seeded, same, "--max-regression", "400", "--json")
    assert passed.code == 0, passed.stderr
    # a pass says what it compared: one line per row, with both figures and the verdict
    lines = [line for line in passed.stderr.splitlines() if line.startswith("gate: ")]
    assert [line.split(":")[1] for line in lines] == [
        " onnx fp32 batch 1 threads 2",
        " onnx fp32 batch 4 threads 2",
    ]
    assert all(" ms vs " in line and line.endswith("allowed 400 %) ok") for line in lines)
    gate = json.loads(passed.stdout)["gate"]
    assert [(c["runtime"], c["precision"], c["batch"], c["threads"]) for c in gate["compared"]] == [
        ("onnx", "fp32", 1, 2), ("onnx", "fp32", 4, 2)
    ]  # fmt: skip
    doctored = json.loads(stdout)
    for row in doctored["rows"]:
        row["latency_ms_p50"] /= 100  # a baseline 100 times as fast: a regression under any load
    fast = tmp_path / "fast.json"
    fast.write_text(json.dumps(doctored))
    result = cli(*seeded, fast, "--max-regression", "10")
    assert result.code == 3
    assert "slower than the baseline" in result.stderr
    assert "onnx fp32 batch 1 threads 2" in result.stderr and "SLOWER" in result.stderr


def _baseline(stdout: str, path, change) -> str:
    document = json.loads(stdout)
    change(document)
    path.write_text(json.dumps(document))
    return str(path)


def test_compare_baseline_refuses_another_model(short_run, cli, tmp_path, untimed):
    _, _, stdout = short_run
    path = _baseline(stdout, tmp_path / "b7.json",
                     lambda d: d["model"].update(name="efficientnet-b7"))  # fmt: skip
    result = cli(*GATE, path)
    assert result.code == 2 and untimed == []  # refused before building or timing
    assert (
        "error: baseline is for efficientnet-b7, this run is efficientnet-b0-r64" in result.stderr
    )


def test_baseline_of_another_device_is_refused(short_run, cli, tmp_path, untimed):
    _, _, stdout = short_run
    path = _baseline(stdout, tmp_path / "gpu.json", lambda d: d["settings"].update(device="gpu"))
    result = cli(*GATE, path)
    assert result.code == 2 and untimed == []
    assert "baseline ran on --device gpu, this run is on cpu" in result.stderr


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (["--threads", "1"], "threads 2 (this run: 1)"),
        (["--batch", "8"], "batch 1,4 (this run: 8)"),
        (["--precision", "bf16"], "precision fp32 (this run: bf16)"),
        (["--runtime", "keras", "--batch", "8", "--threads", "1"],
         "batch 1,4 (this run: 8); threads 2 (this run: 1)"),
    ],
)  # fmt: skip
def test_a_baseline_with_no_matching_row_exits_2_before_timing(
    short_run, cli, tmp_path, untimed, change, names
):
    _, _, stdout = short_run
    path = tmp_path / "baseline.json"
    path.write_text(stdout)
    args = [*GATE[:-1], *change, "--baseline", path]  # later options win in Click
    result = cli(*args)
    assert result.code == 2 and untimed == []
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "the baseline has no row this run could match" in line and names in line


def test_max_regression_needs_a_baseline(cli, untimed):
    result = cli("bench", "--runtime", "onnx", "--max-regression", "5")
    assert result.code == 2 and untimed == []
    assert "--max-regression applies only with --baseline" in result.stderr


def _row(runtime, precision, batch, p50, **extra):
    return {"runtime": runtime, "precision": precision, "mode": "latency", "batch": batch,
            "threads": 2, "latency_ms_p50": p50, "images_per_s": batch * 1000 / p50,
            "error": None, **extra}  # fmt: skip


def _document(rows, name="efficientnet-b0"):
    return {"schema": "effnet.bench/1", "model": {"name": name},
            "settings": {"device": "cpu", "threads": 2}, "rows": rows}  # fmt: skip


def _timed_row(runtime, precision, batch, p50):
    return LatencyRow(runtime=runtime, device="cpu", provider=None, precision=precision,
                      batch=batch, threads=2, settings="", settings_source=None, setup_s=1.0,
                      latency_ms_p50=p50, images_per_s=batch * 1000 / p50)  # fmt: skip


def _bench_result(rows, name="efficientnet-b0"):
    return bench_result(tuple(_timed_row(*row) for row in rows), name)


def no_ceilings() -> Ceilings:
    """Ceilings of a machine where none was measured."""
    none = {"source": "unavailable", "method": "none", "threads": 2, "cpu": "Some CPU",
            "reason": "not measured"}  # fmt: skip
    gemm = tuple(
        GemmCeiling(precision=p, macs_per_s=None, **none) for p in ("fp32", "bf16", "int8")
    )
    return Ceilings(
        threads=2, device="cpu", gemm=gemm, bandwidth=Bandwidth(bytes_per_s=None, **none)
    )


def bench_result(rows: tuple, name: str = "efficientnet-b0") -> BenchResult:
    """A bench result of these rows on a made-up 2-thread CPU (shared with test_bench_modes)."""
    return BenchResult(
        model={"name": name},
        settings=Settings(device="cpu", batches=(1, 8), warmup=1, iterations=5, duration_s=None,
                          threads=2, seed=0, xla=False, modes=("latency",)),
        ceilings=no_ceilings(),
        environment=Environment(effnet="0", python="3", platform="p", cpu="Some CPU",
                                cpu_count=2, gpus=(), threads=2, versions={}),
        rows=rows,
    )  # fmt: skip


def test_rows_of_different_precisions_never_compare(tmp_path):
    document = _document([_row("openvino", "fp32", 1, 10.0), _row("openvino", "bf16", 8, 1.0)])
    baseline = gate.Baseline.from_json(document, tmp_path / "b.json")
    # bf16 at batch 1 is 5x slower than the fp32 baseline row, and fp32 at batch 8 is 50x slower
    # than the bf16 one: neither may be compared with the other precision's row
    result = _bench_result([("openvino", "fp32", 1, 10.5), ("openvino", "bf16", 1, 50.0),
                            ("openvino", "fp32", 8, 50.0)])  # fmt: skip
    gated = gate.compare_baseline(result, baseline, 10)
    assert gated.gate is not None
    (compared,) = gated.gate.compared
    assert (compared.precision, compared.batch, compared.passed) == ("fp32", 1, True)
    assert compared.change_pct == pytest.approx(5.0)
    # the compared row says its change; the others say nothing
    assert [row.regression_pct for row in gated.rows] == [compared.change_pct, None, None]
    assert "regression_pct" not in gated.to_json()["rows"][1]
    gate.enforce_gate(gated.gate)  # passes
    only_bf16 = gate.compare_baseline(_bench_result([("openvino", "bf16", 1, 1.0)]), baseline, 10)
    assert only_bf16.gate is not None and only_bf16.gate.compared == ()
    with pytest.raises(UsageError, match="nothing was compared") as refused:
        gate.enforce_gate(only_bf16.gate)
    assert refused.value.exit_code == 2


def test_a_baseline_of_keras_rows_on_a_pool_the_user_sized_is_comparable(tmp_path, monkeypatch):
    """TF_NUM_INTRAOP_THREADS=1 sizes TensorFlow's pool: keras rows say 1 thread where the
    run's default is every core (2 here); the same run again may use them as its baseline."""
    from effnet_cli.backends import runtimes
    from effnet_cli.workflows.bench import build_request

    monkeypatch.setattr(runtimes, "usable_cores", lambda: 2)
    document = _document([{**_row("keras", "fp32", 1, 10.0), "threads": 1}])
    baseline = gate.Baseline.from_json(document, tmp_path / "b.json")
    request = build_request(runtime="keras", precision="fp32", device="cpu", batch="1",
                            warmup=1, iterations=2, duration_s=None, threads=None, seed=0,
                            xla=False, measure_ceiling=False, calibration=None,
                            verify_images=None, mode="latency", streams=None,
                            tune=False)  # fmt: skip
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    with pytest.raises(UsageError, match=r"threads 1 \(this run: 2\)"):
        gate.check_baseline(baseline, "efficientnet-b0", request)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    gate.check_baseline(baseline, "efficientnet-b0", request)  # comparable: no refusal
    onnx = dataclasses.replace(request, runtimes=("onnx",))  # onnx's rows run on the run's threads
    with pytest.raises(UsageError, match="no row this run could match"):
        gate.check_baseline(baseline, "efficientnet-b0", onnx)


def test_a_run_whose_label_differs_from_the_baseline_exits_2_after_timing(
    short_run, cli, tmp_path, monkeypatch, probe
):
    """The baseline's keras row ran bf16-emulated; this CPU (faked) runs bf16 natively: the
    request could match (checked before), the rows cannot (after), and nothing passes."""
    _, _, stdout = short_run

    def emulated(document):
        document["rows"] = [r for r in document["rows"] if r["runtime"] == "keras"]
        assert document["rows"], "the session's run has no keras row to relabel"
        for row in document["rows"]:
            row["precision"] = "bf16-emulated"

    path = _baseline(stdout, tmp_path / "emulated.json", emulated)
    monkeypatch.setattr(capabilities, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    result = cli("bench", "--resolution", "64", "--runtime", "keras", "--precision", "bf16",
                 "--batch", "1", "--iterations", "2", "--warmup", "1", "--threads", "2",
                 "--baseline", path)  # fmt: skip
    assert result.code == 2, result.stderr
    assert "nothing was compared" in result.stderr and "gate: " not in result.stderr
    assert "bf16" in result.stdout  # the run itself was shown


def test_latency_percentiles_use_nearest_rank():
    stats = timing.latency_stats([float(v) for v in range(1, 101)], batch=2)
    assert (stats.latency_ms_p50, stats.latency_ms_p90, stats.latency_ms_p99) == (50, 90, 99)
    assert stats.latency_ms_min == 1 and stats.images_per_s == pytest.approx(2000 / 50.5)


# ---------------------------------------------------------------------------- precision labels

# built from options: a model loaded --from a .keras file has no bf16 twin (its row is skipped)
KERAS_BF16 = ["bench", "--resolution", "64", "--runtime", "keras", "--precision", "bf16",
              "--batch", "1", "--iterations", "2", "--warmup", "1", "--threads", "2",
              "--json"]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "label"),
    [({"avx2", "fma", "avx512f", "avx512_bf16"}, "bf16"),
     ({"avx2", "fma", "avx512f", "avx512_fp16"}, "bf16-emulated")],
)  # fmt: skip
def test_keras_bf16_is_labelled_by_what_the_cpu_has(cli, monkeypatch, probe, flags, label):
    """Both branches on every machine: the CPU's flags are faked, the label follows them."""
    monkeypatch.setattr(capabilities, "cpu_flags", lambda: frozenset(flags))
    result = cli(*KERAS_BF16)
    assert result.code == 0, result.stderr
    (row,) = json.loads(result.stdout)["rows"]
    assert row["precision"] == label and row["runtime"] == "keras"
    # the twin really computes in bf16 (8-bit mantissa): fp32 would drift ~1e-6, not this
    assert row["drift_max_rel"] > 1e-3


def test_fastest_rows_marks_the_fastest_per_precision_and_batch():
    def row(runtime, precision, batch, images_per_s, error=None):
        return {"runtime": runtime, "precision": precision, "batch": batch,
                "images_per_s": images_per_s, "error": error}  # fmt: skip

    rows = [
        row("keras", "fp32", 1, 30.0),  # 0
        row("onnx", "fp32", 1, 95.0),  # 1  fastest fp32 at batch 1
        row("tflite", "fp32", 1, 90.0),  # 2
        row("keras", "fp32", 8, 40.0),  # 3
        row("onnx", "fp32", 8, 110.0),  # 4
        row("openvino", "fp32", 8, 120.0),  # 5  fastest fp32 at batch 8
        row("openvino", "fp32", 8, 999.0, error="out of memory"),  # 6  an error is never marked
        row("keras", "bf16-emulated", 1, 17.0),  # 7
        row("openvino", "bf16", 1, 380.0),  # 8  fastest bf16 at batch 1 (emulated competes)
        row("keras", "bf16-emulated", 8, 22.0),  # 9  the only timed bf16 row at batch 8
        row("openvino", "bf16", 8, 5000.0, error="out of memory"),  # 10
    ]
    assert bench_view.fastest_rows(rows) == {1, 5, 8, 9}
    assert bench_view.fastest_rows([row("onnx", "fp32", 1, 1.0, error="out of memory")]) == set()


# ---------------------------------------------------------------------------- the ceiling


def _printed_bench(result, capsys) -> str:
    bench_view.print_bench(result)
    return capsys.readouterr().out


def _result(ceilings: Ceilings) -> BenchResult:
    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S
    from effnet_cli.workflows.bench.limits import Limits, with_limits

    spec = S.get_spec("b0")
    row = LatencyRow(runtime="onnx", device="cpu", provider="CPUExecutionProvider",
                     precision="fp32", batch=1, threads=2, settings=None, settings_source=None,
                     latency_ms_mean=10.0, latency_ms_std=0.5, latency_ms_min=9.0,
                     latency_ms_p50=10.0, latency_ms_p90=11.0, latency_ms_p99=12.0,
                     images_per_s=100.0, drift_max_rel=3e-6, top1_agreement=1.0,
                     first_inference_ms=15.0, setup_s=8.0)  # fmt: skip
    costs = C.count(spec)
    rows = with_limits([row], costs.macs, Limits(costs, ceilings))
    environment = Environment(effnet="0", python="3", platform="linux", cpu="Some CPU",
                              cpu_count=2, gpus=(), threads=2, versions={})  # fmt: skip
    settings = Settings(device="cpu", batches=(1,), warmup=1, iterations=20, duration_s=None,
                        threads=2, seed=0, xla=False, modes=("latency",))  # fmt: skip
    return BenchResult(model={"name": "efficientnet-b0", "resolution": [224, 224]},
                       settings=settings, ceilings=ceilings, environment=environment,
                       rows=rows)  # fmt: skip


def test_the_table_shows_each_share_only_where_its_ceiling_was_measured(capsys, probe):
    measured = ceilings.measure_ceilings(2, "cpu", False, print)
    shown = _printed_bench(_result(measured), capsys)
    header = next(line for line in shown.splitlines() if "runtime" in line)
    assert "ceiling" in header and "limit" in header
    assert " 39%" in shown  # 100 img/s × 385.8 M MACs ÷ 100 G MACs/s
    assert "fp32 200 GFLOP/s" in shown and "memory 20.0 GB/s" in shown
    assert "(measured now)" in shown
    cached = _printed_bench(_result(ceilings.measure_ceilings(2, "cpu", False, print)), capsys)
    assert "cached, measured 20" in cached and "--ceiling measures again" in cached
    on_gpu = ceilings.measure_ceilings(2, "gpu", False, print)
    absent = _printed_bench(_result(on_gpu), capsys)
    header = next(line for line in absent.splitlines() if "runtime" in line)
    assert "ceiling" not in header and "limit" not in header and "39%" not in absent
    assert "ceilings: not measured (" in absent


def test_a_row_faster_than_its_ceiling_is_a_measurement_problem_not_a_share(capsys, probe):
    """A probe disturbed into reading 1 G MACs/s: a row of 38.6 G MACs/s would show 3860 %."""
    slow = ceilings.measure_ceilings(2, "cpu", False, print)
    gemm = tuple(
        dataclasses.replace(g, macs_per_s=1e9) if g.precision == "fp32" else g for g in slow.gemm
    )
    result = _result(dataclasses.replace(slow, gemm=gemm))
    (row,) = result.rows
    assert row.ceiling_fraction is None and row.limit_fraction is None
    assert row.measurement_problem and row.measurement_problem.startswith("3858% of its fp32")
    shown = _printed_bench(result, capsys)
    assert "3858%" not in shown.split("measurement problem")[0]  # not in the table
    assert "measurement problem: onnx fp32 at batch 1 ran at 3858% of its fp32" in shown


def test_a_busy_probe_is_said_and_never_cached(cli, probe, load, b0_r64, cache):
    """Another process burning both cores while the probes run (faked: 2 CPU-s a second of
    others' time): bench says so, uses the figure, and caches nothing."""
    load.other_cpu_s, load.load = 2.0, 3.0
    args = ["bench", "--from", b0_r64.path("keras"), "--runtime", "keras", "--batch", "1",
            "--iterations", "2", "--warmup", "1", "--threads", "2"]  # fmt: skip
    done = cli(*args, "--json")
    assert done.code == 0, done.stderr
    document = json.loads(done.stdout)
    fp32 = document["ceilings"]["gemm"][0]
    assert fp32["busy"] and "load average 3.0" in fp32["busy_reason"]
    assert list(cache.glob("*.json")) == []
    table = cli(*args)
    busy = next(line for line in table.stdout.splitlines() if line.startswith("busy: the fp32"))
    assert "memory probes ran on a busy machine (load average 3.0" in busy  # every probe
    assert "not cached" in table.stdout


def test_bench_caches_the_ceilings_and_ceiling_measures_again(cli, probe, b0_r64):
    args = ["bench", "--from", b0_r64.path("keras"), "--runtime", "keras", "--batch", "1",
            "--iterations", "2", "--warmup", "1", "--threads", "2"]  # fmt: skip
    first = cli(*args, "--json")
    assert first.code == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["ceilings"]["gemm"][0]["source"] == "measured" and probe.count("fp32") == 1
    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S

    assert document["model"]["macs"] == C.count(S.get_spec("b0", resolution=64)).macs
    (row,) = document["rows"]
    assert row["macs_per_s"] == pytest.approx(document["model"]["macs"] * row["images_per_s"])
    assert row["ceiling_fraction"] == pytest.approx(row["macs_per_s"] / 100e9)
    second = cli(*args)  # the table this time
    assert second.code == 0, second.stderr
    assert probe.count("fp32") == 1 and "(cached, measured" in second.stdout
    third = cli(*args, "--ceiling", "--json")
    assert json.loads(third.stdout)["ceilings"]["gemm"][0]["source"] == "measured"
    assert probe.count("fp32") == 2


@pytest.fixture(scope="module")
def b0_keras_file(b0_r64):
    """A B0 .keras at 64 px: the session's (tests/conftest.py `b0_r64`), read-only."""
    return b0_r64.path("keras")


def test_bench_from_refuses_a_baseline_of_another_model_before_loading(
    cli, b0_keras_file, tmp_path, untimed
):
    baseline = tmp_path / "other.json"
    baseline.write_text(json.dumps(_document([_row("keras", "fp32", 1, 5.0)], "efficientnet-b3")))
    refused = cli("bench", "--from", b0_keras_file, "--runtime", "keras", "--batch", "1",
                  "--threads", "2", "--baseline", baseline)  # fmt: skip
    assert refused.code == 2 and untimed == []  # the file's model name, read without loading it
    assert "baseline is for efficientnet-b3, this run is efficientnet-b0-r64" in refused.stderr


@pytest.mark.parametrize(
    ("name", "options"),
    [("b0", {}), ("lite0", {}), ("seed-b0", {}), ("b1", {"include_top": False, "pooling": "avg"})],
)
def test_keras_macs_equal_the_spec_count(name, options, no_weights):
    """Counted from a built Keras model's layers (what `bench --from` does) and from the spec
    (what summary does), the same number; B0's is the one keras.applications' layers give."""
    from effnet_cli import build_model
    from effnet_cli.keras.macs import keras_macs
    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S

    spec = S.get_spec(name, **options)
    assert keras_macs(build_model(spec)) == C.count(spec).macs


# ---------------------------------------------------------------------------- records and schema


def _schema_properties(*path: str) -> set[str]:
    """The property names the shipped schema gives at `path` under the bench document
    ("[]" steps into an array's items)."""
    node = sink.json_schema()["$defs"]["bench"]
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return set(node["properties"])


@pytest.mark.parametrize(
    ("records", "path"),
    [
        ((BenchResult,), ()),
        ((LatencyRow,), ("rows", "[]")),
        ((ThroughputRow,), ("throughput_rows", "[]")),
        ((Settings,), ("settings",)),
        ((Ceilings,), ("ceilings",)),
        ((GemmCeiling,), ("ceilings", "gemm", "[]")),
        ((Bandwidth,), ("ceilings", "bandwidth")),
        ((Conditions,), ("ceilings", "gemm", "[]", "conditions")),
        ((Environment,), ("environment",)),
        ((Skipped,), ("skipped", "[]")),
        ((Gate,), ("gate",)),
        ((Comparison,), ("gate", "compared", "[]")),
        ((Recommendation, NoRecommendation), ("recommendations", "[]")),
    ],
)
def test_the_records_fields_are_the_schemas_properties(records, path):
    """Each record's fields are the JSON keys it writes (to_json): the schema names exactly
    them, so neither can gain or lose a field without the other."""
    named = {f.name for record in records for f in dataclasses.fields(record)}
    extra = {"schema"} if records == (BenchResult,) else set()  # emit_json adds the tag
    assert _schema_properties(*path) == named | extra


def test_to_json_leaves_out_what_bench_never_wrote():
    """A failed row has no figures and no drift; a row without a reference says "unmeasured"
    with its drift null; a throughput row that never started its requests has no settings."""
    head = {"runtime": "onnx", "device": "cpu", "provider": "CPUExecutionProvider",
            "precision": "fp32", "batch": 1, "threads": 2}  # fmt: skip
    failed = LatencyRow(**head, error="out of memory", settings="s", settings_source=None,
                        setup_s=1.0)  # fmt: skip
    assert list(failed.to_json()) == ["runtime", "device", "provider", "precision", "mode",
                                      "batch", "threads", "error", "settings", "settings_source",
                                      "setup_s", "batch_pinned"]  # fmt: skip
    unmeasured = dataclasses.replace(failed, error=None, latency_ms_p50=1.0, drift="unmeasured")
    document = unmeasured.to_json()
    assert document["drift_max_rel"] is None and document["drift"] == "unmeasured"
    assert "latency_ms_p90" not in document and "macs_per_s" not in document
    idle = ThroughputRow(**head, error="no throughput mode", setup_s=1.0)
    assert "settings" not in idle.to_json() and "drift_max_rel" not in idle.to_json()
    started = dataclasses.replace(idle, error="out of memory", in_flight=2, settings="2 sessions",
                                  settings_source="--streams")  # fmt: skip
    assert started.to_json()["threads_per_request"] is None and "images_per_s" not in (
        started.to_json())  # fmt: skip
