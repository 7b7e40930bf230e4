"""The physical limit of a model, layer by layer: a roofline (Williams, Waterman & Patterson,
CACM 2009, https://doi.org/10.1145/1498765.1498785). Pure Python.

Per layer, at a precision and a batch:
- MACs: the layer's MACs (`costs.py`'s convention: convolutions and the classifier only) × batch;
- bytes moved: every input tensor read (the outputs of its producer layers: a residual `Add` and
  the squeeze-excitation `Multiply` read two) and its output written, × batch, plus its weights
  read once per call (`params`, BatchNorm's moving statistics included: inference reads them),
  not × batch;
- arithmetic intensity: MACs / bytes.
On a `Machine` (peak MAC/s at that precision, memory bandwidth in bytes/s) a layer takes at least
max(MACs / peak, bytes / bandwidth): "compute" bound where the first is larger (or equal),
"memory" bound where the second is. The model's limit is the sum over its layers.

What it leaves out, on purpose (it is a bound to compare a measurement with, not a simulator):
- caches: every tensor goes to and from memory; a small feature map that stays in cache
  moves less, so a real layer can beat its memory time;
- fusion: a runtime that folds BatchNorm into the convolution before it and fuses activations,
  the residual `Add` and the SE `Multiply` into a neighbour never writes those tensors out.
  Element-wise layers (BatchNorm, activations, `Add`, `Multiply`, Rescaling, Normalization,
  padding, pooling) are kept here as the layers they are: no MACs, their bytes moved, so memory
  bound. That is the point: EfficientNet's depthwise convolutions and squeeze-excitation are
  memory bound, and the element-wise layers show what an unfused runtime pays;
- the overlap of compute and memory within a layer is taken as perfect (the max), and between
  layers as none (the sum);
- weights are read once per call whatever the batch; biases and the quantization scales of
  int8 are counted at the precision's element size, like every other weight.
Layers that move nothing at inference count zero bytes and zero time, bound by "none": the
input layer (the images are already in memory), `Reshape` (a view of its input) and `Dropout`
(the identity outside training). Their consumers read the tensor all the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from effnet_cli.model import costs as C
from effnet_cli.model import graph as G

Bound = Literal["compute", "memory", "none"]


@dataclass(frozen=True)
class ElementBytes:
    """Bytes of one element of a precision: of the activations and of the weights."""

    activations: int
    weights: int


# The precision names `bench --precision` and `export --quantize` use (backends/).
PRECISIONS: Mapping[str, ElementBytes] = {
    "fp32": ElementBytes(4, 4),
    "bf16": ElementBytes(2, 2),
    "fp16": ElementBytes(2, 2),
    "int8": ElementBytes(1, 1),
    "dynamic": ElementBytes(4, 1),  # int8 weights, float activations (backends/record.py)
}

# Keras classes that move no data at inference (see the module's docstring).
NO_TRAFFIC = frozenset({"InputLayer", "Reshape", "Dropout"})


@dataclass(frozen=True)
class LayerTraffic:
    """What one layer computes and moves for one call on a batch."""

    name: str
    keras_class: str
    stage: str
    macs: int  # × batch
    input_bytes: int  # every input tensor, × batch
    output_bytes: int  # × batch
    weight_bytes: int  # once per call

    @property
    def bytes(self) -> int:
        return self.input_bytes + self.output_bytes + self.weight_bytes

    @property
    def macs_per_byte(self) -> float | None:
        """Arithmetic intensity; None for a layer that moves nothing."""
        return self.macs / self.bytes if self.bytes else None


@dataclass(frozen=True)
class Traffic:
    """Every layer's traffic, at one precision and batch."""

    precision: str
    batch: int
    layers: tuple[LayerTraffic, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def macs_per_byte(self) -> float | None:
        return self.macs / self.bytes if self.bytes else None


@dataclass(frozen=True)
class Machine:
    """The two roofs: peak multiply-adds per second at a precision, memory bandwidth."""

    peak_macs_per_s: float
    bandwidth_bytes_per_s: float

    def __post_init__(self) -> None:
        for what, value in (
            ("peak_macs_per_s", self.peak_macs_per_s),
            ("bandwidth_bytes_per_s", self.bandwidth_bytes_per_s),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{what} must be a positive number, not {value!r}")

    @property
    def ridge_macs_per_byte(self) -> float:
        """The intensity above which a layer is compute bound."""
        return self.peak_macs_per_s / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class LayerLimit:
    name: str
    compute_s: float  # MACs / peak
    memory_s: float  # bytes / bandwidth

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> Bound:
        if self.seconds == 0:
            return "none"
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class Limit:
    """The least time one call on a batch can take on a machine: the sum of its layers'."""

    machine: Machine
    precision: str
    batch: int
    layers: tuple[LayerLimit, ...]

    @property
    def seconds(self) -> float:
        return sum(layer.seconds for layer in self.layers)

    @property
    def images_per_s(self) -> float:
        return self.batch / self.seconds if self.seconds else math.inf

    def seconds_bound_by(self, bound: Bound) -> float:
        """The part of `seconds` spent in layers of one bound."""
        return sum(layer.seconds for layer in self.layers if layer.bound == bound)


def element_bytes(precision: str) -> ElementBytes:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(
            f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}"
        ) from None


def traffic(costs: C.Costs, precision: str = "fp32", batch: int = 1) -> Traffic:
    """MACs and bytes moved by every layer of `costs` for one call on `batch` images."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    size = element_bytes(precision)
    # The producers of each layer: the graph the costs were counted over (costs.count).
    nodes = G.build_graph(costs.spec)
    if [n.name for n in nodes] != [layer.name for layer in costs.layers]:
        raise ValueError(f"the costs do not hold the layers of {costs.spec.name}'s graph")
    elements = {layer.name: math.prod(layer.shape) for layer in costs.layers}
    layers = []
    for node, layer in zip(nodes, costs.layers, strict=True):
        moves = layer.keras_class not in NO_TRAFFIC
        read = sum(elements[source] for source in node.inputs) if moves else 0
        written = elements[layer.name] if moves else 0
        layers.append(
            LayerTraffic(
                name=layer.name,
                keras_class=layer.keras_class,
                stage=layer.stage,
                macs=layer.macs * batch,
                input_bytes=read * size.activations * batch,
                output_bytes=written * size.activations * batch,
                weight_bytes=layer.params * size.weights,
            )
        )
    return Traffic(precision=precision, batch=batch, layers=tuple(layers))


def limit(traffic: Traffic, machine: Machine) -> Limit:
    """Each layer's least time on `machine`, and which roof sets it."""
    layers = tuple(
        LayerLimit(
            name=layer.name,
            compute_s=layer.macs / machine.peak_macs_per_s,
            memory_s=layer.bytes / machine.bandwidth_bytes_per_s,
        )
        for layer in traffic.layers
    )
    return Limit(machine=machine, precision=traffic.precision, batch=traffic.batch, layers=layers)
