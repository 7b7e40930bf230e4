"""A model as its spec describes it (model/spec.py): the `model` object of a built model, with its
scaling and head beside the identity every command shares, and the input it expects. `summary`,
`build` and `export` print them."""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli.model import spec as S
from effnet_cli.records.base import Record
from effnet_cli.records.model import ModelIdentity


@dataclass(frozen=True, kw_only=True)
class SpecModel(ModelIdentity):
    """The identity's five fields first, then what the spec scales and tops the network with."""

    base: str  # the released variant it started from
    phi: float | None
    width: float
    depth: float
    dropout: float
    drop_connect: float
    include_top: bool
    pooling: str | None
    classifier_activation: str


@dataclass(frozen=True, kw_only=True)
class InputContract(Record):
    """What the model expects as input (`model/spec.py`'s `input_contract`, typed)."""

    shape: tuple[int | None, ...]  # (None, height, width, 3)
    dtype: str
    layout: str
    range: str  # "[0, 255]", or "caller-normalized"
    color: str
    preprocessing_inside: bool
    preprocessing: str


def spec_model(spec: S.ModelSpec) -> SpecModel:
    return SpecModel(
        name=spec.name,
        family=spec.family.name,
        resolution=(spec.resolution, spec.resolution),
        classes=spec.num_classes if spec.include_top else None,
        preprocessing=spec.preprocessing,
        base=spec.base,
        phi=spec.phi,
        width=spec.width,
        depth=spec.depth,
        dropout=spec.dropout,
        drop_connect=spec.drop_connect,
        include_top=spec.include_top,
        pooling=spec.pooling,
        classifier_activation=spec.classifier_activation,
    )


def input_contract(spec: S.ModelSpec) -> InputContract:
    contract = S.input_contract(spec)
    return InputContract(
        shape=(None, *spec.input_shape()),
        dtype=str(contract["dtype"]),
        layout=str(contract["layout"]),
        range=str(contract["range"]),
        color=str(contract["color"]),
        preprocessing_inside=spec.preprocessing,
        preprocessing=str(contract["preprocessing"]),
    )
