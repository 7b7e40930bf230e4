"""Hostile artifacts (issue 34): a broken .onnx, .tflite or OpenVINO IR, fed to every command
that loads one, gets exit 2 and one `error:` line that names the file and says what is wrong
with it (a missing .bin, a truncated protobuf, a bad flatbuffer identifier), never the first
line of a runtime's multi-line exception, which for OpenVINO is only a C++ location.

The broken files are cut, flipped and stripped from the valid ones of the shared `b0_r64`
export (tests/conftest.py): no conversion of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from effnet_cli import samples
from effnet_cli.util.errors import runtime_reason

Make = Callable[[Path, Path], Path]  # (a valid artifact, a folder to write in) -> a broken one


def _cut(fraction: float | None = None, keep: int | None = None) -> Make:
    """The file's first `keep` bytes, or that `fraction` of it."""

    def make(valid: Path, folder: Path) -> Path:
        data = valid.read_bytes()
        size = keep if keep is not None else int(len(data) * (fraction or 0))
        broken = folder / f"cut-{size}{valid.suffix}"
        broken.write_bytes(data[:size])
        return broken

    return make


def _replaced(name: str, start: int, new: Callable[[bytes], bytes]) -> Make:
    """The file with the bytes from `start` replaced by `new(the 16 there)`, as many as it
    returns: the length is kept."""

    def make(valid: Path, folder: Path) -> Path:
        data = valid.read_bytes()
        replacement = new(data[start : start + 16])
        broken = folder / f"{name}{valid.suffix}"
        broken.write_bytes(data[:start] + replacement + data[start + len(replacement) :])
        return broken

    return make


def _flipped(data: bytes) -> bytes:
    return bytes(byte ^ 0xFF for byte in data)


def _written(name: str, content: bytes) -> Make:
    def make(valid: Path, folder: Path) -> Path:
        broken = folder / f"{name}{valid.suffix}"
        broken.write_bytes(content)
        return broken

    return make


def _ir(
    name: str,
    xml: Callable[[bytes], bytes] | None,
    weights: Callable[[Path, Path], None] | None,
    point_at_xml: bool = False,
) -> Make:
    """An IR folder (or its .xml) whose model.xml is `xml(the valid one's)` and whose model.bin
    `weights(valid, target)` makes (None: no model.bin at all)."""

    def make(valid: Path, folder: Path) -> Path:
        broken = folder / f"{name}_openvino"
        broken.mkdir()
        (broken / "model.xml").write_bytes((xml or bytes)((valid / "model.xml").read_bytes()))
        if weights is not None:
            weights(valid / "model.bin", broken / "model.bin")
        return broken / "model.xml" if point_at_xml else broken

    return make


def _linked(source: Path, target: Path) -> None:
    target.symlink_to(source)  # the valid weights, unchanged: no 20 MB copy


def _half(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def _empty(source: Path, target: Path) -> None:
    target.write_bytes(b"")


def _bogus_op(xml: bytes) -> bytes:
    return xml.replace(b'type="Convolution"', b'type="Bogus"', 1)


# (id, format, how the broken file is made, the words its error must hold)
CASES: list[tuple[str, str, Make, str]] = [
    ("onnx-empty", "onnx", _written("empty", b""), "it is empty (0 bytes)"),
    ("onnx-cut-in-header", "onnx", _cut(keep=6), "truncated protobuf"),
    ("onnx-cut-early", "onnx", _cut(0.001), "truncated protobuf: its graph runs to byte"),
    ("onnx-cut-half", "onnx", _cut(0.5), "truncated protobuf: its graph runs to byte"),
    ("onnx-cut-late", "onnx", _cut(0.999), "truncated protobuf: its graph runs to byte"),
    ("onnx-flipped-header", "onnx", _replaced("flipped", 0, _flipped), "corrupt protobuf"),
    ("onnx-no-graph", "onnx", _written("nograph", b"\x08\x08"), "its protobuf holds no graph"),
    ("tflite-empty", "tflite", _written("empty", b""), "it is empty (0 bytes)"),
    ("tflite-cut-in-header", "tflite", _cut(keep=6), "too short for a TFLite flatbuffer (6 bytes)"),
    ("tflite-cut-early", "tflite", _cut(0.001), "truncated flatbuffer"),
    ("tflite-cut-half", "tflite", _cut(0.5), "truncated flatbuffer"),
    ("tflite-cut-late", "tflite", _cut(0.999), "truncated flatbuffer"),
    ("tflite-flipped-header", "tflite", _replaced("flipped", 0, _flipped),
     "identifier is ab b9 b3 cc, not TFLite's 'TFL3'"),
    ("tflite-wrong-identifier", "tflite", _replaced("ident", 4, lambda _: b"XXXX"),
     "identifier is 'XXXX', not TFLite's 'TFL3'"),
    ("ir-without-bin", "openvino", _ir("nobin", None, None),
     "it has no weights file model.bin beside model.xml"),
    ("ir-xml-without-bin", "openvino", _ir("nobinxml", None, None, point_at_xml=True),
     "it has no weights file model.bin beside model.xml"),
    ("ir-truncated-bin", "openvino", _ir("halfbin", None, _half),
     "model.bin is truncated: it holds"),
    ("ir-empty-bin", "openvino", _ir("emptybin", None, _empty),
     "model.bin is truncated: it holds 0 bytes"),
    ("ir-truncated-xml", "openvino", _ir("halfxml", lambda x: x[: len(x) // 2], _linked),
     "model.xml does not parse as XML"),
    ("ir-empty-xml", "openvino", _ir("emptyxml", lambda _: b"", _linked),
     "model.xml is empty (0 bytes)"),
    # sound in structure, refused by OpenVINO itself: its reason, not its C++ location
    ("ir-unknown-op", "openvino", _ir("bogus", _bogus_op, _linked),
     "doesn't contain the operation with type: Bogus"),
]  # fmt: skip


@pytest.fixture(scope="module")
def broken(b0_r64, tmp_path_factory) -> dict[str, Path]:
    """Every case's broken artifact, each made once (in a folder of its own) from the shared
    valid one."""
    folder = tmp_path_factory.mktemp("hostile")
    made = {}
    for case, fmt, make, _ in CASES:
        (folder / case).mkdir()
        made[case] = make(b0_r64.path(fmt), folder / case)
    return made


IMAGE = samples.paths()[0]
BENCH_ONCE = ("--batch", "1", "--warmup", "0", "--iterations", "1")  # it fails before timing
COMMANDS = {
    "inspect": lambda path: ["inspect", path],
    "predict": lambda path: ["predict", "--from", path, IMAGE],
    "bench": lambda path: ["bench", "--from", path, *BENCH_ONCE],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("case", "words"), [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_broken_artifact_gets_one_line_that_says_why(cli, broken, case, words, command):
    path = broken[case]
    result = cli(*COMMANDS[command](path))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.code == 2, result.stderr
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert path.name in errors[0]  # it names the file
    assert words in errors[0]  # and what is wrong with it
    assert "Exception from" not in errors[0] and "failed at src/" not in errors[0]


# What runtimes raise (their exceptions' text, verbatim), and the reason kept of each.
RUNTIME_TEXTS = [
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'm_weights_provider' failed at "
     "src/core/xml_util/src/xml_deserialize_util.cpp:887:\nEmpty weights data in bin file or bin "
     "file cannot be found!\n\n",
     "Empty weights data in bin file or bin file cannot be found"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nException from src/inference/src/"
     "model_reader.cpp:148:\nUnable to read the model: \"m.xml\" Please check that model format: "
     "\".xml\" is supported\n\n",
     "Unable to read the model: \"m.xml\" Please check that model format: \".xml\" is supported"),
    ("[ GENERAL_ERROR ] Incorrect weights in bin file!", "Incorrect weights in bin file"),
    ("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from /tmp/a: b.onnx failed:Protobuf "
     "parsing failed.", "Protobuf parsing failed"),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Load model from x.onnx failed:",
     "INVALID_ARGUMENT"),
    ("Could not open 'missing.tflite'.", "Could not open 'missing.tflite'"),
    ("Model provided has model identifier 'XXXX', should be 'TFL3'\n",
     "Model provided has model identifier 'XXXX', should be 'TFL3'"),
    ("Error parsing message with type 'onnx.ModelProto': Wire format was corrupt",
     "Error parsing message with type 'onnx.ModelProto': Wire format was corrupt"),
    ("unexpected layout:\n  NCHW where NHWC was written\n",
     "unexpected layout: NCHW where NHWC was written"),
    ("", "RuntimeError"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\n", "RuntimeError"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "reason"), RUNTIME_TEXTS)
def test_a_runtime_s_reason_is_its_explaining_line(text, reason):
    assert runtime_reason(RuntimeError(text)) == reason


def test_a_long_reason_is_cut_to_one_short_line():
    reason = runtime_reason(RuntimeError("x" * 500 + "\nmore"))
    assert len(reason) == 200 and reason.endswith("…") and "\n" not in reason


def test_an_unforeseen_multiline_failure_keeps_its_reason(cli, monkeypatch, tmp_path):
    """main's last resort for an exception no layer expected (a runtime's, mid-command) keeps
    the line that explains, not the C++ location above it."""
    from effnet_cli.backends import describe

    def fails(path):
        raise RuntimeError("Exception from src/plugin.cpp:12:\nthe CPU plugin ran out of threads\n")

    monkeypatch.setattr(describe, "describe", fails)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x08")
    result = cli("inspect", path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.code == 1
    assert errors == ["error: RuntimeError: the CPU plugin ran out of threads"]
