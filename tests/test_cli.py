"""The CLI's contract: output, errors, exit codes, no TensorFlow where none is needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_scale_table import KERAS_COUNT_PARAMS, KERAS_TRAINABLE_PARAMS


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


HEAVY = {"tensorflow", "keras", "tf2onnx", "onnxruntime", "ai_edge_litert", "onnx", "matplotlib"}
HEAVY |= {"ray", "pyarrow"}  # predict and evaluate at scale


def test_importing_the_cli_and_api_leaves_tensorflow_out():
    loaded = _modules_after(
        "import effnet_cli, effnet_cli.cli.app\nfrom effnet_cli import build_model"
    )
    assert not HEAVY & loaded


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["summary", "--phi", "7"], ["summary", "--phi", "4", "--layers", "--json"],
     ["summary", "--model", "v2-l"]],
)  # fmt: skip
def test_commands_that_need_no_tensorflow_do_not_load_it(argv):
    # the command ran to exit 0: one refused early would load nothing either
    code = f"from effnet_cli.cli.app import main\nassert main({argv!r}) == 0"
    assert not HEAVY & _modules_after(code)


def test_summary_json_is_one_document(cli):
    result = cli("summary", "--phi", "4", "--json")
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document["schema"] == "effnet.summary/1"
    assert document["totals"]["params"] == KERAS_COUNT_PARAMS["efficientnet-b4"]
    assert document["totals"]["params_trainable"] == KERAS_TRAINABLE_PARAMS["efficientnet-b4"]
    assert len(document["stages"]) == 9 and "layers" not in document
    assert document["input"]["range"] == "[0, 255]" and document["input"]["layout"] == "NHWC"


def test_summary_layers_view(cli):
    result = cli("summary", "--layers", "--json")
    layers = json.loads(result.stdout)["layers"]
    assert layers[0]["name"] == "input_layer" and layers[-1]["name"] == "predictions"
    b0 = KERAS_COUNT_PARAMS["efficientnet-b0"]
    assert sum(layer["params"] for layer in layers) == b0
    table = cli("summary", "--layers")
    assert "block6d_se_expand" in table.stdout and f"{b0:,}" in table.stdout


def test_summary_table_is_plain_and_wide_off_a_terminal(cli, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    result = cli("summary", "--phi", "7")
    assert "\x1b[" not in result.stdout
    trainable = KERAS_TRAINABLE_PARAMS["efficientnet-b7"]
    assert "MBConv6 k5x5" in result.stdout and f"{trainable:,}" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) > 80  # not cut to 80 columns


def test_console_script_and_module_entry_points():
    """The installed `effnet` script and `python -m effnet_cli` run the same program."""
    script = shutil.which("effnet", path=str(Path(sys.executable).parent))
    assert script is not None, f"no effnet script beside {sys.executable}: run pip install -e ."

    def run(*argv: str) -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            subprocess.run([*entry, *argv], capture_output=True, text=True, check=True).stdout
            for entry in ([script], [sys.executable, "-m", "effnet_cli"])
        )

    version, module_version = run("--version")
    assert version == module_version and version.startswith("effnet ")
    summary, module_summary = run("summary", "--phi", "1", "--json")
    assert summary == module_summary and json.loads(summary)["model"]["name"] == "efficientnet-b1"


def test_each_model_option_is_declared_once_on_the_dataclass():
    """Every model command's model options are ModelOptions' fields: the same name, spelling,
    default and help, derived rather than declared again; and `args()` repeats a model."""
    from dataclasses import fields

    import typer.main

    from effnet_cli.cli.app import app
    from effnet_cli.model.options import ModelOptions, flag

    group = typer.main.get_command(app)
    for command in ("summary", "build", "export", "bench", "predict"):
        params = {p.name: p for p in group.commands[command].params}  # type: ignore[attr-defined]
        for item in fields(ModelOptions):
            param, declared = params[item.name], flag(item)
            assert param.opts[0] == declared.decls[0].partition("/")[0]
            assert (param.help, param.default) == (declared.help, item.default)
    model = ModelOptions(phi=1.5, include_top=False, pooling="avg", seed=3)
    assert model.args() == ["--phi", "1.5", "--no-top", "--pooling", "avg", "--seed", "3"]
    assert model.given() == ["--phi", "--no-top", "--pooling", "--seed"]
