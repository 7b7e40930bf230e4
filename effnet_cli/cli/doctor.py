"""`effnet doctor`: versions, devices and known-incompatible combinations."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

import typer

from effnet_cli.cli.common import JsonOpt, WideOpt, output_sink
from effnet_cli.output.views import doctor as views
from effnet_cli.util import files


def doctor(wide: WideOpt = False, json_output: JsonOpt = False) -> None:
    """Versions, devices and known-incompatible combinations; exit 1 when something is missing."""
    sink = output_sink(wide, json_output)
    from effnet_cli.workflows.doctor import diagnose

    with files.stdout_to_stderr(), files.silenced_stderr():
        report = diagnose()
    sink.result("doctor", report, views.view)
    if not report.ok:
        raise typer.Exit(1)
