"""`effnet export`: write each (backend, precision) artifact from one model and verify it.

One built model serves every format. Each artifact is written (writers.py) to a temporary path
beside its target, loaded by its own runtime (runtimes.py), run on the same inputs as the Keras
model, and only renamed into place when it passes its gate. What a format is, is backends.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli import backends, files, writers
from effnet_cli import spec as S
from effnet_cli.errors import UsageError, WorkError, choices

# Quantized artifacts are judged on agreement, so they are verified on more images than 1 + 3.
AGREEMENT_IMAGES = 32


@dataclass(frozen=True)
class Target:
    backend: str
    precision: str  # converted into the file: fp32, or a --quantize mode
    path: Path


@dataclass
class Verification:
    batches: list[int]
    compared: str  # "logits" (the tensor before a softmax head) or the model's "outputs"
    max_rel_diff: float
    top1_agreement: float
    tolerance: float | None
    min_top1_agreement: float
    passed: bool


@dataclass
class Artifact:
    target: Target
    bytes: int
    seconds: float
    verification: Verification | None
    kept: bool


def parse_formats(values: list[str]) -> list[str]:
    """`--format onnx,tflite --format keras` -> ['onnx', 'tflite', 'keras'] (validated)."""
    valid = backends.formats()
    formats: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if part not in valid:
                raise UsageError(f"unknown --format {part!r}; valid: {choices(valid)}")
            if part not in formats:
                formats.append(part)
    if not formats:
        raise UsageError(f"give at least one --format: {choices(valid)}")
    return formats


def plan_targets(name: str, formats: list[str], directory: Path, precision: str) -> list[Target]:
    """File names say the model, precision and format: efficientnet-b0-fp16.tflite."""
    return [
        Target(fmt, precision, directory / backends.get(fmt).artifact_name(name, precision))
        for fmt in formats
    ]


def gate(target: Target) -> backends.Gate:
    way = backends.get(target.backend).precisions[target.precision]
    assert way.gate is not None, "file precisions carry a gate"  # checked by check_request
    return way.gate


# ---------------------------------------------------------------------------- verification


def compare(outputs: Any, reference: Any) -> tuple[float, float]:
    """(max |diff| relative to the largest |reference|, top-1 agreement)."""
    import numpy as np

    scale = float(np.max(np.abs(reference))) or 1.0
    rel = float(np.max(np.abs(outputs - reference))) / scale
    flat_out, flat_ref = outputs.reshape(len(outputs), -1), reference.reshape(len(reference), -1)
    agreement = float(np.mean(np.argmax(flat_out, axis=1) == np.argmax(flat_ref, axis=1)))
    return rel, agreement


def verify(
    target: Target, path: Path, inputs: dict[int, Any], expected: dict[int, Any], compared: str
) -> Verification:
    """Run the artifact with its own runtime on the inputs the Keras model already answered.

    `expected` holds the Keras model's logits when it ends in a softmax (`compared`): a softmax
    saturates on random-weight models, and probabilities of 0 and 1 hide any difference.
    """
    runner = backends.load_runner(target.backend, path, precision=target.precision)
    if runner.compared != compared:
        raise WorkError(f"cannot read the {compared} of {path.name} to verify it")
    batches = [b for b in inputs if runner.fixed_batch in (None, b)]
    worst, agreeing = 0.0, 0.0
    for batch in batches:
        rel, agreement = compare(runner.comparable(inputs[batch]), expected[batch])
        worst = max(worst, rel)
        agreeing += agreement * batch
    agreement = agreeing / sum(batches)
    limits = gate(target)
    passed = (limits.max_rel_diff is None or worst <= limits.max_rel_diff) and (
        agreement >= limits.min_top1_agreement
    )
    return Verification(batches, compared, worst, agreement, limits.max_rel_diff,
                        limits.min_top1_agreement, passed)  # fmt: skip


def load_calibration(source: Path, resolution: int, limit: int = 200) -> Any:
    """Calibration images for int8: a .npy of (N, H, W, 3) pixels in [0, 255] or an image folder."""
    import numpy as np

    if source.suffix == ".npy":
        check_calibration_array(source, resolution)
        return np.load(source, allow_pickle=False)[:limit].astype("float32")
    if not source.is_dir():
        raise UsageError(f"--calibration takes a folder of images or a .npy file, not {source}")
    import tensorflow as tf

    paths = sorted(
        p for p in source.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}
    )
    if not paths:
        raise UsageError(f"{source} holds no .jpg, .jpeg, .png or .bmp images")
    images = []
    for path in paths[:limit]:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
        images.append(tf.image.resize(tf.cast(image, tf.float32), (resolution, resolution)).numpy())
    return np.stack(images)


def check_calibration_array(source: Path, resolution: int | None) -> None:
    """A .npy's shape, read from its header (no data loaded): (N, H, W, 3) at the model's size."""
    import numpy as np

    try:
        shape = np.load(source, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise UsageError(f"{source} is not a readable .npy array ({exc})") from None
    size = resolution or (shape[1] if len(shape) == 4 else 0)
    if len(shape) != 4 or shape[1:] != (size, size, 3) or shape[0] < 1:
        wanted = f"(N, {resolution}, {resolution}, 3)" if resolution else "(N, H, W, 3)"
        raise UsageError(
            f"{source.name} holds an array of shape {shape}; calibration needs {wanted}"
        )


@dataclass
class ExportRequest:
    formats: list[str]
    directory: Path
    opset: int = writers.DEFAULT_OPSET
    batch: int | None = None
    quantize: str = "none"
    calibration: Path | None = None
    optimize: bool = True  # onnxslim on the ONNX graph (and the OpenVINO IR made from it)
    verify: bool = True
    keep_failed: bool = False
    force: bool = False
    seed: int = 0


def check_request(request: ExportRequest, name: str, resolution: int | None) -> list[Target]:
    """Every check that needs no TensorFlow, before anything is built or written (`resolution`:
    the model's, where known before loading it)."""
    precision = check_quantize(request)
    if request.calibration is not None:
        if not request.calibration.exists():
            raise UsageError(f"calibration data {str(request.calibration)!r} does not exist")
        if request.calibration.suffix == ".npy":
            check_calibration_array(request.calibration, resolution)
        elif not request.calibration.is_dir():
            raise UsageError(
                f"--calibration takes a folder of images or a .npy file, not {request.calibration}"
            )
    if not 7 <= request.opset <= 21:
        raise UsageError(f"--opset must lie between 7 and 21, not {request.opset}")
    if request.batch is not None and not 1 <= request.batch <= 4096:
        raise UsageError(f"--batch must lie between 1 and 4096, not {request.batch}")
    directory = request.directory
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file; -o takes a directory")
    if not directory.parent.is_dir():
        raise UsageError(f"directory {str(directory.parent)!r} does not exist")
    targets = plan_targets(name, request.formats, directory, precision)
    for target in targets:
        if target.path.exists() and not request.force:
            raise UsageError(f"{target.path} already exists", hint="pass --force to replace it")
    return targets


def check_quantize(request: ExportRequest) -> str:
    """The precision `--quantize` asks every format to convert into its file."""
    modes = backends.quantize_modes()
    if request.quantize not in modes:
        raise UsageError(f"unknown --quantize {request.quantize!r}; valid: {choices(modes)}")
    precision = "fp32" if request.quantize == "none" else request.quantize
    lacking = [f for f in request.formats if precision not in backends.get(f).file_precisions()]
    if lacking:
        offering = [n for n in backends.formats() if precision in backends.get(n).file_precisions()]
        raise UsageError(
            f"--quantize {request.quantize} is not a precision of {choices(lacking)}; "
            f"it applies to {choices(offering)}"
        )
    needs = any(backends.get(f).precisions[precision].calibration for f in request.formats)
    if needs and request.calibration is None:
        raise UsageError(
            f"{precision} quantization needs calibration images to choose its ranges",
            hint="pass --calibration DIR (images) or FILE.npy (N, H, W, 3 pixels in [0, 255])",
        )
    return precision


def export_model(
    model: Any,
    spec: S.ModelSpec | None,
    request: ExportRequest,
    targets: list[Target],
    progress: Callable[[str], None],
) -> list[Artifact]:
    """Write every target from one model; verify each; keep only what verified."""
    from effnet_cli.builder import calibrate_batchnorm, fresh_batchnorm, logits_function

    if request.verify and fresh_batchnorm(model):
        # Parity on fresh statistics compares outputs near zero and proves nothing (DESIGN §1.1).
        progress("random weights: giving BatchNorm real statistics first (one training-mode pass)")
        calibrate_batchnorm(model, seed=request.seed)
    calibration = None
    if any(backends.get(t.backend).precisions[t.precision].calibration for t in targets):
        resolution = model.input.shape[1]
        calibration = load_calibration(request.calibration, resolution)  # type: ignore[arg-type]
    request.directory.mkdir(exist_ok=True)
    meta = writers.metadata(spec, model)
    staged = [files.Staged(target.path) for target in targets]
    try:
        # Convert everything first: tf2onnx needs far more memory in a process that already ran
        # the model forward (B7: 17 GB instead of 9 GB), so the reference runs come after.
        seconds = []
        options = {"opset": request.opset, "batch": request.batch,
                   "calibration": calibration, "optimize": request.optimize}  # fmt: skip
        for target, stage in zip(targets, staged, strict=True):
            progress(f"writing {target.path.name}")
            started = time.perf_counter()
            write = backends.get(target.backend).write
            with files.stdout_to_stderr(), files.silenced_stderr():
                write(model, stage.path, precision=target.precision,  # type: ignore[misc]
                      meta={**meta, "precision": target.precision}, **options)  # fmt: skip
            seconds.append(time.perf_counter() - started)
        sizes = verification_batches(request, targets)
        inputs, expected = reference_outputs(model, request.seed, sizes)
        compared = "logits" if logits_function(model) else "outputs"
        artifacts = []
        for target, stage, took in zip(targets, staged, seconds, strict=True):
            verification = None
            if request.verify:
                progress(f"verifying {target.path.name} with its own runtime ({compared})")
                with files.stdout_to_stderr(), files.silenced_stderr():
                    verification = verify(target, stage.path, inputs, expected, compared)
            artifacts.append(
                Artifact(target, files.size_bytes(stage.path), took, verification, False)
            )
        failed = [a for a in artifacts if a.verification and not a.verification.passed]
        if not failed or request.keep_failed:  # all or nothing, unless asked to keep failures
            for artifact, stage in zip(artifacts, staged, strict=True):
                stage.commit()
                artifact.kept = True
        if failed:
            names = ", ".join(a.target.path.name for a in failed)
            raise ExportFailed(f"verification failed for {names}", artifacts)
        return artifacts
    finally:
        for stage in staged:  # failed or interrupted: nothing half-written stays behind
            stage.discard()


def verification_batches(request: ExportRequest, targets: list[Target]) -> list[int]:
    """Batch sizes to verify at: 1 and 3 (or the fixed batch), plus more images for the
    agreement of quantized artifacts; none without verification."""
    if not request.verify:
        return []
    sizes = [request.batch] if request.batch else [1, 3]
    if not request.batch and any(gate(t).min_top1_agreement for t in targets):
        sizes.append(AGREEMENT_IMAGES)
    return sizes


def reference_outputs(
    model: Any, seed: int, sizes: list[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    """Seeded random images per batch size, and the Keras model's logits (or outputs) on them."""
    import numpy as np

    from effnet_cli.builder import logits_function, run_cheaply

    height, width = model.input.shape[1:3]
    rng = np.random.default_rng(seed + 1)
    function = logits_function(model) or (lambda images: model(images, training=False))
    inputs, expected = {}, {}
    for size in sizes:
        inputs[size] = rng.uniform(0, 255, (size, height, width, 3)).astype("float32")
        expected[size] = run_cheaply(model, function, size)(inputs[size])
    return inputs, expected


class ExportFailed(WorkError):
    def __init__(self, message: str, artifacts: list[Artifact]) -> None:
        super().__init__(message, hint="--keep-failed keeps the files for inspection")
        self.artifacts = artifacts


def run_export(
    spec: S.ModelSpec | None,
    source: Path | None,
    weights: Path | None,
    seed: int | None,
    request: ExportRequest,
    targets: list[Target],
    progress: Callable[[str], None],
) -> list[Artifact]:
    """`effnet export`: build (or load) the model once, then write and verify every target."""
    from effnet_cli import builder

    if request.quantize == "int8" and (spec is None or spec.family.name != "lite"):
        progress(
            "warning: post-training int8 costs EfficientNet-B much of its accuracy (SE and swish "
            "quantize badly); the Lite family (--model lite0..lite4) is built for int8"
        )
    progress(f"loading {source}" if source else f"building {spec.name}")  # type: ignore[union-attr]
    model = builder.load_or_build(spec, source, weights, seed)
    return export_model(model, spec, request, targets, progress)
