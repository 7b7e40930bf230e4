"""Parameters, MACs and activation memory of a spec, per layer and per stage. Pure Python.

Conventions (stated once, used everywhere):
- one multiply-add is one MAC; only convolutions and the classifier's matrix multiply count
  (bias adds, BatchNorm, activations, pooling and the SE multiply are element-wise and left
  out, like the paper's "FLOPs" and fvcore's counter);
- parameters are Keras' `count_params()`: trainable weights, plus BatchNorm's moving mean and
  variance and the Normalization layer's mean, variance and count (non-trainable; none where
  it holds them as constants, as keras.applications' V2 does);
- activation memory is float32 bytes at batch 1; the peak is the largest sum of tensors alive
  at once when the layers run in order (a tensor lives until its last consumer has run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

from effnet_cli.model import graph as G
from effnet_cli.model import spec as S

FLOAT32_BYTES = 4
HEAD = "head"


@dataclass(frozen=True)
class LayerCost:
    name: str
    keras_class: str
    stage: str
    shape: G.Shape
    params_trainable: int
    params_non_trainable: int
    macs: int
    activation_bytes: int  # of this layer's output, batch 1

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_non_trainable


@dataclass(frozen=True)
class StageCost:
    stage: str
    operator: str
    input_resolution: int
    output_resolution: int
    channels: int
    layers: int  # blocks in a stage; 1 for the stem and the head, as the paper's Table 1
    kernel_size: int
    strides: int
    expand_ratio: int
    se: bool
    params: int
    macs: int
    peak_activation_bytes: int


class _StageFigures(TypedDict):
    """What every stage's `StageCost` counts the same way, block stage or not."""

    stage: str
    input_resolution: int
    output_resolution: int
    params: int
    macs: int
    peak_activation_bytes: int


@dataclass(frozen=True)
class Costs:
    spec: S.ModelSpec
    layers: tuple[LayerCost, ...]
    stages: tuple[StageCost, ...]
    peak_activation_bytes: int

    @property
    def params_trainable(self) -> int:
        return sum(layer.params_trainable for layer in self.layers)

    @property
    def params_non_trainable(self) -> int:
        return sum(layer.params_non_trainable for layer in self.layers)

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_non_trainable

    @property
    def params_bn_moving(self) -> int:
        return sum(
            c.params_non_trainable for c in self.layers if c.keras_class == "BatchNormalization"
        )

    @property
    def params_preprocessing(self) -> int:
        return self.params_non_trainable - self.params_bn_moving

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def param_bytes(self) -> int:
        return self.params * FLOAT32_BYTES


def _channels_in(node: G.Node, shapes: dict[str, G.Shape]) -> int:
    return shapes[node.inputs[0]][-1]


def layer_cost(node: G.Node, shapes: dict[str, G.Shape]) -> LayerCost:
    """Parameters and MACs of one layer, given the output shapes of the layers before it."""
    trainable = non_trainable = macs = 0
    out = node.shape
    spatial = math.prod(out[:-1]) if len(out) == 3 else 1
    match node.op:
        case G.Conv(filters=f, kernel_size=k, use_bias=bias):
            c_in = _channels_in(node, shapes)
            trainable = k * k * c_in * f + (f if bias else 0)
            macs = spatial * k * k * c_in * f
        case G.DepthwiseConv(kernel_size=k, use_bias=bias):
            trainable = k * k * out[-1] + (out[-1] if bias else 0)
            macs = spatial * k * k * out[-1]
        case G.BatchNorm():
            trainable, non_trainable = 2 * out[-1], 2 * out[-1]  # gamma, beta | mean, variance
        case G.Normalize(as_weights=True):
            non_trainable = 2 * out[-1] + 1  # mean, variance, count
        case G.Dense(units=units):
            c_in = _channels_in(node, shapes)
            trainable = c_in * units + units
            macs = c_in * units
    return LayerCost(
        name=node.name,
        keras_class=node.keras_class,
        stage=node.stage,
        shape=out,
        params_trainable=trainable,
        params_non_trainable=non_trainable,
        macs=macs,
        activation_bytes=math.prod(out) * FLOAT32_BYTES,
    )


def peak_live_bytes(nodes: Iterable[G.Node]) -> list[int]:
    """Bytes alive while each node runs: its inputs, its output and what later nodes still need."""
    nodes = list(nodes)
    last_use = {n.name: i for i, n in enumerate(nodes)}
    for i, node in enumerate(nodes):
        for source in node.inputs:
            last_use[source] = i
    size = {n.name: math.prod(n.shape) * FLOAT32_BYTES for n in nodes}
    live: set[str] = set()
    result = []
    for i, node in enumerate(nodes):
        live.add(node.name)
        result.append(sum(size[name] for name in live))
        live = {name for name in live if last_use[name] > i}
    return result


def count(spec: S.ModelSpec) -> Costs:
    """Every count of the model `spec` describes: per layer, per stage and in total."""
    nodes = G.build_graph(spec)
    shapes = {n.name: n.shape for n in nodes}
    layers = tuple(layer_cost(n, shapes) for n in nodes)
    live = peak_live_bytes(nodes)
    stages = tuple(_stage_costs(spec, nodes, layers, live))
    return Costs(spec=spec, layers=layers, stages=stages, peak_activation_bytes=max(live))


def _stage_costs(
    spec: S.ModelSpec, nodes: tuple[G.Node, ...], layers: tuple[LayerCost, ...], live: list[int]
) -> Iterable[StageCost]:
    blocks = S.expand_blocks(spec)
    indices: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        indices.setdefault(node.stage, []).append(i)
    for stage, index in indices.items():
        in_shape = spec.input_shape() if stage == "stem" else nodes[index[0] - 1].shape
        spatial = [n.shape for n in (nodes[i] for i in index) if len(n.shape) == 3]
        members = [b for b in blocks if str(b.stage) == stage]
        common = _StageFigures(
            stage=stage,
            input_resolution=in_shape[0],
            output_resolution=spatial[-1][0],
            params=sum(layers[i].params for i in index),
            macs=sum(layers[i].macs for i in index),
            peak_activation_bytes=max(live[i] for i in index),
        )
        if members:
            head = members[0]
            kernel = f"k{head.kernel_size}x{head.kernel_size}"
            yield StageCost(
                operator=f"{S.BLOCK_KINDS[head.kind]}{head.expand_ratio} {kernel}",
                channels=head.filters_out,
                layers=len(members),
                kernel_size=head.kernel_size,
                strides=head.strides,
                expand_ratio=head.expand_ratio,
                se=head.se_filters > 0,
                **common,
            )
            continue
        conv = next(n.op for n in (nodes[i] for i in index) if isinstance(n.op, G.Conv))
        operator = "Conv3x3" if stage == "stem" else "Conv1x1 & Pooling & FC"
        if stage == HEAD and not spec.include_top:
            operator = "Conv1x1" + (f" & {spec.pooling} pooling" if spec.pooling else "")
        yield StageCost(
            operator=operator,
            channels=conv.filters,
            layers=1,  # as the paper's Table 1 counts the stem and the head
            kernel_size=conv.kernel_size,
            strides=conv.strides,
            expand_ratio=0,
            se=False,
            **common,
        )


@dataclass(frozen=True)
class ScaleRow:
    """One row of `effnet scale-table`: a released member and/or the compound rule at its φ."""

    phi: float | None
    released: S.ModelSpec | None  # None where no member was released at this φ
    released_costs: Costs | None
    rule: S.ModelSpec | None  # None for members off the φ axis (L2, V2-S/M/L)
    rule_costs: Costs | None


# The members `scale-table` lists by default stop at this φ: the paper's table ends at B7 (B8
# and L2 came later, from AdvProp and Noisy Student); --phi-max 8 brings B8 in.
DEFAULT_PHI_MAX = {"b": 7.0}


def scale_rows(
    family: str,
    phis: list[float] | None = None,
    phi_max: float | None = None,
    alpha: float = S.ALPHA,
    beta: float = S.BETA,
    gamma: float = S.GAMMA,
) -> list[ScaleRow]:
    """Released members of `family` beside the compound rule at the same φ.

    Without `phis`, every released member with φ ≤ `phi_max` (default: B0–B7, every member of
    the other families) and, when no limit applies, the members off the φ axis (V2-S/M/L), which
    get no rule columns; with `phis`, exactly those φ values. A family without a φ = 0 member
    has no rule to compare with: its rows carry none.
    """
    members = S.members(family)
    on_axis = [v for v in members if v.phi is not None]
    limit = phi_max if phi_max is not None else DEFAULT_PHI_MAX.get(family)
    whole_family = phis is None and limit is None
    if phis is None:
        phis = sorted(
            {v.phi for v in on_axis if v.phi is not None and (limit is None or v.phi <= limit)}
        )
        if phi_max is not None:
            phis = sorted(set(phis) | {float(p) for p in range(int(phi_max) + 1)})
    has_rule = any(v.phi == 0 for v in on_axis)
    rows = []
    for phi in phis:
        member = next((v for v in on_axis if v.phi == phi), None)
        released = S.get_spec(member.name) if member else None
        rule = (
            S.get_spec(on_axis[0].name, phi=phi, alpha=alpha, beta=beta, gamma=gamma, rule=True)
            if has_rule
            else None
        )
        rows.append(
            ScaleRow(
                phi,
                released,
                count(released) if released else None,
                rule,
                count(rule) if rule else None,
            )
        )
    if whole_family:
        for member in (v for v in members if v.phi is None):
            spec = S.get_spec(member.name)
            rows.append(ScaleRow(None, spec, count(spec), None, None))
    return rows


def family_origin(family: str) -> Costs:
    """The costs of the family's first member (B0, Lite0, V2-B0): the unit of the ratio columns."""
    return count(S.get_spec(S.members(family)[0].name))
