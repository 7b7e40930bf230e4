"""`effnet summary`: the per-stage table and totals, from the architecture alone."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from typing import Annotated

import typer

from effnet_cli.cli.common import JsonOpt, WideOpt, output_sink
from effnet_cli.cli.options import ModelOptions, model_command
from effnet_cli.model import costs as C
from effnet_cli.output.views import summary as views
from effnet_cli.records.summary import summarize

LayersOpt = Annotated[bool, typer.Option("--layers", help="Add the per-layer view.")]


@model_command
def summary(
    model: ModelOptions,
    layers: LayersOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Per-stage table and totals: params, MACs, activation memory. Never loads TensorFlow."""
    sink = output_sink(wide, json_output)
    model.refuse(
        ("weights", "seed"),
        "changes nothing in summary: its counts come from the architecture alone, not from weights",
    )
    costs = C.count(model.spec())
    summary = summarize(costs, layers)
    sink.result("summary", summary, lambda sink, result: views.view(sink, costs, result))
