"""The layer graph of a spec: every Keras layer, its name, operation and output shape. Pure Python.

`costs.py` counts over this graph and `builder.py` instantiates it, so the counter and the
model can never disagree. Layer names, classes and order are keras.applications' own: a
`.weights.h5` file is matched by layer class and order, a legacy `.h5` by order or name.
"""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli import spec as S

Shape = tuple[int, ...]  # without the batch axis: (H, W, C) or (C,)


@dataclass(frozen=True)
class Input:
    pass


@dataclass(frozen=True)
class Rescale:
    scale: float
    offset: float = 0.0


@dataclass(frozen=True)
class Normalize:
    """keras' Normalization: weights mean (C), variance (C) and count, all non-trainable."""

    mean: tuple[float, ...]
    variance: tuple[float, ...]


@dataclass(frozen=True)
class Pad:
    padding: tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Conv:
    filters: int
    kernel_size: int
    strides: int = 1
    padding: str = "same"
    use_bias: bool = False
    activation: str | None = None


@dataclass(frozen=True)
class DepthwiseConv:
    kernel_size: int
    strides: int = 1
    padding: str = "same"
    use_bias: bool = False


@dataclass(frozen=True)
class BatchNorm:
    pass


@dataclass(frozen=True)
class Act:
    activation: str


@dataclass(frozen=True)
class GlobalPool:
    kind: str  # "avg" or "max"


@dataclass(frozen=True)
class Reshape:
    target: Shape


@dataclass(frozen=True)
class Multiply:
    pass


@dataclass(frozen=True)
class Add:
    pass


@dataclass(frozen=True)
class Dropout:
    rate: float
    per_sample: bool = False  # drop-connect drops whole residual branches: noise (None,1,1,1)


@dataclass(frozen=True)
class Dense:
    units: int
    activation: str | None


@dataclass(frozen=True)
class Softmax:
    pass


Op = (
    Input | Rescale | Normalize | Pad | Conv | DepthwiseConv | BatchNorm | Act | GlobalPool
    | Reshape | Multiply | Add | Dropout | Dense | Softmax
)  # fmt: skip

# The Keras class each operation becomes: what `model.layers` reports.
KERAS_CLASS: dict[type, str] = {
    Input: "InputLayer",
    Rescale: "Rescaling",
    Normalize: "Normalization",
    Pad: "ZeroPadding2D",
    Conv: "Conv2D",
    DepthwiseConv: "DepthwiseConv2D",
    BatchNorm: "BatchNormalization",
    Act: "Activation",
    Reshape: "Reshape",
    Multiply: "Multiply",
    Add: "Add",
    Dropout: "Dropout",
    Dense: "Dense",
    Softmax: "Softmax",
}


@dataclass(frozen=True)
class Node:
    name: str
    op: Op
    inputs: tuple[str, ...]
    shape: Shape
    stage: str  # "stem", "1".."7", "head": the row of the stage table it belongs to

    @property
    def keras_class(self) -> str:
        if isinstance(self.op, GlobalPool):
            return "GlobalAveragePooling2D" if self.op.kind == "avg" else "GlobalMaxPooling2D"
        return KERAS_CLASS[type(self.op)]


def correct_pad(size: int, kernel_size: int) -> tuple[int, int]:
    """keras.applications' `correct_pad` on one axis: TF 'same' padding for a stride-2 conv."""
    adjust = 1 - size % 2
    half = kernel_size // 2
    return (half - adjust, half)


def conv_output(size: int, kernel_size: int, strides: int, padding: str) -> int:
    if padding == "same":
        return -(-size // strides)
    return (size - kernel_size) // strides + 1


class _Graph:
    """Appends nodes, tracking the shape of the last one: the builder's `x = layer(x)` idiom."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.shapes: dict[str, Shape] = {}

    @property
    def last(self) -> Node:
        return self.nodes[-1]

    def add(self, name: str, op: Op, stage: str, *inputs: str) -> str:
        sources = inputs or ((self.last.name,) if self.nodes else ())
        self.append(
            Node(name, op, tuple(sources), _shape(op, [self.shapes[s] for s in sources]), stage)
        )
        return name

    def append(self, node: Node) -> None:
        self.nodes.append(node)
        self.shapes[node.name] = node.shape


def _shape(op: Op, inputs: list[Shape]) -> Shape:
    shape = inputs[0] if inputs else ()
    match op:
        case Pad(padding=((top, bottom), (left, right))):
            return (shape[0] + top + bottom, shape[1] + left + right, shape[2])
        case Conv(filters=f, kernel_size=k, strides=s, padding=p):
            return (conv_output(shape[0], k, s, p), conv_output(shape[1], k, s, p), f)
        case DepthwiseConv(kernel_size=k, strides=s, padding=p):
            return (conv_output(shape[0], k, s, p), conv_output(shape[1], k, s, p), shape[2])
        case GlobalPool():
            return (shape[-1],)
        case Reshape(target=target):
            return target
        case Dense(units=units):
            return (units,)
    return shape


def build_graph(spec: S.ModelSpec) -> tuple[Node, ...]:
    """Every layer of the model, in keras.applications' order."""
    g = _Graph()
    g.append(Node("input_layer", Input(), (), spec.input_shape(), "stem"))
    _preprocessing(g, spec)
    _stem(g, spec)
    for block in S.expand_blocks(spec):
        _block(g, spec, block)
    _head(g, spec)
    return tuple(g.nodes)


def _preprocessing(g: _Graph, spec: S.ModelSpec) -> None:
    if not spec.preprocessing or spec.family.preprocessing == "none":
        return
    if spec.family.preprocessing == "imagenet":
        g.add("rescaling", Rescale(1.0 / 255.0), "stem")
        variance = tuple(s * s for s in S.IMAGENET_STDDEV_RGB)
        g.add("normalization", Normalize(S.IMAGENET_MEAN_RGB, variance), "stem")
    else:  # "lite": (x - 127) / 128, the official Lite models' input contract
        g.add("rescaling", Rescale(1.0 / 128.0, -127.0 / 128.0), "stem")


def _stride2_pad(g: _Graph, name: str, kernel_size: int, stage: str) -> None:
    height, width = g.last.shape[:2]
    g.add(name, Pad((correct_pad(height, kernel_size), correct_pad(width, kernel_size))), stage)


def _strided_padding(g: _Graph, spec: S.ModelSpec, name: str, kernel_size: int, stage: str) -> str:
    """keras.applications pads explicitly, then convolves 'valid'; the seed notebook uses 'same'."""
    if not spec.family.explicit_padding:
        return "same"
    _stride2_pad(g, name, kernel_size, stage)
    return "valid"


def _stem(g: _Graph, spec: S.ModelSpec) -> None:
    family = spec.family
    padding = _strided_padding(g, spec, "stem_conv_pad", 3, "stem")
    stem = Conv(S.stem_filters(spec), 3, strides=2, padding=padding, use_bias=family.conv_bias)
    g.add("stem_conv", stem, "stem")
    g.add("stem_bn", BatchNorm(), "stem")
    g.add("stem_activation", Act(family.activation), "stem")


def _block(g: _Graph, spec: S.ModelSpec, block: S.Block) -> None:
    family = spec.family
    n, stage, act, bias = block.name, str(block.stage), family.activation, family.conv_bias
    inputs = g.last.name
    if block.expand_ratio != 1 or family.always_expand:
        g.add(f"{n}expand_conv", Conv(block.filters, 1, use_bias=bias), stage)
        g.add(f"{n}expand_bn", BatchNorm(), stage)
        g.add(f"{n}expand_activation", Act(act), stage)
    padding = "same"
    if block.strides == 2:
        padding = _strided_padding(g, spec, f"{n}dwconv_pad", block.kernel_size, stage)
    dwconv = DepthwiseConv(block.kernel_size, block.strides, padding, use_bias=bias)
    g.add(f"{n}dwconv", dwconv, stage)
    g.add(f"{n}bn", BatchNorm(), stage)
    features = g.add(f"{n}activation", Act(act), stage)
    if block.se_filters:
        _squeeze_excite(g, family, block, stage)
        g.add(f"{n}se_excite", Multiply(), stage, features, g.last.name)
    g.add(f"{n}project_conv", Conv(block.filters_out, 1, use_bias=bias), stage)
    g.add(f"{n}project_bn", BatchNorm(), stage)
    if block.residual:
        if block.drop_rate > 0:
            g.add(f"{n}drop", Dropout(block.drop_rate, per_sample=True), stage)
        g.add(f"{n}add", Add(), stage, g.last.name, inputs)


def _squeeze_excite(g: _Graph, family: S.FamilySpec, block: S.Block, stage: str) -> None:
    n, act, gate = block.name, family.activation, family.se_gate
    g.add(f"{n}se_squeeze", GlobalPool("avg"), stage)
    g.add(f"{n}se_reshape", Reshape((1, 1, block.filters)), stage)
    if family.separate_activations:  # the seed notebook: Activation layers after each conv
        g.add(f"{n}se_reduce", Conv(block.se_filters, 1, use_bias=True), stage)
        g.add(f"{n}se_reduce_activation", Act(act), stage)
        g.add(f"{n}se_expand", Conv(block.filters, 1, use_bias=True), stage)
        g.add(f"{n}se_expand_activation", Act(gate), stage)
    else:
        g.add(f"{n}se_reduce", Conv(block.se_filters, 1, use_bias=True, activation=act), stage)
        g.add(f"{n}se_expand", Conv(block.filters, 1, use_bias=True, activation=gate), stage)


def _head(g: _Graph, spec: S.ModelSpec) -> None:
    family = spec.family
    g.add("top_conv", Conv(S.head_filters(spec), 1, use_bias=family.conv_bias), "head")
    g.add("top_bn", BatchNorm(), "head")
    g.add("top_activation", Act(family.activation), "head")
    if spec.include_top:
        g.add("avg_pool", GlobalPool("avg"), "head")
        if spec.dropout > 0:
            g.add("top_dropout", Dropout(spec.dropout), "head")
        softmax = spec.classifier_activation == "softmax"
        if family.separate_activations:  # the seed notebook: Dense, then a Softmax layer
            g.add("predictions", Dense(spec.num_classes, None), "head")
            if softmax:
                g.add("probabilities", Softmax(), "head")
        else:
            g.add("predictions", Dense(spec.num_classes, "softmax" if softmax else None), "head")
    elif spec.pooling is not None:
        g.add(f"{spec.pooling}_pool", GlobalPool(spec.pooling), "head")
