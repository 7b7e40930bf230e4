"""builder.py against keras.applications: the same layers, names, counts and outputs."""

from __future__ import annotations

import numpy as np
import pytest

from effnet_cli.keras.builder import build_model, import_keras
from effnet_cli.model import costs as C
from effnet_cli.model import spec as S

from .conftest import calibrate, relative_diff
from .test_scale_table import KERAS_COUNT_PARAMS, KERAS_TRAINABLE_PARAMS
from .test_spec import B0_MACS

keras = import_keras()


def _layers(model):
    return [(layer.name, type(layer).__name__, layer.count_params()) for layer in model.layers]


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.slow
@pytest.mark.parametrize("index", range(8))
def test_same_network_as_keras_applications(index, no_weights):
    reference = getattr(keras.applications, f"EfficientNetB{index}")(weights=None)
    ours = build_model(f"b{index}")
    # The tables the TensorFlow-free suites pin are keras.applications' own counts.
    assert reference.count_params() == KERAS_COUNT_PARAMS[f"efficientnet-b{index}"]
    assert _trainable(reference) == KERAS_TRAINABLE_PARAMS[f"efficientnet-b{index}"]
    assert _layers(ours) == _layers(reference)  # names, classes and order: weights match by them
    assert ours.count_params() == reference.count_params()
    assert _trainable(ours) == _trainable(reference)
    # The analytic counter agrees layer by layer with what Keras built.
    costs = C.count(S.get_spec(f"b{index}"))
    assert [(c.name, c.keras_class, c.params) for c in costs.layers] == _layers(ours)
    assert costs.params == ours.count_params()
    assert costs.params_trainable == _trainable(ours)
    del reference, ours


def _keras_macs(model) -> dict[str, int]:
    """Multiply-adds of each layer of a Keras model, from its shapes alone (not from costs.py).

    A convolution does k·k·C_in/groups per output element, a depthwise one k·k, a dense layer
    in·out; element-wise layers count nothing (the paper's and fvcore's convention).
    """
    macs = {}
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D"):
            height, width, channels_out = layer.output.shape[1:]
            per_output = int(np.prod(layer.kernel_size))
            if kind == "Conv2D":
                per_output *= layer.input.shape[-1] // layer.groups
            macs[layer.name] = height * width * channels_out * per_output
        elif kind == "Dense":
            macs[layer.name] = layer.input.shape[-1] * layer.units
    return macs


@pytest.mark.parametrize("index", [0, 3])
def test_macs_equal_a_count_over_keras_applications_layers(index, no_weights):
    reference = _keras_macs(getattr(keras.applications, f"EfficientNetB{index}")(weights=None))
    costs = C.count(S.get_spec(f"b{index}"))
    assert {c.name: c.macs for c in costs.layers if c.macs} == reference
    assert costs.macs == sum(reference.values())
    if index == 0:
        assert sum(reference.values()) == B0_MACS  # the figure test_spec.py pins


def test_output_shapes_match_the_graph(no_weights):
    spec = S.get_spec("b0", resolution=97)  # odd sizes: the explicit stride-2 padding matters
    model = build_model(spec)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    for layer in C.count(spec).layers:
        assert shapes[layer.name] == layer.shape


def test_same_outputs_as_keras_applications_for_the_same_weights():
    keras.backend.clear_session()
    reference = keras.applications.EfficientNetB0(
        weights=None, input_shape=(97, 97, 3), classifier_activation=None
    )
    images = calibrate(reference, 97)
    ours = build_model("b0", resolution=97, classifier_activation="none")
    ours.set_weights(reference.get_weights())
    ours.get_layer("normalization").finalize_state()  # Keras: set_weights alone is not applied
    expected = reference(images).numpy()
    assert np.abs(expected).max() > 1e-2  # calibrated: the logits are not ~1e-5
    assert relative_diff(ours(images).numpy(), expected) <= 1e-5


def test_seed_gives_identical_weights():
    first = build_model("b0", seed=7, resolution=64).get_weights()
    second = build_model("b0", seed=7, resolution=64).get_weights()
    third = build_model("b0", seed=8, resolution=64).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, third, strict=True))


def test_preprocessing_is_imagenet_mean_and_std():
    model = build_model("b0", resolution=32)
    normalization = model.get_layer("normalization")
    pixel = np.full((1, 32, 32, 3), 255.0 * 0.485, "float32")
    sub = keras.Model(model.input, normalization.output)
    assert abs(float(sub(pixel).numpy()[0, 0, 0, 0])) < 1e-5  # (0.485 - mean) / std == 0
    assert np.allclose(np.asarray(normalization.adapt_variance), np.square(S.IMAGENET_STDDEV_RGB))


def test_no_preprocessing_and_no_top():
    model = build_model("b0", resolution=64, preprocessing=False, include_top=False, pooling="max")
    names = [layer.name for layer in model.layers]
    assert "rescaling" not in names and "normalization" not in names
    assert names[-1] == "max_pool" and tuple(model.output.shape) == (None, 1280)


def test_classifier_activation():
    softmax = build_model("b0", resolution=64, seed=1)
    probabilities = softmax(np.zeros((2, 64, 64, 3), "float32")).numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    logits = build_model("b0", resolution=64, seed=1, classifier_activation="none")
    assert logits.get_layer("predictions").activation.__name__ == "linear"
