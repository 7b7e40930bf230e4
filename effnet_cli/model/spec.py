"""The declarative description of every EfficientNet effnet builds. Pure Python, no TensorFlow.

One table per fact: the block table of each network (`B0_STAGES`, `V2_*_STAGES`), what each
family does differently (`FAMILIES`), how each family's model normalizes its input
(`PREPROCESSING`), the released coefficients of each variant (`VARIANTS`), the published
figures (`PUBLISHED`). `get_spec` turns a name plus overrides into a frozen, validated
`ModelSpec`; `expand_blocks` turns a spec into the concrete blocks (kind, names, filters,
strides, drop-connect rates) that both `graph.py` (and so the builder and the counter) read.
Adding a family is adding data here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Literal, TypedDict, get_args

from effnet_cli.util.errors import UsageError, choices

if TYPE_CHECKING:
    from typing import Unpack

Activation = Literal["swish", "relu6"]
Preprocessing = Literal["imagenet", "imagenet-constants", "lite", "v2", "none"]
ClassifierActivation = Literal["softmax", "none"]
Pooling = Literal["avg", "max"]
# The values the CLI validates, completes and lists in --help: one table each.
CLASSIFIER_ACTIVATIONS: tuple[str, ...] = get_args(ClassifierActivation)
POOLINGS: tuple[str, ...] = get_args(Pooling)
BlockKind = Literal["mbconv", "fused"]
Padding = Literal["explicit", "same"]
DropConnectCount = Literal["scaled", "declared"]

# The block kinds, as the stage table of `summary` names them (the V2 paper's Table 4).
BLOCK_KINDS: dict[str, str] = {"mbconv": "MBConv", "fused": "Fused-MBConv"}

# ImageNet statistics of keras.applications (and the TPU reference), on [0, 1] pixels.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
IMAGENET_VARIANCE_RGB = tuple(s * s for s in IMAGENET_STDDEV_RGB)

# The paper's compound rule (Section 3.3): depth = ALPHA**phi, width = BETA**phi,
# resolution = GAMMA**phi, chosen by grid search so that ALPHA * BETA**2 * GAMMA**2 ~= 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

MAX_RESOLUTION = 2048
MIN_RESOLUTION = 32  # keras.applications' own minimum

V1_FILTER_FLOOR = 0.9  # V1's round_filters never rounds below 90 % of the scaled width


def round_filters(
    filters: int, width: float, divisor: int = 8, floor: float = V1_FILTER_FLOOR
) -> int:
    """Scale a channel count by `width`, to the nearest multiple of `divisor`, never below
    `floor` of the scaled value (V1: 90 %; V2 has no floor, 0).

    The same arithmetic as keras.applications and the TPU/automl builders (their int()
    truncation included), so the scaled widths — and so weights — are identical.
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < floor * scaled:  # V1: rounding down must not lose more than 10 %
        rounded += divisor
    return rounded


def round_repeats(repeats: int, depth: float) -> int:
    """Scale a stage's block count by `depth`, rounding up."""
    return math.ceil(depth * repeats)


def block_letter(index: int) -> str:
    """keras.applications' block suffix: a, b, … z, then aa, ab, … (keras itself would emit '{')."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(97 + rest) + letters
    return letters


# A stage as a block string: the TPU builder's V1 notation ('r1_k3_s11_e1_i32_o16_se0.25') with
# automl's V2 conv-type field before the SE ratio (c0 MBConv, c1 Fused-MBConv). Both fields are
# always written, so every string says its kind and its SE, and decode(encode(s)) == s.
_BLOCK_STRING = re.compile(r"r(\d+)_k(\d+)_s(\d)\3_e(\d+)_i(\d+)_o(\d+)_c([01])_se(\d+(?:\.\d+)?)")
_CONV_TYPES: tuple[BlockKind, ...] = ("mbconv", "fused")  # automl's conv_type 0 and 1


@dataclass(frozen=True)
class StageSpec:
    """One row of a block table, before scaling."""

    kind: BlockKind
    expand_ratio: int
    kernel_size: int
    strides: int
    filters_in: int
    filters_out: int
    repeats: int
    se_ratio: float  # of the block's input filters; 0 means no squeeze-and-excitation

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {self.kind!r}; valid: {choices(BLOCK_KINDS)}")
        if self.kernel_size not in (1, 3, 5, 7) or self.strides not in (1, 2):
            raise ValueError(f"invalid stage {self}")
        if min(self.expand_ratio, self.filters_in, self.filters_out, self.repeats) < 1:
            raise ValueError(f"invalid stage {self}")
        if not 0 <= self.se_ratio <= 1:
            raise ValueError(f"se_ratio must lie in [0, 1], not {self.se_ratio}")

    def encode(self) -> str:
        """The block string: 'r1_k3_s11_e1_i32_o16_c0_se0.25', 'r2_k3_s22_e4_i24_o48_c1_se0'."""
        s = self.strides
        return (
            f"r{self.repeats}_k{self.kernel_size}_s{s}{s}_e{self.expand_ratio}"
            f"_i{self.filters_in}_o{self.filters_out}_c{_CONV_TYPES.index(self.kind)}"
            f"_se{self.se_ratio:g}"
        )

    @classmethod
    def decode(cls, text: str) -> StageSpec:
        match = _BLOCK_STRING.fullmatch(text)
        if not match:
            raise ValueError(
                f"not a block string: {text!r} (e.g. 'r1_k3_s11_e1_i32_o16_c0_se0.25')"
            )
        r, k, s, e, i, o, c = (int(g) for g in match.group(1, 2, 3, 4, 5, 6, 7))
        return cls(
            kind=_CONV_TYPES[c],
            expand_ratio=e,
            kernel_size=k,
            strides=s,
            filters_in=i,
            filters_out=o,
            repeats=r,
            se_ratio=float(match.group(8)),
        )


def _stages(*codes: str) -> tuple[StageSpec, ...]:
    return tuple(StageSpec.decode(code) for code in codes)


# The paper's Table 1 (B0 before scaling), exactly as keras.applications' DEFAULT_BLOCKS_ARGS.
B0_STAGES = _stages(
    "r1_k3_s11_e1_i32_o16_c0_se0.25",
    "r2_k3_s22_e6_i16_o24_c0_se0.25",
    "r2_k5_s22_e6_i24_o40_c0_se0.25",
    "r3_k3_s22_e6_i40_o80_c0_se0.25",
    "r3_k5_s11_e6_i80_o112_c0_se0.25",
    "r4_k5_s22_e6_i112_o192_c0_se0.25",
    "r1_k3_s11_e6_i192_o320_c0_se0.25",
)

# EfficientNetV2's block tables, as keras.applications' efficientnet_v2.DEFAULT_BLOCKS_ARGS and
# google/automl efficientnetv2/effnetv2_configs.py: Fused-MBConv without SE in the early, wide-
# resolution stages (depthwise convs use accelerators poorly there), MBConv with SE after.
# V2-B0..B3 scale the base table by width and depth; S, M and L each have a table of their own.
V2_BASE_STAGES = _stages(
    "r1_k3_s11_e1_i32_o16_c1_se0",
    "r2_k3_s22_e4_i16_o32_c1_se0",
    "r2_k3_s22_e4_i32_o48_c1_se0",
    "r3_k3_s22_e4_i48_o96_c0_se0.25",
    "r5_k3_s11_e6_i96_o112_c0_se0.25",
    "r8_k3_s22_e6_i112_o192_c0_se0.25",
)
V2_S_STAGES = _stages(
    "r2_k3_s11_e1_i24_o24_c1_se0",
    "r4_k3_s22_e4_i24_o48_c1_se0",
    "r4_k3_s22_e4_i48_o64_c1_se0",
    "r6_k3_s22_e4_i64_o128_c0_se0.25",
    "r9_k3_s11_e6_i128_o160_c0_se0.25",
    "r15_k3_s22_e6_i160_o256_c0_se0.25",
)
V2_M_STAGES = _stages(
    "r3_k3_s11_e1_i24_o24_c1_se0",
    "r5_k3_s22_e4_i24_o48_c1_se0",
    "r5_k3_s22_e4_i48_o80_c1_se0",
    "r7_k3_s22_e4_i80_o160_c0_se0.25",
    "r14_k3_s11_e6_i160_o176_c0_se0.25",
    "r18_k3_s22_e6_i176_o304_c0_se0.25",
    "r5_k3_s11_e6_i304_o512_c0_se0.25",
)
V2_L_STAGES = _stages(
    "r4_k3_s11_e1_i32_o32_c1_se0",
    "r7_k3_s22_e4_i32_o64_c1_se0",
    "r7_k3_s22_e4_i64_o96_c1_se0",
    "r10_k3_s22_e4_i96_o192_c0_se0.25",
    "r19_k3_s11_e6_i192_o224_c0_se0.25",
    "r25_k3_s22_e6_i224_o384_c0_se0.25",
    "r7_k3_s11_e6_i384_o640_c0_se0.25",
)


@dataclass(frozen=True)
class InputNormalization:
    """What a model does to [0, 255] RGB pixels before its stem: x * scale + offset, then
    (where `mean` is given) a Normalization layer with that mean and variance."""

    inside: str  # for people: `summary`, export metadata
    expects_without: str  # what a caller must feed with --no-preprocessing
    scale: float
    offset: float = 0.0
    mean: tuple[float, ...] = ()
    variance: tuple[float, ...] = ()
    # keras.applications' V1 builds Normalization(axis) and loads mean, variance and count as
    # weights (7 parameters); its V2 passes mean and variance, which Keras 3 keeps as constants.
    stats_as_weights: bool = False


_IMAGENET_NORMALIZED = "ImageNet-normalized pixels: (x / 255 - mean) / std"
PREPROCESSING: dict[str, InputNormalization | None] = {
    "imagenet": InputNormalization(
        "Rescaling(1/255), Normalization(ImageNet mean and std)", _IMAGENET_NORMALIZED,
        1.0 / 255.0, mean=IMAGENET_MEAN_RGB, variance=IMAGENET_VARIANCE_RGB,
        stats_as_weights=True,
    ),
    "imagenet-constants": InputNormalization(
        "Rescaling(1/255), Normalization(ImageNet mean and std, as constants)",
        _IMAGENET_NORMALIZED, 1.0 / 255.0, mean=IMAGENET_MEAN_RGB, variance=IMAGENET_VARIANCE_RGB,
    ),
    # The official Lite models' input contract.
    "lite": InputNormalization("Rescaling: (x - 127) / 128", "(x - 127) / 128",
                               1.0 / 128.0, -127.0 / 128.0),
    # keras.applications' Rescaling(1/128, offset=-1) for V2-S/M/L (automl trains on it).
    "v2": InputNormalization("Rescaling: (x - 128) / 128", "(x - 128) / 128, in [-1, 1)",
                             1.0 / 128.0, -1.0),
    "none": None,
}  # fmt: skip


@dataclass(frozen=True)
class FamilySpec:
    """One network design, apart from its per-variant coefficients.

    A family (its `name`) usually has one; V2 has four: the base table that V2-B0..B3 scale,
    and the tables of S, M and L (`V2_NETWORKS`). The stem takes the first stage's declared
    input filters (32 in every V1 table; keras.applications' V2 reads it from its table).
    """

    name: str
    title: str
    stages: tuple[StageSpec, ...]
    activation: Activation
    preprocessing: Preprocessing
    head_filters: int = 1280
    scale_stem_head: bool = True
    # Stages (0-based) whose repeats are not depth-scaled (Lite keeps the first and last).
    fixed_repeat_stages: tuple[int, ...] = ()
    # Stages (0-based) whose output filters are not width-scaled (the seed notebook's block 1).
    fixed_filter_stages: tuple[int, ...] = ()
    filter_floor: float = V1_FILTER_FLOOR  # round_filters' floor; 0: none (V2)
    drop_connect: float = 0.2  # the final stochastic-depth rate, unless overridden
    # Block i's drop-connect rate is drop_connect * i / n. keras.applications' V1 (and the TPU
    # and automl builders) count n over the scaled blocks; its V2 over the table's declared
    # repeats, so V2-B1..B3's last blocks pass 0.2 (training only; no weight depends on it).
    drop_connect_count: DropConnectCount = "scaled"
    bn_momentum: float = 0.99  # epsilon is 1e-3 in every family
    # How the layers are put together. keras.applications' V1: explicit ZeroPadding2D before
    # each stride-2 conv, no conv biases, SE activations fused into its convs, the classifier's
    # softmax inside Dense. The seed notebook differs in each (see `deviations`); V2 pads "same".
    padding: Padding = "explicit"
    depthwise_name: str = "dwconv"  # the MBConv depthwise layer's suffix; V2: "dwconv2"
    conv_bias: bool = False
    always_expand: bool = False
    se_gate: Literal["sigmoid", "softmax"] = "sigmoid"
    # >0: where a stage has SE, its width is expanded filters // this (4 when it does not
    # divide) instead of se_ratio of the input filters (the seed notebook).
    se_reduction: int = 0
    separate_activations: bool = False
    deviations: tuple[str, ...] = ()  # from the paper, each with why it matters

    def __post_init__(self) -> None:
        for stages in (self.fixed_repeat_stages, self.fixed_filter_stages):
            if any(not 0 <= i < len(self.stages) for i in stages):
                raise ValueError(f"fixed stage index out of range in family {self.name}")
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"unknown preprocessing {self.preprocessing!r}")
        if self.padding not in ("explicit", "same"):
            raise ValueError(f"unknown padding {self.padding!r}; valid: explicit or same")
        if self.drop_connect_count not in ("scaled", "declared"):
            raise ValueError(f"unknown drop-connect count {self.drop_connect_count!r}")
        if not (0 <= self.filter_floor < 1 and 0 < self.bn_momentum < 1):
            raise ValueError(f"filter_floor or bn_momentum out of range in family {self.name}")


FAMILIES: dict[str, FamilySpec] = {
    "b": FamilySpec(
        name="b",
        title="EfficientNet",
        stages=B0_STAGES,
        activation="swish",
        preprocessing="imagenet",
    ),
    # tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py
    "lite": FamilySpec(
        name="lite",
        title="EfficientNet-Lite",
        # no SE: its global pooling and gating are slow on mobile accelerators
        stages=tuple(replace(stage, se_ratio=0.0) for stage in B0_STAGES),
        activation="relu6",  # quantization-friendly: a bounded range survives int8
        preprocessing="lite",
        scale_stem_head=False,  # keeps the cheap ends cheap as the model grows
        fixed_repeat_stages=(0, 6),
    ),
    # The seed notebook (tests/data/seed-notebook.txt), reproduced exactly as its code builds it.
    "seed": FamilySpec(
        name="seed",
        title="seed notebook EfficientNet",
        stages=B0_STAGES,
        activation="relu6",
        se_reduction=24,
        se_gate="softmax",
        preprocessing="none",
        scale_stem_head=False,
        fixed_repeat_stages=(0,),
        fixed_filter_stages=(0,),
        drop_connect=0.0,
        padding="same",
        conv_bias=True,
        always_expand=True,
        separate_activations=True,
        deviations=(
            "width and depth coefficients are swapped in its table (seed-b1 is wider, not "
            "deeper): seed-bN is not BN's shape, and BN's weights cannot load",
            "ReLU6 instead of swish: a different, less accurate network",
            "the SE gate is a softmax over channels, not a sigmoid: gates sum to 1, so each "
            "channel is scaled by ~1/C and the block's output shrinks with width",
            "the SE width comes from the expanded channels (reduction 24, or 4 when 24 does not "
            "divide) instead of a quarter of the input channels: different parameter counts",
            "every convolution carries a bias although BatchNorm follows: parameters that "
            "BatchNorm cancels",
            "stem, block 1 and head are not scaled: the ends stay B0-sized in every variant",
            "a 1x1 'expansion' conv even where the ratio is 1: an extra layer in block 1",
            "'same' padding on stride-2 convolutions instead of keras.applications' explicit "
            "ZeroPadding2D: identical at a fixed input size, a different layer sequence",
            "no dropout, no drop-connect and no input preprocessing: inputs must be prepared "
            "by the caller, and training regularization is missing",
        ),
    ),
    # EfficientNetV2 (Tan & Le, ICML 2021) as keras.applications.EfficientNetV2B0..B3 builds it
    # (keras/src/applications/efficientnet_v2.py): each field below is a difference from V1
    # that would break weight loading if missed (the block kinds and SE are in the table).
    "v2": FamilySpec(
        name="v2",
        title="EfficientNetV2",
        stages=V2_BASE_STAGES,
        activation="swish",
        preprocessing="imagenet-constants",  # B0–B3 keep V1's input contract
        filter_floor=0.0,  # no 90 % floor: with it V2-B3's stage 1 would be 24 wide, not 16
        drop_connect_count="declared",
        bn_momentum=0.9,
        padding="same",  # no ZeroPadding2D layers
        depthwise_name="dwconv2",
    ),
}

# V2-S, M and L: tables of their own (the paper scaled them by hand, §4, not by width and
# depth) and (x - 128) / 128 inputs; otherwise V2.
V2_NETWORKS: dict[str, FamilySpec] = {
    name: replace(FAMILIES["v2"], stages=stages, preprocessing="v2")
    for name, stages in (("s", V2_S_STAGES), ("m", V2_M_STAGES), ("l", V2_L_STAGES))
}


@dataclass(frozen=True)
class Variant:
    """A released member of a family: its network, compound and scaling coefficients.

    `resolution` is the default input size: the official evaluation size (keras.applications'
    default_size); `dropout` the rate keras.applications builds (PUBLISHED holds the official
    training figures where they differ).
    """

    name: str
    family: FamilySpec
    phi: float | None  # None where the member is not a step of the compound rule (L2, V2-S/M/L)
    width: float
    depth: float
    resolution: int
    dropout: float


def _variants(family: FamilySpec, rows: str) -> dict[str, Variant]:
    table = {}
    for row in rows.strip().splitlines():
        name, phi, width, depth, resolution, dropout = row.split()
        table[name] = Variant(
            name=name,
            family=family,
            phi=None if phi == "-" else float(phi),
            width=float(width),
            depth=float(depth),
            resolution=int(resolution),
            dropout=float(dropout),
        )
    return table


# name, phi, width, depth, resolution, dropout — keras.applications / the TPU builder's
# efficientnet_params(), AdvProp's B8 and Noisy Student's L2; keras.applications'
# EfficientNetV2B0..L (their default sizes are automl's eval sizes; dropout is Keras' 0.2 for
# every V2, PUBLISHED holds automl's).
VARIANTS: dict[str, Variant] = {
    **_variants(
        FAMILIES["b"],
        """
        b0 0 1.0 1.0 224 0.2
        b1 1 1.0 1.1 240 0.2
        b2 2 1.1 1.2 260 0.3
        b3 3 1.2 1.4 300 0.3
        b4 4 1.4 1.8 380 0.4
        b5 5 1.6 2.2 456 0.4
        b6 6 1.8 2.6 528 0.5
        b7 7 2.0 3.1 600 0.5
        b8 8 2.2 3.6 672 0.5
        l2 - 4.3 5.3 800 0.5
        """,
    ),
    **_variants(
        FAMILIES["lite"],
        """
        lite0 0 1.0 1.0 224 0.2
        lite1 1 1.0 1.1 240 0.2
        lite2 2 1.1 1.2 260 0.3
        lite3 3 1.2 1.4 280 0.3
        lite4 4 1.4 1.8 300 0.3
        """,
    ),
    # The notebook's table, as its code passes it: EfficientNet_Baseline(depth, width, size)
    # receives (1.0, 1.1, 240) for phi 1, so its width and depth are the paper's swapped.
    **_variants(
        FAMILIES["seed"],
        """
        seed-b0 0 1.0 1.0 224 0.0
        seed-b1 1 1.1 1.0 240 0.0
        seed-b2 2 1.2 1.1 260 0.0
        seed-b3 3 1.4 1.2 300 0.0
        seed-b4 4 1.8 1.4 380 0.0
        seed-b5 5 2.2 1.6 456 0.0
        seed-b6 6 2.6 1.8 528 0.0
        seed-b7 7 3.1 2.0 600 0.0
        """,
    ),
    # V2-B0..B3 scale the base table with V1's B0..B3 coefficients, so they sit on V1's φ axis.
    **_variants(
        FAMILIES["v2"],
        """
        v2-b0 0 1.0 1.0 224 0.2
        v2-b1 1 1.0 1.1 240 0.2
        v2-b2 2 1.1 1.2 260 0.2
        v2-b3 3 1.2 1.4 300 0.2
        """,
    ),
    **{
        name: variant
        for size, resolution in (("s", 384), ("m", 480), ("l", 480))
        for name, variant in _variants(
            V2_NETWORKS[size], f"v2-{size} - 1.0 1.0 {resolution} 0.2"
        ).items()
    },
}


@dataclass(frozen=True)
class Published:
    """Figures published for a variant; None where nothing was published.

    `train_resolution` and `dropout` are the official training's where they differ from the
    variant's own (V2: progressive learning ends at a smaller train size than the eval size,
    and automl's dropout grows with the model while keras.applications builds 0.2 for all).
    """

    params: float | None
    macs: float | None
    top1: float | None
    top1_v1: float | None = None
    source: str = ""
    train_resolution: int | None = None
    dropout: float | None = None


PUBLISHED: dict[str, Published] = {
    "b0": Published(5.3e6, 0.39e9, 77.1, 76.3, "paper Table 2"),
    "b1": Published(7.8e6, 0.70e9, 79.1, 78.8, "paper Table 2"),
    "b2": Published(9.2e6, 1.0e9, 80.1, 79.8, "paper Table 2"),
    "b3": Published(12e6, 1.8e9, 81.6, 81.1, "paper Table 2"),
    "b4": Published(19e6, 4.2e9, 82.9, 82.6, "paper Table 2"),
    "b5": Published(30e6, 9.9e9, 83.6, 83.3, "paper Table 2"),
    "b6": Published(43e6, 19e9, 84.0, 84.0, "paper Table 2"),
    "b7": Published(66e6, 37e9, 84.3, 84.4, "paper Table 2"),
    "b8": Published(None, None, 85.5, None, "AdvProp"),
    "l2": Published(None, None, 88.4, None, "Noisy Student"),
    "lite0": Published(4.7e6, 407e6, 75.1, None, "lite README (fp32)"),
    "lite1": Published(5.4e6, 631e6, 76.7, None, "lite README (fp32)"),
    "lite2": Published(6.1e6, 899e6, 77.6, None, "lite README (fp32)"),
    "lite3": Published(8.2e6, 1.44e9, 79.8, None, "lite README (fp32)"),
    "lite4": Published(13.0e6, 2.64e9, 81.5, None, "lite README (fp32)"),
    # google/automl efficientnetv2/README.md (params, "FLOPs" = MACs, top-1) and
    # effnetv2_configs.py (train size, dropout).
    **{
        name: Published(params, macs, top1, None, "automl V2 README", train, dropout)
        for name, params, macs, top1, train, dropout in (
            ("v2-b0", 7.1e6, 0.72e9, 78.7, 192, 0.2),
            ("v2-b1", 8.1e6, 1.2e9, 79.8, 192, 0.2),
            ("v2-b2", 10.1e6, 1.7e9, 80.5, 208, 0.3),
            ("v2-b3", 14.4e6, 3.0e9, 82.1, 240, 0.3),
            ("v2-s", 21.5e6, 8.4e9, 83.9, 300, 0.2),
            ("v2-m", 54.1e6, 24.7e9, 85.2, 384, 0.3),
            ("v2-l", 119.5e6, 56.3e9, 85.7, 384, 0.4),
        )
    },
}


@dataclass(frozen=True)
class ModelSpec:
    """A concrete model: a family, its scaling coefficients and the head/input options."""

    name: str
    family: FamilySpec
    width: float
    depth: float
    resolution: int
    dropout: float
    phi: float | None = None
    drop_connect: float = 0.2  # get_spec fills in the family's default
    num_classes: int = 1000
    include_top: bool = True
    pooling: Pooling | None = None
    classifier_activation: ClassifierActivation = "softmax"
    preprocessing: bool = True
    base: str = field(default="", compare=False)  # the released variant it started from

    def __post_init__(self) -> None:
        _check_range("width", self.width, 0.05, 16.0)
        _check_range("depth", self.depth, 0.05, 16.0)
        _check_range("resolution", self.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        _check_range("dropout", self.dropout, 0.0, 0.99)
        _check_range("drop-connect", self.drop_connect, 0.0, 0.99)
        _check_range("num-classes", self.num_classes, 1, 1_000_000)
        if self.preprocessing and self.family.preprocessing == "none":
            raise UsageError(
                f"--preprocessing: the {self.family.name} family has no input preprocessing "
                "to carry inside",
                hint="its inputs come already normalized by the caller; leave the option out",
            )
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise UsageError(f"unknown pooling {self.pooling!r}; valid: {choices(POOLINGS)}")
        if self.classifier_activation not in CLASSIFIER_ACTIVATIONS:
            raise UsageError(
                f"unknown classifier activation {self.classifier_activation!r}; "
                f"valid: {choices(CLASSIFIER_ACTIVATIONS)}"
            )

    @property
    def title(self) -> str:
        return f"{self.family.title} {self.name.removeprefix('efficientnet-')}"

    def input_shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, 3)


def _check_range(label: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not (low <= value <= high):
        raise UsageError(f"--{label} must lie between {low:g} and {high:g}, not {value}")


def model_names() -> tuple[str, ...]:
    return tuple(VARIANTS)


def members(family: str) -> list[Variant]:
    """The released members of a family, in table order."""
    return [v for v in VARIANTS.values() if v.family.name == family]


def compound_coefficients(
    phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA
) -> tuple[float, float, int]:
    """(width, depth, resolution) of the compound rule at `phi`.

    Resolution is 224 * gamma**phi rounded to the nearest integer (the paper gives no rounding;
    its released resolutions were tuned by hand and do not follow the rule).
    """
    if min(alpha, beta, gamma) < 1.0:
        raise UsageError("--alpha, --beta and --gamma must each be at least 1")
    if not 0 <= phi <= 12:
        raise UsageError(f"--phi must lie between 0 and 12, not {phi:g}")
    return beta**phi, alpha**phi, round(224 * gamma**phi)


def _number(value: float) -> str:
    return f"{value:g}"


def _rule_variant(
    family: str,
    released: dict[float, Variant],
    phi: float,
    alpha: float,
    beta: float,
    gamma: float,
) -> Variant:
    """The compound rule at `phi`, scaling the family's φ = 0 member."""
    width, depth, resolution = compound_coefficients(phi, alpha, beta, gamma)
    if 0.0 not in released:
        raise UsageError(
            f"the {family} family has no φ = 0 member for the compound rule to scale",
            hint="pick a released member with --model, and --width/--depth/--resolution",
        )
    origin = released[0.0]
    below = max(p for p in released if p <= phi)  # dropout: the nearest released member below
    prefix = "" if family == "b" else f"{family}-"
    return Variant(
        f"{prefix}phi{_number(phi)}",
        origin.family,
        phi,
        origin.width * width,
        origin.depth * depth,
        round(origin.resolution * resolution / 224),
        released[below].dropout,
    )


def variant_key(name: str) -> str:
    """'efficientnet-b0' -> 'b0'; keras' and automl's 'efficientnetv2-s' -> 'v2-s'."""
    return re.sub(r"^efficientnet(v2)?-", lambda m: "v2-" if m[1] else "", name.lower())


class SpecOptions(TypedDict, total=False):
    """The `ModelSpec` fields that `get_spec` passes through as they are given."""

    num_classes: int
    include_top: bool
    pooling: Pooling | None
    classifier_activation: ClassifierActivation


def get_spec(
    name: str = "b0",
    *,
    phi: float | None = None,
    width: float | None = None,
    depth: float | None = None,
    resolution: int | None = None,
    dropout: float | None = None,
    drop_connect: float | None = None,
    preprocessing: bool | None = None,
    alpha: float = ALPHA,
    beta: float = BETA,
    gamma: float = GAMMA,
    rule: bool = False,
    **options: Unpack[SpecOptions],
) -> ModelSpec:
    """The spec of a released variant (`name`) or of a compound-rule model (`phi`), with overrides.

    An integer `phi` with a B name selects the released member B-phi; a non-integer `phi`, or
    `rule=True`, applies the compound rule to the φ = 0 member of `name`'s family.
    `options` are the remaining `ModelSpec` fields (num_classes, include_top, …).
    Every option left None means the variant's value (width, depth, resolution, dropout) or the
    family's (drop-connect; preprocessing where the family has any): a caller's default never
    overrides a family's.
    """
    allowed = {f.name for f in fields(ModelSpec)} - {
        "name",
        "family",
        "phi",
        "base",
        "drop_connect",
    }
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(allowed)}")
    key = variant_key(name)
    if key not in VARIANTS:
        raise UsageError(
            f"unknown model {name!r}; valid: {choices(model_names())}",
            hint="or pass --phi N for B-N (a non-integer N follows the compound rule)",
        )
    family = VARIANTS[key].family.name
    released = {v.phi: v for v in members(family) if v.phi is not None}
    if phi is None:
        base = VARIANTS[key]
    elif phi in released and not rule:
        base = released[phi]
    else:
        base = _rule_variant(family, released, phi, alpha, beta, gamma)
    chosen = {"width": width, "depth": depth, "resolution": resolution}
    suffix = "".join(
        f"-{label[0]}{_number(value)}"
        for label, value in chosen.items()
        if value is not None and value != getattr(base, label)
    )
    family_spec = base.family
    if preprocessing is None:  # inside the model wherever the family has any
        preprocessing = family_spec.preprocessing != "none"
    return ModelSpec(
        name=f"efficientnet-{base.name}{suffix}",
        family=family_spec,
        width=base.width if width is None else width,
        depth=base.depth if depth is None else depth,
        resolution=base.resolution if resolution is None else resolution,
        dropout=base.dropout if dropout is None else dropout,
        drop_connect=family_spec.drop_connect if drop_connect is None else drop_connect,
        preprocessing=preprocessing,
        phi=base.phi,
        base=base.name,
        **options,
    )


@dataclass(frozen=True)
class Block:
    """One concrete block (MBConv or Fused-MBConv) of a scaled model."""

    name: str  # keras.applications' prefix, e.g. 'block2a_'
    stage: int  # 1-based, as in the names
    kind: BlockKind
    filters_in: int
    filters_out: int
    expand_ratio: int
    kernel_size: int
    strides: int
    se_filters: int  # 0 where the stage has no squeeze-and-excitation
    drop_rate: float  # drop-connect rate, active only in training

    @property
    def filters(self) -> int:
        """Channels inside the block, after the expansion."""
        return self.filters_in * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.strides == 1 and self.filters_in == self.filters_out


def scaled_filters(spec: ModelSpec, filters: int) -> int:
    """`round_filters` with the family's rounding rule (V1's 90 % floor, or none)."""
    return round_filters(filters, spec.width, floor=spec.family.filter_floor)


def stem_filters(spec: ModelSpec) -> int:
    declared = spec.family.stages[0].filters_in
    return scaled_filters(spec, declared) if spec.family.scale_stem_head else declared


def head_filters(spec: ModelSpec) -> int:
    declared = spec.family.head_filters
    return scaled_filters(spec, declared) if spec.family.scale_stem_head else declared


def stage_repeats(spec: ModelSpec) -> tuple[int, ...]:
    fixed = spec.family.fixed_repeat_stages
    return tuple(
        stage.repeats if i in fixed else round_repeats(stage.repeats, spec.depth)
        for i, stage in enumerate(spec.family.stages)
    )


def _se_filters(family: FamilySpec, stage: StageSpec, filters_in: int, expanded: int) -> int:
    if not stage.se_ratio:
        return 0
    if family.se_reduction:  # the seed notebook: from the expanded channels
        return expanded // (4 if expanded % family.se_reduction else family.se_reduction)
    return max(1, int(filters_in * stage.se_ratio))


def _drop_connect_total(spec: ModelSpec, repeats: tuple[int, ...]) -> int:
    """The n of block i's drop-connect rate drop_connect * i / n (see FamilySpec)."""
    if spec.family.drop_connect_count == "declared":
        return sum(stage.repeats for stage in spec.family.stages)
    return sum(repeats)


def expand_blocks(spec: ModelSpec) -> tuple[Block, ...]:
    """Every block of the scaled model, in order, as keras.applications builds them.

    The drop-connect rate grows linearly with the block's index (over the scaled block count,
    or for V2 the declared one, as keras.applications does).
    """
    repeats = stage_repeats(spec)
    total = _drop_connect_total(spec, repeats)
    blocks: list[Block] = []
    filters_in = stem_filters(spec)
    family = spec.family
    for stage_index, (stage, count) in enumerate(zip(family.stages, repeats, strict=True)):
        fixed = stage_index in family.fixed_filter_stages
        filters_out = stage.filters_out if fixed else scaled_filters(spec, stage.filters_out)
        # SE width follows the *declared* input filters of the stage (keras.applications).
        declared_in = scaled_filters(spec, stage.filters_in)
        for j in range(count):
            se_in = declared_in if j == 0 else filters_out
            expanded = filters_in * stage.expand_ratio
            blocks.append(
                Block(
                    name=f"block{stage_index + 1}{block_letter(j)}_",
                    stage=stage_index + 1,
                    kind=stage.kind,
                    filters_in=filters_in,
                    filters_out=filters_out,
                    expand_ratio=stage.expand_ratio,
                    kernel_size=stage.kernel_size,
                    strides=stage.strides if j == 0 else 1,
                    se_filters=_se_filters(family, stage, se_in, expanded),
                    drop_rate=spec.drop_connect * len(blocks) / total,
                )
            )
            filters_in = filters_out
    if blocks[-1].drop_rate > 0.99:  # V2 counts declared blocks: a deep override overshoots
        raise UsageError(
            f"drop-connect reaches {blocks[-1].drop_rate:.2f} at the last block of {spec.name} "
            f"({len(blocks)} blocks, the rate grows over {total} as keras.applications' V2 does)",
            hint="lower --drop-connect or --depth",
        )
    return tuple(blocks)


def input_contract(spec: ModelSpec) -> dict[str, object]:
    """What the model expects as input: shown by `summary`, written into export metadata."""
    normalization = PREPROCESSING[spec.family.preprocessing]
    if normalization is None:
        inside, value_range = (
            "none: feed inputs already normalized as the weights expect",
            ("caller-normalized"),
        )
    elif not spec.preprocessing:
        inside = f"none: feed {normalization.expects_without}"
        value_range = "caller-normalized"
    else:
        inside, value_range = normalization.inside, "[0, 255]"
    return {
        "shape": [None, *spec.input_shape()],
        "dtype": "float32",
        "layout": "NHWC",
        "range": value_range,
        "color": "RGB",
        "preprocessing_inside": spec.preprocessing,
        "preprocessing": inside,
    }
