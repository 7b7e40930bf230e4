"""export's, build's, inspect's and doctor's records (effnet_cli/records/) against the schema they
print, and the JSON of what their fields leave out (tests/test_json_documents.py holds whole
documents of real runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from effnet_cli.model import spec as S
from effnet_cli.output import sink
from effnet_cli.records import build as B
from effnet_cli.records import doctor as D
from effnet_cli.records import export as X
from effnet_cli.records import inspect as I
from effnet_cli.records.model import ModelIdentity
from effnet_cli.records.spec import input_contract, spec_model


def _schema_properties(*path: str) -> set[str]:
    """The property names the shipped schema gives at `path` ("[]" steps into an array's
    items, "#name" to a $defs entry)."""
    defs = sink.json_schema()["$defs"]
    node = defs[path[0]]
    for step in path[1:]:
        node = node["items"] if step == "[]" else node["properties"][step]
        if "anyOf" in node:  # an object or null: the object
            node = next(n for n in node["anyOf"] if n.get("type") == "object")
        if "$ref" in node:
            node = defs[node["$ref"].removeprefix("#/$defs/")]
    return set(node["properties"])


def _keys(record: type) -> set[str]:
    """The JSON keys a record writes: its fields, an attempt's figures beside its own."""
    names = {f.metadata.get("key", f.name) for f in dataclasses.fields(record)}
    if "figures" in names:
        names = names - {"figures"} | _keys(X.RecipeFigures)
    return names


@pytest.mark.parametrize(
    ("record", "path", "unnamed"),
    [
        (X.ExportResult, ("export",), set()),
        (X.Artifact, ("export", "artifacts", "[]"), set()),
        (X.Verification, ("export", "artifacts", "[]", "verification"), set()),
        (X.Accuracy, ("export", "artifacts", "[]", "verification", "accuracy"), set()),
        (X.Calibration, ("export", "artifacts", "[]", "calibration"), set()),
        (X.Int8Recipe, ("export", "artifacts", "[]", "int8"), set()),
        (X.RecipeAttempt, ("export", "artifacts", "[]", "int8", "tried", "[]"), set()),
        (ModelIdentity, ("model",), set()),
        (B.BuildResult, ("build",), set()),
        (B.SavedFile, ("build", "output"), set()),
        (I.Inspection, ("inspect",), {"opset", "fits"}),
        (I.Tensor, ("tensor",), set()),
        (D.Diagnosis, ("doctor",), {"cpu", "backends"}),
        (D.Package, ("doctor", "packages", "[]"), set()),
    ],
)
def test_the_records_fields_are_the_schemas_properties(record, path, unnamed):
    """Each record's fields are the JSON keys it writes: the schema names exactly them (less
    the few it has never named), so neither gains or loses a field without the other."""
    command = len(path) == 1 and path[0] not in ("model", "tensor")
    extra = {"schema"} if command else set()  # emit_json adds the tag
    assert _schema_properties(*path) == _keys(record) - unnamed | extra


def test_an_attempt_says_its_figures_only_where_measured():
    """A measured figure may be null (equal logits, not judged): present; unmeasured: absent."""
    measured = X.RecipeAttempt(
        recipe="keep-float", float_layers=3, layers=10,
        figures=X.RecipeFigures(top1_agreement=0.9, top5_overlap=1.0, sqnr_db=None, passed=None),
    )  # fmt: skip
    plain = X.RecipeAttempt(recipe="default")
    assert plain.to_json() == {"recipe": "default"}
    assert list(measured.to_json()) == ["recipe", "float_layers", "layers", "top1_agreement",
                                        "top5_overlap", "sqnr_db", "passed"]  # fmt: skip
    int8 = X.taken(measured, (plain, measured))
    assert int8.to_json() == {**measured.to_json(), "tried": [{"recipe": "default"},
                                                              measured.to_json()]}  # fmt: skip
    artifact = X.Artifact(format="onnx", path=Path("out/m.onnx"), precision="int8", bytes=1,
                          time_s=0.5, kept=False, int8=int8, verification=None)  # fmt: skip
    model = ModelIdentity(name="m", family=None, resolution=None, classes=None, preprocessing=None)
    document = X.ExportResult(model=model, artifacts=(artifact,)).to_json()
    assert document["artifacts"] == [artifact.to_json()]
    keys = ["format", "path", "precision", "bytes", "time_s", "kept", "calibration", "int8",
            "verification"]  # fmt: skip
    assert list(document["artifacts"][0]) == keys
    assert document["artifacts"][0]["path"] == "out/m.onnx"
    assert document["artifacts"][0]["int8"]["tried"][1]["passed"] is None
    json.dumps(document)  # JSON values only


@pytest.mark.parametrize("name", ["b0", "lite2", "v2-s", "seed-b1", "b3"])
def test_a_spec_model_is_model_identity_then_its_spec(name):
    """records/spec.py's model and input are model/spec.py's, typed: the same keys in order."""
    for spec in (S.get_spec(name), S.get_spec(name, include_top=False, pooling="avg")):
        assert input_contract(spec).to_json() == S.input_contract(spec)
        document = spec_model(spec).to_json()
        assert list(document)[:5] == ["name", "family", "resolution", "classes", "preprocessing"]
        assert document["resolution"] == [spec.resolution] * 2
        assert document["classes"] == (spec.num_classes if spec.include_top else None)


def test_inspection_refuses_a_key_it_has_no_field_for():
    """A backend's reader that says something new needs a field, not a silently shorter JSON."""
    document = {"path": "m.onnx", "format": "onnx", "bytes": 1,
                "model": {"name": None, "family": None, "resolution": [4, 4], "classes": None,
                          "preprocessing": None},
                "inputs": [{"name": "x", "shape": [None, 4, 4, 3], "dtype": "float32"}],
                "outputs": [], "ops": {"Conv": 1}, "params": 9, "params_counted": "elements",
                "opset": 17, "metadata": {"resolution": [4, 4], "model": "m"}}  # fmt: skip
    typed = I.inspection(document)
    assert typed.to_json() == document and typed.metadata["resolution"] == (4, 4)
    with pytest.raises(ValueError, match="no field for"):
        I.inspection({**document, "novel": 1})


@pytest.mark.parametrize(
    ("command", "record", "planner", "args", "given"),
    [
        ("bench", "BenchOptions", "plan_bench",
         ("--runtime", "onnx", "--batch", "2", "--ceiling", "--phi", "1"),
         {"runtime": "onnx", "batch": "2", "ceiling": True, "precision": "fp32"}),
        ("export", "ExportOptions", "plan_export",
         ("-f", "onnx,tflite", "--quantize", "int8", "--no-verify", "--phi", "1"),
         {"fmt": ["onnx,tflite"], "quantize": "int8", "verify": False, "opset": 17,
          "output": Path(".")}),
    ],
)  # fmt: skip
def test_options_are_declared_once_and_reach_the_command_as_one_record(
    monkeypatch, command, record, planner, args, given
):
    """Every field of a command's options record is an option of the command (the record
    generates the Typer signature), and the command receives the values given, and the
    defaults from the same declaration, as one frozen record."""
    import importlib

    import click
    import typer

    from effnet_cli.cli.app import app
    from effnet_cli.util.errors import UsageError
    from tests.conftest import run_cli

    module = importlib.import_module(f"effnet_cli.cli.{command}")
    declared = {f.name for f in dataclasses.fields(getattr(module, record))}
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    assert declared <= {p.name for p in group.commands[command].params}
    seen = []

    def planned(model, options):
        seen.append((model, options))
        raise UsageError("planned, not run")

    monkeypatch.setattr(module, planner, planned)
    stopped = run_cli(command, *args)
    assert stopped.code == 2 and "planned, not run" in stopped.stderr
    ((model, options),) = seen
    assert type(options).__name__ == record and model.phi == 1
    assert {name: getattr(options, name) for name in given} == given
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.force = True
