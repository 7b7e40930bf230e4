"""The records a backend is made of: a `Format` (the artifact: its name, writer, reader, input
contract) and a `Backend` (a runtime over a format: its loader, devices, precisions, packages).

A format's own runtime is registered under the format's name ("onnx": onnxruntime over .onnx),
and that pairing is what `export -f` writes. A runtime over another's format (Keras on JAX or
torch over `.keras`) is one more `Backend` whose `format` is that format: it reads and names
artifacts as the format does, and only its loader is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from effnet_cli.backends.runtimes import Runner
from effnet_cli.util.drift import Ranking, agreement_on

if TYPE_CHECKING:
    from typing import Unpack

    from effnet_cli.util.arrays import Floats, Images

How = Literal["file", "hint", "policy"]


@dataclass(frozen=True)
class Gate:
    """What a verified artifact must reach (docs/export.md): its drift from Keras on seeded
    random images, and, for a trained model, its agreement with the float Keras model on real
    images (a random-weight model has no accuracy to keep: those are reported, not judged)."""

    max_rel_diff: float | None  # of max |Δ logits| / max |logit| on noise; None: not gated
    min_top1_agreement: float = 0.0  # on real images, with Keras's top-1; 0: not gated
    min_top5_overlap: float = 0.0  # the mean share of Keras's top-5 in the file's top-5
    min_sqnr_db: float | None = None  # 10 log10(Σ logit² / Σ Δ logit²) on real images

    @property
    def judges_accuracy(self) -> bool:
        limits = (self.min_top1_agreement, self.min_top5_overlap, self.min_sqnr_db)
        return any(limit is not None and limit > 0 for limit in limits)

    def reached(self, top1: float, top5: float, sqnr_db: float | None) -> bool:
        """Whether agreement on real images reaches the gate (`sqnr_db` None: equal logits)."""
        return (
            top1 >= self.min_top1_agreement
            and top5 >= self.min_top5_overlap
            and (self.min_sqnr_db is None or sqnr_db is None or sqnr_db >= self.min_sqnr_db)
        )


# fp32 runtimes agree to a few 1e-6 on calibrated models, B0 to B7 (benchmarks/drift.py); fp16
# weights to ~4e-3 at B0 224 and up to ~2e-2 on small random-weight models (seen at 96 px).
# Integer weights move logits far, so noise drift says nothing of them; what must survive is
# the float model's ranking on real images. The accuracy gate of fp16, dynamic and int8 files,
# on the 8 shipped photos (docs/export.md): top-1 kept on at least 60 % (5 of 8: three photos
# are near-ties, cat 0.39 vs 0.34, where any int8 file may flip), 75 % of the top-5 kept, and
# the logits' SQNR above 6 dB. Measured on the real Lite0 (all three int8 runtimes):
# calibrated on the shipped photos 75-88 % / 90-95 % / 11-16 dB; on random noise 0-38 % /
# 15-90 % / -2-12 dB; on one grey image 0 % / 0 % / 0 dB.
ACCURACY = {"min_top1_agreement": 0.6, "min_top5_overlap": 0.75, "min_sqnr_db": 6.0}
FP32_GATE = Gate(1e-4)
FP16_GATE = Gate(5e-2, **ACCURACY)
QUANTIZED_GATE = Gate(None, **ACCURACY)


@dataclass(frozen=True)
class Recipe:
    """One way of quantizing to int8. Export tries a format's recipes in their order until a
    file reaches the gate on real images (docs/export.md); `--int8-recipe` fixes one."""

    name: str
    summary: str
    # It searches with the real images the gate judges on (as NNCF's accuracy control does):
    # it needs a model with accuracy to keep, and verification.
    steered: bool = False


# Cheapest first: the first keeps every layer int8 as the converter does it; the second too,
# with ranges that outliers no longer stretch; the last gives up speed for accuracy.
DEFAULT_RECIPE = Recipe("default", "the converter's own ranges: min/max of the calibration images")
PERCENTILE = Recipe(
    "percentile",
    "activation ranges clipped at a high percentile of the "
    "calibration images, so that outliers no longer stretch them",
)
KEEP_FLOAT = Recipe(
    "keep-float",
    "the layers that lose most accuracy kept in float, as few as reach the gate on the real images",
    steered=True,
)
RECIPES = {recipe.name: recipe for recipe in (DEFAULT_RECIPE, PERCENTILE, KEEP_FLOAT)}


@dataclass(frozen=True)
class Steer:
    """The real images the gate judges on (NHWC, prepared as the model is fed) and the float
    model's logits on them: what a steered recipe searches with (backends/int8.py)."""

    images: Images
    expected: Floats
    gate: Gate

    def figures(self, answers: Floats) -> Ranking:
        return agreement_on(answers, self.expected)

    def reached(self, answers: Floats) -> bool:
        figures = self.figures(answers)
        return self.gate.reached(
            figures["top1_agreement"], figures["top_k_overlap"], figures["sqnr_db"]
        )

    def score(self, answers: Floats) -> float:
        """1.0 where the answers reach the gate, else the share of the worst limit reached: a
        label-free metric whose drop from the float model's 1.0 says how far the file is off
        (NNCF's accuracy control reverts layers until it is 0)."""
        figures = self.figures(answers)
        sqnr = figures["sqnr_db"]
        gate = self.gate
        shares = [
            figures["top1_agreement"] / gate.min_top1_agreement if gate.min_top1_agreement else 1,
            figures["top_k_overlap"] / gate.min_top5_overlap if gate.min_top5_overlap else 1,
            1 if sqnr is None or not gate.min_sqnr_db else max(sqnr, 0) / gate.min_sqnr_db,
        ]
        return min(1.0, *shares)


@dataclass(frozen=True)
class Precision:
    how: How  # converted into the "file", a runtime "hint" over the fp32 file, a dtype "policy"
    gate: Gate | None = None  # verification of a file precision; hints and policies are benched
    calibration: bool = False  # conversion needs calibration images
    # The ways its converter can write it, tried in this order (int8: DEFAULT_RECIPE first)
    recipes: tuple[Recipe, ...] = ()
    # A hint's or a policy's way of running the fp32 artifact, in words (bench --recommend)
    applied: str = ""


# The precisions converted into a file, each gated as its conversion allows; a format offers
# those its converters write.
FP32 = Precision("file", FP32_GATE)
FP16 = Precision("file", FP16_GATE)
DYNAMIC = Precision("file", QUANTIZED_GATE)  # int8 weights, float activations
INT8 = Precision("file", QUANTIZED_GATE, calibration=True, recipes=(DEFAULT_RECIPE,))


class WriterOptions(TypedDict):
    """What export's request says to every writer; each uses those its format has."""

    opset: int  # ONNX opset (ONNX, and OpenVINO through ONNX)
    batch: int | None  # a batch size pinned in the file; None: dynamic
    optimize: bool  # onnxslim after conversion
    calibration: Images | None  # int8's calibration images; None where none is converted
    nchw: bool  # the file takes NCHW input


class Writer(Protocol):
    """A format's writer: `model` (a keras.Model) to the artifact at `path` at `precision`,
    with effnet's metadata `meta`, export's `options` (a writer takes those it uses and lets
    its own `**_` take the rest) and, for int8, the `recipe` and the real images a steered
    recipe searches with. Returns what the recipe did, for the export document, or None.
    """

    def __call__(
        self,
        model: Any,  # a keras.Model (Keras ships no types)
        path: Path,
        /,
        *,
        precision: str,
        meta: dict[str, str],
        recipe: Recipe = ...,
        steer: Steer | None = ...,
        **options: Unpack[WriterOptions],
    ) -> dict[str, Any] | None: ...


class Loader(Protocol):
    """A backend's loader: the artifact at `path` on `device`, with `threads` intra-op threads
    (None: the runtime's default), at `precision` (PrecisionUnavailable where it cannot)."""

    def __call__(
        self, path: Path, device: str, threads: int | None, precision: str, /
    ) -> Runner: ...


class ModelRunner(Protocol):
    """Runs a Keras model in memory on `device` (`xla`: compiled by XLA), with no artifact."""

    def __call__(self, model: Any, device: str = ..., xla: bool = ..., /) -> Runner: ...


@dataclass(frozen=True)
class Declared:
    """What an artifact says it takes, read with its own library only (predict's contract):
    effnet's metadata, and its first input's shape (None for a dynamic dimension).

    `effnet` says whether effnet's metadata was there; where it was not, `metadata` holds what
    the file itself shows (a quantized file's precision, its name), or nothing."""

    metadata: Mapping[str, str]
    shape: list[Any]
    effnet: bool


def _fp32(path: Path) -> str:
    return "fp32"


def _no_check(path: Path) -> str | None:
    return None


@dataclass(frozen=True)
class Format:
    """An artifact: how it is named and recognised, what writes it and what reads it."""

    name: str
    suffix: str  # the artifact's ending: ".onnx", or "_openvino" for a folder
    read: Callable[[Path], dict[str, Any]]  # `inspect`'s document
    write: Writer | None = None  # None: not exported
    folder: bool = False  # the artifact is a folder
    marker: str = ""  # a file whose presence makes a folder this format's ("saved_model.pb")
    # Input layouts its writer makes (`export --nchw`) and its runners feed from NHWC batches.
    layouts: tuple[str, ...] = ("NHWC",)
    # Its writer takes a model on a (None, None, 3) input and its runners any height and width
    # (`export --dynamic-size`).
    dynamic_size: bool = False
    # The precision converted into a file that carries no effnet metadata, from its tensors
    precision_of: Callable[[Path], str] = _fp32
    # The input contract, read faster or fuller than `read`; None: taken from `read`'s document
    declared: Callable[[Path], Declared] | None = None
    # What is wrong with a file its runtime refused, found in its structure (a folder's missing
    # part, a length that runs past the end, a wrong identifier) and said in a few words, or None
    # where nothing is: runtimes name the C++ line that gave up, not the file's fault. Asked only
    # after a load failed, so a sound file never pays for it.
    check: Callable[[Path], str | None] = _no_check

    def recognises(self, path: Path) -> bool:
        if path.is_dir():
            return self.folder and bool(self.marker) and any(path.glob(self.marker))
        return path.name.lower().endswith(self.suffix) or (
            self.folder and bool(self.marker) and path.match(self.marker)
        )

    def declares(self, path: Path) -> Declared:
        if self.declared is not None:
            return self.declared(path)
        document = self.read(path)
        meta = {key: str(value) for key, value in document.get("metadata", {}).items()}
        return Declared(meta, document["inputs"][0]["shape"], bool(meta))


@dataclass(frozen=True)
class Backend:
    """A runtime over a format: everything export, bench, inspect, doctor and the CLI know.

    An artifact is a (backend, precision) pair; each precision says *how* it is obtained —
    converted into the file, a hint to the runtime over the fp32 file, or a Keras dtype
    policy — with the gate its verification must pass."""

    name: str
    summary: str  # what it is, for help and doctor
    format: Format
    load: Loader
    precisions: Mapping[str, Precision] = field(default_factory=lambda: {"fp32": FP32})
    devices: tuple[str, ...] = ("cpu",)
    packages: tuple[str, ...] = ()  # distributions it needs beyond TensorFlow and Keras
    benched: bool = True  # a `bench --runtime`
    # Runs a Keras model in memory: bench and predict run a model they built with it, with no
    # artifact; None: it runs files only.
    runs_model: ModelRunner | None = None
    # A cheaper loader (path, threads) -> Runner on the CPU for callers that read only the
    # outputs and the metadata it read (predict); None: `load` serves them too.
    load_outputs: Callable[[Path, int | None], Runner] | None = None

    # The format's facts, read through the backend (callers name the backend, not its format)
    @property
    def suffix(self) -> str:
        return self.format.suffix

    @property
    def read(self) -> Callable[[Path], dict[str, Any]]:
        return self.format.read

    @property
    def write(self) -> Writer | None:
        """The writer, for the format's own runtime only: `export -f` names formats."""
        return self.format.write if self.name == self.format.name else None

    @property
    def folder(self) -> bool:
        return self.format.folder

    @property
    def marker(self) -> str:
        return self.format.marker

    @property
    def layouts(self) -> tuple[str, ...]:
        return self.format.layouts

    @property
    def dynamic_size(self) -> bool:
        return self.format.dynamic_size

    def artifact_name(self, model_name: str, precision: str) -> str:
        """efficientnet-b0.onnx, efficientnet-b0-int8.tflite, efficientnet-b0_openvino."""
        tag = "" if precision == "fp32" or self.precisions[precision].how != "file" else precision
        return f"{model_name}{'-' + tag if tag else ''}{self.suffix}"

    def file_precisions(self) -> tuple[str, ...]:
        return tuple(p for p, way in self.precisions.items() if way.how == "file")

    def recognises(self, path: Path) -> bool:
        return self.format.recognises(path)
