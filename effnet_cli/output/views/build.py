"""`effnet build`: what was built, from which weights, and where it was written."""

from __future__ import annotations

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import pairs, size
from effnet_cli.records.build import BuildResult


def view(sink: Sink, report: BuildResult) -> None:
    model, shape = report.model, report.input.shape
    rows = [
        ("model", f"{model.name} ({shape[1]}×{shape[2]}, {model.classes or 'no'} classes)"),
        ("params", f"{report.params:,} ({report.params_trainable:,} trainable)"),
    ]
    weights = report.weights
    if weights:
        fix = "; ImageNet std-in-variance slot corrected" if weights.stddev_fix else ""
        loaded = f"{weights.tensors_loaded} tensors from {weights.path} ({weights.layout})"
        rows.append(("weights", loaded + fix))
    else:
        seed = report.seed
        rows.append(("weights", "random" + (f" (seed {seed})" if seed is not None else "")))
    rows.append(("build time", f"{report.build_s:.2f} s"))
    output = report.output
    if output:
        rows.append(("written", f"{output.path} ({output.format}, {size(output.bytes)})"))
    pairs(sink.out(), rows)
