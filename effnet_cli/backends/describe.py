"""`effnet inspect`: what a .keras, .onnx or .tflite file, a SavedModel, an OpenVINO IR or a
weights file holds.

Each backend's reader (its module's `read_*`) returns the same plain document: inputs, outputs,
an op (or layer) histogram, the parameter count, the size and effnet's metadata where present;
here it is typed and framed with the file's path, format and model object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from effnet_cli.backends import artifact, registry
from effnet_cli.backends.record import Backend
from effnet_cli.model.identity import model_identity
from effnet_cli.util import files
from effnet_cli.util.errors import UsageError, runtime_reason


def unreadable(path: Path, backend: Backend, exc: Exception) -> UsageError:
    """A file its own runtime could not load, in one line that says why: what is wrong with
    its structure (an empty file; its format's `check`: a missing .bin, a truncated protobuf, a
    foreign flatbuffer), else the runtime's own reason without its C++ locations."""
    return UsageError(
        f"{path.name} is not a readable {backend.name} file: {_why(path, backend, exc)}"
    )


def _why(path: Path, backend: Backend, exc: Exception) -> str:
    """A file its runtime refused: what is wrong, from its structure where it shows, else
    what the runtime says."""
    if path.is_file() and files.size_bytes(path) == 0:
        return "it is empty (0 bytes)"
    try:
        found = backend.format.check(path)
    except Exception:  # a check is a better explanation, never a second failure
        found = None
    return found or runtime_reason(exc)


def describe(path: Path) -> dict[str, Any]:
    backend = registry.of_path(path)
    try:
        with files.stdout_to_stderr(), files.silenced_stderr():
            document = backend.read(path)
    except UsageError:
        raise
    except Exception as exc:  # a corrupt or foreign file: each library fails in its own way
        raise unreadable(path, backend, exc) from None
    metadata = typed_metadata(document.pop("metadata"))
    return {
        "path": str(path),
        "format": backend.name,
        "bytes": files.size_bytes(path),
        "model": model_from_metadata(metadata),
        **document,
        "metadata": metadata,
    }


def typed_metadata(raw: dict[str, Any]) -> dict[str, Any]:
    """Metadata as JSON values: formats store strings ('true', '1.2', '224x224'); a script
    should not have to parse them again."""
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        typed[key] = _typed(key, value) if isinstance(value, str) else value
    return typed


def _typed(key: str, text: str) -> Any:
    if key == "resolution" and "x" in text:
        height, _, width = text.partition("x")
        if height.isdigit() and width.isdigit():
            return [int(height), int(width)]
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def model_from_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The `model` object of every command's JSON, from what the file says about itself; None
    where it says nothing (a file effnet did not write, or a format without metadata)."""

    resolution = metadata.get("resolution")
    classes = metadata.get("num_classes")
    return model_identity(
        str(metadata["model"]) if "model" in metadata else None,
        metadata.get("family"),
        resolution if isinstance(resolution, list) else None,
        classes if isinstance(classes, int) else None,
        metadata.get("preprocessing_inside") if "preprocessing_inside" in metadata else None,
    )


def weights_fits(params: int) -> list[dict[str, Any]]:
    """Every variant and head whose Keras count is `params`: the classifier's size follows from
    the head's input width, so any class count is found, not only ImageNet's 1000. From the
    architecture alone (no TensorFlow): params do not depend on the input resolution."""
    from effnet_cli.model import costs as C
    from effnet_cli.model import spec as S

    fits = []
    for name in S.model_names():
        family = S.get_spec(name).family
        for preprocessing in (True, False) if family.preprocessing != "none" else (False,):
            bare = C.count(S.get_spec(name, include_top=False, preprocessing=preprocessing)).params
            if params == bare:
                fits.append(
                    {
                        "model": name,
                        "include_top": False,
                        "classes": None,
                        "preprocessing": preprocessing,
                    }
                )
                continue
            topped = S.get_spec(name, num_classes=1000, preprocessing=preprocessing)
            per_class = (C.count(topped).params - bare) // 1000  # head width + 1 (the bias)
            classes, rest = divmod(params - bare, per_class)
            if rest == 0 and classes >= 1:
                fits.append(
                    {
                        "model": name,
                        "include_top": True,
                        "classes": classes,
                        "preprocessing": preprocessing,
                    }
                )
    return fits


def describe_weights(path: Path) -> dict[str, Any]:
    """`inspect FILE.weights.h5 | FILE.h5`: which variants and heads the weights fit."""
    from effnet_cli.keras.checkpoints import keras_files as keras_weights

    keras_weights.check_weights_file(path)
    layout = keras_weights.weights_layout(path)
    params = keras_weights.file_weight_elements(path, layout)
    fits = weights_fits(params)
    only = fits[0] if len(fits) == 1 else None
    return {
        "path": str(path),
        "format": "weights",
        "bytes": files.size_bytes(path),
        "model": model_identity(
            f"efficientnet-{only['model']}" if only else None,
            None,
            None,
            only["classes"] if only else None,
            only["preprocessing"] if only else None,
        ),
        "inputs": [],
        "outputs": [],
        "ops": {},
        "params": params,
        "params_counted": "numbers in the file: " + artifact.KERAS_COUNT,
        "metadata": {"layout": layout, "tensors": keras_weights.count_file_tensors(path, layout)},
        "fits": fits,
    }


def artifact_precision(backend: str, path: Path) -> str:
    """The precision converted into an artifact that carries no effnet metadata, read from its
    tensors' types by its format (`Format.precision_of`): int8 when its convolutions read int8
    activations (ONNX: Q/DQ nodes; IR: FakeQuantize), dynamic when only weights are int8, fp16
    when weights are float16."""
    return registry.get(backend).format.precision_of(path)
