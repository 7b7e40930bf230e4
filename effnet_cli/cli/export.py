"""`effnet export`: every requested file from one model, each verified by its own runtime."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from effnet_cli import backends
from effnet_cli.backends import DEFAULT_OPSET
from effnet_cli.cli.common import (
    ForceOpt,
    JsonOpt,
    WideOpt,
    output_sink,
    refuse_model_options,
    warn_if_huge,
)
from effnet_cli.cli.options import (
    ModelOptions,
    choice_metavar,
    complete,
    model_command,
    options_command,
)
from effnet_cli.model import spec as S
from effnet_cli.output.views import export as views
from effnet_cli.records.export import ExportResult
from effnet_cli.records.model import ModelIdentity
from effnet_cli.records.spec import spec_model
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows import export as E

# fmt: off
FormatOpt = Annotated[Optional[list[str]], typer.Option(
    "--format", "-f", help="Formats to write (repeat or comma-separate).",
    metavar=choice_metavar(backends.formats(), listed=True),
    autocompletion=complete(backends.formats, listed=True))]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Directory for the artifacts.")]
FromOpt = Annotated[Optional[Path], typer.Option(
    "--from", help="Export this .keras file instead of building.")]
OpsetOpt = Annotated[int, typer.Option(help="ONNX opset (OpenVINO converts from ONNX too).")]
BatchOpt = Annotated[Optional[int], typer.Option(help="Fix the batch size (default: dynamic).")]
QuantizeOpt = Annotated[str, typer.Option(
    help="The precision converted into every file (formats that lack it are refused).",
    metavar=choice_metavar(backends.quantize_modes()),
    autocompletion=complete(backends.quantize_modes))]
CalibrationOpt = Annotated[Optional[Path], typer.Option(
    help="int8: a folder of images or an (N,H,W,3) .npy (default: the shipped photos, "
    "flipped and cropped).")]
OptimizeOpt = Annotated[bool, typer.Option(
    "--optimize/--no-optimize", help="onnxslim the ONNX graph (and the OpenVINO IR made from it).")]
VerifyOpt = Annotated[bool, typer.Option(
    "--verify/--no-verify", help="Run each artifact against Keras.")]
KeepFailedOpt = Annotated[bool, typer.Option(
    "--keep-failed", help="Keep artifacts that failed verification.")]
NchwOpt = Annotated[bool, typer.Option("--nchw", help="Input [N, 3, H, W] instead of NHWC "
                                       f"({', '.join(backends.with_layout('NCHW'))}).")]
DynamicSizeOpt = Annotated[bool, typer.Option("--dynamic-size", help="Any input height and "
    f"width, verified at two sizes ({', '.join(backends.with_dynamic_size())}).")]
OddPaddingOpt = Annotated[bool, typer.Option("--allow-odd-padding", help="Confirm "
    "--dynamic-size for a family that pads explicitly for its resolution "
    f"({E.explicit_padding_families()}): exact only at sizes congruent to it mod 32.")]
Int8RecipeOpt = Annotated[Optional[str], typer.Option("--int8-recipe", help="int8: quantize "
    "with this recipe only (default: each in turn until a file reaches the accuracy gate; "
    "docs/export.md).", metavar=choice_metavar(list(backends.RECIPES)),
    autocompletion=complete(lambda: list(backends.RECIPES)))]
VerifyImagesOpt = Annotated[Optional[Path], typer.Option("--verify-images", help="Judge accuracy "
    "(top-1, top-5, SQNR against Keras) on this folder's images instead of the shipped photos.")]
# fmt: on


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """export's own options, declared once: each field is an option of the command (its
    Annotated type says how it is given), and the command receives them as one record."""

    fmt: FormatOpt = None
    output: OutputOpt = Path(".")
    source: FromOpt = None
    opset: OpsetOpt = DEFAULT_OPSET
    batch: BatchOpt = None
    quantize: QuantizeOpt = "none"
    calibration: CalibrationOpt = None
    int8_recipe: Int8RecipeOpt = None
    optimize: OptimizeOpt = True
    verify: VerifyOpt = True
    keep_failed: KeepFailedOpt = False
    nchw: NchwOpt = False
    dynamic_size: DynamicSizeOpt = False
    allow_odd_padding: OddPaddingOpt = False
    verify_images: VerifyImagesOpt = None
    force: ForceOpt = False


@model_command
@options_command(ExportOptions)
def export(
    model: ModelOptions,
    options: ExportOptions,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write SavedModel, ONNX, TFLite, .keras and OpenVINO files from one model, each verified."""
    sink = output_sink(wide, json_output)
    plan = plan_export(model, options)
    try:
        artifacts = E.run_export(plan, sink.progress)
    except E.ExportFailed as failure:  # the table still says what was written, and what failed
        sink.result(
            "export", ExportResult(model=plan.identity, artifacts=failure.artifacts), views.view
        )
        raise
    sink.result("export", ExportResult(model=plan.identity, artifacts=artifacts), views.view)


def plan_export(model: ModelOptions, options: ExportOptions) -> E.ExportPlan:
    """The options checked and turned into a plan, every refusal before anything is built."""
    formats = E.parse_formats(options.fmt or [])
    spec = _model(model, options.source)
    request = E.ExportRequest(
        formats=tuple(formats),
        directory=options.output,
        opset=options.opset,
        batch=options.batch,
        quantize=options.quantize,
        calibration=options.calibration,
        optimize=options.optimize,
        verify=options.verify,
        keep_failed=options.keep_failed,
        force=options.force,
        seed=model.seed if model.seed is not None else 0,
        nchw=options.nchw,
        dynamic_size=options.dynamic_size,
        allow_odd_padding=options.allow_odd_padding,
        int8_recipe=options.int8_recipe,
    )
    name, identity = _identity(spec, options.source)
    targets = E.check_request(
        request,
        name,
        spec.resolution if spec is not None else None,
        options.dynamic_size and E.pads_explicitly(spec, options.source),
    )
    if options.verify_images is not None:
        request = replace(
            request, verify_images=_verify_images(options.verify_images, options.verify, spec)
        )
    return E.ExportPlan(
        request=request,
        targets=tuple(targets),
        identity=identity,
        spec=spec,
        source=options.source,
        weights=model.weights,
        seed=model.seed,
    )


def _identity(spec: Optional[S.ModelSpec], source: Optional[Path]) -> tuple[str, ModelIdentity]:
    """The model's name, for its files, and the model the document names: the spec's, or a
    `--from` file's stem."""
    if spec is not None:
        return spec.name, spec_model(spec)
    if source is None:  # _model gives a spec wherever there is no --from: a bug if reached
        raise ValueError("export needs a spec or a source")
    identity = ModelIdentity(
        name=source.stem, family=None, resolution=None, classes=None, preprocessing=None
    )
    return source.stem, identity


def _model(model: ModelOptions, source: Optional[Path]) -> Optional[S.ModelSpec]:
    """The spec to build, or None for --from a .keras file (checked before anything loads)."""
    from effnet_cli.keras import archive
    from effnet_cli.keras.checkpoints import keras_files as keras_weights

    if source is not None:
        refuse_model_options(model)
        archive.check_keras_file(source)
        return None
    if model.weights is not None:
        keras_weights.check_weights_file(model.weights)
    spec = model.spec()
    warn_if_huge(spec)
    return spec


def _verify_images(folder: Path, verify: bool, spec: Optional[S.ModelSpec]) -> tuple[Path, ...]:
    """`export --verify-images`: the images, checked before anything is built."""
    from effnet_cli.data import images as I

    if not verify:
        raise UsageError("--verify-images is part of verification; drop --no-verify")
    if spec is not None and not spec.include_top:
        raise UsageError("--verify-images compares classes; the model needs its top (no --no-top)")
    return tuple(I.collect([folder]))
