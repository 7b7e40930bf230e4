"""`effnet build`: the Keras model, with weights if given, saved if asked."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from pathlib import Path
from typing import Annotated, Optional

import typer

from effnet_cli.cli.common import ForceOpt, JsonOpt, WideOpt, output_sink, warn_if_huge
from effnet_cli.cli.options import ModelOptions, model_command
from effnet_cli.output.documents import model_document
from effnet_cli.output.views import build as views

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
    report = archive.build_and_save(spec, model.weights, model.seed, output, force, sink.progress)
    sink.result("build", {"model": model_document(spec), **report}, views.view)
