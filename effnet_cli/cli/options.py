"""The model options every model command shares, declared once (DESIGN §2).

`model_command` adds them to a command's signature and hands the command one `ModelOptions`.
"""

# No `from __future__ import annotations` here: Typer reads these Annotated types at run time.

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

PANEL = "Model options"


@dataclass(frozen=True)
class ModelOptions:
    phi: Optional[float] = None
    model: Optional[str] = None
    resolution: Optional[int] = None
    width: Optional[float] = None
    depth: Optional[float] = None
    num_classes: int = 1000
    include_top: bool = True
    pooling: Optional[str] = None
    dropout: Optional[float] = None
    # None: the family's (or variant's) own value, resolved by get_spec — never a fixed default
    # here, or the seed family's 0 drop-connect and no preprocessing are silently overridden.
    drop_connect: Optional[float] = None
    classifier_activation: str = "softmax"
    preprocessing: Optional[bool] = None
    weights: Optional[Path] = None
    seed: Optional[int] = None

    def given(self, *, besides: tuple[str, ...] = ()) -> list[str]:
        """The options set away from their defaults, as typed (`--phi`, `--no-top`…)."""
        defaults = ModelOptions()
        return [
            _FLAGS[f.name](getattr(self, f.name))
            for f in fields(self)
            if f.name not in besides and getattr(self, f.name) != getattr(defaults, f.name)
        ]

    def refuse(self, names: tuple[str, ...], reason: str) -> None:
        """Options that would change nothing here are refused, not silently ignored."""
        defaults = ModelOptions()
        for name in names:
            if getattr(self, name) != getattr(defaults, name):
                raise UsageError(f"{_FLAGS[name](getattr(self, name))} {reason}")

    def spec(self) -> S.ModelSpec:
        if self.phi is not None and self.model is not None:
            # lite0 and seed-b0 are φ = 0 too: agreement is the variant's own φ, not a B name
            same = S.get_spec(self.model).phi == self.phi
            if not same:
                raise UsageError(
                    f"--phi {self.phi:g} and --model {self.model} disagree", hint="give one of them"
                )
        if self.pooling is not None and self.include_top:
            raise UsageError("--pooling applies only with --no-top (the top has its own pooling)")
        return S.get_spec(
            "b0" if self.model is None else self.model,
            phi=self.phi,
            width=self.width,
            depth=self.depth,
            resolution=self.resolution,
            dropout=self.dropout,
            drop_connect=self.drop_connect,
            num_classes=self.num_classes,
            include_top=self.include_top,
            pooling=self.pooling,
            classifier_activation=self.classifier_activation,
            preprocessing=self.preprocessing,
        )


def _flag(name: str) -> Callable[[Any], str]:
    return lambda value: name


# How each field is spelled on the command line, for messages (a bool says which of the pair).
_FLAGS: dict[str, Callable[[Any], str]] = {
    **{f.name: _flag("--" + f.name.replace("_", "-")) for f in fields(ModelOptions)},
    "model": _flag("--model"),
    "include_top": lambda on: "--include-top" if on else "--no-top",
    "preprocessing": lambda on: "--preprocessing" if on else "--no-preprocessing",
}


def choice_metavar(values: Sequence[str], listed: bool = False) -> str:
    """The choices where --help would say TEXT: [a|b|c], and `,...` where several may be given."""
    return "[" + "|".join(values) + "]" + (",..." if listed else "")


def complete(values: Callable[[], Sequence[str]], listed: bool = False) -> Callable[[str], list]:
    """Shell completion of an option's values, from the same table that validates them; for a
    comma-separated option (`listed`), the item after the last comma."""

    def candidates(incomplete: str) -> list[str]:
        done, _, current = incomplete.rpartition(",") if listed else ("", "", incomplete)
        prefix = f"{done}," if done else ""
        return [prefix + v for v in values() if v.startswith(current.lower())]

    return candidates


def _option(*decls: str, help: str, **kwargs: Any) -> typer.models.OptionInfo:
    return typer.Option(*decls, help=help, rich_help_panel=PANEL, **kwargs)


_PARAMETERS: dict[str, Any] = {
    "phi": Annotated[Optional[float], _option(
        "--phi", help="Compound coefficient: 0..8 picks B0..B8; a non-integer follows the "
        "compound rule.", min=0, max=12)],
    "model": Annotated[Optional[str], _option(
        "--model", "-m", help=f"Variant: {', '.join(S.model_names())}.", metavar="NAME",
        autocompletion=complete(S.model_names))],
    "resolution": Annotated[Optional[int], _option(
        "--resolution", help="Input height and width (default: the variant's).")],
    "width": Annotated[Optional[float], _option("--width", help="Width coefficient override.")],
    "depth": Annotated[Optional[float], _option("--depth", help="Depth coefficient override.")],
    "num_classes": Annotated[int, _option("--num-classes", help="Classifier outputs.")],
    "include_top": Annotated[bool, _option(
        "--include-top/--no-top", help="Keep the pooling + dropout + classifier head.")],
    "pooling": Annotated[Optional[str], _option(
        "--pooling", help="With --no-top: global pooling (default none).",
        metavar=choice_metavar(S.POOLINGS), autocompletion=complete(lambda: S.POOLINGS))],
    "dropout": Annotated[Optional[float], _option(
        "--dropout", help="Dropout before the classifier (default: the variant's).")],
    "drop_connect": Annotated[Optional[float], _option(
        "--drop-connect", help="Final stochastic-depth rate, training only (default: the "
        "family's: 0.2, none for seed).")],
    "classifier_activation": Annotated[str, _option(
        "--classifier-activation", help="softmax, or none for logits.",
        metavar=choice_metavar(S.CLASSIFIER_ACTIVATIONS),
        autocompletion=complete(lambda: S.CLASSIFIER_ACTIVATIONS))],
    "preprocessing": Annotated[Optional[bool], _option(
        "--preprocessing/--no-preprocessing", help="Carry the input normalization inside "
        "(default: yes where the family has one; seed has none).")],
    "weights": Annotated[Optional[Path], _option(
        "--weights", help="Load a .weights.h5 (Keras 3) or legacy .h5 (keras.applications).")],
    "seed": Annotated[Optional[int], _option(
        "--seed", help="Seed for reproducible random weights and inputs.")],
}  # fmt: skip


def model_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared model options; it receives them as `model: ModelOptions`."""
    defaults = {f.name: f.default for f in fields(ModelOptions)}
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name],
                          annotation=annotation)
        for name, annotation in _PARAMETERS.items()
    ]  # fmt: skip
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "model"]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        model = ModelOptions(**{name: kwargs.pop(name) for name in _PARAMETERS})
        return func(model=model, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    return wrapper


def model_args(model: ModelOptions) -> list[str]:
    """The model options that differ from their defaults, as command-line arguments: what a
    printed command (bench --recommend's `effnet export …`) repeats to build the same model."""
    args: list[str] = []
    for item in fields(ModelOptions):
        value = getattr(model, item.name)
        if value == item.default:
            continue
        declared = _PARAMETERS[item.name].__metadata__[0].default  # typer keeps the first name here
        if isinstance(value, bool):
            on, _, off = declared.partition("/")
            args.append(on if value else off)
        else:
            args += [declared, f"{value:g}" if isinstance(value, float) else str(value)]
    return args
