"""Every command's --json document, success and error, against the schema shipped in the package
(effnet_cli/schemas/effnet-1.schema.json, one $defs entry per `schema` kind).

Validated by a small validator of the keywords the schema uses, and by the `jsonschema` package
too where it is installed (a dev dependency).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from effnet_cli.output import sink

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON's true is not a number
    return isinstance(value, TYPES[name])


def problems(value: Any, schema: dict, root: dict, where: str = "$") -> list[str]:
    """What is wrong with `value` under `schema` (the keywords effnet's schema uses)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return problems(value, root["$defs"][name], root, where)
    found: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(value, n) for n in names):
            return [f"{where}: {value!r} is not {names}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{where}: {value!r} below {schema['minimum']}")
    for sub in schema.get("allOf", []):
        found += problems(value, sub, root, where)
    if "anyOf" in schema and all(problems(value, s, root, where) for s in schema["anyOf"]):
        found.append(f"{where}: matches none of anyOf")
    if "oneOf" in schema and sum(not problems(value, s, root, where) for s in schema["oneOf"]) != 1:
        found.append(f"{where}: matches not exactly one of oneOf")
    if isinstance(value, dict):
        found += [f"{where}: no {key!r}" for key in schema.get("required", []) if key not in value]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                found += problems(item, properties[key], root, f"{where}.{key}")
            elif extra is False:
                found.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                found += problems(item, extra, root, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 30):
            found.append(f"{where}: {len(value)} items")
        if "items" in schema:
            for i, item in enumerate(value):
                found += problems(item, schema["items"], root, f"{where}[{i}]")
    return found


def validate(document: dict) -> None:
    """`document` against its kind's schema (from its `schema` field), and the whole schema."""
    root = sink.json_schema()
    kind = document["schema"].removeprefix("effnet.").split("/")[0]
    assert document["schema"] == sink.schema_name(kind)
    assert problems(document, root["$defs"][kind], root) == []
    assert problems(document, root, root) == []
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.validate(document, root)


def _json(cli, *argv: str, code: int = 0) -> dict:
    result = cli(*argv)
    assert result.code == code, result.stderr
    return json.loads(result.stdout)


def test_the_validator_catches_what_the_schema_forbids():
    """The validator above can fail: a renamed time, a string resolution, a string flag."""
    root = sink.json_schema()
    good = {"schema": "effnet.error/1", "error": "x", "hint": None, "exit": 2}
    assert problems(good, root, root) == []
    assert problems({**good, "exit": "2"}, root, root)
    model = {"name": "m", "family": "b", "resolution": [224, 224], "classes": 10,
             "preprocessing": True}  # fmt: skip
    assert problems(model, root["$defs"]["model"], root) == []
    assert problems({**model, "resolution": "224x224"}, root["$defs"]["model"], root)
    assert problems({**model, "preprocessing": "true"}, root["$defs"]["model"], root)
    build = root["$defs"]["build"]
    assert any("build_s" in p for p in problems({"schema": "effnet.build/1"}, build, root))


@pytest.mark.parametrize(
    "argv",
    [["summary", "--model", "lite1", "--json"], ["summary", "--layers", "--json"],
     ["scale-table", "--family", "all", "--json"], ["scale-table", "--format", "json"]],
)  # fmt: skip
def test_light_commands_validate(cli, argv):
    validate(_json(cli, *argv))


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["summary", "--model", "b9", "--json"], 2), (["build", "-o", "x.onnx", "--json"], 2),
     (["export", "-f", "pdf", "--json"], 2), (["inspect", "missing.onnx", "--json"], 2),
     (["bench", "--runtime", "mxnet", "--json"], 2), (["scale-table", "--phi", "x", "--json"], 2),
     (["scale-table", "--format", "json", "--family", "z"], 2), (["doctor", "--json", "-x"], 2),
     (["summary", "--json", "--no-such-option"], 2), (["evaluate", "missing", "--json"], 2)],
)  # fmt: skip
def test_errors_are_a_json_document_too_under_json(cli, argv, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(*argv)
    assert result.code == code
    document = json.loads(result.stdout)
    validate(document)
    assert document["exit"] == code and document["error"] in result.stderr
    assert result.stderr.startswith(f"error: {document['error']}")


def test_one_model_object_everywhere(cli):
    summary = _json(cli, "summary", "--model", "lite1", "--no-top", "--json")["model"]
    assert summary["resolution"] == [240, 240] and summary["classes"] is None
    assert (summary["family"], summary["preprocessing"]) == ("lite", True)


@pytest.mark.slow
def test_heavy_commands_validate_and_share_the_model_object(cli, tmp_path):
    """build, export, inspect (typed metadata, ONNX and TFLite) and bench on a 64 px seed-B0."""
    small = ["--model", "seed-b0", "--resolution", "64", "--num-classes", "10"]
    build = _json(cli, "build", *small, "-o", tmp_path / "m.keras", "--json")
    validate(build)
    export = _json(cli, "export", *small, "-f", "onnx,tflite", "-o", tmp_path, "--json")
    validate(export)
    inspect, tflite = (_json(cli, "inspect", a["path"], "--json") for a in export["artifacts"])
    validate(inspect)
    validate(tflite)
    # TFLite carries the same metadata in its metadata table, typed alike
    assert tflite["format"] == "tflite" and tflite["metadata"] == inspect["metadata"]
    bench = _json(cli, "bench", *small, "--runtime", "keras", "--batch", "1", "--iterations",
                  "2", "--warmup", "1", "--json")  # fmt: skip
    validate(bench)
    expected = {"name": "efficientnet-seed-b0-r64", "family": "seed", "resolution": [64, 64],
                "classes": 10, "preprocessing": False}  # fmt: skip
    for document in (build, export, inspect, tflite, bench):
        assert {k: document["model"][k] for k in expected} == expected
    metadata = inspect["metadata"]
    # the file's own count is labelled, with the Keras count of the same model beside it
    assert metadata["keras_params"] == build["params"] and "folded" in inspect["params_counted"]
    assert metadata["resolution"] == [64, 64] and metadata["num_classes"] == 10
    assert metadata["preprocessing_inside"] is False and isinstance(metadata["width"], int | float)


@pytest.mark.slow
def test_inspect_a_weights_file_names_the_variants_and_heads_it_fits(cli, tmp_path):
    """Weights saved by keras.applications (not by us): B1 with a 7-class head, B2 without."""
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    keras.applications.EfficientNetB1(weights=None, classes=7, input_shape=(32, 32, 3)
                                      ).save_weights(tmp_path / "b1.weights.h5")  # fmt: skip
    keras.applications.EfficientNetB2(weights=None, include_top=False, input_shape=(32, 32, 3)
                                      ).save_weights(tmp_path / "b2.weights.h5")  # fmt: skip
    b1 = _json(cli, "inspect", tmp_path / "b1.weights.h5", "--json")
    validate(b1)
    assert {"model": "b1", "include_top": True, "classes": 7, "preprocessing": True} in b1["fits"]
    b2 = _json(cli, "inspect", tmp_path / "b2.weights.h5", "--json")
    assert {"model": "b2", "include_top": False, "classes": None, "preprocessing": True} in (
        b2["fits"])  # fmt: skip
    assert all(fit["model"] != "b1" for fit in b2["fits"])
    table = cli("inspect", tmp_path / "b1.weights.h5").stdout
    assert "classifier, 7 classes" in table


@pytest.mark.slow
def test_doctor_validates(cli, monkeypatch):
    result = cli("doctor", "--json")
    document = json.loads(result.stdout)
    validate(document)
    # the dev install holds every package doctor checks: nothing missing, exit 0
    assert (document["missing"], document["incompatible"]) == ([], []), document
    assert document["ok"] is True and result.code == 0, result.stderr
    # a required package missing: exit 1, and still one valid document naming it
    from effnet_cli.workflows import doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda name: None if name == "h5py" else real(name))
    broken = cli("doctor", "--json")
    document = json.loads(broken.stdout)
    validate(document)
    assert broken.code == 1 and document["ok"] is False and document["missing"] == ["h5py"]
