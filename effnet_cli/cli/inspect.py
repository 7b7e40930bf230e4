"""`effnet inspect`: what a file holds."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from pathlib import Path
from typing import Annotated

import typer

from effnet_cli.cli.common import JsonOpt, WideOpt, artifact_kinds, output_sink
from effnet_cli.output.views import inspect as views
from effnet_cli.records.inspect import inspection

HELP = (
    "What a model holds: inputs, outputs, ops, params, size, effnet metadata.\n\n"
    f"PATH is an artifact that export writes, of any backend: {artifact_kinds()}; "
    "an OpenVINO .xml file too; or a weights file (.weights.h5, legacy .h5): the variants and "
    "heads it fits."
)
PathArg = Annotated[Path, typer.Argument(help=f"An artifact: {artifact_kinds()}.")]


def inspect(path: PathArg, wide: WideOpt = False, json_output: JsonOpt = False) -> None:
    sink = output_sink(wide, json_output)
    from effnet_cli.backends.describe import describe, describe_weights

    is_weights = path.name.lower().endswith(".h5") and not path.is_dir()
    document = describe_weights(path) if is_weights else describe(path)
    sink.result("inspect", inspection(document), views.view)
