"""Classifying images with a model or any artifact: what `predict` and `evaluate` show, and how
`export` feeds the real images it judges each artifact on.

An artifact runs through its own runner (its backend's, the one effnet's verification and bench
use), fed the images as its metadata asks: the resolution it was made for, and pixels in
[0, 255], or normalized here when the preprocessing was left out of the model. ONNX, TFLite and
OpenVINO artifacts never import TensorFlow: their contract is read with their own libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effnet_cli import backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.describe import unreadable
from effnet_cli.backends.keras import keras_runner
from effnet_cli.model import spec as S
from effnet_cli.records.model import ModelIdentity
from effnet_cli.util.drift import agreement_on
from effnet_cli.util.errors import UsageError, WorkError

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Floats, Images

Note = Callable[[str], None]
CHUNK_IMAGES = 16  # images per call: bounded memory at any resolution, batched speed
QUANTIZED = ("int8", "dynamic")  # precisions whose output tensors may be integers


@dataclass(frozen=True)
class Contract:
    """What an artifact takes: square images of `resolution`, pixels normalized by
    `normalization` first (None: [0, 255] as they are), and the name it was written for."""

    resolution: int
    normalization: S.InputNormalization | None
    precision: str = "fp32"
    name: str = ""
    # the head's, where the metadata or the model says it (else `head_classes` runs one image)
    num_classes: int | None = None


@dataclass
class Loaded:
    """A runner with the contract it is fed by, and what it is, for tables."""

    label: str  # the file, or the model built from options
    runner: runtimes.Runner
    contract: Contract


# ------------------------------------------------------------------------------ contracts


def _resolution_text(text: str) -> int | None:
    """'224x224' (effnet's metadata) -> 224; None for a non-square or unreadable one."""
    parts = text.lower().split("x")
    if len(parts) == 2 and parts[0] == parts[1] and parts[0].isdigit():
        return int(parts[0])
    return None


def _outside_normalization(meta: dict[str, str], note: Note) -> S.InputNormalization | None:
    """The normalization a caller applies when the metadata says it is not inside the model."""
    if meta.get("preprocessing_inside", "true") != "false":
        return None
    described = meta.get("preprocessing", "")
    for normalization in S.PREPROCESSING.values():
        if normalization is not None and described == f"none: feed {normalization.expects_without}":
            note(f"note: the model expects {normalization.expects_without}; effnet applies it")
            return normalization
    note(f"note: the model's input is {described or 'caller-normalized'}; fed [0, 255] pixels")
    return None


def _from_metadata(
    meta: dict[str, str], shape: list[Any], note: Note, what: str, effnet: bool | None = None
) -> Contract:
    """A contract from effnet's metadata, or from the input's shape where there is none
    (`effnet`: whether `meta` is effnet's; by default, whether there is any)."""
    resolution = _resolution_text(meta.get("resolution", ""))
    if resolution is None:
        sides = [d for d in shape[1:] if isinstance(d, int) and d > 3]
        if len(sides) != 2 or sides[0] != sides[1]:
            raise UsageError(
                f"{what} records no resolution and its input {shape} is not a fixed square image; "
                "effnet predicts with square NHWC or NCHW inputs"
            )
        resolution = sides[0]
    if resolution > S.MAX_RESOLUTION:  # each image would be prepared at that size: gigabytes
        raise UsageError(
            f"{what} asks for {resolution:,}×{resolution:,} images, past the "
            f"{S.MAX_RESOLUTION:,} pixels a side effnet feeds"
        )
    if not (bool(meta) if effnet is None else effnet):
        note(
            f"note: {what} carries no effnet metadata; fed {resolution}×{resolution} "
            "pixels in [0, 255] (effnet's default contract)"
        )
    classes = meta.get("num_classes", "")
    return Contract(
        resolution,
        _outside_normalization(meta, note),
        meta.get("precision", "fp32"),
        meta.get("model", ""),
        int(classes) if classes.isdigit() else None,
    )


def load_outputs(
    backend: backends.Backend, path: Path, note: Note, threads: int | None
) -> tuple[runtimes.Runner, Contract]:
    """The backend's loader for outputs alone (ONNX: no `onnx` package, 0.4 s to import), and
    the contract from the metadata it read; only a file without effnet's resolution is read
    again for its input's shape."""
    assert backend.load_outputs is not None  # the caller's choice
    runner = backend.load_outputs(path, threads)
    if _resolution_text(runner.metadata.get("resolution", "")) is None:
        contract = declared_contract(backend, path, note)
    else:
        contract = _from_metadata(runner.metadata, [], note, path.name)
    return replace(runner, precision=contract.precision), contract


def keras_contract(model: Any, note: Note) -> Contract:
    """A Keras model's size from its input; effnet's models normalize inside (Rescaling, or
    the family's Normalization) unless built with --no-preprocessing."""
    height, width = model.input.shape[1:3]
    if height is None or height != width:
        raise UsageError(
            f"{model.name} takes {height}×{width} inputs; predict needs a fixed square"
        )
    if model.layers[-1].name != "predictions":  # keras.applications' and effnet's classifier
        raise UsageError(
            f"{model.name} ends in {model.layers[-1].name!r}, not a classifier; "
            "predict needs a model with its top"
        )
    inside = any(type(layer).__name__ in ("Rescaling", "Normalization") for layer in model.layers)
    if not inside:
        note(f"note: {model.name} has no preprocessing layer; fed pixels in [0, 255]")
    return Contract(int(height), None, "fp32", model.name, int(model.output.shape[-1]))


def declared_contract(backend: backends.Backend, path: Path, note: Note) -> Contract:
    """The contract an artifact declares, read by its format (`Format.declares`: its metadata
    and first input's shape, with its own library)."""
    declared = backend.format.declares(path)
    return _from_metadata(dict(declared.metadata), declared.shape, note, path.name, declared.effnet)


# ------------------------------------------------------------------------------ loading


def load_artifact(
    path: Path,
    note: Note,
    threads: int | None = None,
    backend_name: str | None = None,
    precision: str | None = None,
) -> Loaded:
    """An artifact effnet writes or reads, run by its own runtime (`backend_name` and
    `precision`: what export knows of a file it staged under a temporary name)."""
    backend = backends.get(backend_name) if backend_name else backends.of_path(path)
    try:
        if backend.runs_model is not None:  # a Keras file: its model, run in memory
            from effnet_cli.keras.archive import load_keras_file

            model = load_keras_file(path)
            return Loaded(str(path), backend.runs_model(model), keras_contract(model, note))
        if backend.load_outputs is not None:
            runner, contract = load_outputs(backend, path, note, threads)
        else:
            contract = declared_contract(backend, path, note)
            runner = backends.load_runner(
                backend.name, path, "cpu", threads, precision or contract.precision
            )
    except (UsageError, WorkError):
        raise
    except Exception as exc:  # a corrupt or foreign file: each library fails in its own way
        raise unreadable(path, backend, exc) from None
    return Loaded(str(path), runner, contract)


def load_built(model: Any, spec: S.ModelSpec) -> Loaded:
    """A model built from options, run as a compiled Keras function."""
    return Loaded(spec.name, keras_runner(model), model_contract(model, spec, _quiet))


def model_contract(model: Any, spec: S.ModelSpec | None, note: Note) -> Contract:
    """How a Keras model in memory is fed: as its spec says (its family's normalization where
    it was built without its preprocessing), or as the model itself shows (keras_contract)."""
    if spec is None:
        return keras_contract(model, note)
    normalization = S.PREPROCESSING[spec.family.preprocessing] if not spec.preprocessing else None
    return Contract(spec.resolution, normalization, "fp32", spec.name, int(model.output.shape[-1]))


# ------------------------------------------------------------------------------ running


def normalize(batch: Images, normalization: S.InputNormalization | None) -> Images:
    """[0, 255] pixels as the model's own preprocessing would have made them."""
    import numpy as np

    if normalization is None:
        return batch
    out = batch * np.float32(normalization.scale) + np.float32(normalization.offset)
    if normalization.mean:
        mean = np.asarray(normalization.mean, dtype=np.float32)
        std = np.sqrt(np.asarray(normalization.variance, dtype=np.float32))
        out = (out - mean) / std
    return out.astype(np.float32)


def softmax(logits: Floats) -> Floats:
    import numpy as np

    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted.astype(np.float64))
    probs: Floats = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


def probabilities(loaded: Loaded, batch: Images) -> Floats:
    """Class probabilities (N, classes): the softmax output, or a softmax of a logits head.

    Runs in chunks of CHUNK_IMAGES, or of the artifact's fixed batch (the last chunk padded).
    """
    import numpy as np

    runner, chunk = loaded.runner, loaded.runner.fixed_batch or CHUNK_IMAGES
    fed = normalize(batch, loaded.contract.normalization)
    # A quantized file's softmax output is itself quantized (TFLite int8: steps of 1/256, so a
    # flat random-weight output reads all zeros and its ranking is noise): its probabilities
    # are the float softmax of its dequantized logits, the tensor export's verification reads.
    call, from_logits = runner.run, False
    if runner.run_logits is not None and runner.precision in QUANTIZED:
        call, from_logits = runner.run_logits, True
    outputs = []
    for start in range(0, len(fed), chunk):
        part = fed[start : start + chunk]
        real = len(part)
        if runner.fixed_batch and real < chunk:
            part = np.concatenate([part, np.repeat(part[-1:], chunk - real, axis=0)])
        outputs.append(np.asarray(call(part))[:real])
    out = np.concatenate(outputs).astype(np.float32)
    if out.ndim != 2:
        raise UsageError(
            f"{loaded.label} outputs {out.shape[1:]} per image, not class scores; "
            "predict needs a classifier head"
        )
    classes = loaded.contract.num_classes
    if classes is not None and out.shape[1] != classes:
        raise UsageError(
            f"{loaded.label} outputs {out.shape[1]} values per image, not its {classes} classes; "
            "predict needs a classifier head"
        )
    if from_logits:
        return softmax(out)
    # run_logits exists where the output is a softmax; where the runner did not look (ONNX in
    # predict), a softmax's output is recognised by its rows: non-negative, summing to 1
    if runner.run_logits is not None or looks_like_probabilities(out):
        return out
    return softmax(out)


def head_classes(item: Loaded) -> int:
    """The classes the head scores: as the metadata says, else from one blank image."""
    import numpy as np

    if item.contract.num_classes is not None:
        return item.contract.num_classes
    size = item.contract.resolution
    return int(probabilities(item, np.zeros((1, size, size, 3), np.float32)).shape[1])


def looks_like_probabilities(out: Floats) -> bool:
    import numpy as np

    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Agreement:
    """How one artifact's probabilities agree with the reference's on the same images."""

    top1_agreement: float
    top_k_overlap: float  # the mean share of the reference's top-k in the other's top-k
    k: int  # 5, or the classes where the head has fewer
    max_abs_diff_prob: float  # the largest |Δ probability| over every image and class


def agreement(reference: Floats, other: Floats, k: int = 5) -> Agreement:
    """How `other`'s probabilities agree with `reference`'s on the same images: top-1
    agreement and the mean share of the reference's top-k in the other's top-k (as export
    judges files: drift.agreement_on), and the largest |Δ probability| over every image and
    class."""
    import numpy as np

    ranking = agreement_on(other, reference, k)
    return Agreement(
        ranking["top1_agreement"],
        ranking["top_k_overlap"],
        min(k, reference.shape[1]),
        float(np.max(np.abs(reference - other))),
    )


def built(spec: S.ModelSpec, weights: Path | None, seed: int | None) -> Loaded:
    """The model built from options. Random weights get export's BatchNorm calibration, so that
    `--seed N` here and the artifacts `export --seed N` writes hold the same model."""
    from effnet_cli.keras import archive
    from effnet_cli.keras import calibration as keras_calibration

    model = archive.load_or_build(spec, None, weights, seed)
    if weights is None:
        keras_calibration.calibrate_batchnorm(model, seed=seed if seed is not None else 0)
    return load_built(model, spec)


def identity(item: Loaded, spec: S.ModelSpec | None, classes: int) -> ModelIdentity:
    """The model object: the spec's, or what the artifact says about itself (the contract it
    was fed by where it is silent)."""
    from effnet_cli.backends import describe

    size = item.contract.resolution
    if spec is not None:
        return ModelIdentity(
            name=spec.name,
            family=spec.family.name,
            resolution=(size, size),
            classes=classes,
            preprocessing=spec.preprocessing,
        )
    said = describe.model_from_metadata(describe.typed_metadata(item.runner.metadata))
    return ModelIdentity(
        name=said["name"] or item.contract.name or item.label,
        family=said["family"],
        resolution=(size, size),
        classes=classes,
        preprocessing=said["preprocessing"],
    )
