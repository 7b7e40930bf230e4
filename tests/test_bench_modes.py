"""`effnet bench`: throughput mode, `--from` any artifact, `--recommend`, and `--tune`'s cache."""

from __future__ import annotations

import json
import shlex
import threading
import time
from dataclasses import replace

import pytest

from effnet_cli.backends import runtimes
from effnet_cli.records.bench import (
    Agreement,
    LatencyRow,
)
from effnet_cli.workflows.bench import timing, tuning
from effnet_cli.workflows.bench.recommend import recommend

from .test_bench import bench_result
from .test_schemas import validate


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own cache (ceiling and tuning): nothing is read from the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EFFNET_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def ceilings(idle_probes):
    """No test here is about bench's ceilings: their probes faked (tests/conftest.py
    `idle_probes`; the session's `bench_every_runtime`, made before, ran the real ones)."""
    return idle_probes


# ---------------------------------------------------------------------------- in flight


class Recorder:
    """Workers that record when each call runs: what the drive claims to overlap is checked
    against what the calls themselves saw."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def worker(self, images):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.calls += 1
        time.sleep(0.01)  # releases the GIL, as the runtimes do while they compute
        with self.lock:
            self.running -= 1
        return images


def test_the_default_thread_budget_is_the_cores_this_process_may_use(monkeypatch):
    """taskset or a container's cpuset leaves a process fewer cores than the machine has: the
    default budget is those, not os.cpu_count(); an OS without affinity gives every core."""
    monkeypatch.setattr(runtimes.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(runtimes.os, "sched_getaffinity", lambda pid: {2, 5}, raising=False)
    assert runtimes.threads_or_default(None) == 2 and runtimes.threads_or_default(3) == 3
    monkeypatch.delattr(runtimes.os, "sched_getaffinity", raising=False)
    assert runtimes.threads_or_default(None) == 8


def test_threaded_drive_keeps_n_requests_in_flight():
    import numpy as np

    recorder = Recorder()
    drive = runtimes.threaded_drive([recorder.worker] * 3)
    intervals = drive(np.zeros((2, 4, 4, 3), "float32"), 0.2)
    assert recorder.most == 3 and len(intervals) == recorder.calls
    stats = timing.throughput_stats(intervals, 2)
    assert stats.in_flight_observed == 3 and stats.requests == recorder.calls
    # three requests at once: wall throughput above two streams' worth of the mean request
    assert stats.images_per_s > 2 * 2 / (stats.load.latency_ms_mean / 1000)
    assert stats.load.latency_ms_min >= 10


def test_max_overlap_counts_requests_running_at_one_instant():
    assert timing.max_overlap([(0, 1), (1, 2), (2, 3)]) == 1  # back to back: never two at once
    assert timing.max_overlap([(0, 3), (1, 2), (1.5, 4), (3.5, 5)]) == 3


def test_a_single_stream_is_never_counted_as_overlapping():
    import numpy as np

    recorder = Recorder()
    intervals = runtimes.threaded_drive([recorder.worker])(np.zeros((1, 2, 2, 3)), 0.05)
    assert recorder.most == 1 and timing.max_overlap(intervals) == 1


@pytest.fixture(scope="module")
def both_modes(bench_every_runtime):
    """B0 at 64×64 on every runtime in both modes, a short run each: the session's run
    (tests/conftest.py `bench_every_runtime`, shared with test_bench.py)."""
    return bench_every_runtime[1]


@pytest.mark.slow
def test_every_runtime_keeps_requests_in_flight_and_reports_them_apart(both_modes):
    latency, loaded = both_modes["rows"], both_modes["throughput_rows"]
    assert {r["runtime"] for r in loaded} == {"keras", "onnx", "tflite", "openvino"}
    assert {r["runtime"] for r in latency} == {"keras", "onnx", "tflite", "openvino"}
    assert all(r["mode"] == "latency" and "in_flight" not in r for r in latency)
    for row in loaded:
        assert row["mode"] == "throughput" and not row["error"], row
        # the runtime really ran that many requests at once (observed from their intervals)
        assert row["in_flight"] >= 2 and row["in_flight_observed"] == row["in_flight"], row
        assert row["images_per_s"] > 0 and row["requests"] >= row["in_flight"]
        assert 0 < row["load_latency_ms_p50"] <= row["load_latency_ms_p99"]
        assert "latency_ms_p50" not in row  # never mixed with single-stream latency
        assert row["settings"] and row["settings_source"].startswith("default")
        assert row["drift_max_rel"] < 1e-4 and row["top1_agreement"] is None
        assert row["not_judged"] == "random weights"  # accuracy is judged on real photos only
    by_runtime = {r["runtime"]: r for r in loaded}
    assert "AsyncInferQueue" in by_runtime["openvino"]["settings"]
    for row in latency + loaded:
        assert row["batch_pinned"] == (row["runtime"] == "openvino"), row
        if row["batch_pinned"]:  # bench's at_batch compiled the IR for the row's batch
            assert row["settings"].endswith(f"static batch {row['batch']}"), row
    assert by_runtime["onnx"]["settings"] == "2 sessions × 1 thread"  # the budget split
    assert by_runtime["tflite"]["threads_per_request"] == 1


def test_throughput_options_are_checked(cli):
    refused = cli("bench", "--resolution", "64", "--streams", "2")
    assert refused.code == 2 and "--streams applies to --mode throughput" in refused.stderr
    refused = cli("bench", "--resolution", "64", "--mode", "fast")
    assert refused.code == 2 and "valid: latency, throughput" in refused.stderr
    refused = cli("bench", "--resolution", "64", "--mode", "both", "--streams", "2", "--tune")
    assert refused.code == 2 and "give one" in refused.stderr
    refused = cli("bench", "--resolution", "64", "--mode", "throughput", "--baseline", "b.json")
    assert refused.code == 2 and "--baseline compares latency rows" in refused.stderr


# ---------------------------------------------------------------------------- --recommend


def _row(runtime, precision, images_per_s, error=None, batch=1, pinned=False, drift=1e-3):
    return LatencyRow(runtime=runtime, device="cpu", provider=None, precision=precision,
                      batch=batch, threads=2, error=error, settings="s", settings_source=None,
                      setup_s=1.0, images_per_s=images_per_s, drift_max_rel=drift,
                      batch_pinned=pinned)  # fmt: skip


def _judged(rows, agreement):
    """A result whose rows carry their runtime × precision's agreement, as bench makes it."""
    from effnet_cli.workflows.bench.workflow import judged

    return replace(bench_result(tuple(judged(list(rows), list(agreement)))), agreement=agreement)


def _agreement(runtime, precision, top1, top5=1.0, sqnr=20.0, not_judged=None):
    from effnet_cli import backends

    passed = None if not_judged else backends.QUANTIZED_GATE.reached(top1, top5, sqnr)
    return Agreement(runtime=runtime, precision=precision, judged_on="the shipped photos",
                     images=8, top1_agreement=top1, top5_overlap=top5, sqnr_db=sqnr,
                     passed=passed, not_judged=not_judged)  # fmt: skip


def test_recommend_weighs_speed_against_agreement_on_real_images_and_says_why():
    rows = (
        _row("onnx", "fp32", 900.0, error="out of memory"),  # fastest, but failed
        _row("tflite", "fp32", 60.0),
        _row("openvino", "fp32", 59.0),
        _row("keras", "bf16-emulated", 500.0),  # emulated: never
        _row("tflite", "int8", 160.0),  # fastest int8, but it lost the photos' classes
        _row("tflite", "int8", 150.0, batch=8),
        _row("openvino", "int8", 96.0, batch=8, pinned=True),  # kept them: the answer
        _row("onnx", "int8", 200.0, drift=None),  # no reference: drift unmeasured
    )  # fmt: skip
    agreement = (_agreement("tflite", "fp32", 1.0, sqnr=None), _agreement("openvino", "fp32", 1.0),
                 _agreement("tflite", "int8", 0.25, 0.88, 12.0),
                 _agreement("openvino", "int8", 0.75, 0.9, 11.3))  # fmt: skip
    result = _judged(rows, agreement)
    answers = {a.precision: a.to_json() for a in recommend(result, ["--phi", "0"], None)}
    assert answers["fp32"]["runtime"] == "tflite"
    assert answers["fp32"]["command"] == "effnet export --phi 0 -f tflite -o deploy"
    assert answers["fp32"]["why"].startswith(
        "the fastest of 2 fit rows; top-1 100%, top-5 100%, "
        "equal logits against fp32 Keras on 8 real images"
    )
    assert "emulated" in answers["bf16"]["none"] and set(answers["bf16"]) == {
        "precision", "mode", "none"}  # fmt: skip
    assert answers["int8"]["runtime"] == "openvino" and answers["int8"]["batch"] == 8
    assert "--quantize int8" in answers["int8"]["command"]
    assert "--batch 8" in answers["int8"]["command"]  # timed compiled for batch 8: exported so
    assert "top-1 75%, top-5 90%, 11.3 dB" in answers["int8"]["why"]
    assert answers["int8"]["top1_agreement"] == 0.75  # the row's: one accuracy everywhere
    assert "at export's gate (60%, 75%, 6 dB)" in answers["int8"]["why"]
    # nothing fit: every reason is said, the real-image one with its figures
    alone = replace(result, rows=result.rows[4:6] + result.rows[7:])
    (none,) = [a.to_json() for a in recommend(alone, ["--phi", "0"], None)]
    assert none["none"] == ("onnx: drift unmeasured; tflite int8: top-1 25%, top-5 88%, 12.0 dB "
                            "against fp32 Keras on 8 real images (the shipped photos), under "
                            "export's gate (60%, 75%, 6 dB)")  # fmt: skip


def test_random_weights_are_recommended_on_speed_and_the_answer_says_so():
    rows = (_row("tflite", "int8", 160.0), _row("onnx", "int8", 150.0))
    agreement = tuple(_agreement(r, "int8", 0.0, 0.0, -3.0, not_judged="random weights")
                      for r in ("tflite", "onnx"))  # fmt: skip
    result = _judged(rows, agreement)
    (answer,) = [a.to_json() for a in recommend(result, ["--phi", "0"], None)]
    assert answer["runtime"] == "tflite"
    assert answer["why"] == ("the fastest of 2 fit rows; accuracy not judged (random weights): "
                             "chosen on speed and drift")  # fmt: skip


@pytest.mark.slow
def test_the_recommended_export_command_writes_that_precision(
    cli, tmp_path, monkeypatch, prewritten, b0_r64, b0_r64_onnx_fp16
):
    """bench's two files are the session's fp32 and fp16 ONNX of the weights `--seed 0` builds
    again (copied in place of its conversions: tests/conftest.py `prewritten`); the command it
    recommends then runs with the real writer, as printed."""
    from effnet_cli import backends

    writer = backends.get("onnx")
    prewritten({("onnx", "fp32"): b0_r64.path("onnx"), ("onnx", "fp16"): b0_r64_onnx_fp16[0]})
    result = cli("bench", "--resolution", "64", "--seed", "0", "--runtime", "onnx",
                 "--precision", "fp32,fp16", "--batch", "1", "--iterations", "3",
                 "--threads", "2", "--recommend", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    monkeypatch.setitem(backends.BACKENDS, "onnx", writer)  # the command converts for real
    answers = json.loads(result.stdout)["recommendations"]
    assert {(a["precision"], a["mode"]) for a in answers} == {("fp32", "latency"),
                                                              ("fp16", "latency")}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    commands = {a["precision"]: shlex.split(a["command"]) for a in answers}
    assert all(command[:2] == ["effnet", "export"] for command in commands.values())
    assert "--quantize" not in commands["fp32"] and "fp16" in commands["fp16"]
    (fp16,) = [a for a in answers if a["precision"] == "fp16"]  # the one that converts
    written = cli(*commands["fp16"][1:])  # run as printed
    assert written.code == 0, written.stderr
    shown = cli("inspect", fp16["artifact"], "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["metadata"]["precision"] == "fp16"


# ---------------------------------------------------------------------------- --from


@pytest.fixture(scope="module")
def artifacts(b0_r64):
    """An .onnx, fp16 and int8 .tflite files and an OpenVINO IR of one B0 at 64: the session's
    (tests/conftest.py `b0_r64`), shared and read-only; only their precision matters here."""
    assert b0_r64.resolution == 64
    return {(name, precision): b0_r64.path(name, precision)
            for name, precision in (("onnx", "fp32"), ("tflite", "fp16"), ("tflite", "int8"),
                                    ("openvino", "fp32"))}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "precision"),
    [("onnx", "fp32"), ("tflite", "fp16"), ("tflite", "int8"), ("openvino", "fp32")],
)
def test_bench_from_an_artifact_labels_its_precision(cli, artifacts, name, precision):
    path = artifacts[(name, precision)]
    if name == "openvino":
        path = path / "model.xml"  # the .xml itself, as benchmark_app takes it
    result = cli("bench", "--from", path, "--batch", "1", "--iterations", "2", "--warmup", "1",
                 "--threads", "2", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    (row,) = document["rows"]
    assert (row["runtime"], row["precision"]) == (name, precision)
    assert document["model"]["precision"] == precision
    assert row["drift"] == "unmeasured" and row["drift_max_rel"] is None
    assert document["model"]["resolution"] == [64, 64]
    validate(document)  # the model's MACs are null: not counted from a file


def test_the_precision_is_read_from_the_file_not_its_name(artifacts, tmp_path):
    from effnet_cli.backends import describe

    renamed = tmp_path / "model.tflite"
    renamed.write_bytes(artifacts[("tflite", "int8")].read_bytes())
    assert describe.artifact_precision("tflite", renamed) == "int8"
    renamed.write_bytes(artifacts[("tflite", "fp16")].read_bytes())
    assert describe.artifact_precision("tflite", renamed) == "fp16"


def test_reference_needs_an_artifact(cli, tmp_path):
    refused = cli("bench", "--resolution", "64", "--reference", tmp_path / "x.keras")
    assert refused.code == 2 and "--reference applies with --from an artifact" in refused.stderr


# ---------------------------------------------------------------------------- --tune


@pytest.mark.slow
def test_the_tuning_is_cached_and_tune_searches_again(cli, monkeypatch, b0_r64):
    searches: list[str] = []
    real = tuning.search_streams

    def counted(runner, *args, **kwargs):
        searches.append(runner.runtime)
        return real(runner, *args, **kwargs)

    monkeypatch.setattr(tuning, "search_streams", counted)
    monkeypatch.setattr(tuning, "TUNE_TRIAL_S", 0.1)
    # an ONNX file (no build, no conversion per run): the same chosen_streams as a built model's
    args = ["bench", "--from", b0_r64.path("onnx"), "--batch", "1", "--mode", "throughput",
            "--duration", "0.2", "--threads", "2", "--json"]  # fmt: skip

    def source(*extra: str) -> str:
        result = cli(*args, *extra)
        assert result.code == 0, result.stderr
        (row,) = json.loads(result.stdout)["throughput_rows"]
        return row["settings_source"]

    assert source().startswith("default") and searches == []  # nothing cached yet, no search
    assert source("--tune").startswith("tuned now") and searches == ["onnx"]
    cached = source()
    assert cached.startswith("tuned ") and "cached" in cached and searches == ["onnx"]
    assert source("--tune").startswith("tuned now") and searches == ["onnx", "onnx"]


def test_model_args_repeat_the_options_that_differ_from_their_defaults():
    from effnet_cli.cli.options import ModelOptions, model_args

    options = ModelOptions(phi=0, resolution=96, include_top=False, dropout=0.25, seed=3)
    assert model_args(options) == ["--phi", "0", "--resolution", "96", "--no-top", "--dropout",
                                   "0.25", "--seed", "3"]  # fmt: skip
    assert model_args(ModelOptions()) == []


def test_thread_candidates_halve_the_budget_down_to_one():
    assert tuning.thread_candidates(16) == [16, 8, 4, 2, 1]
    assert tuning.thread_candidates(6) == [6, 3, 1] and tuning.thread_candidates(1) == [1]


def test_tune_searches_latency_threads_and_the_rows_run_on_the_tuned_ones(cli, monkeypatch, b0_r64):
    """A faked clock makes one thread the fastest: --tune finds it, the row is timed on a
    runner loaded with one thread and says so; the next run takes it from the cache."""
    loaded: list[int] = []

    def faked_speed(runner, images):
        loaded.append(runner.threads)
        return 100.0 if runner.threads == 1 else 50.0

    monkeypatch.setattr(tuning, "calls_per_second", faked_speed)
    args = ["bench", "--from", b0_r64.path("onnx"), "--batch", "1", "--iterations", "2",
            "--threads", "2", "--json"]  # fmt: skip

    def row(*extra: str) -> dict:
        result = cli(*args, *extra)
        assert result.code == 0, result.stderr
        (only,) = json.loads(result.stdout)["rows"]
        return only

    untuned = row()
    assert loaded == [] and untuned["threads"] == 2  # the budget, no search
    assert untuned["settings_source"].startswith("default")
    tuned = row("--tune")
    assert sorted(loaded) == [1, 2]  # 2 threads and 1 tried
    assert tuned["threads"] == 1 and tuned["settings_source"].startswith("tuned now")
    assert tuned["settings"] == "1 session × 1 threads, all graph optimizations"
    cached = row()
    assert len(loaded) == 2  # no second search
    assert cached["threads"] == 1 and "cached" in cached["settings_source"]


@pytest.mark.parametrize("runtime", ["onnx", "tflite", "openvino"])
def test_each_tunable_runner_reloads_on_other_threads(b0_r64, runtime):
    """What --tune's thread search loads: the same file on another thread count (OpenVINO's
    read back from the compiled model), computing the same outputs."""
    import numpy as np

    from effnet_cli import backends

    from .conftest import relative_diff

    runner = backends.load_runner(runtime, b0_r64.path(runtime), threads=2)
    one = runner.threaded(1)
    assert (runner.threads, one.threads) == (2, 1) and "2 threads" not in one.settings
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = runner.comparable(images)  # the logits: a softmax would hide a difference
    assert np.abs(expected).max() > 1e-2  # export calibrated BatchNorm: real logits
    assert relative_diff(one.comparable(images), expected) <= 1e-5
