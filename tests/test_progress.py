"""Progress on stderr only: timestamped lines in a log, a live status with elapsed seconds in a
terminal, nothing with --quiet; stdout keeps the result alone."""

from __future__ import annotations

import re

import pytest

from effnet_cli.output import sink as output_sink
from effnet_cli.output.sink import BAR, Settings, Sink, _Ticking


@pytest.fixture
def sink():
    made = Sink()
    yield made
    made.end_progress()


def test_outside_a_terminal_each_step_is_a_timestamped_line(capsys, sink):
    sink.progress("converting to onnx fp32")
    sink.progress("timing onnx fp32 at batch 1")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines] == [
        "converting to onnx fp32",
        "timing onnx fp32 at batch 1",
    ]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in lines)


def test_in_a_terminal_each_finished_step_says_how_long_it_took(capsys, monkeypatch, sink):
    monkeypatch.setattr(output_sink, "is_terminal", lambda stream: True)
    monkeypatch.setenv("NO_COLOR", "1")
    sink.progress("building efficientnet-b0")
    sink.progress("writing efficientnet-b0.onnx")
    sink.end_progress()
    captured = capsys.readouterr()
    assert captured.out == ""
    finished = re.findall(r"(building efficientnet-b0|writing efficientnet-b0.onnx) · \d+\.\d s",
                          captured.err)  # fmt: skip
    assert finished == ["building efficientnet-b0", "writing efficientnet-b0.onnx"]
    assert not sink.live  # the live status is gone once the work is over


def test_quiet_silences_progress_but_not_errors(cli, capsys):
    Sink(Settings(quiet=True)).progress("building efficientnet-b0")
    assert capsys.readouterr().err == ""
    result = cli("--quiet", "summary", "--model", "b9")
    assert result.code == 2 and result.stderr.startswith("error: unknown model 'b9'")
    assert cli("--quiet", "summary").code == 0


def test_a_result_ends_the_live_status_before_it_prints(capsys, monkeypatch, sink):
    monkeypatch.setattr(output_sink, "is_terminal", lambda stream: True)
    sink.progress("timing keras fp32 at batch 1")
    assert sink.live
    sink.out()  # what every view starts with
    assert not sink.live


def test_a_counted_step_draws_a_bar_of_the_steps_done():
    ticking = _Ticking("writing efficientnet-b0.tflite (2/4)", 0.0)
    line = ticking.__rich__()
    assert line.startswith("━" * (BAR // 4) + "─" * (BAR * 3 // 4) + " writing")
    assert _Ticking("building efficientnet-b0", 0.0).__rich__().startswith("building")


@pytest.mark.slow
def test_bench_counts_its_rows_and_moves_past_a_skipped_pair(cli, idle_probes):
    """Each timed row says "(n/N)" (the live status draws its bar from it); keras int8, which
    is skipped, counts as done rather than leaving the bar short."""
    result = cli("bench", "--model", "seed-b0", "--resolution", "64", "--runtime", "keras",
                 "--precision", "fp32,int8", "--batch", "1,2", "--iterations", "1",
                 "--warmup", "0")  # fmt: skip
    assert result.code == 0, result.stderr
    counted = re.findall(r"timing keras fp32 at batch (\d) \((\d)/(\d)\)", result.stderr)
    assert counted == [("1", "1", "4"), ("2", "2", "4")]
    assert "skipped keras int8" in result.stdout
