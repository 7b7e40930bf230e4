"""The Keras builder: a spec's layer graph (graph.py) becomes a keras.Model.

The model is a plain functional model with keras.applications' layer classes, names and order,
so weights saved from `keras.applications.EfficientNetBx` load into it and give the same outputs.
TensorFlow and Keras are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.keras.checkpoints.keras_files import load_weights
from effnet_cli.model import graph as G
from effnet_cli.model import spec as S

if TYPE_CHECKING:
    import keras

# keras.applications' initializers: EfficientNet's official "fan_out" variance scaling.
CONV_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
}
DENSE_KERNEL_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}
BN_EPSILON = 1e-3  # Keras' BatchNormalization default, as in the paper's code (V1 and V2)


def import_keras() -> Any:
    """Import Keras on the TensorFlow backend with TensorFlow's start-up noise silenced."""
    from effnet_cli.util.files import silenced_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # Keras' scikit-learn wrappers import sklearn (0.6 s) whenever TensorFlow loads Keras, and
    # effnet never uses them: hidden for this import only (NNCF imports sklearn later).
    hidden = "sklearn" not in sys.modules
    if hidden:
        # None makes the import fail (importlib's documented way); typeshed types sys.modules
        # as holding modules only
        sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings(), silenced_stderr():
            warnings.simplefilter("ignore")
            import keras
            import tensorflow as tf

            tf.config.list_physical_devices()  # device discovery logs once, here, silenced
    finally:
        if hidden:
            del sys.modules["sklearn"]
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    return keras


def resolve_spec(name_or_spec: str | S.ModelSpec, **options: Any) -> S.ModelSpec:
    if isinstance(name_or_spec, S.ModelSpec):
        if options:
            raise TypeError("pass options to get_spec, not with a ready ModelSpec")
        return name_or_spec
    return S.get_spec(name_or_spec, **options)


def build_model(
    name_or_spec: str | S.ModelSpec = "b0",
    *,
    weights: str | Path | None = None,
    seed: int | None = None,
    **options: Any,
) -> keras.Model:
    """Build the Keras model of a variant (`"b0"`, `"lite2"`, …) or of a `ModelSpec`.

    `options` are `get_spec`'s (phi, resolution, num_classes, include_top, …). `seed` makes the
    random initial weights reproducible; `weights` loads a `.weights.h5` or legacy `.h5` file,
    or a PyTorch checkpoint (keras/checkpoints/torch_layouts.py).
    """
    spec = resolve_spec(name_or_spec, **options)
    keras = import_keras()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    nodes = G.build_graph(spec)
    tensors: dict[str, Any] = {}
    for node in nodes:
        if isinstance(node.op, G.Input):
            tensors[node.name] = keras.Input(shape=node.shape, name=node.name)
            continue
        args = [tensors[name] for name in node.inputs]
        layer = make_layer(keras, node)
        tensors[node.name] = layer(args if len(args) > 1 else args[0])
    with deep_recursion():
        model = keras.Model(tensors[nodes[0].name], tensors[nodes[-1].name], name=spec.name)
    _set_preprocessing_statistics(model, nodes)
    if weights is not None:
        load_weights(model, weights)
    return model


@contextlib.contextmanager
def deep_recursion(limit: int = 20_000) -> Iterator[None]:
    """Room for Keras to walk a deep functional graph: it recurses once per layer when it builds
    a model, and L2's ~2,900 layers pass Python's default limit of 1,000 frames."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def make_layer(keras: Any, node: G.Node) -> Any:
    """The Keras layer of one graph node, configured as keras.applications configures it."""
    layers, name = keras.layers, node.name
    match node.op:
        case G.Rescale(scale=scale, offset=offset):
            return layers.Rescaling(scale, offset, name=name)
        case G.Normalize(mean=mean, variance=variance, as_weights=False):
            # keras.applications' V2: constants, no weights (set after building for V1 below)
            return layers.Normalization(
                axis=-1, mean=list(mean), variance=list(variance), name=name
            )
        case G.Normalize():
            return layers.Normalization(axis=-1, name=name)
        case G.Pad(padding=padding):
            return layers.ZeroPadding2D(padding=padding, name=name)
        case G.Conv(filters=f, kernel_size=k, strides=s, padding=p, use_bias=b, activation=a):
            return layers.Conv2D(
                f,
                k,
                strides=s,
                padding=p,
                use_bias=b,
                activation=a,
                kernel_initializer=CONV_KERNEL_INITIALIZER,
                name=name,
            )
        case G.DepthwiseConv(kernel_size=k, strides=s, padding=p, use_bias=b):
            return layers.DepthwiseConv2D(
                k,
                strides=s,
                padding=p,
                use_bias=b,
                depthwise_initializer=CONV_KERNEL_INITIALIZER,
                name=name,
            )
        case G.BatchNorm(momentum=momentum):
            return layers.BatchNormalization(
                axis=-1, epsilon=BN_EPSILON, momentum=momentum, name=name
            )
        case G.Act(activation=activation):
            # By name ("swish", "relu6"): a `.keras` file then loads in Keras' safe mode.
            return layers.Activation(activation, name=name)
        case G.GlobalPool(kind="avg"):
            return layers.GlobalAveragePooling2D(name=name)
        case G.GlobalPool(kind="max"):
            return layers.GlobalMaxPooling2D(name=name)
        case G.Reshape(target=target):
            return layers.Reshape(target, name=name)
        case G.Softmax():
            return layers.Softmax(name=name)
        case G.Multiply():
            return layers.Multiply(name=name)
        case G.Add():
            return layers.Add(name=name)
        case G.Dropout(rate=rate, per_sample=per_sample):
            noise_shape = (None, 1, 1, 1) if per_sample else None
            return layers.Dropout(rate, noise_shape=noise_shape, name=name)
        case G.Dense(units=units, activation=activation):
            return layers.Dense(
                units,
                activation=activation,
                kernel_initializer=DENSE_KERNEL_INITIALIZER,
                name=name,
            )
    raise TypeError(f"no Keras layer for {node.op!r}")


def _set_preprocessing_statistics(model: Any, nodes: tuple[G.Node, ...]) -> None:
    """Give the Normalization layer the ImageNet mean and variance (keras.applications leaves
    zeros and ones there unless weights are loaded)."""
    import numpy as np

    for node in nodes:
        if isinstance(node.op, G.Normalize) and node.op.as_weights:
            layer = model.get_layer(node.name)
            layer.adapt_mean.assign(np.asarray(node.op.mean, "float32"))
            layer.adapt_variance.assign(np.asarray(node.op.variance, "float32"))
            layer.finalize_state()  # set_weights alone has no effect on outputs


def with_input_size(model: Any, size: int | None) -> Any:
    """The same layers and weights on a size × size input (None: any height and width).

    Cloned from the layers' configs, so an explicit `ZeroPadding2D` keeps the padding that
    `correct_pad` chose for the build resolution: at a size ≡ the resolution (mod 32) every
    stride-2 layer sees the parity it was built for and the clone equals a model built at that
    size; at other sizes it does not (`export --dynamic-size`, DESIGN §1.1).
    """
    keras = import_keras()
    shape = (size, size, model.input.shape[-1])
    inputs = keras.Input(shape=shape, name=model.layers[0].name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clone = keras.models.clone_model(model, input_tensors=inputs)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # set_weights alone has no effect on its outputs
    return clone


# Eager calls keep every layer's output alive until they return (B7 at 600 px: ~4 GB an image);
# a tf.function frees each after its last use but costs seconds to trace (B0: ~2–3 s a trace).
# Below this many bytes of activations a call runs eagerly: small models skip the tracing.
EAGER_ACTIVATION_BYTES = 1_500_000_000


def activation_bytes(model: Any, batch: int) -> int:
    """Every layer's float32 output for `batch` images: what an eager call keeps alive."""
    per_image: int = sum(
        math.prod(d for d in layer.output.shape[1:] if d is not None)
        for layer in model.layers
        if not isinstance(layer.output, list)
    )
    return 4 * per_image * batch


def run_cheaply(model: Any, function: Any, batch: int) -> Any:
    """`function` as an images -> numpy call: eager when its activations are small, else a
    tf.function (the graph frees each activation after its last use)."""
    import numpy as np
    import tensorflow as tf

    call = (
        function
        if activation_bytes(model, batch) < EAGER_ACTIVATION_BYTES
        else tf.function(function)
    )
    return lambda images: np.asarray(call(tf.constant(images)))


def logits_function(model: Any) -> Any | None:
    """images -> the tensor before the model's final softmax, or None when it ends in none.

    keras.applications fuses the softmax into the `predictions` Dense, so no layer outputs the
    logits: they are the Dense's own affine map of its input. A separate Softmax layer (the seed
    notebook's head) is simply skipped.
    """
    keras = import_keras()
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return keras.Model(model.input, last.input)
    if isinstance(last, keras.layers.Dense) and last.activation is keras.activations.softmax:
        features = keras.Model(model.input, last.input)
        return lambda images: keras.ops.matmul(features(images), last.kernel) + last.bias
    return None
