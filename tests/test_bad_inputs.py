"""Every command, fed bad input: exit 2, one `error:` line naming what is valid, no traceback,
nothing created or changed on disk. And interrupts: exit 130, one line, no partial file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder of bad and good inputs; each case runs inside it and must leave it unchanged."""
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    folder = tmp_path_factory.mktemp("bad")
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
    model.save_weights(folder / "b0.weights.h5")
    model.save(folder / "b0.keras")  # keras.applications' V1: explicit stride-2 padding
    whole = (folder / "b0.weights.h5").read_bytes()
    (folder / "truncated.weights.h5").write_bytes(whole[: len(whole) // 2])
    (folder / "empty.weights.h5").write_bytes(b"")
    (folder / "random.h5").write_bytes(os.urandom(4096))
    (folder / "notes.txt").write_text("not a model\n")
    (folder / "existing.keras").write_bytes(b"precious")
    (folder / "existing.png").write_bytes(b"precious")
    (folder / "somedir").mkdir()
    (folder / "dir.keras").mkdir()
    (folder / "bad.json").write_text("{not json")
    (folder / "other.json").write_text('{"schema": "effnet.summary/1"}')
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "garbage.tflite").write_bytes(os.urandom(2048))
    (folder / "random.keras").write_bytes(os.urandom(2048))
    np.save(folder / "small.npy", np.zeros((2, 8, 8, 3), dtype="float32"))
    _predict_images(folder)
    return folder


def _predict_images(folder: Path) -> None:
    """A good image, and a PNG cut in half (its header reads, its pixels do not)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "good.png")
    whole = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / "noimages").mkdir()
    (folder / "noimages" / "readme.txt").write_text("no pictures here\n")
    (folder / "notes.csv").write_text("name\ncat.jpg\n")  # a list without a `path` column
    (folder / "existing.png.csv").write_text("precious\n")


SUMMARY = [
    (["summary", "--model", "b9"], "valid: b0, b1"),
    (["summary", "--model", ""], "unknown model"),
    (["summary", "--phi", "x"], "--phi"),
    (["summary", "--phi", "13"], "--phi"),
    (["summary", "--phi", "-1"], "--phi"),
    (["summary", "--resolution", "0"], "--resolution must lie between 32 and 2048"),
    (["summary", "--resolution", "-5"], "--resolution must lie between"),
    (["summary", "--resolution", "100000"], "--resolution must lie between"),
    (["summary", "--resolution", "abc"], "--resolution"),
    (["summary", "--num-classes", "0"], "--num-classes must lie between"),
    (["summary", "--num-classes", "-3"], "--num-classes"),
    (["summary", "--num-classes", "10000000"], "--num-classes"),
    (["summary", "--phi", "2", "--model", "b3"], "disagree"),
    (["summary", "--pooling", "avg"], "--no-top"),
    (["summary", "--no-top", "--pooling", "sum"], "valid: avg or max"),
    (["summary", "--classifier-activation", "relu"], "softmax or none"),
    (["summary", "--width", "0"], "--width must lie between"),
    (["summary", "--depth", "100"], "--depth must lie between"),
    (["summary", "--dropout", "1.5"], "--dropout must lie between"),
    (["summary", "--drop-connect", "-0.1"], "--drop-connect must lie between"),
    (["summary", "--model", "seed-b0", "--preprocessing"], "no input preprocessing"),
    (["summary", "--seed", "x"], "--seed"),
    (["nosuch"], "No such command"),
]
BUILD = [
    (["build", "-o", "model.onnx"], "valid endings: .keras"),
    (["build", "--weights", "missing.h5"], "does not exist"),
    (["build", "--weights", "empty.weights.h5"], "not a readable HDF5"),
    (["build", "--weights", "random.h5"], "not a readable HDF5"),
    (["build", "--weights", "truncated.weights.h5"], "truncated.weights.h5"),
    (["build", "--phi", "1", "--weights", "b0.weights.h5"], "weight tensors but efficientnet-b1"),
    (["build", "--weights", "notes.txt"], "valid endings: .weights.h5"),
    (["build", "-o", "existing.keras"], "already exists"),
    (["build", "-o", "dir.keras"], "is a directory"),
    (["build", "-o", "nowhere/x.keras"], "does not exist"),
    (["build", "-o", "notes.txt/x.keras"], "does not exist"),
]
EXPORT = [
    (["export", "-f", "pdf"], "valid: keras, savedmodel, onnx, tflite or openvino"),
    (["export"], "at least one --format"),
    (["export", "-f", "tflite", "--quantize", "int4"], "valid: none, dynamic, fp16 or int8"),
    (["export", "-f", "keras", "--quantize", "fp16"], "not a precision of keras; it applies to"),
    (["export", "-f", "onnx,tflite", "--quantize", "dynamic"],
     "not a precision of onnx; it applies to tflite"),
    (["export", "-f", "openvino", "--quantize", "fp16"],  # a runtime hint, not a file
     "not a precision of openvino; it applies to onnx or tflite"),
    (["export", "-f", "onnx", "--quantize", "int8", "--calibration", "small.npy"],
     "calibration needs (N, 224, 224, 3)"),
    (["export", "-f", "onnx", "--quantize", "int8", "--calibration", "notes.txt"],
     "takes a folder of images or a .npy file"),
    (["export", "-f", "onnx", "--quantize", "int8", "--int8-recipe", "magic"],
     "unknown --int8-recipe 'magic'; valid: default, percentile or keep-float"),
    (["export", "-f", "onnx", "--quantize", "fp16", "--int8-recipe", "percentile"],
     "--int8-recipe applies to --quantize int8, not fp16"),
    (["export", "-f", "onnx,tflite", "--quantize", "int8", "--int8-recipe", "percentile"],
     "--int8-recipe percentile is not a recipe of tflite; tflite offers default or keep-float"),
    (["export", "-f", "onnx", "--quantize", "int8", "--int8-recipe", "keep-float", "--no-verify"],
     "searches with verification's real images; drop --no-verify"),
    (["export", "-f", "onnx", "--opset", "3"], "--opset must lie between"),
    (["export", "-f", "onnx", "--batch", "0"], "--batch must lie between"),
    (["export", "-f", "onnx", "--batch", "-2"], "--batch must lie between"),
    (["export", "-f", "onnx", "--from", "missing.keras"], "does not exist"),
    (["export", "-f", "onnx", "--from", "notes.txt"], "takes a .keras file"),
    (["export", "-f", "onnx", "--from", "random.keras"], "not a .keras archive"),
    (["export", "-f", "tflite", "--quantize", "int8", "--calibration", "missing.npy"],
     "does not exist"),
    (["export", "-f", "onnx", "-o", "notes.txt"], "-o takes a directory"),
    (["export", "-f", "keras", "-o", "nowhere/deeper"], "does not exist"),
    (["export", "-f", "tflite", "--nchw"], "--nchw does not apply to tflite; it applies to onnx"),
    (["export", "-f", "onnx,openvino", "--nchw"], "--nchw does not apply to openvino"),
    (["export", "-f", "onnx,keras", "--dynamic-size", "--model", "seed-b0"],
     "--dynamic-size does not apply to keras; it applies to onnx"),
    (["export", "-f", "onnx", "--dynamic-size"],
     "efficientnet-b0 pads its stride-2 convolutions explicitly for 224 px"),
    (["export", "-f", "onnx", "--dynamic-size", "--model", "lite1", "--nchw"],
     "efficientnet-lite1 pads its stride-2 convolutions explicitly for 240 px"),
    (["export", "-f", "onnx", "--dynamic-size", "--from", "b0.keras"],
     "b0 pads its stride-2 convolutions explicitly for its build resolution"),
    (["export", "-f", "onnx", "--allow-odd-padding"], "confirms --dynamic-size"),
]  # fmt: skip
BENCH = [
    (["bench", "--runtime", "mxnet"], "valid: keras, onnx, tflite, openvino or all"),
    (["bench", "--device", "tpu"], "valid: cpu, gpu or auto"),
    (["bench", "--batch", "0"], "--batch sizes must lie between"),
    (["bench", "--batch", "1,x"], "comma-separated"),
    (["bench", "--batch", "5000"], "--batch sizes must lie between"),
    (["bench", "--iterations", "0"], "--iterations must lie between"),
    (["bench", "--iterations", "-1"], "--iterations must lie between"),
    (["bench", "--threads", "0"], "--threads must lie between"),
    (["bench", "--duration", "-1"], "--duration must lie between"),
    (["bench", "--baseline", "missing.json"], "does not exist"),
    (["bench", "--baseline", "bad.json"], "cannot read baseline"),
    (["bench", "--baseline", "other.json"], "not an `effnet bench --json` result"),
    (["bench", "--csv", "existing.keras"], "already exists"),
    (["bench", "--device", "gpu", "--runtime", "keras"], "no GPU is visible"),
    (["bench", "--precision", "int3"], "valid: fp32, bf16, fp16, int8, dynamic or all"),
    (["bench", "--calibration", "missing.npy"], "does not exist"),
    (["bench", "--warmup", "-1"], "--warmup must lie between"),
    (["bench", "--max-regression", "x"], "--max-regression"),
    (["bench", "--from", "missing.keras"], "does not exist"),
    (["bench", "--plot", "out.jpg"], "ending in .png"),
    (["bench", "--verify-images", "missing"], "does not exist"),
    (["bench", "--verify-images", "noimages"], "holds no images"),
]
INSPECT = [
    (["inspect", "missing.onnx"], "does not exist"),
    (["inspect", "notes.txt"], "valid: a .keras, .onnx or .tflite file, or a folder of"),
    (["inspect", "empty.onnx"], "not a readable onnx file"),
    (["inspect", "garbage.tflite"], "not a readable tflite file"),
    (["inspect", "random.keras"], "not a .keras archive"),
    (["inspect", "somedir"], "is a folder without savedmodel (saved_model.pb) or openvino"),
    (["inspect", "random.h5"], "not a readable HDF5"),
    (["inspect", "empty.weights.h5"], "not a readable HDF5"),
    (["inspect", "missing.weights.h5"], "does not exist"),
]
SCALE = [
    (["scale-table", "--family", "x"], "valid: b, lite, seed, v2 or all"),
    (["scale-table", "--format", "xml"], "valid: table, json, csv or markdown"),
    (["scale-table", "--phi", "a,b"], "comma-separated"),
    (["scale-table", "--phi", "13"], "between 0 and 12"),
    (["scale-table", "--plot", "out.jpg"], "ending in .png"),
    (["scale-table", "--plot", "existing.png"], "already exists"),
    (["scale-table", "--gamma", "0.9"], "at least 1"),
    (["scale-table", "--alpha", "0.5"], "at least 1"),
    (["scale-table", "--beta", "0"], "at least 1"),
    (["scale-table", "--phi-max", "13"], "between 0 and 12"),
]
PREDICT = [
    (["export", "-f", "onnx", "--verify-images", "missing"], "does not exist"),
    (["export", "-f", "onnx", "--verify-images", "noimages"], "holds no images"),
    (["export", "-f", "onnx", "--verify-images", "somedir", "--no-verify"], "drop --no-verify"),
    (["predict", "missing.png", "--from", "b0.keras"], "does not exist"),
    (["predict", "noimages", "--from", "b0.keras"], "holds no images; valid: .jpg, .jpeg"),
    (["predict", "no*.png", "--from", "b0.keras"], "the pattern 'no*.png' matches no file"),
    (["predict", "--inputs", "missing.txt"], "does not exist"),
    (["predict", "--inputs", "good.png"], "unknown list format; valid: .txt, .csv or .parquet"),
    (["predict", "--inputs", "notes.csv"], "has no `path` column (its columns: name)"),
    (["predict", "good.png", "--output", "rows.xml"], "valid suffixes: .csv, .jsonl or .parquet"),
    (["predict", "good.png", "--output", "existing.png.csv"], "already exists"),
    (["predict", "good.png", "--output", "somedir"], "unknown format"),
    (["predict", "good.png", "--resume"], "--resume continues an --output"),
    (["predict", "good.png", "-o", "r.csv", "--resume", "--force"], "--resume continues an"),
    (["predict", "good.png", "--engine", "spark"], "unknown --engine 'spark'; valid: local or ray"),
    (["predict", "good.png", "--engine", "ray", "-o", "r.csv"], "give --output FOLDER.parquet"),
    (["predict", "good.png", "--engine", "ray"], "--engine ray runs an artifact file"),
    (["predict", "good.png", "--workers", "0"], "--workers must be at least 1"),
    (["predict", "good.png", "--batch", "0"], "--batch must be at least 1"),
    (["predict", "good.png", "--address", "127.0.0.1:1"], "--address joins a Ray cluster"),
    (["predict", "good.png", "--engine", "ray", "--address", "127.0.0.1:1"],
     "no Ray cluster answers at 127.0.0.1:1"),
    (["predict", "good.png", "--engine", "ray", "--address", "nowhere"], "is not HOST:PORT"),
    (["predict", "good.png", "--decode", "fast"], "unknown --decode 'fast'; valid: full or draft"),
    (["predict", "good.png", "--compare", "b0.keras,b0.keras", "-o", "r.csv"],
     "--compare runs a few images in memory"),
    (["predict", "good.png", "--from", "missing.onnx"], "does not exist"),
    (["predict", "good.png", "--from", "notes.txt"], "valid: a .keras, .onnx or .tflite file"),
    (["predict", "good.png", "--from", "garbage.tflite"], "not a readable tflite file"),
    (["predict", "good.png", "--compare", "b0.keras"], "at least two artifacts"),
    (["predict", "good.png", "--top", "0"], "--top must be at least 1"),
    (["predict", "good.png", "--resize", "stretch"], "valid: crop or plain"),
    (["predict", "good.png", "--labels", "missing.txt"], "does not exist"),
    (["predict", "good.png", "--from", "b0.keras", "--labels", "notes.txt"],
     "the model has 1000 classes but notes.txt holds 1 labels"),
    (["predict", "good.png", "--threads", "0"], "--threads must be at least 1"),
    (["predict", "good.png", "--csv", "existing.png"], "already exists"),
    (["predict", "good.png", "--no-top"], "classifier head"),
]  # fmt: skip
EVALUATE = [  # more in tests/test_evaluate.py, on labelled folders of real photos
    (["evaluate", "missing"], "folder 'missing' does not exist"),
    (["evaluate", "good.png"], "is not a folder"),
    (["evaluate", "noimages", "--from", "b0.keras"], "holds no class subfolders; valid:"),
    (["evaluate", "noimages", "--from", "missing.onnx"], "does not exist"),
    (["evaluate", "noimages", "--compare", "missing.onnx"], "does not exist"),
    (["evaluate", "noimages", "--truth", "missing.csv"], "does not exist"),
    (["evaluate", "noimages", "--resize", "stretch"], "valid: crop or plain"),
    (["evaluate", "noimages", "--threads", "0"], "--threads must be at least 1"),
    (["evaluate", "noimages", "--csv", "existing.png"], "already exists"),
    (["evaluate"], "evaluate needs the labelled images: DIR, or --inputs LIST"),
    (["evaluate", "--inputs", "missing.csv"], "does not exist"),
    (["evaluate", "--inputs", "notes.txt"], "valid lists: .csv or .parquet"),
    (["evaluate", "--inputs", "notes.csv"], "needs `path` and `class` columns; its columns: name"),
    (["evaluate", "noimages", "--inputs", "notes.csv"], "drop DIR and --truth"),
    (["evaluate", "noimages", "--output", "rows.txt"], "valid suffixes: .csv, .jsonl or"),
    (["evaluate", "noimages", "--resume"], "--resume continues an --output"),
    (["evaluate", "noimages", "--engine", "spark"], "valid: local or ray"),
    (["evaluate", "noimages", "--engine", "ray"], "--engine ray runs artifact files"),
    (["evaluate", "noimages", "--workers", "0"], "--workers must be at least 1"),
    (["evaluate", "noimages", "--batch", "-1"], "--batch must be at least 1"),
    (["evaluate", "noimages", "--address", "127.0.0.1:1"], "--address joins a Ray cluster"),
    (["evaluate", "noimages", "--decode", "fast"], "valid: full or draft"),
]
DOCTOR = [
    (["doctor", "--bogus"], "No such option"),  # doctor takes no values: only a wrong option
]
# Options that would do nothing, and outputs that cannot be written: refused at once, before any
# model is built (issue 15 item 6); test_bad_input also holds each of these under 0.5 s.
EARLY = [
    (["summary", "--weights", "b0.weights.h5"], "--weights changes nothing in summary"),
    (["summary", "--seed", "1"], "--seed changes nothing in summary"),
    (["build", "--weights", "b0.weights.h5", "--seed", "1"], "--seed changes nothing beside"),
    (["build", "--weights", "somedir"], "'somedir' is a directory"),
    (["export", "-f", "onnx", "--weights", "somedir"], "'somedir' is a directory"),
    (["build", "-o", "/proc/x.keras"], "cannot write in directory '/proc'"),
    (["export", "-f", "onnx", "--from", "b0.keras", "--phi", "1"],
     "--phi does not apply with --from"),
    (["export", "-f", "onnx", "--from", "b0.keras", "--no-top"],
     "--no-top does not apply with --from"),
    (["export", "-f", "onnx", "--from", "b0.keras", "--weights", "b0.weights.h5"],
     "--weights does not apply with --from"),
    (["export", "-f", "onnx", "-o", "/proc/effnet-out"], "cannot write in directory '/proc'"),
    (["export", "-f", "onnx,,tflite"], "--format takes a comma-separated list without empty"),
    (["bench", "--from", "b0.keras", "--model", "b1"], "--model does not apply with --from"),
    (["bench", "--from", "m.onnx", "--runtime", "tflite"],
     "--runtime does not apply with --from an artifact"),
    (["bench", "--from", "m.tflite", "--precision", "bf16"],
     "--precision does not apply with --from an artifact"),
    (["bench", "--from", "m.onnx", "--phi", "1"], "--phi does not apply with --from"),
    (["bench", "--reference", "b0.keras"], "--reference applies with --from an artifact"),
    (["bench", "--mode", "throughput", "--streams", "0"], "--streams must lie between 1 and 256"),
    (["bench", "--streams", "2"], "--streams applies to --mode throughput or both"),
    (["bench", "--mode", "both", "--streams", "2", "--tune"], "--tune searches them: give one"),
    (["bench", "--mode", "fast"], "unknown --mode 'fast'; valid: latency, throughput or both"),
    (["bench", "--max-regression", "5"], "--max-regression applies only with --baseline"),
    (["bench", "--duration", "1", "--iterations", "5"], "--duration and --iterations exclude"),
    (["bench", "--batch", "1,,8"], "--batch takes a comma-separated list without empty items"),
    (["bench", "--batch", "1,"], "--batch takes a comma-separated list without empty items"),
    (["bench", "--runtime", "onnx,,tflite"], "--runtime takes a comma-separated list without"),
    (["bench", "--precision", ",fp32"], "--precision takes a comma-separated list without"),
    (["bench", "--csv", "/proc/rows.csv"], "cannot write in directory '/proc'"),
    (["bench", "--plot", "/proc/rows.png"], "cannot write in directory '/proc'"),
    (["scale-table", "--phi", "1,,8"], "--phi takes a comma-separated list without empty items"),
    (["scale-table", "--phi-max", "100"], "--phi-max must lie between 0 and 12, not 100"),
    (["scale-table", "--format", "csv", "--json"], "--json and --format csv exclude each other"),
    (["scale-table", "--plot", "/proc/scale.png"], "cannot write in directory '/proc'"),
    (["sumary"], "No such command 'sumary'. Did you mean 'summary'?"),
]  # fmt: skip
CASES = SUMMARY + BUILD + EXPORT + BENCH + INSPECT + SCALE + PREDICT + EVALUATE + DOCTOR + EARLY
EARLY_LIMIT_S = 0.5
STEP = re.compile(r"\d\d:\d\d:\d\d ")  # a progress line outside a terminal


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input(cli, workdir, monkeypatch, argv, fragment):
    monkeypatch.chdir(workdir)
    before = _listing(workdir)
    started = time.perf_counter()
    result = cli(*argv)
    elapsed_s = time.perf_counter() - started
    assert result.code == 2, result.stderr
    if "--json" in argv:  # a script reads one document either way
        error = json.loads(result.stdout)
        assert error["schema"] == "effnet.error/1" and error["exit"] == 2
        assert fragment in error["error"]
        result.stdout = ""
    if (argv, fragment) in EARLY:
        assert elapsed_s < EARLY_LIMIT_S, f"refused after {elapsed_s:.2f} s"
        assert result.stderr.count("Did you mean") <= 1, result.stderr
        assert not STEP.match(result.stderr), result.stderr  # refused before any work began
    assert result.stdout == ""
    # progress lines (timestamped, stderr) may precede a mismatch found only once the model exists
    lines = [line for line in result.stderr.strip().splitlines() if not STEP.match(line)]
    assert lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines)
    assert "Traceback" not in result.stderr
    assert _listing(workdir) == before  # nothing created, changed or removed


def _uncovered() -> list[str]:
    """Commands, and parameters that take a value, that no case above feeds bad input.

    Read from the Typer app, so a new command or option shows up here until it has a case. The
    shared model options are declared once (options.py): a case on any command covers them.
    """
    import click
    import typer.main

    from effnet_cli.cli.app import app
    from effnet_cli.cli.options import PANEL

    group = typer.main.get_command(app)
    missing = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        own = [argv[1:] for argv, _ in CASES if argv[0] == name]
        if not own:
            missing.append(name)
        for param in command.params:
            if isinstance(param, click.Option):
                if param.is_flag or param.count:
                    continue
                shared = getattr(param, "rich_help_panel", None) == PANEL
                pool = [argv for argv, _ in CASES] if shared else own
                if not any(set(param.opts) & set(argv) for argv in pool):
                    missing.append(f"{name} {param.opts[0]}")
            elif not any(arg and not arg[0].startswith("-") for arg in own):
                missing.append(f"{name} {param.human_readable_name}")
    return missing


def test_every_command_and_every_option_that_takes_a_value_has_a_bad_input_case():
    assert _uncovered() == []


def _interrupt_when(
    argv: list[str], folder: Path, staged_prefix: str
) -> subprocess.CompletedProcess:
    """Start effnet, wait until it is writing (its staged file exists), then press Ctrl-C."""
    command = [sys.executable, "-m", "effnet_cli", *argv]
    pipe = subprocess.PIPE
    process = subprocess.Popen(command, cwd=folder, stdout=pipe, stderr=pipe, text=True)
    deadline, staged = time.monotonic() + 240, False
    while time.monotonic() < deadline and process.poll() is None:
        if any(p.name.startswith(staged_prefix) for p in folder.rglob(".*")):
            staged = True
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    # interrupted while writing, or the test proved nothing about partial files
    assert staged, f"no {staged_prefix}* file appeared before Ctrl-C:\n{stderr[-2000:]}"
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "staged"),
    [(["build", "--phi", "4", "-o", "b4.keras"], ".b4.keras."),
     (["export", "--resolution", "128", "-f", "onnx", "-o", "out"], ".efficientnet-b0-r128.onnx.")],
)  # fmt: skip
def test_interrupt_exits_130_and_leaves_no_partial_file(tmp_path, argv, staged):
    result = _interrupt_when(argv, tmp_path, staged)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in result.stderr and result.stdout == ""
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize(
    "command",
    ["summary", "build", "export", "bench", "inspect", "scale-table", "doctor", "predict"],
)
def test_command_help_loads_no_framework(command):
    from .test_cli import HEAVY, _modules_after

    # the help was printed (exit 0): a command that failed early would load nothing either
    code = f"from effnet_cli.cli.app import main\nassert main([{command!r}, '--help']) == 0"
    assert not HEAVY & _modules_after(code)


def test_the_installed_completion_answers_from_effnets_own_tables():
    """What `effnet --install-completion` installs (docs/conventions.md) runs `effnet` with
    _EFFNET_COMPLETE set: through main, the console script's path, the values summary accepts."""
    from typer.testing import CliRunner

    from effnet_cli.cli.app import main
    from effnet_cli.model import spec as S

    words = "effnet summary --model lite"
    asked = {"_EFFNET_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "3"}
    with CliRunner().isolation(env=asked) as (out, _, _):
        with pytest.raises(SystemExit) as ended:
            main(["summary", "--model", "lite"])
        offered = out.getvalue().decode().split()
    assert ended.value.code == 0
    assert offered == [name for name in S.model_names() if name.startswith("lite")]
    assert len(offered) == 5  # lite0..lite4


def test_a_variant_and_its_own_phi_agree(cli):
    """--model lite0 --phi 0 names one model twice: not a disagreement (lite0 is φ = 0)."""
    result = cli("summary", "--model", "lite0", "--phi", "0", "--json")
    assert result.code == 0, result.stderr
    assert '"efficientnet-lite0"' in result.stdout
    assert cli("summary", "--model", "seed-b0", "--phi", "1").code == 2


def test_bare_effnet_prints_the_help_once(cli):
    result = cli()
    assert result.code == 2
    assert (result.stdout + result.stderr).count("Usage: effnet") == 1


def test_predict_converts_grey_alpha_and_16_bit_images_and_says_so_once(cli, tmp_path, workdir):
    """Grey, RGBA, palette and 16-bit PNGs are predicted, each kind of conversion noted once
    however many images it touched; a 16-bit image is scaled, not clipped to white."""
    from PIL import Image

    from effnet_cli.data import images

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    for index in range(2):
        Image.fromarray(grey).save(tmp_path / f"grey{index}.png")
    Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    deep = (grey.astype(np.uint16) * 257).astype(np.uint16)  # the same levels, in 16 bits
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    notes: list[str] = []
    batch = images.load_batch(images.collect([tmp_path]), 32, "crop", notes.append)
    assert len(batch) == 4 and len(notes) == 3
    assert any("2 images in grey" in note for note in notes)
    assert any("alpha dropped" in note for note in notes)
    assert any("16-bit" in note for note in notes)
    names = sorted(p.name for p in tmp_path.iterdir())
    deep_row, grey_row = batch[names.index("deep.png")], batch[names.index("grey0.png")]
    assert np.max(np.abs(deep_row - grey_row)) <= 1.0  # scaled to the 8-bit image's levels

    # the module's keras.applications B0 at 32 px (read, never written)
    result = cli("predict", tmp_path, "--from", workdir / "b0.keras", "--top", "1", "--json")
    assert result.code == 0, result.stderr
    assert len(json.loads(result.stdout)["images"]) == 4
    said = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert sum("in grey" in line for line in said) == 1 and "Traceback" not in result.stderr
