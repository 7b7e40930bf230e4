"""Tables a person reads at 80, 100 and 120 columns: every cell shown whole and equal to the
same command's --json value, the main columns always there, no escape sequence under NO_COLOR.

The terminal is faked (sink.is_terminal) and its width pinned through COLUMNS, which rich
reads; the cells expected are computed from the --json document through the view's declared
columns, and the printed table is parsed back cell by cell.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from effnet_cli.output import sink as output_sink
from effnet_cli.output.sink import WIDE, Settings, Sink
from effnet_cli.output.table import Column, columns_with_values, print_columns
from effnet_cli.output.views import bench as bench_view
from effnet_cli.output.views import export as export_views
from effnet_cli.output.views import predict as predict_views
from effnet_cli.output.views import scale as scale_views
from effnet_cli.output.views import summary as summary_views
from effnet_cli.records import bench as R

WIDTHS = (80, 100, 120)


@pytest.fixture
def terminal(monkeypatch):
    """Run the CLI as if stdout were a terminal of `width` columns (plain, to parse it back)."""

    def at(width: int) -> None:
        monkeypatch.setattr(output_sink, "is_terminal", lambda stream: True)
        monkeypatch.setenv("COLUMNS", str(width))
        monkeypatch.setenv("NO_COLOR", "1")

    return at


def _parse(text: str, title_line: str | None = None) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of cells) of the first rich table in `text` after `title_line`."""
    lines = text.splitlines()
    start = (
        0
        if title_line is None
        else next(i for i, line in enumerate(lines) if line.startswith(title_line))
    )
    header_at = next(i for i in range(start, len(lines)) if "┃" in lines[i])
    headers = [h.strip() for h in lines[header_at].split("┃")]
    rows = []
    for line in lines[header_at + 2 :]:
        if "│" not in line:
            break
        rows.append([c.strip() for c in line.split("│")])
    return headers, rows


def _check(text: str, columns, documents, width: int, title_line: str | None = None) -> None:
    """Every cell of the table printed at `width` equals the view's cell of the JSON value."""
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    headers, rows = _parse(text, title_line)
    by_title = {c.title: c for c in columns}
    shown = [by_title[h] for h in headers]
    kept = columns_with_values(columns, documents)
    assert {c.title for c in kept if c.priority == 1} <= set(headers)  # the main ones, always
    assert documents and len(rows) == len(documents)
    for cells, document in zip(rows, documents, strict=True):
        assert cells == [c.text(document) for c in shown]
    left_out = [c.title for c in kept if c.title not in headers]
    if left_out:  # said, not silently dropped
        assert f"not shown at {width} columns: {left_out[0]}" in " ".join(text.split())
    else:
        assert "not shown at" not in text


@pytest.mark.parametrize("width", WIDTHS)
def test_summary_fits_and_matches_its_json(cli, terminal, width):
    document = json.loads(cli("summary", "--model", "b3", "--json").stdout)
    terminal(width)
    result = cli("summary", "--model", "b3")
    assert result.code == 0, result.stderr
    _check(result.stdout, summary_views.STAGE_TABLE, document["stages"], width)
    assert f"{document['totals']['params']:,}" in result.stdout
    assert f"{document['totals']['macs']:,}" in result.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_scale_table_fits_and_matches_its_json(cli, terminal, width):
    document = json.loads(cli("scale-table", "--family", "all", "--json").stdout)
    terminal(width)
    result = cli("scale-table", "--family", "all")
    assert result.code == 0, result.stderr
    _check(result.stdout, scale_views.SCALE_TABLE, document["rows"], width)


def test_wide_and_a_pipe_show_every_column(cli, terminal):
    piped = cli("scale-table").stdout
    terminal(80)
    wide = cli("scale-table", "--wide").stdout
    narrow = cli("scale-table").stdout
    assert wide == piped and "rule MACs" in wide
    assert "rule MACs" not in _parse(narrow)[0]
    assert "--wide shows every column" in " ".join(narrow.split())


def _environment() -> R.Environment:
    return R.Environment(effnet="0", python="3", platform="linux", cpu="Some CPU", cpu_count=2,
                       gpus=(), threads=2, versions={})  # fmt: skip


def ceilings(fp32_macs_per_s: float | None = 6e9, source: R.Source = "measured") -> R.Ceilings:
    """A machine's ceilings as bench reports them: fp32 measured, bf16 and int8 not (an AVX2
    CPU), the memory bandwidth measured."""
    common = {"source": source, "method": "probe", "threads": 2, "cpu": "Some CPU",
              "measured_at": "2026-12-07T03:00:00+00:00"}  # fmt: skip
    gemm = (
        R.GemmCeiling(precision="fp32", macs_per_s=fp32_macs_per_s, **common),
        *(R.GemmCeiling(precision=p, macs_per_s=None, **{**common, "source": "unavailable"},
                        reason="this CPU has no native support") for p in ("bf16", "int8")),
    )  # fmt: skip
    bandwidth = R.Bandwidth(bytes_per_s=20e9, **common)
    return R.Ceilings(threads=2, device="cpu", gemm=gemm, bandwidth=bandwidth)


def _bench_result() -> R.BenchResult:
    row = R.LatencyRow(runtime="openvino", device="cpu", provider="CPUExecutionProvider",
                     precision="fp32", batch=8, threads=2, settings=None, settings_source=None,
                     latency_ms_mean=1234.5678, latency_ms_std=12.3456, latency_ms_min=1200.01,
                     latency_ms_p50=1230.25, latency_ms_p90=1250.75, latency_ms_p99=1299.99,
                     images_per_s=6.48, macs_per_s=2.5e9, ceiling_fraction=0.42,
                     limit_images_per_s=10.2, limit_fraction=0.64,
                     drift_max_rel=3.2e-6, top1_agreement=1.0, first_inference_ms=2345.6,
                     setup_s=12.3, iterations=20)  # fmt: skip
    failed = R.LatencyRow(runtime="tflite", device="cpu", provider="XNNPACK", precision="fp32",
                        batch=8, threads=2, settings=None, settings_source=None, setup_s=0.0,
                        error="out of memory")  # fmt: skip
    settings = R.Settings(device="cpu", batches=(8,), warmup=1, iterations=20, duration_s=None,
                        threads=2, seed=0, xla=False, modes=("latency",))  # fmt: skip
    return R.BenchResult(model={"name": "efficientnet-b0", "resolution": [224, 224]},
                       settings=settings, ceilings=ceilings(), environment=_environment(),
                       rows=(row, replace(row, runtime="onnx", batch=1), failed))  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_table_fits(capsys, terminal, width):
    result = _bench_result()
    terminal(width)
    bench_view.print_bench(result)
    text = capsys.readouterr().out
    rows = [row.to_json() for row in result.rows]
    best = bench_view.fastest_rows(rows)
    rows = [{**r, "fastest": i in best} for i, r in enumerate(rows)]
    star = Column("", "fastest", show=lambda r: "★" if r["fastest"] else "")
    _check(text, (*bench_view.BENCH_TABLE, star), rows, width, title_line="efficientnet-b0")
    assert "out of memory" in text  # a failed row says why, whole


@pytest.mark.parametrize("wide", [False, True])
def test_a_pipe_and_wide_show_every_column_of_a_table_wider_than_the_default(
    capsys, terminal, wide
):
    """Latency rows with their settings need more than WIDE columns: a pipe (a CI log)
    and --wide still show every one, at whatever width that takes."""
    settings = "LATENCY hint, 2 threads, inference precision f32, static batch 8"
    result = _bench_result()
    result = replace(result, rows=tuple(
        replace(r, settings=settings, settings_source="default (--tune searches)")
        for r in result.rows))  # fmt: skip
    if wide:
        terminal(80)
    with Sink(Settings(wide=wide)).active():
        bench_view.print_bench(result)
    text = capsys.readouterr().out
    headers, _ = _parse(text, "efficientnet-b0")
    shown = [c.title for c in bench_view.BENCH_TABLE if c.in_table]
    assert all(title in headers for title in shown), (shown, headers)
    assert max(len(line) for line in text.splitlines()) > WIDE
    assert "not shown" not in text and f"{settings}; default (--tune searches)" in text


def test_bench_csv_comes_from_the_same_columns():
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(bench_view.bench_csv(_bench_result().rows))))
    assert list(rows[0]) == list(bench_view.BENCH_COLUMNS)
    assert float(rows[0]["latency_ms_p50"]) == 1230.25 and rows[2]["error"] == "out of memory"


def test_a_table_too_narrow_for_its_main_columns_stacks_its_rows(capsys):
    from rich.console import Console

    console = Console(width=30, color_system=None)
    columns = (Column("path", "path", left=True), Column("bytes", "bytes", "int"))
    print_columns(console, "files", columns, [{"path": "a" * 40, "bytes": 123456789}])
    text = capsys.readouterr().out
    assert "123,456,789" in text and "a" * 28 in text and "…" not in text


@pytest.mark.parametrize("command", [["summary"], ["scale-table"], ["summary", "--layers"]])
def test_no_color_means_no_escape_sequence_even_in_a_terminal(cli, terminal, monkeypatch, command):
    terminal(100)  # with NO_COLOR=1
    result = cli(*command)
    assert result.code == 0 and "\x1b" not in result.stdout + result.stderr
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b[" in cli(*command).stdout  # the same terminal without NO_COLOR has styles


def test_help_at_80_columns_cuts_nothing_and_shows_choices(monkeypatch):
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}

    def help_text(command: str) -> str:
        argv = [sys.executable, "-m", "effnet_cli", command, "--help"]
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout

    for command in ("summary", "export", "bench", "scale-table"):
        text = help_text(command)
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
        assert "--classifier-activation [softmax|none]" in text or command == "scale-table"
    bench = help_text("bench")
    assert "--device [cpu|gpu|auto]" in bench and "--runtime [keras|onnx|" in bench


def _complete(argv: str, incomplete: str) -> list[str]:
    """What Click's completion machinery offers for `effnet ARGV INCOMPLETE<TAB>`."""
    import typer.main
    from click.shell_completion import ShellComplete

    from effnet_cli.cli.app import app

    command = typer.main.get_command(app)
    completer = ShellComplete(command, {}, "effnet", "_EFFNET_COMPLETE")
    return [item.value for item in completer.get_completions(argv.split(), incomplete)]


def test_completion_offers_values_from_the_tables_that_validate_them():
    from effnet_cli import backends
    from effnet_cli.model import spec as S

    assert _complete("summary --model", "") == list(S.model_names())
    assert _complete("summary --model", "lite") == [n for n in S.model_names() if "lite" in n]
    assert _complete("export --format", "onnx,t") == ["onnx,tflite"]
    assert _complete("bench --runtime", "") == [*backends.bench_runtimes(), "all"]
    assert _complete("bench --device", "g") == ["gpu"]
    assert _complete("scale-table --family", "") == [*S.FAMILIES, "all"]
    assert _complete("summary --pooling", "") == ["avg", "max"]


@pytest.mark.parametrize("width", WIDTHS)
def test_export_table_keeps_the_written_path_whole(capsys, terminal, width):
    from pathlib import Path

    from effnet_cli.records import export as X
    from effnet_cli.records.model import ModelIdentity

    def artifact(backend: str, path: str, drift: float) -> X.Artifact:
        accuracy = X.Accuracy(judged_on="the shipped photos", images=8, top1_agreement=0.875,
                              top5_overlap=0.95, sqnr_db=16.1, min_top1_agreement=0.6,
                              min_top5_overlap=0.75, min_sqnr_db=6.0, passed=True)  # fmt: skip
        check = X.Verification(batches=(1, 3), sizes=(224,), compared="logits", max_rel_diff=drift,
                               top1_agreement=1.0, tolerance=None, passed=True, drift_images=4,
                               accuracy=accuracy)  # fmt: skip
        return X.Artifact(format=backend, path=Path(path), precision="int8", bytes=21181235,
                          time_s=8.25, kept=True, verification=check,
                          calibration=X.Calibration(source="x", images=32))  # fmt: skip

    artifacts = (artifact("onnx", "some/deeper/folder/out/efficientnet-b0.onnx", 5.1e-6),
                 artifact("tflite", "out/efficientnet-b0.tflite", 3.7e-6))  # fmt: skip
    terminal(width)
    documents = [a.to_json() for a in artifacts]
    model = ModelIdentity(name="efficientnet-b0", family=None, resolution=None, classes=None,
                          preprocessing=None)  # fmt: skip
    export_views.view(Sink(), X.ExportResult(model=model, artifacts=artifacts))
    text, notes = capsys.readouterr()
    _check(text, export_views.EXPORT_TABLE, documents, width, title_line="efficientnet-b0")
    assert "some/deeper/folder/out/efficientnet-b0.onnx" in text
    # what each gate was judged on, and how many images
    assert "on 4 seeded random images" in notes and "calibrated on 32 images: x" in notes
    assert "on 8 real images (the shipped photos); gated" in " ".join(notes.split())


def _throughput_rows() -> list[R.ThroughputRow]:
    row = R.ThroughputRow(runtime="openvino", device="cpu", provider=None, precision="bf16",
                        batch=8, threads=2, in_flight=4, in_flight_observed=4, images_per_s=235.42,
                        load_latency_ms_p50=130.52, load_latency_ms_p90=141.07,
                        load_latency_ms_p99=152.93, drift_max_rel=3.2e-2, top1_agreement=1.0,
                        settings="THROUGHPUT hint, 4 requests in flight, 2 threads",
                        settings_source="tuned 2026-11-25", setup_s=1.0)  # fmt: skip
    return [row, replace(row, runtime="onnx", precision="fp32", drift_max_rel=None),
            replace(row, runtime="tflite", error="out of memory")]  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_throughput_table_fits(capsys, terminal, width):
    """Throughput rows: their own table, cut nowhere; unmeasured drift said as such."""
    records = _throughput_rows()
    terminal(width)
    bench_view.print_throughput(records, output_sink.current().out())
    text = capsys.readouterr().out
    rows = [row.to_json() for row in records]
    best = bench_view.fastest_rows(rows)
    marked = [{**r, "fastest": i in best} for i, r in enumerate(rows)]
    star = Column("", "fastest", show=lambda r: "★" if r["fastest"] else "")
    _check(text, (*bench_view.THROUGHPUT_TABLE, star), marked, width, title_line="throughput")
    headers, _ = _parse(text, "throughput")
    assert "out of memory" in text and ("unmeasured" in text) == ("drift" in headers)


@pytest.mark.parametrize("width", WIDTHS)
def test_predict_and_compare_tables_fit(capsys, terminal, width):
    from effnet_cli.records import predict as P
    from effnet_cli.records.model import ModelIdentity

    top = (P.Ranked(rank=1, class_=921, probability=0.01853,
                    label="book jacket, dust cover, dust jacket, dust wrapper"),
           P.Ranked(rank=2, class_=7, probability=0.00131, label="cock"))  # fmt: skip
    run = P.RunSummary(engine="local", where="this process", workers=2, images=2, skipped=0,
                       classified=2, failed=0, first_error=None, wall_s=0.5, images_per_s=4.0,
                       decode_s=0.1, inference_s=0.3)  # fmt: skip
    result = P.PredictResult(
        model=ModelIdentity(name="efficientnet-b0", family="v1", resolution=(224, 224),
                            classes=1000, preprocessing=True),
        source="efficientnet-b0", runtime="keras", provider="cpu", precision="fp32",
        resize="crop", run=run, output=None,
        images=(P.Prediction(path="photos/image0.jpg", top=top),
                P.Prediction(path="photos/image1.png", top=top)),
    )  # fmt: skip
    terminal(width)
    predict_views.view(Sink(), result)
    rows = predict_views.prediction_rows(result)
    _check(capsys.readouterr().out, predict_views.PREDICT_TABLE, rows, width)
    row = P.CompareRow(path="demo/efficientnet-b0.keras", runtime="keras", precision="fp32",
                       resolution=(224, 224), top1_agreement=1.0, top_k_overlap=1.0,
                       max_abs_diff_prob=0.0, k=5)  # fmt: skip
    int8 = replace(row, path="demo/efficientnet-b0-int8.tflite", runtime="tflite",
                   precision="int8", top1_agreement=1 / 3, top_k_overlap=0.47,
                   max_abs_diff_prob=1.7e-2)  # fmt: skip
    predict_views.compare_view(Sink(), P.CompareResult(images=6, reference=row.path,
                                                       rows=(row, int8)))  # fmt: skip
    text = capsys.readouterr().out
    assert "33%" in text and "47%" in text and "…" not in text  # agreement: the main columns
    assert max(len(line) for line in text.splitlines()) <= width


def test_a_long_path_gives_up_its_middle_never_its_file_name():
    from effnet_cli.output.table import elide_path

    path = "/home/someone/projects/effnet/exports/2026-12-04/efficientnet-b0.onnx"
    assert elide_path(path, 80) == path  # whole where it fits
    assert elide_path(path, 40) == "/home/…/2026-12-04/efficientnet-b0.onnx"
    assert elide_path(path, 25) == "/…/efficientnet-b0.onnx"
    assert elide_path("out/deeper/still/efficientnet-b0.onnx", 30) == "out/…/efficientnet-b0.onnx"
    for room in range(24, len(path)):
        shown = elide_path(path, room)
        assert len(shown) <= room and shown.endswith("/efficientnet-b0.onnx")


def _deep(root) -> object:
    """A folder nested deep enough that its paths cannot fit 80 columns beside anything."""
    folder = root / "a" / "very" / "deeply" / "nested" / "output" / "folder" / "for" / "the"
    folder = folder / "artifacts" / "of" / "one" / "run" / "of" / "effnet" / "export"
    folder.mkdir(parents=True)
    return folder


def _fits(text: str, width: int) -> None:
    from rich.cells import cell_len

    assert text and max(cell_len(line) for line in text.splitlines()) <= width, text


def test_paths_fit_80_columns_and_show_whole_in_json_wide_and_a_pipe(cli, terminal, tmp_path):
    """export, inspect and predict into (and from) a deeply nested folder: at 80 columns no
    line is wider than the terminal and each path keeps its file name; --json, --wide and a
    pipe give the whole path."""
    import numpy as np
    from PIL import Image

    deep = _deep(tmp_path)
    keras = deep / "efficientnet-b0-r32.keras"
    image = deep / "an-image-with-a-long-name-to-classify.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(image)
    export = ["export", "--resolution", "32", "-f", "keras", "-o", deep, "--force"]
    exported = json.loads(cli(*export, "--json").stdout)  # a pipe, and the JSON
    assert exported["artifacts"][0]["path"] == str(keras)
    commands = {"inspect": ["inspect", keras], "predict": ["predict", image, "--from", keras]}
    for name, argv in commands.items():
        piped = cli(*argv)
        assert piped.code == 0, piped.stderr
        assert str(keras if name == "inspect" else image) in piped.stdout
    assert json.loads(cli(*commands["predict"], "--json").stdout)["images"][0]["path"] == str(image)
    terminal(80)
    assert str(keras) in cli(*export, "--wide", "--no-verify").stdout
    for name, argv in {"export": export, **commands}.items():
        result = cli(*argv)
        assert result.code == 0, result.stderr
        _fits(result.stdout, 80)
        if name != "inspect":  # a table: the path elided, its file name whole
            assert "…/" in result.stdout
            assert (keras if name == "export" else image).name in result.stdout
