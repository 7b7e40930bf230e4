"""TensorFlow SavedModel: a folder with a serving signature of a named input and output (and a
`logits` signature beside it when the head is a softmax), run by TensorFlow."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import artifact
from effnet_cli.backends.keras import tensorflow_threads, tf_device
from effnet_cli.backends.record import Backend, Declared, Format
from effnet_cli.backends.runtimes import Runner

if TYPE_CHECKING:
    from effnet_cli.backends.runtimes import Run
    from effnet_cli.util.arrays import Floats, Images


def load(path: Path) -> Any:
    """The SavedModel's object (its signatures and variables): the one place that loads it."""
    from effnet_cli.keras.builder import import_keras

    import_keras()  # first: it silences TensorFlow's start-up noise
    import tensorflow as tf

    return tf.saved_model.load(str(path))


def savedmodel_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    loaded = load(path)
    import tensorflow as tf

    signature = loaded.signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1].keys()
    target = tf_device(device)

    def caller(function: Any) -> Run:
        (name,) = function.structured_outputs.keys()

        def run(images: Images) -> Floats:
            with tf.device(target):
                answers: Floats = function(**{input_name: tf.constant(images)})[name].numpy()
            return answers

        return run

    # export writes a "logits" signature beside serving_default when the head is a softmax
    logits = loaded.signatures.get("logits")
    return Runner(
        "savedmodel",
        device,
        f"TensorFlow {device.upper()}",
        "fp32",
        caller(signature),
        run_logits=caller(logits) if logits is not None else None,
        threads=tensorflow_threads(),
    )


def write_savedmodel(model: Any, path: Path, **_: Any) -> None:
    """Keras 3's export path, with a serving signature of a named input and output."""
    import keras
    import tensorflow as tf

    from effnet_cli.keras.builder import logits_function

    height, width = model.input.shape[1:3]
    name = artifact.output_name(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec((None, height, width, 3), tf.float32, name=artifact.INPUT_NAME)]
    archive.add_endpoint(
        name="serving_default",
        fn=lambda images: {name: model(images, training=False)},
        input_signature=signature,
    )
    logits = logits_function(model)
    if logits is not None:  # what verification compares, for deployers who want it too
        archive.add_endpoint(
            name="logits", fn=lambda images: {"logits": logits(images)}, input_signature=signature
        )
    archive.write_out(str(path), verbose=False)


def read_savedmodel(path: Path) -> dict[str, Any]:
    loaded = load(path)
    signature = loaded.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    skip = {"Placeholder", "ReadVariableOp", "Identity", "NoOp", "Const"}
    graph_ops = Counter(op.type for op in signature.graph.get_operations() if op.type not in skip)
    for function in signature.graph._functions.values():  # the model body is a nested function
        graph_ops.update(n.op for n in function.definition.node_def if n.op not in skip)
    tensor = artifact.tensor
    return {
        "inputs": [tensor(k, v.shape.as_list(), v.dtype.name) for k, v in inputs.items()],
        "outputs": [tensor(k, v.shape.as_list(), v.dtype.name) for k, v in outputs.items()],
        "ops": dict(graph_ops.most_common()),
        "params": int(sum(math.prod(v.shape) for v in getattr(loaded, "variables", []))),
        "params_counted": "variable elements: the Keras model's weights, as Keras counts them",
        "metadata": {"signatures": ", ".join(loaded.signatures.keys())},
    }


def declared(path: Path) -> Declared:
    """The serving signature's input: a SavedModel holds no effnet metadata."""
    signature = load(path).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    return Declared({}, spec.shape.as_list(), effnet=False)


FORMAT = Format(
    name="savedmodel",
    suffix="_savedmodel",
    read=read_savedmodel,
    write=write_savedmodel,
    folder=True,
    marker="saved_model.pb",
    declared=declared,
)

BACKEND = Backend(
    name="savedmodel",
    summary="TensorFlow SavedModel folder",
    format=FORMAT,
    load=savedmodel_runner,
    devices=("cpu", "gpu"),
    benched=False,
)
