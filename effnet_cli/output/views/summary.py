"""`effnet summary`: the per-stage table (and per-layer, with --layers) and the totals."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console

from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, cell, count, pairs, print_columns, size
from effnet_cli.records.summary import Published, Summary


def _contract_line(spec: S.ModelSpec) -> str:
    contract = S.input_contract(spec)
    h, w, c = spec.input_shape()
    pixels = (
        "caller-normalized RGB"
        if contract["range"] == "caller-normalized"
        else (f"RGB in {contract['range']}")
    )
    return (
        f"input: float32 NHWC (batch, {h}, {w}, {c}), {pixels}; "
        f"inside the model: {contract['preprocessing']}"
    )


def _block_only(text: Callable[[Mapping[str, Any]], str]) -> Callable[[Mapping[str, Any]], str]:
    """Stem and head have no expansion or squeeze-excitation: '–' there."""
    return lambda st: text(st) if st["expand_ratio"] > 0 else "–"


STAGE_TABLE = (
    Column("stage", "stage", left=True),
    Column("operator", "operator", left=True, priority=2),
    Column("resolution", "output_resolution", priority=1,
           show=lambda st: f"{st['input_resolution']}→{st['output_resolution']}"),
    Column("channels", "channels"),
    Column("layers", "layers"),
    Column("kernel", "kernel_size", priority=4, show=lambda st: f"{st['kernel_size']}x"
           f"{st['kernel_size']}"),
    Column("stride", "strides", priority=4),
    Column("expand", "expand_ratio", priority=4,
           show=_block_only(lambda st: str(st["expand_ratio"]))),
    Column("SE", "se", priority=5, show=_block_only(lambda st: "yes" if st["se"] else "no")),
    Column("params", "params", "count"),
    Column("MACs", "macs", "count"),
    Column("peak act.", "peak_activation_bytes", "bytes", priority=3),
)  # fmt: skip

# Bytes moved and MACs per byte (float32, batch 1; model/roofline.py) come before the class and
# shape at 80 columns: the class reads from the name, the intensity does not.
LAYER_TABLE = (
    Column("name", "name", left=True),
    Column("class", "class", left=True, priority=3),
    Column("output shape", "shape", priority=4,
           show=lambda layer: "×".join(map(str, layer["shape"]))),
    Column("params", "params", "int"),
    Column("MACs", "macs", "int"),
    Column("bytes moved", "bytes", "bytes", priority=2),
    Column("MACs/byte", "macs_per_byte", "f2", priority=2),
)  # fmt: skip


def view(sink: Sink, costs: C.Costs, summary: Summary) -> None:
    """The stage table, the layer table where the summary holds layers, the totals."""
    spec, console = costs.spec, sink.out()
    title = (
        f"{spec.name}  (width {spec.width:g}, depth {spec.depth:g}, resolution {spec.resolution})"
    )
    print_columns(console, title, STAGE_TABLE, [vars(stage) for stage in summary.stages])
    if summary.layers is not None:
        console.print()
        print_columns(console, "layers", LAYER_TABLE, [row.to_json() for row in summary.layers])
    console.print()
    _totals_table(console, costs, summary.published)
    console.print(_contract_line(spec), markup=False)
    for deviation in spec.family.deviations:
        console.print(f"deviation from the paper: {deviation}", markup=False)


def _totals_table(console: Console, costs: C.Costs, paper: Published | None) -> None:
    def beside(value: str, published: float | None, kind: str = "count") -> str:
        return value if published is None else f"{value}  (published: {cell(published, kind)})"

    rows = [
        ("params (Keras count_params)", f"{costs.params:,}"),
        (
            "  trainable (the paper's count)",
            beside(f"{costs.params_trainable:,}", paper.params if paper else None),
        ),
        ("  BatchNorm moving statistics", f"{costs.params_bn_moving:,}"),
        ("  preprocessing (Normalization)", f"{costs.params_preprocessing:,}"),
        (
            "MACs (multiply-adds)",
            beside(f"{costs.macs:,} ({count(costs.macs)})", paper.macs if paper else None),
        ),
        ("parameter bytes (float32)", size(costs.param_bytes)),
        ("peak activation memory (batch 1)", size(costs.peak_activation_bytes)),
    ]
    if paper is not None and paper.top1 is not None:
        rows.append(("ImageNet top-1 %", f"{paper.top1} ({paper.source})"))
    pairs(console, rows, title="totals")
