"""`effnet build`: the Keras model, with weights if given, saved if asked."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from effnet_cli.cli.common import ForceOpt, JsonOpt, WideOpt, output_sink, warn_if_huge
from effnet_cli.cli.options import ModelOptions, model_command
from effnet_cli.model import spec as S
from effnet_cli.output.views import build as views
from effnet_cli.records.build import BuildResult, LoadedWeights, SavedFile
from effnet_cli.records.spec import input_contract, spec_model

if TYPE_CHECKING:
    from effnet_cli.keras.archive import Built

OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Write a .keras model or .weights.h5 weights file."),
]


@model_command
def build(
    model: ModelOptions,
    output: OutputOpt = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Build the Keras model (optionally loading weights) and save it."""
    sink = output_sink(wide, json_output)
    from effnet_cli.keras import archive

    if model.weights is not None:
        model.refuse(("seed",), "changes nothing beside --weights: every weight is loaded")
    spec = model.spec()
    warn_if_huge(spec)
    built = archive.build_and_save(spec, model.weights, model.seed, output, force, sink.progress)
    sink.result("build", _result(spec, model.seed, built), views.view)


def _result(spec: S.ModelSpec, seed: Optional[int], built: "Built") -> BuildResult:
    loaded, saved = built.weights, built.saved
    return BuildResult(
        model=spec_model(spec),
        input=input_contract(spec),
        params=built.params,
        params_trainable=built.params_trainable,
        seed=seed,
        weights=None
        if loaded is None
        else LoadedWeights(
            path=loaded.path,
            layout=loaded.layout,
            tensors_loaded=loaded.tensors_loaded,
            stddev_fix=loaded.stddev_fix,
        ),
        build_s=built.seconds,
        output=None
        if saved is None
        else SavedFile(path=str(saved.path), format=saved.format, bytes=saved.bytes),
    )
