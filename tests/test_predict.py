"""`effnet predict`: the prepared tensor against an independent Pillow implementation of the
documented steps, the shipped labels, the artifacts' agreement on generated images (run by
onnxruntime, LiteRT, OpenVINO and Keras themselves), and no TensorFlow for an ONNX file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .test_schemas import validate

RESOLUTION = 64


def make_images(folder: Path, count: int = 6, seed: int = 0) -> list[Path]:
    """Smooth random pictures (blurred noise, so that resizing matters) of mixed shapes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shapes = [(120, 200), (200, 90), (64, 64), (33, 47), (300, 160), (90, 91)]
    paths = []
    for index in range(count):
        height, width = shapes[index % len(shapes)]
        small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
        path = folder / f"image{index}.{'png' if index % 2 else 'jpg'}"
        image.save(path)
        paths.append(path)
    return paths


def pillow_reference(path: Path, size: int, plain: bool = False) -> np.ndarray:
    """The README's steps written again from the text, with Pillow alone: RGB; a centre square
    of size / (size + 32) of the shorter side (offsets rounded up, as the TPU reference's
    `_decode_and_center_crop`); bicubic to size × size; pixels left in [0, 255]."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    if not plain:
        side = max(1, int(size / (size + 32) * min(width, height)))
        top, left = (height - side + 1) // 2, (width - side + 1) // 2
        image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


@pytest.mark.parametrize(
    ("shape", "size"), [((240, 320), 224), ((300, 200), 96), ((5, 3), 64), ((1, 1), 32)],
    ids=["landscape", "portrait", "tiny", "one-pixel"],
)  # fmt: skip
@pytest.mark.parametrize("resize", ["crop", "plain"])
def test_prepared_tensor_equals_an_independent_pillow_implementation(tmp_path, shape, size, resize):
    from effnet_cli.data import images

    rng = np.random.default_rng(1)
    path = tmp_path / "picture.png"
    Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
    notes: list[str] = []
    prepared = images.load_batch([path], size, resize, notes.append)
    expected = pillow_reference(path, size, plain=resize == "plain")
    assert prepared.shape == (1, size, size, 3) and prepared.dtype == np.float32
    assert np.max(np.abs(prepared[0] - expected)) <= 1.0
    assert prepared.max() > 1.0  # [0, 255], not [0, 1]
    assert notes == []


def test_the_crop_is_the_reference_fraction_of_the_shorter_side():
    from effnet_cli.data.images import center_crop

    crop = center_crop(320, 240, 224)
    assert crop.side == int(224 / 256 * 240) == 210
    assert (crop.left, crop.top) == ((320 - 210 + 1) // 2, (240 - 210 + 1) // 2)


def test_the_imagenet_labels_ship_in_index_order():
    from effnet_cli.data import labels

    names = labels.imagenet()
    assert len(names) == 1000 and all(names)
    # WordNet names two classes "crane" (the bird, 134, and the machine, 517): the only repeat
    assert [n for n in set(names) if names.count(n) > 1] == ["crane"]
    assert names[134] == names[517] == "crane"
    # Public facts of the ILSVRC-2012 index order (keras.applications' decode_predictions too)
    assert names[0].startswith("tench")
    assert names[1].startswith("goldfish")
    assert names[281].startswith("tabby")
    assert names[999].startswith("toilet tissue")


@pytest.fixture(scope="module")
def artifacts(b0_r64, tmp_path_factory):
    """The session's random-weight B0 at 64 px (calibrated BatchNorm: tests/conftest.py
    `b0_r64`) as .keras, .onnx, .tflite, OpenVINO IR, SavedModel and int8 TFLite, all written
    by `effnet export`, and pictures to predict on. The folder is shared: read, never write."""
    assert (b0_r64.resolution, b0_r64.seed) == (RESOLUTION, 0)  # what the tests below assume
    images = make_images(tmp_path_factory.mktemp("predict") / "images")
    return b0_r64.folder, b0_r64.name, images


@pytest.mark.slow
def test_every_artifact_gives_the_same_top5_and_int8_is_reported(cli, artifacts):
    folder, name, images = artifacts
    files = [folder / f"{name}.keras", folder / f"{name}.onnx", folder / f"{name}.tflite",
             folder / f"{name}_openvino", folder / f"{name}_savedmodel",
             folder / f"{name}-int8.tflite"]  # fmt: skip
    result = cli("predict", *images, "--compare", ",".join(map(str, files)), "--json")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    validate(document)
    rows = {Path(row["path"]).name: row for row in document["rows"]}
    assert document["images"] == len(images)
    for fp32 in (f"{name}.onnx", f"{name}.tflite", f"{name}_openvino", f"{name}_savedmodel"):
        assert rows[fp32]["precision"] == "fp32"
        assert rows[fp32]["top1_agreement"] == 1.0 and rows[fp32]["top5_overlap"] == 1.0
        assert rows[fp32]["max_abs_diff_prob"] < 1e-4
    int8 = rows[f"{name}-int8.tflite"]
    assert int8["precision"] == "int8" and int8["runtime"] == "tflite"
    assert int8["max_abs_diff_prob"] > 0.0
    # its top-1 agreement is the share of images on which each file, predicting alone, names
    # the same class as Keras (random weights: any share may come out, this one must be right)

    def top1(path: Path) -> list[int]:
        alone = cli("predict", *images, "--from", path, "--top", "1", "--json")
        assert alone.code == 0, alone.stderr
        return [image["top"][0]["class"] for image in json.loads(alone.stdout)["images"]]

    alike = [a == b for a, b in zip(top1(files[0]), top1(files[-1]), strict=True)]
    assert int8["top1_agreement"] == pytest.approx(sum(alike) / len(images))
    # an int8 file's softmax output is quantized to 1/256 (all zeros on a flat random-weight
    # output): its classes come from its dequantized logits, so they rank, never tie at zero
    alone = cli("predict", images[0], "--from", files[-1], "--json")
    (image,) = json.loads(alone.stdout)["images"]
    assert all(entry["probability"] > 0 for entry in image["top"])
    assert [entry["class"] for entry in image["top"]] != [0, 1, 2, 3, 4]
    # the table a person reads carries the same rows
    table = cli("predict", *images, "--compare", ",".join(map(str, files)))
    assert table.code == 0 and "int8" in table.stdout and "top-5 overlap" in table.stdout


@pytest.mark.slow
def test_onnx_predictions_are_onnxruntime_on_the_pillow_tensor(cli, artifacts, tmp_path):
    """Top-k, probabilities, labels, JSON and CSV against onnxruntime run here directly."""
    import onnxruntime as ort

    from effnet_cli.data import labels

    folder, name, images = artifacts
    onnx_path = folder / f"{name}.onnx"
    out = tmp_path / "predictions.csv"
    result = cli("predict", *images, "--from", onnx_path, "--top", "3", "--json", "--csv", out)
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.stack([pillow_reference(p, RESOLUTION) for p in images])
    probs = session.run(None, {session.get_inputs()[0].name: batch})[0]
    names = labels.imagenet()
    validate(document)
    assert document["model"]["resolution"] == [RESOLUTION] * 2 and document["runtime"] == "onnx"
    # the model object from the file's own metadata: what export wrote into it
    assert document["model"]["family"] == "b" and document["model"]["preprocessing"] is True
    for row, image in zip(probs, document["images"], strict=True):
        expected = np.argsort(-row)[:3]
        assert [entry["class"] for entry in image["top"]] == list(expected)
        for entry in image["top"]:
            assert entry["probability"] == pytest.approx(row[entry["class"]], abs=2e-3)
            assert entry["label"] == names[entry["class"]]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * len(images)
    assert rows[0]["class"] == str(document["images"][0]["top"][0]["class"])


@pytest.mark.slow
def test_an_exported_tflite_is_fed_by_its_metadata_and_a_foreign_one_by_default(
    cli, artifacts, tmp_path
):
    """effnet's TFLite file says what it is (its name and precision come from its metadata,
    not from the file name); one converted straight from Keras says nothing, and predict says
    it fed effnet's default contract. (The foreign network is a pooled 1000-class classifier:
    what matters is the file, and it converts in a second where a B0 takes ten.)"""
    import tensorflow as tf

    from effnet_cli.keras.builder import import_keras

    folder, name, images = artifacts
    renamed = tmp_path / "renamed.tflite"
    renamed.write_bytes((folder / f"{name}-int8.tflite").read_bytes())
    ours = cli("predict", images[0], "--from", renamed, "--json")
    assert ours.code == 0, ours.stderr
    assert "no effnet metadata" not in ours.stderr
    document = json.loads(ours.stdout)
    validate(document)
    assert document["model"]["name"] == name and document["precision"] == "int8"
    assert json.loads(cli("inspect", renamed, "--json").stdout)["metadata"]["precision"] == "int8"

    keras = import_keras()
    inputs = keras.Input((RESOLUTION, RESOLUTION, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(pooled))
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    theirs = cli("predict", images[0], "--from", foreign, "--json")
    assert theirs.code == 0, theirs.stderr
    assert "foreign.tflite carries no effnet metadata" in theirs.stderr
    document = json.loads(theirs.stdout)
    validate(document)
    assert document["model"]["resolution"] == [RESOLUTION, RESOLUTION]
    assert document["precision"] == "fp32" and document["model"]["name"] == "foreign"
    report = json.loads(cli("inspect", foreign, "--json").stdout)
    assert report["metadata"] == {} and report["model"]["name"] is None


@pytest.mark.slow
def test_predict_from_onnx_imports_no_tensorflow(artifacts):
    from .test_cli import _modules_after

    folder, name, images = artifacts
    argv = ["predict", *map(str, images), "--from", str(folder / f"{name}.onnx"), "--json"]
    loaded = _modules_after(f"from effnet_cli.cli.app import main\nmain({argv!r})")
    assert "onnxruntime" in loaded  # it ran
    assert not {"tensorflow", "keras", "tf2onnx"} & loaded


@pytest.mark.slow
def test_a_labels_file_names_the_classes_and_a_wrong_count_is_refused(cli, artifacts, tmp_path):
    folder, name, images = artifacts
    good = tmp_path / "labels.txt"
    good.write_text("".join(f"thing {i}\n" for i in range(1000)))
    result = cli("predict", images[0], "--from", folder / f"{name}.onnx", "--labels", good,
                 "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    top = json.loads(result.stdout)["images"][0]["top"][0]
    assert top["label"] == f"thing {top['class']}"
    short = tmp_path / "short.txt"
    short.write_text("cat\ndog\n")
    result = cli("predict", images[0], "--from", folder / f"{name}.onnx", "--labels", short)
    assert result.code == 2 and result.stdout == ""
    assert "1000 classes" in result.stderr and "2 labels" in result.stderr


@pytest.mark.slow
def test_export_verify_images_reports_real_image_agreement(
    cli, artifacts, tmp_path, capsys, monkeypatch, prewritten
):
    """The same numbers `predict --compare` gives for the file export writes and verifies.
    Verification is under test, not the converter: the file written is a copy of the session's
    .onnx of the same weights (tests/conftest.py `prewritten`)."""
    from effnet_cli.output.sink import Sink
    from effnet_cli.output.views import export

    folder, name, images = artifacts
    keras_file = folder / f"{name}.keras"
    prewritten({("onnx", "fp32"): folder / f"{name}.onnx"})
    view, shown = export.view, []  # the record export's view is given: its JSON is --json's
    monkeypatch.setattr(export, "view", lambda sink, record: shown.append(record))
    result = cli("export", "--from", keras_file, "-f", "onnx", "-o", tmp_path,
                 "--verify-images", images[0].parent)  # fmt: skip
    assert result.code == 0, result.stderr
    (record,) = shown
    document = record.to_json()
    (artifact,) = document["artifacts"]
    real = artifact["verification"]["accuracy"]
    assert real["judged_on"] == "--verify-images" and real["images"] == len(images)
    compared = cli("predict", images[0].parent, "--compare", f"{keras_file},{artifact['path']}",
                   "--json")  # fmt: skip
    row = json.loads(compared.stdout)["rows"][1]
    assert real["top1_agreement"] == row["top1_agreement"] == 1.0
    assert real["top5_overlap"] == row["top5_overlap"] == 1.0
    # fp32: logits equal to ~1e-6, a measured figure (None: bit-equal logits, or none measured)
    assert real["sqnr_db"] is not None and real["sqnr_db"] > 60, real
    assert real["passed"] is None  # fp32 is gated on drift; its agreement is reported
    view(Sink(), record)  # the table export prints without --json
    out = " ".join("".join(capsys.readouterr()).split())
    assert f"on {len(images)} real images (--verify-images); reported" in out


@pytest.mark.slow
def test_a_model_exported_without_its_normalization_is_fed_normalized_pixels(cli, tmp_path):
    """--no-preprocessing: the metadata says what the model expects and predict applies it;
    held against onnxruntime fed (x / 255 - mean) / std computed here from ImageNet's
    published mean and standard deviation."""
    import onnxruntime as ort

    code = cli("export", "--phi", "0", "--resolution", RESOLUTION, "--no-preprocessing",
               "--seed", "1", "-f", "onnx", "-o", tmp_path).code  # fmt: skip
    assert code == 0
    (onnx_path,) = tmp_path.glob("*.onnx")
    images = make_images(tmp_path / "images", count=3, seed=5)
    result = cli("predict", *images, "--from", onnx_path, "--json")
    assert result.code == 0, result.stderr
    assert "effnet applies it" in result.stderr
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    batch = np.stack([pillow_reference(p, RESOLUTION) for p in images])
    fed = ((batch / 255.0 - mean) / std).astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    probs = session.run(None, {name: fed})[0]
    raw = session.run(None, {name: batch})[0]  # what forgetting the normalization would give
    got = json.loads(result.stdout)["images"]
    ours = np.array([[e["probability"] for e in image["top"]] for image in got])
    classes = np.array([[e["class"] for e in image["top"]] for image in got])
    expected = np.take_along_axis(probs, classes, axis=1)
    assert np.allclose(ours, expected, rtol=1e-4)
    assert not np.allclose(ours, np.take_along_axis(raw, classes, axis=1), rtol=1e-3)
    assert list(classes[:, 0]) == list(np.argmax(probs, axis=1))


@pytest.mark.slow
def test_a_model_built_from_options_is_the_one_export_writes_with_the_same_seed(cli, artifacts):
    """`predict --seed 0` builds and calibrates the model `export --seed 0` wrote."""
    folder, name, images = artifacts
    built = cli("predict", *images[:3], "--phi", "0", "--resolution", RESOLUTION, "--seed", "0",
                "--json")  # fmt: skip
    assert built.code == 0, built.stderr
    assert "random weights (seed 0" in built.stderr
    loaded = cli("predict", *images[:3], "--from", folder / f"{name}.keras", "--json")
    assert loaded.code == 0, loaded.stderr
    ours_images, their_images = (json.loads(r.stdout)["images"] for r in (built, loaded))
    assert len(ours_images) == len(their_images) == 3
    for ours, theirs in zip(ours_images, their_images, strict=True):
        assert len(ours["top"]) == 5
        assert [e["class"] for e in ours["top"]] == [e["class"] for e in theirs["top"]]
        for a, b in zip(ours["top"], theirs["top"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], rel=1e-4)


@pytest.mark.slow
def test_a_registered_backend_predicts_from_its_record_alone(cli, artifacts, monkeypatch, tmp_path):
    """tests/fake_backend.py (a renamed .keras, unknown to predict.py) gives Keras' classes."""
    import shutil

    from effnet_cli import backends

    from . import fake_backend

    monkeypatch.setitem(backends.BACKENDS, "fake", fake_backend.RECORD)
    folder, name, images = artifacts
    fake = tmp_path / f"{name}.fake"  # in tmp_path: the shared folder is never written
    shutil.copyfile(folder / f"{name}.keras", fake)
    result = cli("predict", *images[:2], "--compare", f"{folder / f'{name}.keras'},{fake}",
                 "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    row = json.loads(result.stdout)["rows"][1]
    assert row["runtime"] == "fake" and row["top1_agreement"] == 1.0
    assert row["max_abs_diff_prob"] < 1e-6
