"""What `effnet summary` reports: the model, its input, its totals beside the paper's, each stage
and (with --layers) each layer with the bytes it moves. From the architecture alone."""

from __future__ import annotations

from dataclasses import dataclass, field

from effnet_cli.model import costs as C
from effnet_cli.model import roofline as R
from effnet_cli.model import spec as S
from effnet_cli.records.base import OMIT_NONE, Record
from effnet_cli.records.spec import InputContract, SpecModel, input_contract, spec_model


@dataclass(frozen=True, kw_only=True)
class Totals(Record):
    params: int
    params_trainable: int
    params_non_trainable: int
    params_bn_moving: int
    params_preprocessing: int
    macs: int
    param_bytes: int
    peak_activation_bytes: int


@dataclass(frozen=True, kw_only=True)
class Published(Record):
    """The paper's (or keras.applications') figures for a released variant as released."""

    params: float | None  # None where nothing was published
    macs: float | None
    top1: float | None
    top1_v1: float | None
    source: str


@dataclass(frozen=True, kw_only=True)
class LayerRow(Record):
    """One layer; `bytes` and `macs_per_byte` at float32, batch 1 (model/roofline.py)."""

    name: str
    keras_class: str = field(metadata={"key": "class"})
    stage: str
    shape: tuple[int, ...]
    params: int
    params_trainable: int
    macs: int
    activation_bytes: int
    bytes: int
    macs_per_byte: float | None


@dataclass(frozen=True, kw_only=True)
class Summary(Record):
    model: SpecModel
    input: InputContract
    totals: Totals
    published: Published | None
    stages: tuple[C.StageCost, ...]
    layers: tuple[LayerRow, ...] | None = field(default=None, metadata=OMIT_NONE)


def published(spec: S.ModelSpec) -> Published | None:
    """The published figures where the spec is a released variant unchanged."""
    paper = S.PUBLISHED.get(spec.base)
    if paper is None or spec.name != f"efficientnet-{spec.base}":
        return None
    return Published(
        params=paper.params,
        macs=paper.macs,
        top1=paper.top1,
        top1_v1=paper.top1_v1,
        source=paper.source,
    )


def summarize(costs: C.Costs, with_layers: bool) -> Summary:
    totals = Totals(
        params=costs.params,
        params_trainable=costs.params_trainable,
        params_non_trainable=costs.params_non_trainable,
        params_bn_moving=costs.params_bn_moving,
        params_preprocessing=costs.params_preprocessing,
        macs=costs.macs,
        param_bytes=costs.param_bytes,
        peak_activation_bytes=costs.peak_activation_bytes,
    )
    layers = None
    if with_layers:
        traffic = R.traffic(costs, "fp32", batch=1)
        layers = tuple(
            LayerRow(
                name=layer.name,
                keras_class=layer.keras_class,
                stage=layer.stage,
                shape=tuple(layer.shape),
                params=layer.params,
                params_trainable=layer.params_trainable,
                macs=layer.macs,
                activation_bytes=layer.activation_bytes,
                bytes=moved.bytes,
                macs_per_byte=moved.macs_per_byte,
            )
            for layer, moved in zip(costs.layers, traffic.layers, strict=True)
        )
    return Summary(
        model=spec_model(costs.spec),
        input=input_contract(costs.spec),
        totals=totals,
        published=published(costs.spec),
        stages=costs.stages,
        layers=layers,
    )
