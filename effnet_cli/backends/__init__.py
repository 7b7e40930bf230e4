"""One frozen record per backend: everything export, bench, inspect, doctor and the CLI know.

A backend is a file format with the runtime that runs it: its artifact's name, the writer that
makes it (writers.py), the loader that runs it (runtimes.py), the reader behind `inspect`
(describe.py), the devices and precisions it offers and *how* each precision is obtained —
converted into the file, a hint to the runtime over the fp32 file, or a Keras dtype policy —
with the gate its verification must pass, and the packages it needs. An artifact is a
(backend, precision) pair. Adding a backend is one `Backend` record and its functions,
registered with `register`; nothing else in effnet names backends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from effnet_cli.backends import describe, runtimes, writers
from effnet_cli.util.errors import UsageError, choices

How = Literal["file", "hint", "policy"]


@dataclass(frozen=True)
class Gate:
    """What a verified artifact must reach (README "Verification")."""

    max_rel_diff: float | None  # of max |Δ logits| / max |logit|; None: reported, not gated
    min_top1_agreement: float  # with the Keras model's top-1; 0: reported, not gated


# fp32 runtimes agree to a few 1e-6 on calibrated models, B0 to B7 (benchmarks/drift.py); fp16
# weights to ~4e-3 at B0 224 and up to ~2e-2 on small random-weight models (seen at 96 px).
# Integer weights move logits far, so what must survive is the top-1 class: a quantized artifact
# passes only when it agrees with Keras on at least 90 % of the verification images.
FP32_GATE = Gate(1e-4, 0.0)
FP16_GATE = Gate(5e-2, 0.0)
QUANTIZED_GATE = Gate(None, 0.9)


@dataclass(frozen=True)
class Precision:
    how: How  # converted into the "file", a runtime "hint" over the fp32 file, a dtype "policy"
    gate: Gate | None = None  # verification of a file precision; hints and policies are benched
    calibration: bool = False  # conversion needs calibration images


FP32 = Precision("file", FP32_GATE)


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str  # what it is, for help and doctor
    suffix: str  # the artifact's ending: ".onnx", or "_openvino" for a folder
    load: Callable[..., runtimes.Runner]  # (path, device, threads, precision) -> Runner
    read: Callable[[Path], dict[str, Any]]  # `inspect`'s document
    write: Callable[..., None] | None = None  # (model, path, **options); None: not exported
    precisions: Mapping[str, Precision] = field(default_factory=lambda: {"fp32": FP32})
    devices: tuple[str, ...] = ("cpu",)
    packages: tuple[str, ...] = ()  # distributions it needs beyond TensorFlow and Keras
    benched: bool = True  # a `bench --runtime`
    folder: bool = False  # the artifact is a folder
    marker: str = ""  # a file whose presence makes a folder this backend's ("saved_model.pb")
    # Input layouts its writer makes (`export --nchw`) and its runner feeds from NHWC batches.
    layouts: tuple[str, ...] = ("NHWC",)
    # Its writer takes a model on a (None, None, 3) input and its runner any height and width
    # (`export --dynamic-size`).
    dynamic_size: bool = False

    def artifact_name(self, model_name: str, precision: str) -> str:
        """efficientnet-b0.onnx, efficientnet-b0-int8.tflite, efficientnet-b0_openvino."""
        tag = "" if precision == "fp32" or self.precisions[precision].how != "file" else precision
        return f"{model_name}{'-' + tag if tag else ''}{self.suffix}"

    def file_precisions(self) -> tuple[str, ...]:
        return tuple(p for p, way in self.precisions.items() if way.how == "file")

    def recognises(self, path: Path) -> bool:
        if path.is_dir():
            return self.folder and bool(self.marker) and any(path.glob(self.marker))
        return path.name.lower().endswith(self.suffix) or (
            self.folder and bool(self.marker) and path.match(self.marker)
        )


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


register(Backend(
    name="keras", summary="Keras 3 .keras file (TensorFlow)", suffix=".keras",
    load=runtimes.keras_file_runner, read=describe.read_keras, write=writers.write_keras,
    precisions={"fp32": FP32, "bf16": Precision("policy")}, devices=("cpu", "gpu"),
))  # fmt: skip
register(Backend(
    name="savedmodel", summary="TensorFlow SavedModel folder", suffix="_savedmodel",
    load=runtimes.savedmodel_runner, read=describe.read_savedmodel,
    write=writers.write_savedmodel, devices=("cpu", "gpu"), benched=False, folder=True,
    marker="saved_model.pb",
))  # fmt: skip
register(Backend(
    name="onnx", summary="ONNX through tf2onnx and onnxslim, run by onnxruntime", suffix=".onnx",
    load=runtimes.onnx_runner, read=describe.read_onnx, write=writers.write_onnx,
    devices=("cpu", "gpu"), packages=("tf2onnx", "onnx", "onnxslim", "onnxruntime"),
    layouts=("NHWC", "NCHW"), dynamic_size=True,
    precisions={
        "fp32": FP32,
        "fp16": Precision("file", FP16_GATE),  # for GPU execution providers (README)
        "int8": Precision("file", QUANTIZED_GATE, calibration=True),
    },
))  # fmt: skip
register(Backend(
    name="tflite", summary="TFLite through the TFLite converter, run by LiteRT (XNNPACK)",
    suffix=".tflite", load=runtimes.tflite_runner, read=describe.read_tflite,
    write=writers.write_tflite, packages=("ai-edge-litert",),
    precisions={
        "fp32": FP32,
        "fp16": Precision("file", FP16_GATE),
        "dynamic": Precision("file", QUANTIZED_GATE),
        "int8": Precision("file", QUANTIZED_GATE, calibration=True),
    },
))  # fmt: skip
# NHWC only, although the IR is made from the ONNX export: OpenVINO sets a deployment's layout
# at load time (its PrePostProcessor converts NHWC or NCHW tensors in the compiled model), so an
# NCHW IR would add nothing but a second input path for its runner to feed and verify.
register(Backend(
    name="openvino", summary="OpenVINO IR (from the ONNX export; int8 by NNCF), run by OpenVINO",
    suffix="_openvino", load=runtimes.openvino_runner, read=describe.read_openvino,
    write=writers.write_openvino, folder=True, marker="*.xml",
    packages=("openvino", "nncf"),
    precisions={
        "fp32": FP32,
        # hints to the runtime over the fp32 IR: no file of their own (README "effnet bench")
        "bf16": Precision("hint"),
        "fp16": Precision("hint"),
        # NNCF's post-training quantization written into an IR of its own
        "int8": Precision("file", QUANTIZED_GATE, calibration=True),
    },
))  # fmt: skip


def get(name: str, role: str = "--runtime") -> Backend:
    if name not in BACKENDS:
        raise UsageError(f"unknown {role} {name!r}; valid: {choices(BACKENDS)}")
    return BACKENDS[name]


def formats() -> tuple[str, ...]:
    """Backends that `export` writes."""
    return tuple(name for name, b in BACKENDS.items() if b.write is not None)


def bench_runtimes() -> tuple[str, ...]:
    return tuple(name for name, b in BACKENDS.items() if b.benched)


def precisions() -> tuple[str, ...]:
    """Every precision some backend offers, fp32 first."""
    seen: dict[str, None] = {}
    for backend in BACKENDS.values():
        seen.update(dict.fromkeys(backend.precisions))
    return tuple(seen)


def quantize_modes() -> tuple[str, ...]:
    """`export --quantize` values: none, and each precision some backend converts into a file."""
    modes = {p for b in BACKENDS.values() for p in b.file_precisions() if p != "fp32"}
    return ("none", *sorted(modes))


def with_layout(layout: str) -> tuple[str, ...]:
    """Backends that `export` writes with inputs in `layout` ("NCHW": `--nchw`)."""
    return tuple(name for name in formats() if layout in BACKENDS[name].layouts)


def with_dynamic_size() -> tuple[str, ...]:
    """Backends that `export --dynamic-size` writes."""
    return tuple(name for name in formats() if BACKENDS[name].dynamic_size)


def packages() -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for b in BACKENDS.values() for p in b.packages))


def of_path(path: Path) -> Backend:
    """The backend whose artifact `path` is (for `inspect`)."""
    if not path.exists():
        raise UsageError(f"{str(path)!r} does not exist")
    for backend in BACKENDS.values():
        if backend.recognises(path):
            return backend
    files = [b.suffix for b in BACKENDS.values() if not b.folder]
    folders = [f"{b.name} ({b.marker})" for b in BACKENDS.values() if b.folder]
    if path.is_dir():
        raise UsageError(f"{path} is a folder without {choices(folders)}: not a model folder")
    raise UsageError(
        f"cannot inspect {path.name!r}; valid: a {choices(files)} file, or a folder of "
        f"{choices(folders)}"
    )


def load_runner(name: str, path: Path, device: str = "cpu", threads: int | None = None,
                precision: str = "fp32") -> runtimes.Runner:  # fmt: skip
    """Load an artifact with its own runtime, at `precision` (the file's, or a hint or policy)."""
    backend = get(name)
    if device not in backend.devices:
        raise UsageError(
            f"effnet runs {name} on the {choices(backend.devices)} here; use --device cpu"
        )
    if precision not in backend.precisions:
        raise runtimes.PrecisionUnavailable(
            f"{name} offers {choices(backend.precisions)}, not {precision}"
        )
    return backend.load(path, device, threads, precision)
