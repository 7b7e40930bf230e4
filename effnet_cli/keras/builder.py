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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.model import graph as G
from effnet_cli.model import spec as S
from effnet_cli.util import torch_files
from effnet_cli.util.errors import UsageError

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
    or a PyTorch checkpoint (keras/checkpoints.py).
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
                f, k, strides=s, padding=p, use_bias=b, activation=a,
                kernel_initializer=CONV_KERNEL_INITIALIZER, name=name,
            )  # fmt: skip
        case G.DepthwiseConv(kernel_size=k, strides=s, padding=p, use_bias=b):
            return layers.DepthwiseConv2D(
                k, strides=s, padding=p, use_bias=b,
                depthwise_initializer=CONV_KERNEL_INITIALIZER, name=name,
            )  # fmt: skip
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
                units, activation=activation,
                kernel_initializer=DENSE_KERNEL_INITIALIZER, name=name,
            )  # fmt: skip
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


@dataclass(frozen=True)
class WeightsReport:
    path: str
    layout: str  # "keras3" (.weights.h5) or "legacy-h5"
    tensors_loaded: int
    stddev_fix: bool  # the published files' std-in-variance slot was corrected


def weights_layout(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        return "keras3"
    if name.endswith((".h5", ".hdf5")):
        return "legacy-h5"
    if torch_files.is_checkpoint_name(path):
        return "pytorch"  # read and mapped by keras/checkpoints.py
    raise UsageError(
        f"cannot tell the layout of weights file {path.name!r}; valid endings: "
        ".weights.h5 (Keras 3), .h5 (legacy, as keras.applications distributes), "
        ".pth, .pt, .bin, .ckpt (PyTorch) or .safetensors"
    )


def count_file_tensors(path: Path, layout: str) -> int:
    """How many weight tensors a weights file holds, read without Keras."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if layout == "keras3":
                found: list[str] = []
                f.visititems(
                    lambda name, obj: (
                        found.append(name)
                        if isinstance(obj, h5py.Dataset) and "/vars/" in f"/{name}"
                        else None
                    )
                )
                return len(found)
            group = f.get("model_weights", f)
            if "layer_names" not in group.attrs:
                raise UsageError(f"{path} is an HDF5 file but holds no Keras weights")
            return sum(
                len(group[_text(layer)].attrs.get("weight_names", []))
                for layer in group.attrs["layer_names"]
            )
    except OSError as exc:
        raise UsageError(f"{path} is not a readable HDF5 weights file ({exc})") from None


def file_weight_elements(path: Path, layout: str) -> int:
    """How many numbers a weights file holds (Keras' count_params of the model it came from)."""
    import h5py

    count_file_tensors(path, layout)  # an unreadable or foreign file is refused first
    total = 0

    def add(name: str, obj: object) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset) and (layout != "keras3" or "/vars/" in f"/{name}"):
            total += int(obj.size)

    with h5py.File(path, "r") as f:
        (f if layout == "keras3" else f.get("model_weights", f)).visititems(add)
    return total


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check_weights_file(path: Path) -> None:
    """Cheap checks of a `--weights` file before TensorFlow loads."""
    if path.is_dir():
        raise UsageError(
            f"weights file {str(path)!r} is a directory; give a .weights.h5, .h5, PyTorch or "
            ".safetensors file"
        )
    if not path.is_file():
        raise UsageError(f"weights file {str(path)!r} does not exist")
    layout = weights_layout(path)
    if layout == "pytorch":
        from effnet_cli.keras import checkpoints

        checkpoints.check_file(path)  # the allow-list and the naming rules, before any build
        return
    count_file_tensors(path, layout)  # an unreadable file, before any build


def load_weights(model: Any, path: str | Path) -> WeightsReport:
    """Load a weights file into `model`, refusing anything but a complete, exact match."""
    path = Path(path)
    check_weights_file(path)
    layout = weights_layout(path)
    if layout == "pytorch":
        from effnet_cli.keras import checkpoints

        loaded = checkpoints.load_into(model, path)
        return WeightsReport(str(path), loaded.layout, loaded.tensors_loaded, False)
    expected = len(model.weights)
    found = count_file_tensors(path, layout)
    if found != expected:
        raise UsageError(
            f"{path.name} holds {found} weight tensors but {model.name} has {expected}",
            hint="the file is for another variant or head (--model, --num-classes, --no-top)",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(str(path))
        except (ValueError, KeyError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"{path.name} does not fit {model.name}: {first}",
                hint="the file is for another variant or head (--model, --num-classes, --no-top)",
            ) from None
    skipped = [str(w.message) for w in caught if "load" in str(w.message).lower()]
    if skipped:
        raise UsageError(f"{path.name} does not fit {model.name}: {skipped[0].splitlines()[0]}")
    return WeightsReport(str(path), layout, found, _fix_published_stddev(model))


def _fix_published_stddev(model: Any) -> bool:
    """Square the variance when a file stored the ImageNet std in the variance slot.

    keras.applications' published ImageNet files do (https://github.com/tensorflow/tensorflow/
    issues/49930); keras.applications compensates with an extra Rescaling layer, but only for
    weights="imagenet". Squaring the slot gives the same outputs with the same layers.
    """
    import numpy as np

    try:
        layer = model.get_layer("normalization")
    except ValueError:
        return False
    if not layer.weights:  # V2 holds its statistics as constants: no file can have set them
        return False
    variance = np.asarray(layer.adapt_variance)
    if not np.allclose(variance, S.IMAGENET_STDDEV_RGB, atol=1e-4):
        return False
    layer.adapt_variance.assign(variance * variance)
    layer.finalize_state()
    return True


SAVE_FORMATS = {".keras": "keras", ".weights.h5": "weights"}


def save_format(path: Path) -> str:
    for ending, fmt in SAVE_FORMATS.items():
        if path.name.lower().endswith(ending):
            return fmt
    raise UsageError(
        f"cannot save as {path.name!r}; valid endings: .keras (full model) or .weights.h5 (weights)"
    )


def build_and_save(
    spec: S.ModelSpec,
    weights: Path | None,
    seed: int | None,
    output: Path | None,
    force: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """`effnet build`: check every input before TensorFlow loads, build, load, save atomically."""
    import time

    from effnet_cli.util import files

    if output is not None:
        fmt = save_format(output)
        files.check_target(output, force)
    if weights is not None:
        check_weights_file(weights)
    progress(f"building {spec.name}")  # every input checked: the slow part begins
    import_keras()  # outside the timing: build_s is the build alone
    with files.stdout_to_stderr():
        started = time.perf_counter()
        model = build_model(spec, seed=seed)
        build_seconds = time.perf_counter() - started
        loaded = load_weights(model, weights) if weights is not None else None
        report: dict[str, Any] = {
            "input": S.input_contract(spec),
            "params": int(model.count_params()),
            "params_trainable": int(sum(int(w.numpy().size) for w in model.trainable_weights)),
            "seed": seed,
            "weights": vars(loaded) if loaded else None,
            "build_s": build_seconds,
            "output": None,
        }
        if output is not None:
            with files.atomic_target(output) as tmp:
                model.save(tmp) if fmt == "keras" else model.save_weights(tmp)
            report["output"] = {
                "path": str(output), "format": fmt, "bytes": files.size_bytes(output),
            }  # fmt: skip
    return report


def load_or_build(
    spec: S.ModelSpec | None, source: Path | None, weights: Path | None, seed: int | None
) -> Any:
    """The model a command works on: a `.keras` file (`--from`), or built from `spec`."""
    from effnet_cli.util.files import stdout_to_stderr

    with stdout_to_stderr():
        if source is not None:
            return load_keras_file(source)
        model = build_model(spec, seed=seed)  # type: ignore[arg-type]
        if weights is not None:
            load_weights(model, weights)
        return model


def check_keras_file(path: Path) -> None:
    """Cheap checks of a `.keras` file before TensorFlow loads."""
    import zipfile

    if not path.exists():
        raise UsageError(f"model file {str(path)!r} does not exist")
    if path.suffix != ".keras":
        raise UsageError(f"--from takes a .keras file, not {path.name!r}")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path.name} is not a .keras archive (a .keras file is a zip)")


def load_keras_file(path: Path) -> Any:
    """Load a `.keras` file in Keras' safe mode: no arbitrary code from an untrusted file."""
    check_keras_file(path)
    keras = import_keras()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise UsageError(
                f"{path.name} contains a Python lambda, refused in safe mode (it could run "
                "arbitrary code)",
                hint="rebuild the model without Lambda layers",
            ) from None
        raise UsageError(f"{path.name} is not a loadable Keras model: {_first_line(exc)}") from None
    except (OSError, KeyError, TypeError) as exc:
        raise UsageError(f"{path.name} is not a loadable Keras model: {_first_line(exc)}") from None


def keras_file_pads_explicitly(path: Path) -> bool:
    """Whether a `.keras` file's model pads explicitly (a `ZeroPadding2D` anywhere in its
    config.json), read from the archive without Keras."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise UsageError(
            f"{path.name} is not a .keras model archive ({_first_line(exc)})"
        ) from None

    def classes(node: Any) -> Any:
        if isinstance(node, dict):
            yield node.get("class_name")
            for value in node.values():
                yield from classes(value)
        elif isinstance(node, list):
            for value in node:
                yield from classes(value)

    return "ZeroPadding2D" in set(classes(config))


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fresh_batchnorm(model: Any) -> bool:
    """True when no BatchNorm has statistics yet (moving mean 0, variance 1): random weights."""
    import numpy as np

    keras = import_keras()
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return bool(norms) and all(
        not np.any(np.asarray(layer.moving_mean)) and np.all(np.asarray(layer.moving_variance) == 1)
        for layer in norms
    )


# Samples per channel that calibration gives the smallest feature map (the input / 32). With too
# few, the statistics fit those images only: on other images activations leave them, the error
# compounds through the blocks, and the random model is badly conditioned — B7 at 128 px
# calibrated on 2 images (32 samples) has logits near 900 and even Keras fp32 lies 5e-2 from
# float64; on 8 images (128 samples) logits ~0.5 and every fp32 runtime agrees to 7e-6
# (benchmarks/drift.py, README). 400 keeps three times that margin; each image costs B0 at
# 224 px ~0.09 s of eager training-mode compute, so more would slow every verified export.
CALIBRATION_SAMPLES = 400
MAX_CALIBRATION_BATCH = 32  # small inputs: the images are cheap, the samples are what counts


def calibration_batch(height: int, width: int) -> int:
    """Images for one calibration pass: 400 samples of the 1/32-size map (2 to 32 images:
    2 at 600 px, 4 at 300 px, 9 at 224 px)."""
    positions = math.ceil(height / 32) * math.ceil(width / 32)
    return min(MAX_CALIBRATION_BATCH, max(2, math.ceil(CALIBRATION_SAMPLES / positions)))


def calibrate_batchnorm(model: Any, seed: int = 0, batch: int | None = None) -> None:
    """Give random weights real BatchNorm statistics (DESIGN §1.1).

    Fresh statistics make EfficientNet's outputs ~1e-5, so parity checks would compare noise.
    One training-mode pass with momentum 0 over seeded random images at the model's own input
    size (statistics at another size give logits orders of magnitude off) sets every moving
    statistic to that batch's statistics; the batch is large enough for the smallest feature
    map (`calibration_batch`).
    """
    import numpy as np

    keras = import_keras()
    height, width = model.input.shape[1:3]
    if height is None or width is None:
        height = width = 224
    batch = batch or calibration_batch(height, width)
    images = np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    run_cheaply(model, lambda x: model(x, training=True), len(images))(images.astype("float32"))
    for layer, momentum in zip(norms, saved, strict=True):
        layer.momentum = momentum


# Eager calls keep every layer's output alive until they return (B7 at 600 px: ~4 GB an image);
# a tf.function frees each after its last use but costs seconds to trace (B0: ~2–3 s a trace).
# Below this many bytes of activations a call runs eagerly: small models skip the tracing.
EAGER_ACTIVATION_BYTES = 1_500_000_000


def activation_bytes(model: Any, batch: int) -> int:
    """Every layer's float32 output for `batch` images: what an eager call keeps alive."""
    per_image = sum(
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
