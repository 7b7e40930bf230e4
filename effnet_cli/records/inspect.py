"""What `effnet inspect` reports, as frozen records (the schema's `inspect` definition): a file's
tensors, ops, parameter count and effnet metadata, or for a weights file the variants and heads
it fits.

The backends read the files (backends/describe.py) and, below the records, hand up a plain
document; `inspection` types it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from effnet_cli.records.base import OMIT_NONE, Record
from effnet_cli.records.model import ModelIdentity

# A metadata value as inspect types it (backends/describe.py's typed_metadata): formats store
# strings; '224x224' becomes (224, 224), 'true' True, '1.2' 1.2.
MetadataValue = str | int | float | bool | tuple[int, ...] | None


@dataclass(frozen=True, kw_only=True)
class Tensor(Record):
    name: str
    shape: tuple[int | None, ...]  # None: a dimension the file leaves open (the batch)
    dtype: str


@dataclass(frozen=True, kw_only=True)
class Fit(Record):
    """A variant and head a weights file fits."""

    model: str  # the variant: "b0", "lite2", "v2-s"
    include_top: bool
    classes: int | None  # None: no classifier head
    preprocessing: bool


@dataclass(frozen=True, kw_only=True)
class Inspection(Record):
    path: str
    format: str  # the backend that reads it, or "weights"
    bytes: int
    model: ModelIdentity  # from what the file says about itself
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    ops: Mapping[str, int]  # op (or layer) -> count, most common first
    params: int
    params_counted: str  # what `params` counts in this format
    opset: int | None = field(default=None, metadata=OMIT_NONE)  # ONNX
    metadata: Mapping[str, MetadataValue]
    fits: tuple[Fit, ...] | None = field(default=None, metadata=OMIT_NONE)  # a weights file


def inspection(document: Mapping[str, Any]) -> Inspection:
    """The record of a file as backends/describe.py reads it (`describe`, `describe_weights`)."""
    unknown = set(document) - {f.name for f in fields(Inspection)}
    if unknown:  # a reader says something the record has no field for: a bug if reached
        raise ValueError(f"inspect has no field for {sorted(unknown)}")
    fits = document.get("fits")
    return Inspection(
        path=document["path"],
        format=document["format"],
        bytes=document["bytes"],
        model=_identity(document["model"]),
        inputs=tuple(_tensor(t) for t in document["inputs"]),
        outputs=tuple(_tensor(t) for t in document["outputs"]),
        ops=dict(document["ops"]),
        params=document["params"],
        params_counted=document["params_counted"],
        opset=document.get("opset"),
        metadata={key: _value(value) for key, value in document["metadata"].items()},
        fits=None if fits is None else tuple(Fit(**fit) for fit in fits),
    )


def _identity(model: Mapping[str, Any]) -> ModelIdentity:
    resolution = model["resolution"]
    return ModelIdentity(
        name=model["name"],
        family=model["family"],
        resolution=None if resolution is None else tuple(resolution),
        classes=model["classes"],
        preprocessing=model["preprocessing"],
    )


def _tensor(tensor: Mapping[str, Any]) -> Tensor:
    return Tensor(name=tensor["name"], shape=tuple(tensor["shape"]), dtype=tensor["dtype"])


def _value(value: Any) -> MetadataValue:
    return tuple(value) if isinstance(value, list) else value
