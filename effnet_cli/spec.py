"""The declarative description of every EfficientNet effnet builds. Pure Python, no TensorFlow.

One table per fact: the block table of each family (`FAMILIES`), the released coefficients of
each variant (`VARIANTS`), the published figures (`PUBLISHED`). `get_spec` turns a name plus
overrides into a frozen, validated `ModelSpec`; `expand_blocks` turns a spec into the concrete
blocks (names, filters, strides, drop-connect rates) that both `graph.py` (and so the builder
and the counter) read. Adding a family is adding data here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Literal

from effnet_cli.errors import UsageError, choices

Activation = Literal["swish", "relu6"]
Preprocessing = Literal["imagenet", "lite", "none"]
ClassifierActivation = Literal["softmax", "none"]
Pooling = Literal["avg", "max"]

# ImageNet statistics of keras.applications (and the TPU reference), on [0, 1] pixels.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)

# The paper's compound rule (Section 3.3): depth = ALPHA**phi, width = BETA**phi,
# resolution = GAMMA**phi, chosen by grid search so that ALPHA * BETA**2 * GAMMA**2 ~= 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

MAX_RESOLUTION = 2048
MIN_RESOLUTION = 32  # keras.applications' own minimum


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by `width`, to a multiple of `divisor`, never below 90 % of it.

    The same arithmetic as keras.applications and the TPU builder (their int() truncation
    included), so the scaled widths — and so weights — are identical.
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # rounding down must not lose more than 10 %
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


@dataclass(frozen=True)
class StageSpec:
    """One row of a family's block table, before scaling."""

    expand_ratio: int
    kernel_size: int
    strides: int
    filters_in: int
    filters_out: int
    repeats: int

    def __post_init__(self) -> None:
        if self.kernel_size not in (1, 3, 5, 7) or self.strides not in (1, 2):
            raise ValueError(f"invalid stage {self}")
        if min(self.expand_ratio, self.filters_in, self.filters_out, self.repeats) < 1:
            raise ValueError(f"invalid stage {self}")

    def encode(self) -> str:
        """The TPU builder's block string, e.g. 'r1_k3_s11_e1_i32_o16'."""
        s = self.strides
        return (
            f"r{self.repeats}_k{self.kernel_size}_s{s}{s}_e{self.expand_ratio}"
            f"_i{self.filters_in}_o{self.filters_out}"
        )

    @classmethod
    def decode(cls, text: str) -> StageSpec:
        match = re.fullmatch(r"r(\d+)_k(\d+)_s(\d)\3_e(\d+)_i(\d+)_o(\d+)", text)
        if not match:
            raise ValueError(f"not a block string: {text!r}")
        r, k, s, e, i, o = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
        return cls(expand_ratio=e, kernel_size=k, strides=s, filters_in=i, filters_out=o, repeats=r)


def _stages(*codes: str) -> tuple[StageSpec, ...]:
    return tuple(StageSpec.decode(code) for code in codes)


# The paper's Table 1 (B0 before scaling), exactly as keras.applications' DEFAULT_BLOCKS_ARGS.
B0_STAGES = _stages(
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
)


@dataclass(frozen=True)
class FamilySpec:
    """What a family's network looks like, apart from its per-variant coefficients."""

    name: str
    title: str
    stages: tuple[StageSpec, ...]
    activation: Activation
    se_ratio: float  # of the block's input filters; 0 means no squeeze-and-excitation
    preprocessing: Preprocessing
    stem_filters: int = 32
    head_filters: int = 1280
    scale_stem_head: bool = True
    # Stages (0-based) whose repeats are not depth-scaled (Lite keeps the first and last).
    fixed_repeat_stages: tuple[int, ...] = ()
    # Stages (0-based) whose output filters are not width-scaled (the seed notebook's block 1).
    fixed_filter_stages: tuple[int, ...] = ()
    drop_connect: float = 0.2  # the final stochastic-depth rate, unless overridden
    # How the layers are put together. keras.applications: explicit ZeroPadding2D before each
    # stride-2 conv, no conv biases, SE activations fused into its convs, the classifier's
    # softmax inside Dense. The seed notebook differs in each (see `deviations`).
    explicit_padding: bool = True
    conv_bias: bool = False
    always_expand: bool = False
    se_gate: Literal["sigmoid", "softmax"] = "sigmoid"
    se_reduction: int = 0  # >0: SE width = expanded filters // this (4 when it does not divide)
    separate_activations: bool = False
    deviations: tuple[str, ...] = ()  # from the paper, each with why it matters

    def __post_init__(self) -> None:
        if not 0 <= self.se_ratio <= 1:
            raise ValueError(f"se_ratio must lie in [0, 1], not {self.se_ratio}")
        for stages in (self.fixed_repeat_stages, self.fixed_filter_stages):
            if any(not 0 <= i < len(self.stages) for i in stages):
                raise ValueError(f"fixed stage index out of range in family {self.name}")


FAMILIES: dict[str, FamilySpec] = {
    "b": FamilySpec(
        name="b",
        title="EfficientNet",
        stages=B0_STAGES,
        activation="swish",
        se_ratio=0.25,
        preprocessing="imagenet",
    ),
    # tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py
    "lite": FamilySpec(
        name="lite",
        title="EfficientNet-Lite",
        stages=B0_STAGES,
        activation="relu6",  # quantization-friendly: a bounded range survives int8
        se_ratio=0.0,  # SE's global pooling and gating are slow on mobile accelerators
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
        se_ratio=0.0,
        se_reduction=24,
        se_gate="softmax",
        preprocessing="none",
        scale_stem_head=False,
        fixed_repeat_stages=(0,),
        fixed_filter_stages=(0,),
        drop_connect=0.0,
        explicit_padding=False,
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
}


@dataclass(frozen=True)
class Variant:
    """A released member of a family: its compound coefficient and scaling coefficients."""

    name: str
    family: str
    phi: float | None  # None where the member is not a step of the compound rule (L2)
    width: float
    depth: float
    resolution: int
    dropout: float


def _variants(family: str, rows: str) -> dict[str, Variant]:
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
# efficientnet_params(), AdvProp's B8 and Noisy Student's L2.
VARIANTS: dict[str, Variant] = {
    **_variants(
        "b",
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
        "lite",
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
        "seed",
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
}


@dataclass(frozen=True)
class Published:
    """Figures published for a variant; None where nothing was published."""

    params: float | None
    macs: float | None
    top1: float | None
    top1_v1: float | None = None
    source: str = ""


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
        if self.pooling not in (None, "avg", "max"):
            raise UsageError(f"unknown pooling {self.pooling!r}; valid: avg or max")
        if self.classifier_activation not in ("softmax", "none"):
            raise UsageError(
                f"unknown classifier activation {self.classifier_activation!r}; "
                "valid: softmax or none"
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
    origin = released[0.0]
    below = max(p for p in released if p <= phi)  # dropout: the nearest released member below
    prefix = "" if family == "b" else f"{family}-"
    return Variant(
        f"{prefix}phi{_number(phi)}", family, phi, origin.width * width, origin.depth * depth,
        round(origin.resolution * resolution / 224), released[below].dropout,
    )  # fmt: skip


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
    **options: object,
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
    key = name.lower().removeprefix("efficientnet-")
    if key not in VARIANTS:
        raise UsageError(
            f"unknown model {name!r}; valid: {choices(model_names())}",
            hint="or pass --phi N for B-N (a non-integer N follows the compound rule)",
        )
    family = VARIANTS[key].family
    released = {v.phi: v for v in VARIANTS.values() if v.family == family and v.phi is not None}
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
    family_spec = FAMILIES[base.family]
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
        **options,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Block:
    """One concrete MBConv block of a scaled model."""

    name: str  # keras.applications' prefix, e.g. 'block2a_'
    stage: int  # 1-based, as in the names
    filters_in: int
    filters_out: int
    expand_ratio: int
    kernel_size: int
    strides: int
    se_filters: int  # 0 when the family has no squeeze-and-excitation
    drop_rate: float  # drop-connect rate, active only in training

    @property
    def filters(self) -> int:
        """Channels inside the block, after the expansion."""
        return self.filters_in * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.strides == 1 and self.filters_in == self.filters_out


def stem_filters(spec: ModelSpec) -> int:
    family = spec.family
    if not family.scale_stem_head:
        return family.stem_filters
    return round_filters(family.stem_filters, spec.width)


def head_filters(spec: ModelSpec) -> int:
    family = spec.family
    if not family.scale_stem_head:
        return family.head_filters
    return round_filters(family.head_filters, spec.width)


def stage_repeats(spec: ModelSpec) -> tuple[int, ...]:
    fixed = spec.family.fixed_repeat_stages
    return tuple(
        stage.repeats if i in fixed else round_repeats(stage.repeats, spec.depth)
        for i, stage in enumerate(spec.family.stages)
    )


def _se_filters(family: FamilySpec, filters_in: int, expanded: int) -> int:
    if family.se_reduction:  # the seed notebook: from the expanded channels
        return expanded // (4 if expanded % family.se_reduction else family.se_reduction)
    return max(1, int(filters_in * family.se_ratio)) if family.se_ratio else 0


def expand_blocks(spec: ModelSpec) -> tuple[Block, ...]:
    """Every block of the scaled model, in order, as keras.applications builds them.

    The drop-connect rate grows linearly with the block's index over the *scaled* block count.
    """
    repeats = stage_repeats(spec)
    total = sum(repeats)
    blocks: list[Block] = []
    filters_in = stem_filters(spec)
    family = spec.family
    for stage_index, (stage, count) in enumerate(zip(family.stages, repeats, strict=True)):
        fixed = stage_index in family.fixed_filter_stages
        filters_out = stage.filters_out if fixed else round_filters(stage.filters_out, spec.width)
        # SE width follows the *declared* input filters of the stage (keras.applications).
        declared_in = round_filters(stage.filters_in, spec.width)
        for j in range(count):
            se_in = declared_in if j == 0 else filters_out
            expanded = filters_in * stage.expand_ratio
            se_filters = _se_filters(family, se_in, expanded)
            blocks.append(
                Block(
                    name=f"block{stage_index + 1}{block_letter(j)}_",
                    stage=stage_index + 1,
                    filters_in=filters_in,
                    filters_out=filters_out,
                    expand_ratio=stage.expand_ratio,
                    kernel_size=stage.kernel_size,
                    strides=stage.strides if j == 0 else 1,
                    se_filters=se_filters,
                    drop_rate=spec.drop_connect * len(blocks) / total,
                )
            )
            filters_in = filters_out
    return tuple(blocks)


def input_contract(spec: ModelSpec) -> dict[str, object]:
    """What the model expects as input: shown by `summary`, written into export metadata."""
    if not spec.preprocessing or spec.family.preprocessing == "none":
        inside = "none: feed inputs already normalized as the weights expect"
        value_range = "caller-normalized"
    elif spec.family.preprocessing == "imagenet":
        inside = "Rescaling(1/255), Normalization(ImageNet mean and std)"
        value_range = "[0, 255]"
    else:
        inside = "Rescaling: (x - 127) / 128"
        value_range = "[0, 255]"
    return {
        "shape": [None, *spec.input_shape()],
        "dtype": "float32",
        "layout": "NHWC",
        "range": value_range,
        "color": "RGB",
        "preprocessing_inside": spec.preprocessing,
        "preprocessing": inside,
    }
