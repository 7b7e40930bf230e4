"""Keras: the `.keras` file, and TensorFlow running a Keras model (a built one, or the file's).

Its runner is also what bench and predict run a model built in memory with, and what every
artifact's verification compares against.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import artifact
from effnet_cli.backends.record import FP32, Backend, Format, Precision
from effnet_cli.backends.runtimes import (
    PrecisionUnavailable,
    Runner,
    Streams,
    threaded_drive,
    threads_or_default,
)

if TYPE_CHECKING:
    from effnet_cli.backends.runtimes import Run
    from effnet_cli.util.arrays import Floats, Images


def gpus_visible() -> list[str]:
    """GPU names TensorFlow can see (empty on a CPU-only machine)."""
    from effnet_cli.keras.builder import import_keras

    import_keras()
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def tensorflow_threads() -> int:
    """TensorFlow's intra-op pool: sized from TF_NUM_INTRAOP_THREADS when it loaded
    (bench.configure_threads sets it), else one thread per core."""
    return int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or threads_or_default(None)


def tf_device(device: str) -> str:
    """TensorFlow's name of the device effnet calls "cpu" or "gpu"."""
    return "/GPU:0" if device == "gpu" else "/CPU:0"


def keras_runner(model: Any, device: str = "cpu", xla: bool = False) -> Runner:
    """A compiled `tf.function` around `model(x, training=False)` (never `predict` in a loop)."""
    import tensorflow as tf

    from effnet_cli.keras.builder import logits_function, run_cheaply

    target = tf_device(device)

    # One trace per batch size, with its static shape: a relaxed (None, ...) signature costs
    # about 7 % on CPU (measured in benchmarks/run.py).
    def compiled(function: Callable[[Any], Any]) -> Run:  # a model call on tf tensors
        infer = tf.function(function, jit_compile=xla)

        def run(images: Images) -> Floats:
            with tf.device(target):
                answers: Floats = infer(tf.constant(images)).numpy()
            return answers

        return run

    # References, drift and verification call once per input: eagerly where the activations
    # are small, a call costs a fraction of a trace (B0 at 64 px, 4 images: 0.2 CPU-s, not 1).
    def once(function: Callable[[Any], Any]) -> Run:
        def run(images: Images) -> Floats:
            with tf.device(target):
                answers: Floats = run_cheaply(model, function, len(images))(images)
            return answers

        return run

    logits = logits_function(model)
    provider = "TensorFlow " + ("XLA " if xla else "") + device.upper()

    def call(images: Any) -> Any:  # a model call on tf tensors
        return model(images, training=False)

    run = compiled(call)

    def streams(n: int | None) -> Streams:
        """Keras' own parallelism: n callers share one traced function and TensorFlow's pool
        (its size is fixed when TensorFlow loads, so the budget cannot be split)."""
        count = n or 2
        pool = tensorflow_threads()
        return Streams(
            count,
            f"{count} callers of one tf.function, a shared pool of {pool} threads",
            threaded_drive([run] * count),
            pool,
        )

    return Runner(
        "keras",
        device,
        provider,
        "fp32",
        run,
        run_logits=compiled(logits) if logits else None,
        run_once=None if xla else once(logits or call),  # XLA's drift is its compiled one's
        threads=tensorflow_threads(),
        streams=streams,
        settings=f"tf.function{' (XLA)' if xla else ''}, pool of {tensorflow_threads()} threads",
    )


def keras_file_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    """A `.keras` file, loaded in safe mode; bf16 (a dtype policy) needs a model built here."""
    from effnet_cli.keras.archive import load_keras_file

    if precision != "fp32":
        raise PrecisionUnavailable(
            "Keras runs bf16 through the mixed_bfloat16 policy on a model built from options, "
            "not on a loaded file"
        )
    return keras_runner(load_keras_file(path), device)


def write_keras(model: Any, path: Path, **_: Any) -> None:
    model.save(path)


def read_keras(path: Path) -> dict[str, Any]:
    from effnet_cli.keras.archive import load_keras_file

    model = load_keras_file(path)
    return {
        "inputs": [artifact.tensor(t.name, t.shape, t.dtype) for t in model.inputs],
        "outputs": [artifact.tensor(t.name, t.shape, t.dtype) for t in model.outputs],
        "ops": dict(Counter(type(layer).__name__ for layer in model.layers).most_common()),
        "params": int(model.count_params()),
        "params_counted": artifact.KERAS_COUNT,
        "metadata": {"model": model.name},
    }


FORMAT = Format(name="keras", suffix=".keras", read=read_keras, write=write_keras)

BACKEND = Backend(
    name="keras",
    summary="Keras 3 .keras file (TensorFlow)",
    format=FORMAT,
    load=keras_file_runner,
    devices=("cpu", "gpu"),
    runs_model=keras_runner,
    precisions={
        "fp32": FP32,
        "bf16": Precision("policy", applied="build under the Keras dtype policy mixed_bfloat16"),
    },
)
