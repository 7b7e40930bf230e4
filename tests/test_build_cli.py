"""`effnet build`: weights from keras.applications in both layouts, atomic writes, --seed."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from effnet_cli.keras.builder import import_keras

from .conftest import calibrate, relative_diff
from .test_bad_inputs import STEP
from .test_scale_table import KERAS_COUNT_PARAMS

keras = import_keras()
PARITY_SIZE = 97


@pytest.fixture(scope="module")
def tensors():
    """How many weight tensors keras.applications' B0 and B1 hold (the sizes do not matter)."""
    keras.backend.clear_session()
    return {
        f"b{i}": len(getattr(keras.applications, f"EfficientNetB{i}")(
            weights=None, input_shape=(32, 32, 3)).weights)
        for i in (0, 1)
    }  # fmt: skip


@pytest.fixture(scope="module")
def reference_b0(tmp_path_factory):
    """keras.applications' B0 with real BatchNorm statistics, saved in both layouts. At 97 px
    (odd maps into every stride-2 convolution): no weight depends on the input size."""
    from keras.src.legacy.saving import legacy_h5_format

    folder = tmp_path_factory.mktemp("weights")
    size = (PARITY_SIZE, PARITY_SIZE, 3)
    model = keras.applications.EfficientNetB0(
        weights=None, classifier_activation=None, input_shape=size
    )
    images = calibrate(model, PARITY_SIZE, seed=1)
    model.save_weights(folder / "b0.weights.h5")
    with h5py.File(folder / "b0_legacy.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return folder, images, model(images).numpy()


@pytest.mark.parametrize("layout", ["b0.weights.h5", "b0_legacy.h5"])
def test_keras_applications_weights_give_the_same_logits(
    cli, tmp_path, reference_b0, tensors, layout
):
    folder, images, expected = reference_b0
    target = tmp_path / "ours.keras"
    result = cli("build", "--phi", "0", "--resolution", PARITY_SIZE, "--classifier-activation",
                 "none", "--weights", folder / layout, "-o", target, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["schema"] == "effnet.build/1"
    assert report["weights"]["tensors_loaded"] == tensors["b0"]
    model = keras.saving.load_model(target, safe_mode=True)
    assert np.abs(expected).max() > 1e-2
    assert relative_diff(model(images).numpy(), expected) <= 1e-5


def test_published_std_in_variance_slot_is_corrected(cli, tmp_path, reference_b0):
    """The distributed ImageNet files store the std where Keras reads a variance (TF #49930)."""
    folder, _, _ = reference_b0
    doctored = tmp_path / "efficientnetb0.h5"
    doctored.write_bytes((folder / "b0_legacy.h5").read_bytes())
    with h5py.File(doctored, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        group = f[next(n for n in names if n.startswith("normalization"))]  # keras may number it
        mean, variance, _ = (name.decode() if isinstance(name, bytes) else name
                             for name in group.attrs["weight_names"])  # fmt: skip
        group[mean][...] = [0.485, 0.456, 0.406]
        group[variance][...] = [0.229, 0.224, 0.225]
    result = cli("build", "--weights", doctored, "-o", tmp_path / "b0.keras", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["weights"]["stddev_fix"] is True
    model = keras.saving.load_model(tmp_path / "b0.keras")
    assert np.allclose(
        model.get_layer("normalization").adapt_variance, np.square([0.229, 0.224, 0.225])
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--phi", "1"], "holds {b0} weight tensors but efficientnet-b1 has {b1}"),
     (["--num-classes", "10"], "does not fit"),
     (["--no-top"], "holds {b0} weight tensors")],
)  # fmt: skip
def test_mismatched_weights_are_refused(cli, tmp_path, reference_b0, tensors, args, message):
    folder, _, _ = reference_b0
    message = message.format(**tensors)
    for layout in ("b0.weights.h5", "b0_legacy.h5"):
        target = tmp_path / "x.keras"
        result = cli("build", *args, "--weights", folder / layout, "-o", target)
        assert result.code == 2
        # found once the model exists: its progress line ("HH:MM:SS building …") comes first
        errors = [line for line in result.stderr.splitlines() if not STEP.match(line)]
        assert errors[0].startswith("error: ") and message in result.stderr
        assert "Traceback" not in result.stderr
        assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """B0 weights files at 64 px from `effnet build --seed`, three builds for both tests below:
    a.weights.h5 and b.weights.h5 with seed 5; then, over a copy of a (`target`), seed 6 without
    --force (refused: its result and the bytes it left) and with --force (c, seed 6)."""
    from .conftest import run_cli

    folder = tmp_path_factory.mktemp("seeded")
    for name in ("a", "b"):
        assert run_cli("build", "--resolution", "64", "--seed", "5",
                       "-o", folder / f"{name}.weights.h5").code == 0  # fmt: skip
    existing = tmp_path_factory.mktemp("existing")
    target = existing / "b0.weights.h5"
    target.write_bytes((folder / "a.weights.h5").read_bytes())
    before = target.read_bytes()
    refused = run_cli("build", "--resolution", "64", "--seed", "6", "-o", target)
    kept = target.read_bytes()
    forced = run_cli("build", "--resolution", "64", "--seed", "6", "-o", target, "--force")
    return {"folder": folder, "target": target, "before": before, "refused": refused,
            "kept": kept, "forced": forced}  # fmt: skip


def test_existing_output_is_kept_without_force(seeded):
    refused, target = seeded["refused"], seeded["target"]
    assert refused.code == 2 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert seeded["kept"] == seeded["before"]
    assert seeded["forced"].code == 0
    assert target.read_bytes() != seeded["before"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["b0.weights.h5"]  # no temp left


def test_same_seed_same_weights_file(seeded):
    assert seeded["forced"].code == 0, seeded["forced"].stderr
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3))

    def arrays(path):
        model.load_weights(path)
        return model.get_weights()

    folder = seeded["folder"]
    a, b = arrays(folder / "a.weights.h5"), arrays(folder / "b.weights.h5")
    c = arrays(seeded["target"])  # seed 6, written with --force
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_json_stdout_is_one_document(cli, tmp_path):
    result = cli("build", "--resolution", "64", "--json")
    document = json.loads(result.stdout)
    assert document["params"] == KERAS_COUNT_PARAMS["efficientnet-b0"]
    assert document["output"] is None
