"""PyTorch EfficientNet state dicts mapped into effnet's Keras model, name by name.

Two naming conventions are read (the file's own key names decide which):

- lukemelas/EfficientNet-PyTorch (b0–b8, and the Lite fork's lite0–4): `_conv_stem`, `_bn0`,
  `_blocks.N.{_expand_conv,_bn0,_depthwise_conv,_bn1,_se_reduce,_se_expand,_project_conv,_bn2}`
  with N counting blocks across stages, `_conv_head`, `_bn1`, `_fc`. Its convolutions pad as
  TF "same" (`Conv2dStaticSamePadding` / `Conv2dDynamicSamePadding`, utils.py) and its
  BatchNorm epsilon is 1e-3, as effnet's; every released lukemelas file was converted from the
  TF checkpoints or trained with that padding, so the layout alone is enough.
- timm's TF ports (`tf_efficientnet_b0..b8`, `tf_efficientnet_lite0..4`): `conv_stem`, `bn1`,
  `blocks.i.j.*`, `conv_head`, `bn2`, `classifier`. `conv_pw` is the projection in a block
  without `conv_pwl` (timm's DepthwiseSeparableConv, stage 0) and the expansion elsewhere.
  timm's own `efficientnet_*` weights have the same names but pad symmetrically and use
  BatchNorm epsilon 1e-5: effnet's model would give wrong outputs with them. The names cannot
  tell them apart, so a timm-named file is accepted only when something says it is a `tf_`
  port: safetensors metadata, a `config.json` beside it (the Hugging Face hub's timm layout:
  `"architecture": "tf_efficientnet_b0"`), or the file's or its folder's name. A file said to
  be a non-`tf_` model is refused naming the difference; one nobody names is refused too.

Transposes: conv (O, I, kh, kw) → (kh, kw, I, O); depthwise (C, 1, kh, kw) → (kh, kw, C, 1);
linear (out, in) → (in, out); BatchNorm weight, bias, running_mean, running_var → gamma, beta,
moving_mean, moving_variance. The preprocessing layers keep the model's own statistics (a
PyTorch file has none); `num_batches_tracked` counters are skipped. tf_efficientnetv2_* files
are not mapped yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli.keras.checkpoints import torch_files
from effnet_cli.keras.checkpoints.values import refuse_unfit, shown
from effnet_cli.util.errors import UsageError

Kind = str  # "conv", "depthwise", "dense", "bn", "bias"
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")
SKIPPED_SUFFIXES = ("num_batches_tracked",)
NAMINGS = ("lukemelas", "timm-tf")
TF_PORT = re.compile(r"(^|[^a-z0-9])tf_efficientnet(_|-)?(b\d|l2|lite\d)", re.IGNORECASE)
TIMM_OWN = re.compile(r"(^|[^a-z0-9_])efficientnet(_|-)(b\d|lite\d)", re.IGNORECASE)
V2_NAME = re.compile(r"efficientnetv2", re.IGNORECASE)
MAPPED_FAMILIES_NOT = re.compile(r"-(v2|seed)-")  # model names of the families not mapped
BLOCK_PREFIX = re.compile(r"^(block(\d+)[a-z]+_)")


@dataclass(frozen=True)
class Loaded:
    """What a checkpoint gave the model: for the weights report."""

    format: str  # torch_files.Checkpoint.format
    naming: str  # "lukemelas" or "timm-tf"
    tensors_loaded: int  # Keras weight tensors set
    file_tensors: int  # tensors in the file, counters included
    skipped: tuple[str, ...]  # file tensors deliberately unused, said in the report

    @property
    def layout(self) -> str:
        skipped = f"; skipped {' and '.join(self.skipped)}" if self.skipped else ""
        return f"{self.format}, {self.naming} names{skipped}"


def check_file(path: Path) -> None:
    """Checks before TensorFlow loads: the format, the allow-list and the naming convention
    with its padding rule (the pickle alone, its storages unread), then every tensor's place
    and values (the data read once more by `load_into`: a fraction of a second against a
    build, and a corrupt file is refused before the build, not after)."""
    naming_of(torch_files.read(path, data=False), path)
    check_values(torch_files.read(path), path)


def check_values(checkpoint: torch_files.Checkpoint, path: Path) -> None:
    """Every tensor that can become a weight holds finite floats (float16, bfloat16 and
    float64 arrive as float32): an int64 kernel would be cast silently, a NaN would load.
    BatchNorm's `num_batches_tracked` counters are int64 by right, and never loaded."""
    for name, array in checkpoint.tensors.items():
        if not name.endswith(SKIPPED_SUFFIXES):
            refuse_unfit(path.name, name, array)


def without_prefix(tensors: dict[str, Any]) -> dict[str, Any]:
    """The state dict without the prefix a wrapper put before every name of the network (a
    Lightning module's `model.`, a `backbone.`): found where the stem's name begins."""
    for stem in ("_conv_stem.weight", "conv_stem.weight"):
        found = [n for n in tensors if n.endswith(f".{stem}")]
        if stem not in tensors and len(found) == 1:
            prefix = found[0][: -len(stem)]
            return {
                (n[len(prefix) :] if n.startswith(prefix) else n): v for n, v in tensors.items()
            }
    return tensors


def naming_of(checkpoint: torch_files.Checkpoint, path: Path) -> str:
    names = set(without_prefix(checkpoint.tensors))
    if "_conv_stem.weight" in names:
        return "lukemelas"
    if "conv_stem.weight" in names and any(n.startswith("blocks.") for n in names):
        _check_timm_port(checkpoint, path)
        return "timm-tf"
    first = ", ".join(shown(name, 60) for name in sorted(names)[:3])
    raise UsageError(
        f"{path.name} is not an EfficientNet state dict effnet can map (its names begin {first})",
        hint="effnet maps lukemelas/EfficientNet-PyTorch and timm tf_efficientnet_* weights",
    )


def _check_timm_port(checkpoint: torch_files.Checkpoint, path: Path) -> None:
    """Refuse timm's own (non-tf_) weights: symmetric padding and BatchNorm eps 1e-5."""
    said = _architecture(checkpoint, path)
    if said is None:
        raise UsageError(
            f"{path.name} has timm's names, which tf_efficientnet_* (TF 'same' padding, "
            "BatchNorm eps 1e-3) and efficientnet_* (symmetric padding, eps 1e-5) share; "
            "nothing names which it is, so it was refused",
            hint="rename the file after its timm model, e.g. tf_efficientnet_b0.safetensors, "
            "or keep the hub's config.json beside it",
        )
    said = shown(said)  # the file's own words: one line of an error, however spelled
    if V2_NAME.search(said):
        raise UsageError(f"{path.name} is {said}: tf_efficientnetv2 weights are not mapped yet")
    if not TF_PORT.search(said):
        raise UsageError(
            f"{path.name} is {said}, timm's own weights: symmetric padding and BatchNorm eps "
            "1e-5, where effnet's model pads as TF 'same' with eps 1e-3; its outputs would be "
            "wrong, so it was refused",
            hint="use timm's tf_efficientnet_* weights (ported from TF) for this model",
        )


def _architecture(checkpoint: torch_files.Checkpoint, path: Path) -> str | None:
    """The timm model a file says it is: metadata, config.json beside it, then its path."""
    for key in ("architecture", "arch", "model_name", "model"):
        if checkpoint.metadata.get(key):
            return checkpoint.metadata[key]
    config = path.parent / "config.json"
    if config.is_file():
        try:
            said = json.loads(config.read_text("utf-8")).get("architecture")
        except (OSError, ValueError, AttributeError, RecursionError):
            said = None
        if isinstance(said, str) and said:
            return said
    # the file's name, then its folders', nearest first (the hub's cache: three levels up)
    for part in (path.name, *(p.name for p in list(path.parents)[:3])):
        if TF_PORT.search(part) or TIMM_OWN.search(part):
            return part
    return None


# -------------------------------------------------------------------------------- mapping


def _blocks(model: Any) -> list[tuple[str, int]]:
    """The model's blocks in order: (Keras name prefix, stage number)."""
    seen: dict[str, int] = {}
    for layer in model.layers:
        match = BLOCK_PREFIX.match(layer.name)
        if match and match.group(1) not in seen:
            seen[match.group(1)] = int(match.group(2))
    return list(seen.items())


def _lukemelas_names(prefix: str, index: int) -> dict[str, tuple[str, Kind]]:
    t = f"_blocks.{index}."
    return {
        f"{prefix}expand_conv": (f"{t}_expand_conv", "conv"),
        f"{prefix}expand_bn": (f"{t}_bn0", "bn"),
        f"{prefix}dwconv": (f"{t}_depthwise_conv", "depthwise"),
        f"{prefix}bn": (f"{t}_bn1", "bn"),
        f"{prefix}se_reduce": (f"{t}_se_reduce", "conv"),
        f"{prefix}se_expand": (f"{t}_se_expand", "conv"),
        f"{prefix}project_conv": (f"{t}_project_conv", "conv"),
        f"{prefix}project_bn": (f"{t}_bn2", "bn"),
    }


def _timm_names(prefix: str, stage: int, index: int, names: set[str]) -> dict[str, tuple[str, str]]:
    t = f"blocks.{stage}.{index}."
    common = {
        f"{prefix}dwconv": (f"{t}conv_dw", "depthwise"),
        f"{prefix}se_reduce": (f"{t}se.conv_reduce", "conv"),
        f"{prefix}se_expand": (f"{t}se.conv_expand", "conv"),
    }
    if f"{t}conv_pwl.weight" in names:  # InvertedResidual: conv_pw expands, conv_pwl projects
        return common | {
            f"{prefix}expand_conv": (f"{t}conv_pw", "conv"),
            f"{prefix}expand_bn": (f"{t}bn1", "bn"),
            f"{prefix}bn": (f"{t}bn2", "bn"),
            f"{prefix}project_conv": (f"{t}conv_pwl", "conv"),
            f"{prefix}project_bn": (f"{t}bn3", "bn"),
        }
    return common | {  # DepthwiseSeparableConv: conv_pw is the projection
        f"{prefix}bn": (f"{t}bn1", "bn"),
        f"{prefix}project_conv": (f"{t}conv_pw", "conv"),
        f"{prefix}project_bn": (f"{t}bn2", "bn"),
    }


def name_map(model: Any, naming: str, names: set[str]) -> dict[str, tuple[str, Kind]]:
    """Keras layer name → (checkpoint module name, kind), for every block, stem and head."""
    if naming == "lukemelas":
        mapping = {
            "stem_conv": ("_conv_stem", "conv"),
            "stem_bn": ("_bn0", "bn"),
            "top_conv": ("_conv_head", "conv"),
            "top_bn": ("_bn1", "bn"),
            "predictions": ("_fc", "dense"),
        }
        for index, (prefix, _) in enumerate(_blocks(model)):
            mapping |= _lukemelas_names(prefix, index)
        return mapping
    mapping = {
        "stem_conv": ("conv_stem", "conv"),
        "stem_bn": ("bn1", "bn"),
        "top_conv": ("conv_head", "conv"),
        "top_bn": ("bn2", "bn"),
        "predictions": ("classifier", "dense"),
    }
    counters: dict[int, int] = {}
    for prefix, stage in _blocks(model):
        index = counters.get(stage, 0)
        counters[stage] = index + 1
        mapping |= _timm_names(prefix, stage - 1, index, names)
    return mapping


def transpose(array: Any, kind: Kind) -> Any:
    """A PyTorch weight in Keras' layout."""
    import numpy as np

    if kind == "conv":
        return np.transpose(array, (2, 3, 1, 0))  # (O, I, kh, kw) → (kh, kw, I, O)
    if kind == "depthwise":
        return np.transpose(array, (2, 3, 0, 1))  # (C, 1, kh, kw) → (kh, kw, C, 1)
    if kind == "dense":
        return np.transpose(array)  # (out, in) → (in, out)
    return array


def _source_names(module: str, kind: Kind, bias: bool) -> list[tuple[str, Kind]]:
    if kind == "bn":
        return [(f"{module}.{suffix}", "bias") for suffix in BN_SUFFIXES]
    return [(f"{module}.weight", kind)] + ([(f"{module}.bias", "bias")] if bias else [])


def load_into(model: Any, path: Path) -> Loaded:
    """Load a PyTorch checkpoint into `model`: every weighted layer but the preprocessing must
    get its tensors, every tensor of the file must be used (BatchNorm counters aside; the
    classifier aside when the model has no top), shape by shape."""
    if MAPPED_FAMILIES_NOT.search(model.name):
        raise UsageError(
            f"PyTorch checkpoints map into the b, b8, l2 and lite families, not {model.name} "
            "(timm's tf_efficientnetv2_* weights are not mapped yet)"
        )
    checkpoint = torch_files.read(path)
    naming = naming_of(checkpoint, path)
    check_values(checkpoint, path)
    tensors = without_prefix(checkpoint.tensors)
    names = set(tensors)
    mapping = name_map(model, naming, names)
    what = f"{path.name} ({naming} names)"
    hint = "the file is for another variant or head (--model, --num-classes, --no-top)"
    used: set[str] = set()
    assignments: list[tuple[Any, list[Any]]] = []
    for layer in model.layers:
        if not layer.weights or layer.name in ("normalization", "rescaling"):
            continue
        if layer.name not in mapping:
            raise UsageError(
                f"{what}: effnet's layer {layer.name} has no PyTorch counterpart",
                hint="PyTorch checkpoints map into the b and lite families",
            )
        module, kind = mapping[layer.name]
        sources = _source_names(module, kind, bias=len(layer.weights) > 1)
        values = []
        for (name, source_kind), variable in zip(sources, layer.weights, strict=True):
            if name not in tensors:
                raise UsageError(f"{what} has no {name} for {layer.name}", hint=hint)
            value = transpose(tensors[name], source_kind)
            if tuple(value.shape) != tuple(variable.shape):
                raise UsageError(
                    f"{what}: {name} {tuple(tensors[name].shape)} does not fit {layer.name}'s "
                    f"{variable.path.split('/')[-1]} {tuple(variable.shape)}",
                    hint=hint,
                )
            values.append(value)
            used.add(name)
        assignments.append((layer, values))
    skipped = _skipped(names - used, model, naming)
    left = sorted(n for n in names - used if n not in skipped)
    if left:
        raise UsageError(
            f"{what} holds {len(left)} tensors {model.name} has no place for, e.g. "
            f"{shown(left[0])}",
            hint=hint,
        )
    for layer, values in assignments:
        layer.set_weights(values)
    notes = []
    counters = [n for n in skipped if n.endswith(SKIPPED_SUFFIXES)]
    if counters:
        notes.append(f"{len(counters)} BatchNorm counters")
    if len(skipped) > len(counters):
        notes.append("the classifier (the model has no top)")
    return Loaded(
        checkpoint.format, naming, sum(len(v) for _, v in assignments), len(tensors), tuple(notes)
    )


def _skipped(unused: set[str], model: Any, naming: str) -> set[str]:
    skipped = {n for n in unused if n.endswith(SKIPPED_SUFFIXES)}
    has_top = any(layer.name == "predictions" for layer in model.layers)
    head = "_fc." if naming == "lukemelas" else "classifier."
    if not has_top:
        skipped |= {n for n in unused if n.startswith(head)}
    return skipped
