"""Every command's `--json` document, compared with one recorded before the results became typed
records (issue 32): the records' `to_json()` must print exactly what the dicts printed.

The documents live in tests/data/json/, one per command line below. What a run cannot repeat is
masked on both sides before comparing (`masked`): timings and dates, the machine (its CPU, its
versions), the temporary folders, and floats computed by a runtime (their bits differ between
CPU kinds; their presence, key and place are still compared). Everything else — keys, their
order, ints, strings, lists, nulls — must be identical.

To record again after a deliberate change of a document (a schema bump), run
`EFFNET_RECORD_JSON=1 .venv/bin/python -m pytest tests/test_json_documents.py` and review the
diff of tests/data/json/ like any other change.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from effnet_cli.workflows.bench import ceilings
from tests.conftest import SharedB0, fake_load, fake_probes, run_cli

RECORDED = Path(__file__).parent / "data" / "json"
RECORD = os.environ.get("EFFNET_RECORD_JSON") == "1"
REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "effnet_cli" / "samples"

# Keys whose values a run cannot repeat: timings, dates, the machine and its software.
TIMING = re.compile(
    r"(_ms(_|$)|_s$|^seconds|per_s|_per_second|images_s|img_s|measured_at|elapsed|started|finished"
    r"|^duration|^time|gflops|gemm_flops|^load)"
)
MACHINE_KEYS = {
    "cpu", "cpu_count", "platform", "python", "versions", "effnet", "gpus", "flags",
    "capabilities", "cache", "version", "size_bytes", "bytes", "file_bytes", "sha256",
}  # fmt: skip


def masked(value: Any, tmp: str, key: str = "", floats: bool = True) -> Any:
    """The document with what cannot repeat replaced by a marker of its kind (`floats=False`:
    a document computed in pure Python, whose floats repeat on every machine)."""
    if key in MACHINE_KEYS:
        return "<machine>"
    if isinstance(value, dict):
        return {k: masked(v, tmp, k, floats) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, tmp, key, floats) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if TIMING.search(key):
        return "<timing>"
    if isinstance(value, float) and floats:
        return "<float>"
    if isinstance(value, str):  # xdist gives each worker its own folder below the run's
        masked_path = value.replace(tmp, "<tmp>").replace(str(REPO), "<repo>")
        # Keras numbers its tensors across the process: the count depends on what ran before
        masked_path = re.sub(r"keras_tensor_\d+", "keras_tensor_<n>", masked_path)
        return re.sub(r"<tmp>/popen-gw\d+/", "<tmp>/", masked_path)
    return value


def _commands(b0: SharedB0, lite0: Path, out: Path) -> dict[str, list[Any]]:
    """One command line per recorded document: every command's `--json`, on fixed inputs."""
    keras_file, onnx_file = b0.path("keras"), b0.path("onnx")
    return {
        "summary": ["summary", "--phi", "0"],
        "summary-v2": ["summary", "--model", "v2-s", "--no-top", "--pooling", "avg"],
        "scale-table": ["scale-table"],
        "build": ["build", "--phi", "0", "--resolution", "64", "--seed", "0", "-o",
                  out / "b0.keras"],
        "export": ["export", "--from", keras_file, "-f", "onnx", "-o", out / "export"],
        "inspect-onnx": ["inspect", onnx_file],
        "inspect-tflite": ["inspect", b0.path("tflite")],
        "inspect-keras": ["inspect", keras_file],
        "bench": ["bench", "--from", keras_file, "--runtime", "onnx", "--batch", "1",
                  "--warmup", "1", "--iterations", "2", "--threads", "2"],
        "predict": ["predict", "--from", lite0, "--top", "3", SAMPLES],
        "predict-compare": ["predict", "--from", keras_file, "--compare", onnx_file,
                            SAMPLES / "cat.jpg", SAMPLES / "clock.jpg"],
        "evaluate": ["evaluate", "--from", lite0, "--truth", SAMPLES / "truth.csv", SAMPLES],
        "doctor": ["doctor"],
    }  # fmt: skip


PURE_PYTHON = {"summary", "summary-v2", "scale-table"}  # no runtime: every float is compared
NAMES = [
    "summary", "summary-v2", "scale-table", "build", "export", "inspect-onnx", "inspect-tflite",
    "inspect-keras", "bench", "predict", "predict-compare", "evaluate",
    "doctor",
]  # fmt: skip


@pytest.fixture(scope="module")
def documents(b0_r64, lite0_onnx, tmp_path_factory) -> Iterator[Callable[[str], tuple[Any, str]]]:
    out = tmp_path_factory.mktemp("json-documents")
    patch = pytest.MonkeyPatch()
    patch.setenv("EFFNET_CACHE_DIR", str(out / "cache"))  # bench measures its ceilings: "measured"
    # … with fixed figures, every precision native, on an idle machine: the same on every CPU
    fake_load(patch), fake_probes(patch)
    patch.setattr(ceilings, "gemm_unavailable_reason", lambda precision: None)
    commands = _commands(b0_r64, lite0_onnx, out)
    assert sorted(commands) == sorted(NAMES)
    tmp_roots = os.path.commonpath([str(out), str(b0_r64.folder), str(lite0_onnx)])

    def run(name: str) -> tuple[Any, str]:
        result = run_cli(*commands[name], "--json")
        assert result.code == 0, f"{name}: {result.stderr}"
        return json.loads(result.stdout), tmp_roots

    yield run
    patch.undo()


@pytest.mark.parametrize("name", NAMES)
def test_json_document_is_unchanged(documents, name) -> None:
    document, tmp = documents(name)
    text = json.dumps(masked(document, tmp, floats=name not in PURE_PYTHON), indent=1) + "\n"
    recorded = RECORDED / f"{name}.json"
    if RECORD:
        recorded.parent.mkdir(parents=True, exist_ok=True)
        recorded.write_text(text)
    assert text == recorded.read_text(), f"{name}: --json differs from {recorded}"


def test_masking_keeps_what_repeats() -> None:
    """The mask hides timings, the machine, temporary paths and floats, and nothing else."""
    document = {
        "latency_ms_p50": 1.5, "setup_s": 2, "cpu": "AMD", "macs": 390, "top1": 0.75,
        "path": "/tmp/x/y.onnx", "image": str(SAMPLES / "cat.jpg"),
        "rows": [{"precision": "fp32", "ok": True, "error": None}],
    }  # fmt: skip
    assert masked(document, "/tmp/x") == {
        "latency_ms_p50": "<timing>", "setup_s": "<timing>", "cpu": "<machine>", "macs": 390,
        "top1": "<float>", "path": "<tmp>/y.onnx", "image": "<repo>/effnet_cli/samples/cat.jpg",
        "rows": [{"precision": "fp32", "ok": True, "error": None}],
    }  # fmt: skip
