"""The writers (SavedModel, ONNX, TFLite, .keras, OpenVINO IR) and the verification of them.

One built model serves every format. Each artifact is written to a temporary path beside its
target, loaded by its own runtime (runtimes.py), run on the same inputs as the Keras model, and
only renamed into place when it matches. TensorFlow and the converters load inside functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli import __version__, files, runtimes
from effnet_cli import spec as S
from effnet_cli.errors import UsageError, WorkError

FORMATS = ("savedmodel", "onnx", "tflite", "keras", "openvino")
QUANTIZE = ("none", "fp16", "dynamic", "int8")
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class Gate:
    """What a verified artifact must reach, per precision (README "Verification")."""

    max_rel_diff: float | None  # of max |Δ logits| / max |logit|; None: reported, not gated
    min_top1_agreement: float  # with the Keras model's top-1; 0: reported, not gated


# fp32 runtimes agree to ~1e-5 on calibrated models (measured: benchmarks/drift.py); fp16 weights
# to ~4e-3 at B0 224 and up to ~2e-2 on small random-weight models (seen at 96 px). Quantized
# integer weights move logits far, so what must survive is the top-1 class: a quantized artifact
# passes only when it agrees with Keras on at least 90 % of the verification images.
GATES = {
    "fp32": Gate(1e-4, 0.0),
    "fp16": Gate(5e-2, 0.0),
    "dynamic": Gate(None, 0.9),
    "int8": Gate(None, 0.9),
}
# Quantized artifacts are judged on agreement, so they are verified on more images than 1 + 3.
AGREEMENT_IMAGES = 32


@dataclass(frozen=True)
class Target:
    fmt: str
    path: Path
    precision: str  # fp32, or the TFLite quantization


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
    formats: list[str] = []
    for value in values:
        for part in (p.strip().lower() for p in value.split(",")):
            if part not in FORMATS:
                raise UsageError(f"unknown --format {part!r}; valid: {', '.join(FORMATS)}")
            if part not in formats:
                formats.append(part)
    if not formats:
        raise UsageError(f"give at least one --format: {', '.join(FORMATS)}")
    return formats


def plan_targets(name: str, formats: list[str], directory: Path, quantize: str) -> list[Target]:
    """File names say the model and format: efficientnet-b0.onnx, efficientnet-b0-fp16.tflite."""
    targets = []
    for fmt in formats:
        if fmt in ("savedmodel", "openvino"):
            targets.append(Target(fmt, directory / f"{name}_{fmt}", "fp32"))
        elif fmt == "tflite":
            suffix = "" if quantize == "none" else f"-{quantize}"
            precision = "fp32" if quantize == "none" else quantize
            targets.append(Target(fmt, directory / f"{name}{suffix}.tflite", precision))
        else:
            targets.append(Target(fmt, directory / f"{name}.{fmt}", "fp32"))
    return targets


def metadata(spec: S.ModelSpec | None, model: Any) -> dict[str, str]:
    """effnet's description of an artifact, written into ONNX metadata_props."""
    height, width = model.input.shape[1:3]
    doc = {
        "effnet_version": __version__,
        "model": model.name,
        "resolution": f"{height}x{width}",
        "input_layout": "NHWC",
        "input_dtype": "float32",
    }
    if spec is not None:
        contract = S.input_contract(spec)
        doc.update(
            family=spec.family.name,
            width=f"{spec.width:g}",
            depth=f"{spec.depth:g}",
            num_classes=str(spec.num_classes),
            classifier_activation=spec.classifier_activation,
            input_range=str(contract["range"]),
            preprocessing_inside=str(contract["preprocessing_inside"]).lower(),
            preprocessing=str(contract["preprocessing"]),
        )
    return doc


def output_name(model: Any) -> str:
    last = model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if last.name == "predictions":
        return "probabilities" if activation == "softmax" else "logits"
    return "features"


# ---------------------------------------------------------------------------- writers


def write_keras(model: Any, path: Path, **_: Any) -> None:
    model.save(path)


def write_savedmodel(model: Any, path: Path, **_: Any) -> None:
    """Keras 3's export path, with a serving signature of a named input and output."""
    import keras
    import tensorflow as tf

    from effnet_cli.builder import logits_function

    height, width = model.input.shape[1:3]
    name = output_name(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec((None, height, width, 3), tf.float32, name="input")]
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


def write_onnx(model: Any, path: Path, *, opset: int, batch: int | None,
               meta: dict[str, str], **_: Any) -> None:  # fmt: skip
    """tf2onnx with an explicit input signature (Keras 3 needs one), then effnet's metadata."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    height, width = model.input.shape[1:3]
    signature = (tf.TensorSpec((batch, height, width, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    proto.graph.output[0].name = _rename_output(proto, output_name(model))
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def _rename_output(proto: Any, name: str) -> str:
    """Give the graph output a meaningful name, rewiring the node that produces it."""
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
    return name


def write_tflite(model: Any, path: Path, *, quantize: str, calibration: Any = None,
                 **_: Any) -> None:  # fmt: skip
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":

        def representative() -> Any:
            for image in calibration:
                yield [image[None].astype("float32")]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())


def write_openvino(model: Any, path: Path, *, opset: int, batch: int | None,
                   meta: dict[str, str], **_: Any) -> None:  # fmt: skip
    """OpenVINO IR (model.xml + model.bin) through the ONNX export, with fp32 weights.

    `ov.save_model` would compress the weights to fp16 by default; effnet writes what it
    verified, so it turns that off.
    """
    import openvino as ov

    path.mkdir()
    onnx_path = path / "model.onnx"
    write_onnx(model, onnx_path, opset=opset, batch=batch, meta=meta)
    converted = ov.convert_model(str(onnx_path))
    for key, value in meta.items():
        converted.set_rt_info(value, ["effnet", key])
    ov.save_model(converted, str(path / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()


WRITERS: dict[str, Callable[..., None]] = {
    "keras": write_keras,
    "savedmodel": write_savedmodel,
    "onnx": write_onnx,
    "tflite": write_tflite,
    "openvino": write_openvino,
}


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
    runner = runtimes.load_runner(target.fmt, path, precision=target.precision)
    if runner.compared != compared:
        raise WorkError(f"cannot read the {compared} of {path.name} to verify it")
    batches = [b for b in inputs if runner.fixed_batch in (None, b)]
    worst, agreeing = 0.0, 0.0
    for batch in batches:
        rel, agreement = compare(runner.comparable(inputs[batch]), expected[batch])
        worst = max(worst, rel)
        agreeing += agreement * batch
    agreement = agreeing / sum(batches)
    gate = GATES[target.precision]
    passed = (gate.max_rel_diff is None or worst <= gate.max_rel_diff) and (
        agreement >= gate.min_top1_agreement
    )
    return Verification(batches, compared, worst, agreement, gate.max_rel_diff,
                        gate.min_top1_agreement, passed)  # fmt: skip


def load_calibration(source: Path, resolution: int, limit: int = 200) -> Any:
    """Calibration images for int8: a .npy of (N, H, W, 3) pixels in [0, 255] or an image folder."""
    import numpy as np

    if source.suffix == ".npy":
        try:
            images = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{source} is not a readable .npy array ({exc})") from None
        if images.ndim != 4 or images.shape[1:] != (resolution, resolution, 3):
            raise UsageError(
                f"{source.name} holds an array of shape {images.shape}; "
                f"int8 calibration needs (N, {resolution}, {resolution}, 3)"
            )
        return images[:limit].astype("float32")
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


@dataclass
class ExportRequest:
    formats: list[str]
    directory: Path
    opset: int = DEFAULT_OPSET
    batch: int | None = None
    quantize: str = "none"
    calibration: Path | None = None
    verify: bool = True
    keep_failed: bool = False
    force: bool = False
    seed: int = 0


def check_request(request: ExportRequest, name: str) -> list[Target]:
    """Every check that needs no TensorFlow, before anything is built or written."""
    if request.quantize not in QUANTIZE:
        raise UsageError(f"unknown --quantize {request.quantize!r}; valid: {', '.join(QUANTIZE)}")
    if request.quantize != "none" and "tflite" not in request.formats:
        raise UsageError("--quantize applies to the tflite format; add --format tflite")
    if request.quantize == "int8" and request.calibration is None:
        raise UsageError(
            "int8 quantization needs calibration images to choose its ranges",
            hint="pass --calibration DIR (images) or FILE.npy (N, H, W, 3 pixels in [0, 255])",
        )
    if request.calibration is not None and not request.calibration.exists():
        raise UsageError(f"calibration data {str(request.calibration)!r} does not exist")
    if not 7 <= request.opset <= 21:
        raise UsageError(f"--opset must lie between 7 and 21, not {request.opset}")
    if request.batch is not None and not 1 <= request.batch <= 4096:
        raise UsageError(f"--batch must lie between 1 and 4096, not {request.batch}")
    directory = request.directory
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file; -o takes a directory")
    if not directory.parent.is_dir():
        raise UsageError(f"directory {str(directory.parent)!r} does not exist")
    targets = plan_targets(name, request.formats, directory, request.quantize)
    for target in targets:
        if target.path.exists() and not request.force:
            raise UsageError(f"{target.path} already exists", hint="pass --force to replace it")
    return targets


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
    if request.quantize == "int8":
        resolution = model.input.shape[1]
        calibration = load_calibration(request.calibration, resolution)  # type: ignore[arg-type]
    request.directory.mkdir(exist_ok=True)
    meta = metadata(spec, model)
    staged = [files.Staged(target.path) for target in targets]
    try:
        # Convert everything first: tf2onnx needs far more memory in a process that already ran
        # the model forward (B7: 17 GB instead of 9 GB), so the reference runs come after.
        seconds = []
        options = {"opset": request.opset, "batch": request.batch, "meta": meta,
                   "quantize": request.quantize, "calibration": calibration}  # fmt: skip
        for target, stage in zip(targets, staged, strict=True):
            progress(f"writing {target.path.name}")
            started = time.perf_counter()
            with files.stdout_to_stderr(), files.silenced_stderr():
                WRITERS[target.fmt](model, stage.path, **options)
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
    if not request.batch and any(GATES[t.precision].min_top1_agreement for t in targets):
        sizes.append(AGREEMENT_IMAGES)
    return sizes


def reference_outputs(
    model: Any, seed: int, sizes: list[int]
) -> tuple[dict[int, Any], dict[int, Any]]:
    """Seeded random images per batch size, and the Keras model's logits (or outputs) on them."""
    import numpy as np

    height, width = model.input.shape[1:3]
    rng = np.random.default_rng(seed + 1)
    keras = runtimes.keras_runner(model)  # tf.functions: far less memory than eager calls
    inputs, expected = {}, {}
    for size in sizes:
        inputs[size] = rng.uniform(0, 255, (size, height, width, 3)).astype("float32")
        expected[size] = np.asarray(keras.comparable(inputs[size]))
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
