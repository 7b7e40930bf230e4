"""What each row runs: the artifacts converted before any forward pass, the runner loaded for a
runtime × precision, and the seeded inputs with the fp32 Keras model's answers to them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from effnet_cli import backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.keras import keras_runner
from effnet_cli.model import spec as S
from effnet_cli.util import capabilities
from effnet_cli.util.errors import choices
from effnet_cli.workflows.bench.request import BenchRequest

Artifacts = dict[tuple[str, str], tuple[Path, float]]  # (runtime, precision) -> (file, seconds)


def artifact_key(runtime: str, precision: str) -> tuple[str, str]:
    """The artifact a (runtime, precision) row runs: a file precision has its own file; a
    runtime hint or a dtype policy runs the fp32 file."""
    way = backends.get(runtime).precisions.get(precision)
    return (runtime, precision if way is not None and way.how == "file" else "fp32")


def files_needed(request: BenchRequest) -> list[tuple[str, str]]:
    """The (backend, precision) artifacts to convert; Keras runs the model itself."""
    needed: dict[tuple[str, str], None] = {}
    for runtime in request.runtimes:
        backend = backends.get(runtime)
        for precision in request.precisions:
            if backend.runs_model is None and precision in backend.precisions:
                needed[artifact_key(runtime, precision)] = None
    return list(needed)


def convert_all(
    model: Any, request: BenchRequest, scratch: Path, progress: Callable[[str], None]
) -> Artifacts:
    """Write every artifact before any forward pass: tf2onnx needs far more memory in a process
    that already ran the model forward (B7: 17 GB instead of 9.4 GB, measured here). An artifact
    that needs calibration images is calibrated as export calibrates it: on --calibration, else
    on the shipped photos, flipped and cropped (keras.calibration.load_calibration)."""
    from effnet_cli.keras.calibration import load_calibration
    from effnet_cli.util import files

    artifacts = {}
    calibration = None
    with backends.reusing_conversions():
        for runtime, precision in files_needed(request):
            backend = backends.get(runtime)
            if backend.precisions[precision].calibration and calibration is None:
                calibration = load_calibration(request.calibration, model.input.shape[1]).images
            progress(f"converting to {runtime} {precision}")
            path = scratch / backend.artifact_name("model", precision)
            write = backend.write
            if write is None:  # files_needed names only formats that write: a bug if reached
                raise ValueError(f"{runtime} writes no files")
            started = time.perf_counter()
            with files.stdout_to_stderr(), files.silenced_stderr():
                write(
                    model,
                    path,
                    opset=backends.DEFAULT_OPSET,
                    batch=None,
                    meta={},
                    precision=precision,
                    calibration=calibration,
                    optimize=True,  # the writers' defaults, as export has them
                    nchw=False,
                )
            artifacts[(runtime, precision)] = (path, time.perf_counter() - started)
    return artifacts


def reference_batches(model: Any, request: BenchRequest) -> tuple[dict[int, Any], dict[int, Any]]:
    """Seeded images per batch size and the fp32 Keras model's logits on them (its outputs where
    it has no softmax: a saturated softmax would hide the drift, as in export's verification)."""
    import numpy as np

    height, width = model.input.shape[1:3]
    inputs = seeded_inputs(request, (height, width))
    keras = keras_runner(model, request.device)  # tf.functions: less memory than eager
    return inputs, {b: np.asarray(keras.comparable(x)) for b, x in inputs.items()}


def seeded_inputs(request: BenchRequest, size: tuple[int, int]) -> dict[int, Any]:
    """One batch of random pixels per batch size, drawn from --seed."""
    import numpy as np

    rng = np.random.default_rng(request.seed)
    return {b: rng.uniform(0, 255, (b, *size, 3)).astype("float32") for b in request.batches}


def make_runner(
    runtime: str,
    precision: str,
    model: Any,
    spec: S.ModelSpec | None,
    artifacts: Artifacts,
    request: BenchRequest,
) -> runtimes.Runner:
    way = backends.get(runtime).precisions.get(precision)
    if way is None:
        offered = backends.get(runtime).precisions
        raise runtimes.PrecisionUnavailable(f"{runtime} offers {choices(offered)}")
    runs_model = backends.get(runtime).runs_model
    if runs_model is None:
        path = artifacts[artifact_key(runtime, precision)][0]
        return backends.load_runner(runtime, path, request.device, request.threads, precision)
    if precision == "fp32":
        return runs_model(model, request.device, request.xla)
    if spec is None:  # the dtype policy rebuilds the network from its spec
        raise runtimes.PrecisionUnavailable(
            "Keras runs bf16 through the mixed_bfloat16 policy on a model built from options "
            "(not --from)"
        )
    runner = runs_model(mixed_bfloat16_twin(model, spec), request.device, request.xla)
    native = request.device == "gpu" or capabilities.native_on_cpu("bf16")
    return replace(runner, precision="bf16" if native else "bf16-emulated")


def mixed_bfloat16_twin(model: Any, spec: S.ModelSpec) -> Any:
    """The same network and weights under Keras' mixed_bfloat16 policy (bf16 compute)."""
    from effnet_cli.keras.builder import build_model, import_keras

    keras = import_keras()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        twin = build_model(spec)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.finalize_state()  # set_weights alone does not reach the outputs
    return twin


def artifact_resolution(document: dict[str, Any]) -> tuple[int, int] | None:
    """Height and width of an artifact's (NHWC or NCHW) image input, from `inspect`'s document;
    None where they are not fixed."""
    shape = document["inputs"][0]["shape"]
    if len(shape) != 4:
        return None
    height, width = (shape[2], shape[3]) if shape[1] == 3 and shape[3] != 3 else shape[1:3]
    return (height, width) if height and width else None
