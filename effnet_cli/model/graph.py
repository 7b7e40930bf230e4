"""The layer graph of a spec: every Keras layer, its name, operation and output shape. Pure Python.

`costs.py` counts over this graph and `builder.py` instantiates it, so the counter and the
model can never disagree. Layer names, classes and order are keras.applications' own: a
`.weights.h5` file is matched by layer class and order, a legacy `.h5` by order or name.
"""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli.model import spec as S

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
    """keras' Normalization. As weights (V1): mean (C), variance (C) and count, non-trainable;
    given as constants (V2), it holds no weights at all."""

    mean: tuple[float, ...]
    variance: tuple[float, ...]
    as_weights: bool = True


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
    momentum: float  # of the moving statistics: 0.99 in V1, 0.9 in V2


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
    normalization = S.PREPROCESSING[spec.family.preprocessing]
    if not spec.preprocessing or normalization is None:
        return
    g.add("rescaling", Rescale(normalization.scale, normalization.offset), "stem")
    if normalization.mean:
        op = Normalize(normalization.mean, normalization.variance, normalization.stats_as_weights)
        g.add("normalization", op, "stem")


def _stride2_pad(g: _Graph, name: str, kernel_size: int, stage: str) -> None:
    height, width = g.last.shape[:2]
    g.add(name, Pad((correct_pad(height, kernel_size), correct_pad(width, kernel_size))), stage)


def _padding(
    g: _Graph, spec: S.ModelSpec, name: str, kernel_size: int, strides: int, stage: str
) -> str:
    """keras.applications' V1 pads a stride-2 conv explicitly, then convolves 'valid'; V2 and
    the seed notebook use 'same'. Returns the conv's padding."""
    if strides == 1 or spec.family.padding == "same":
        return "same"
    _stride2_pad(g, f"{name}_pad", kernel_size, stage)
    return "valid"


def _conv_bn_act(
    g: _Graph, spec: S.ModelSpec, name: str, conv: Conv, stage: str, activation: bool = True
) -> None:
    """`{name}_conv`, `{name}_bn`, [`{name}_activation`]: stem, expand, project and top."""
    g.add(f"{name}_conv", conv, stage)
    g.add(f"{name}_bn", BatchNorm(spec.family.bn_momentum), stage)
    if activation:
        g.add(f"{name}_activation", Act(spec.family.activation), stage)


def _stem(g: _Graph, spec: S.ModelSpec) -> None:
    padding = _padding(g, spec, "stem_conv", 3, 2, "stem")
    conv = Conv(S.stem_filters(spec), 3, 2, padding, use_bias=spec.family.conv_bias)
    _conv_bn_act(g, spec, "stem", conv, "stem")


def _expands(family: S.FamilySpec, block: S.Block) -> bool:
    return block.expand_ratio != 1 or family.always_expand


def _block(g: _Graph, spec: S.ModelSpec, block: S.Block) -> None:
    n, stage = block.name, str(block.stage)
    inputs = g.last.name
    (_fused if block.kind == "fused" else _mbconv)(g, spec, block)
    if block.residual:
        if block.drop_rate > 0:
            g.add(f"{n}drop", Dropout(block.drop_rate, per_sample=True), stage)
        g.add(f"{n}add", Add(), stage, g.last.name, inputs)


def _mbconv(g: _Graph, spec: S.ModelSpec, block: S.Block) -> None:
    """1x1 expand, k x k depthwise (stride s), [SE], 1x1 project."""
    family = spec.family
    n, stage, bias = block.name, str(block.stage), family.conv_bias
    if _expands(family, block):
        _conv_bn_act(g, spec, f"{n}expand", Conv(block.filters, 1, use_bias=bias), stage)
    dwconv = f"{n}{family.depthwise_name}"
    padding = _padding(g, spec, dwconv, block.kernel_size, block.strides, stage)
    g.add(dwconv, DepthwiseConv(block.kernel_size, block.strides, padding, use_bias=bias), stage)
    g.add(f"{n}bn", BatchNorm(family.bn_momentum), stage)
    g.add(f"{n}activation", Act(family.activation), stage)
    _squeeze_excite(g, family, block, stage)
    _project(g, spec, block, Conv(block.filters_out, 1, use_bias=bias), activation=False)


def _fused(g: _Graph, spec: S.ModelSpec, block: S.Block) -> None:
    """Fused-MBConv (V2): k x k expand (stride s), [SE], 1x1 project; with no expansion, one
    k x k stride-s project conv that keeps its activation."""
    family = spec.family
    n, stage, bias = block.name, str(block.stage), family.conv_bias
    k, s = block.kernel_size, block.strides
    if _expands(family, block):
        padding = _padding(g, spec, f"{n}expand_conv", k, s, stage)
        _conv_bn_act(
            g, spec, f"{n}expand", Conv(block.filters, k, s, padding, use_bias=bias), stage
        )
        k, s = 1, 1  # the expansion did the spatial work
    _squeeze_excite(g, family, block, stage)
    padding = _padding(g, spec, f"{n}project_conv", k, s, stage)
    conv = Conv(block.filters_out, k, s, padding, use_bias=bias)
    _project(g, spec, block, conv, activation=not _expands(family, block))


def _project(g: _Graph, spec: S.ModelSpec, block: S.Block, conv: Conv, activation: bool) -> None:
    _conv_bn_act(g, spec, f"{block.name}project", conv, str(block.stage), activation)


def _squeeze_excite(g: _Graph, family: S.FamilySpec, block: S.Block, stage: str) -> None:
    """Squeeze-and-excitation of the last node's features, where the block has it."""
    if not block.se_filters:
        return
    n, act, gate = block.name, family.activation, family.se_gate
    features = g.last.name
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
    g.add(f"{n}se_excite", Multiply(), stage, features, g.last.name)


def _head(g: _Graph, spec: S.ModelSpec) -> None:
    family = spec.family
    _conv_bn_act(g, spec, "top", Conv(S.head_filters(spec), 1, use_bias=family.conv_bias), "head")
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
