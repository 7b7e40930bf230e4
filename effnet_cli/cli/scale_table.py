"""`effnet scale-table`: released coefficients beside the compound rule (no TensorFlow)."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from pathlib import Path
from typing import Annotated, Optional

import typer

from effnet_cli.cli.common import ForceOpt, JsonOpt, WideOpt, output_sink
from effnet_cli.cli.options import choice_metavar, complete
from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.output.views import scale as views
from effnet_cli.records import scale as records
from effnet_cli.util import files
from effnet_cli.util.errors import UsageError, require_choice, split_list

FAMILY_CHOICES = (*S.FAMILIES, "all")
FORMAT_CHOICES = ("table", "json", "csv", "markdown")

# fmt: off
FamilyOpt = Annotated[str, typer.Option(
    help="Model family, or all.", metavar=choice_metavar(FAMILY_CHOICES),
    autocompletion=complete(lambda: FAMILY_CHOICES))]
PhiOpt = Annotated[Optional[str], typer.Option(
    help="Comma-separated φ values, e.g. 0,1,2.5 (any real φ).")]
PhiMaxOpt = Annotated[Optional[float], typer.Option(
    help="Every integer φ up to this, plus released members.")]
AlphaOpt = Annotated[float, typer.Option(help="Depth base of the compound rule.")]
BetaOpt = Annotated[float, typer.Option(help="Width base of the compound rule.")]
GammaOpt = Annotated[float, typer.Option(help="Resolution base of the compound rule.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", help="Output format.", metavar=choice_metavar(FORMAT_CHOICES),
    autocompletion=complete(lambda: FORMAT_CHOICES))]
PlotOpt = Annotated[Optional[Path], typer.Option(
    help="Also draw params and MACs against φ into FILE.png.")]
# fmt: on


def scale_table(
    family: FamilyOpt = "b",
    phi: PhiOpt = None,
    phi_max: PhiMaxOpt = None,
    alpha: AlphaOpt = S.ALPHA,
    beta: BetaOpt = S.BETA,
    gamma: GammaOpt = S.GAMMA,
    fmt: FormatOpt = "table",
    plot: PlotOpt = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Released coefficients beside the compound rule, with the paper's figures. No TensorFlow."""
    require_choice("--family", family, FAMILY_CHOICES)
    require_choice("--format", fmt, FORMAT_CHOICES)
    if json_output and fmt not in ("table", "json"):
        raise UsageError(f"--json and --format {fmt} exclude each other: give one of them")
    sink = output_sink(wide).configure(format="json" if json_output else fmt)
    if phi_max is not None and not 0 <= phi_max <= 12:
        raise UsageError(f"--phi-max must lie between 0 and 12, not {phi_max:g}")
    if plot is not None:
        files.check_plot_target(plot, force)
    phis = _phi_list(phi) if phi is not None else None
    families = list(S.FAMILIES) if family == "all" else [family]
    by_family = {
        name: [
            records.scale_row(row, C.family_origin(name))
            for row in C.scale_rows(name, phis, phi_max, alpha, beta, gamma)
        ]
        for name in families
    }
    rows = [row for name in families for row in by_family[name]]
    table = records.scale_table(alpha, beta, gamma, views.scale_notes(rows), rows)
    sink.result("scale-table", table, views.view)
    if plot is not None:
        from effnet_cli.output.plot import plot_scale

        files.write_plot(plot, lambda target: plot_scale(by_family, target))
        sink.note(f"plot written to {plot}")


def _phi_list(text: str) -> list[float]:
    parts = split_list("--phi", text)
    try:
        return sorted({float(part) for part in parts})
    except ValueError:
        raise UsageError(
            f"--phi takes comma-separated numbers such as 0,1,2.5, not {text!r}"
        ) from None
