"""`effnet inspect`: what a file holds (tensors and ops), or what a weights file fits."""

from __future__ import annotations

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, pairs, print_columns, size
from effnet_cli.records.inspect import Inspection, MetadataValue

TENSOR_TABLE = (
    Column("", "role", left=True),
    Column("name", "name", left=True, wrap=True),
    Column("shape", "shape", show=lambda t: "×".join("?" if d is None else str(d)
                                                     for d in t["shape"])),
    Column("dtype", "dtype"),
)  # fmt: skip
OPS_TABLE = (Column("op", "op", left=True), Column("count", "count"))


FITS_TABLE = (
    Column("model", "model", left=True),
    Column("head", "include_top", left=True,
           show=lambda f: f"classifier, {f['classes']} classes" if f["include_top"] else "none"),
    Column("preprocessing", "preprocessing", "yes", left=True),
)  # fmt: skip


def _meta(value: MetadataValue) -> str:
    if isinstance(value, tuple):
        return "×".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def view(sink: Sink, doc: Inspection) -> None:
    console = sink.out()
    keras = doc.metadata.get("keras_params")
    beside = f"; Keras count_params: {keras:,}" if isinstance(keras, int) else ""
    shown = [
        ("file", f"{doc.path} ({doc.format}, {size(doc.bytes)})"),
        ("params", f"{doc.params:,} ({doc.params_counted}{beside})"),
    ]
    shown += [(key, _meta(value)) for key, value in doc.metadata.items()]
    pairs(console, shown)
    if doc.fits is not None:  # a weights file: what it fits instead of tensors and ops
        print_columns(console, "fits", FITS_TABLE, [fit.to_json() for fit in doc.fits])
        if not doc.fits:
            console.print("fits no effnet variant (any head, any class count)", markup=False)
        return
    tensors = [
        {"role": role, **t.to_json()}
        for role, group in (("input", doc.inputs), ("output", doc.outputs))
        for t in group
    ]
    print_columns(console, None, TENSOR_TABLE, tensors)
    ops = [{"op": op, "count": number} for op, number in doc.ops.items()]
    print_columns(console, "ops", OPS_TABLE, ops)
