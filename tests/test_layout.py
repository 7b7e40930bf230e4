"""`effnet export --nchw` and `--dynamic-size`: checked with onnxruntime directly, against Keras
models of the same weights (README "effnet export")."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows import export as E

from .conftest import relative_diff


def _images(batch: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _calibrated(name: str, resolution: int, seed: int, batch: int | None = None, **options):
    """The model `effnet export --seed SEED` builds and calibrates: the same weights (unless a
    smaller calibration `batch` is asked for, where only real statistics matter)."""
    from effnet_cli.keras.builder import build_model
    from effnet_cli.keras.calibration import calibrate_batchnorm

    model = build_model(name, resolution=resolution, seed=seed, **options)
    calibrate_batchnorm(model, seed=seed, batch=batch)
    return model


def _at_size(name: str, size: int, weights, **options):
    """A model built at `size` (a fixed Input), given the weights of another build."""
    from effnet_cli.keras.builder import build_model

    model = build_model(name, resolution=size, **options)
    model.set_weights(weights)
    return model


# ---------------------------------------------------------------------------- no TensorFlow


def test_which_families_may_take_any_size_is_read_from_the_spec():
    assert E.pads_explicitly(S.get_spec("b0"), None)
    assert E.pads_explicitly(S.get_spec("lite2"), None)
    assert not E.pads_explicitly(S.get_spec("seed-b3"), None)
    assert not E.pads_explicitly(S.get_spec("v2-s"), None)  # V2 pads "same", as Keras builds it
    assert E.same_padding_models() == "seed-b0..seed-b7 or v2-b0..v2-l"


def _keras_archive(path, classes: list[str]):
    layers = [{"class_name": name} for name in classes]
    config = {"class_name": "Functional", "config": {"layers": layers}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    return path


def test_a_keras_files_padding_is_read_from_its_config_without_keras(tmp_path):
    explicit = _keras_archive(tmp_path / "v1.keras", ["InputLayer", "ZeroPadding2D", "Conv2D"])
    same = _keras_archive(tmp_path / "same.keras", ["InputLayer", "Conv2D"])
    assert E.pads_explicitly(None, explicit) and not E.pads_explicitly(None, same)


def test_dynamic_size_is_accepted_for_same_padding_and_confirmed_explicit_padding(tmp_path):
    request = E.ExportRequest(
        formats=("onnx",), directory=tmp_path / "out", dynamic_size=True, nchw=True
    )
    (target,) = E.check_request(request, "efficientnet-seed-b0", 224, explicit_padding=False)
    assert target.path.name == "efficientnet-seed-b0.onnx"
    with pytest.raises(UsageError, match="pads its stride-2 convolutions explicitly for 224 px"):
        E.check_request(request, "efficientnet-b0", 224, explicit_padding=True)
    confirmed = E.ExportRequest(formats=("onnx",), directory=tmp_path / "out", dynamic_size=True,
                                allow_odd_padding=True)  # fmt: skip
    assert E.check_request(confirmed, "efficientnet-b0", 224, explicit_padding=True)


@pytest.mark.parametrize(
    "argv",
    [["export", "-f", "tflite", "--nchw"], ["export", "-f", "onnx", "--dynamic-size"],
     ["export", "-f", "onnx", "--allow-odd-padding"]],
)  # fmt: skip
def test_layout_refusals_come_before_tensorflow_loads(argv, tmp_path):
    from .test_cli import HEAVY, _modules_after

    code = (
        f"from effnet_cli.cli.app import main\nassert main({[*argv, '-o', str(tmp_path)]!r}) == 2"
    )
    assert not HEAVY & _modules_after(code)
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_runner_feeds_an_nchw_file_from_nhwc_batches(tmp_path):
    """A file without effnet's metadata: the layout is read from its input's shape."""
    import onnx
    from onnx import TensorProto, helper

    from effnet_cli.backends.onnx import onnx_layout, onnx_runner

    def identity(name: str, shape: list) -> onnx.ModelProto:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["input"], ["output"])], "identity",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
        )  # fmt: skip
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(proto, str(tmp_path / name))
        return tmp_path / name

    nchw, nhwc = identity("nchw.onnx", ["N", 3, 8, 8]), identity("nhwc.onnx", ["N", 8, 8, 3])
    assert (onnx_layout(_session(nchw)), onnx_layout(_session(nhwc))) == ("NCHW", "NHWC")
    images = _images(2, 8)
    assert np.array_equal(onnx_runner(nchw).run(images), images.transpose(0, 3, 1, 2))
    assert np.array_equal(onnx_runner(nhwc).run(images), images)


# ---------------------------------------------------------------------------- Keras


def test_a_model_on_any_size_equals_fixed_builds_where_its_padding_holds():
    """Why --dynamic-size is refused for V1's explicit padding: the ZeroPadding2D amounts are
    chosen for the build resolution (64: every stride-2 input even). At 96 (≡ 64 mod 32) the
    any-size model equals a build at 96; at 80, 80 → 40 → 20 → 10 → 5 meets an odd map where
    the build had an even one, and the outputs differ. 'same' padding is right at every size."""
    from effnet_cli.keras.builder import with_input_size

    for name, sizes, exact in (("b0", (96, 80), (96,)), ("seed-b0", (80,), (80,))):
        reference = _calibrated(name, 64, seed=3, batch=4, classifier_activation="none")
        dynamic = with_input_size(reference, None)
        assert dynamic.input.shape[1:] == (None, None, 3)
        for size in sizes:
            images = _images(2, size)
            expected = _at_size(name, size, reference.get_weights(),
                                classifier_activation="none")(images).numpy()  # fmt: skip
            assert np.abs(expected).max() > 1e-2  # calibrated: real logits, not ~1e-5
            drift = relative_diff(dynamic(images).numpy(), expected)
            assert drift < 1e-5 if size in exact else drift > 1e-2, (name, size, drift)


# ---------------------------------------------------------------------------- exports


@pytest.mark.slow
def test_nchw_input_gives_the_nhwc_models_outputs_on_transposed_images(cli, tmp_path):
    from effnet_cli import backends

    result = cli("export", "--resolution", "64", "--seed", "4", "--classifier-activation", "none",
                 "-f", "onnx", "--nchw", "-o", tmp_path, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    (artifact,) = json.loads(result.stdout)["artifacts"]
    check = artifact["verification"]
    assert check["passed"] and check["sizes"] == [64] and check["batches"] == [1, 3]
    session = _session(artifact["path"])
    (tensor,) = session.get_inputs()
    assert tensor.shape[1:] == [3, 64, 64] and not isinstance(tensor.shape[0], int)
    assert session.get_modelmeta().custom_metadata_map["input_layout"] == "NCHW"
    images = _images(3, 64)
    expected = _calibrated("b0", 64, seed=4, classifier_activation="none")(images).numpy()
    assert np.abs(expected).max() > 1e-2
    (got,) = session.run(None, {"input": np.ascontiguousarray(images.transpose(0, 3, 1, 2))})
    assert relative_diff(got, expected) <= 1e-4
    runner = backends.load_runner("onnx", artifact["path"])  # effnet's runner takes NHWC
    assert relative_diff(runner.run(images), expected) <= 1e-4
    report = json.loads(cli("inspect", artifact["path"], "--json").stdout)
    assert report["inputs"][0]["shape"] == [None, 3, 64, 64]
    assert report["metadata"]["input_layout"] == "NCHW"
    assert "NCHW" in cli("inspect", artifact["path"]).stdout


@pytest.mark.slow
def test_dynamic_size_runs_at_two_resolutions_and_matches_keras_at_each(cli, tmp_path):
    """The seed family pads 'same': one file serves every size, even one with odd maps."""
    options = ["--model", "seed-b0", "--resolution", "64", "--seed", "5",
               "--classifier-activation", "none"]  # fmt: skip
    result = cli("export", *options, "-f", "onnx", "--dynamic-size", "-o", tmp_path, "--json")
    assert result.code == 0, result.stderr
    (artifact,) = json.loads(result.stdout)["artifacts"]
    check = artifact["verification"]
    assert check["passed"] and check["sizes"] == [64, 96] and check["max_rel_diff"] <= 1e-4
    session = _session(artifact["path"])
    (tensor,) = session.get_inputs()
    assert tensor.shape[3] == 3 and not any(isinstance(d, int) for d in tensor.shape[:3])
    metadata = session.get_modelmeta().custom_metadata_map
    assert (metadata["input_size"], metadata["resolution"]) == ("dynamic", "64x64")
    weights = _calibrated("seed-b0", 64, seed=5, classifier_activation="none").get_weights()
    for size in (64, 96, 81):
        images = _images(2, size, seed=size)
        expected = _at_size("seed-b0", size, weights, classifier_activation="none")(images)
        (got,) = session.run(None, {"input": images})
        assert got.shape == (2, 1000) and relative_diff(got, expected.numpy()) <= 1e-4, size


@pytest.mark.slow
def test_dynamic_size_of_explicit_padding_needs_confirming_and_is_verified_at_two_sizes(
    cli, tmp_path
):
    """B0 from a .keras file (a softmax head, verified on its logits), NCHW and any size."""
    model = _calibrated("b0", 64, seed=6)
    source = tmp_path / "b0.keras"
    model.save(source)
    out = tmp_path / "out"
    refused = cli("export", "--from", source, "-f", "onnx", "--dynamic-size", "-o", out)
    assert refused.code == 2 and "pads its stride-2 convolutions explicitly" in refused.stderr
    assert not out.exists()
    result = cli("export", "--from", source, "-f", "onnx", "--nchw", "--dynamic-size",
                 "--allow-odd-padding", "-o", out, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    (artifact,) = json.loads(result.stdout)["artifacts"]
    check = artifact["verification"]
    assert check["passed"] and check["compared"] == "logits" and check["sizes"] == [64, 96]
    session = _session(artifact["path"])
    (tensor,) = session.get_inputs()
    assert tensor.shape[1] == 3 and not any(isinstance(d, int) for d in tensor.shape[2:])
    for size in (64, 96):  # ≡ 64 mod 32: the padding of a build at that size
        images = _images(2, size, seed=size)
        expected = _at_size("b0", size, model.get_weights())(images).numpy()
        (got,) = session.run(None, {"input": np.ascontiguousarray(images.transpose(0, 3, 1, 2))})
        assert relative_diff(got, expected) <= 1e-4, size
