"""The model options every model command shares, each declared once: a field of `ModelOptions`
with its type, default, command-line spelling and help (DESIGN §2).

The command line is derived from these fields (cli/options.py turns each into a Typer option);
the messages that name an option (`given`, `refuse`) and the arguments that rebuild a model
(`args`) are derived from the same declaration. Pure Python: no Typer here.
"""

# No `from __future__ import annotations`: cli/options.py reads these types at run time.

from collections.abc import Callable, Sequence
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from effnet_cli.model import spec as S
from effnet_cli.util.errors import UsageError

PANEL = "Model options"


@dataclass(frozen=True)
class Flag:
    """How a model option is given on the command line."""

    help: str
    decls: tuple[str, ...]  # "--phi"; "--model", "-m"; a bool pair as "--include-top/--no-top"
    choices: Optional[Callable[[], Sequence[str]]] = None  # shown as [a|b] and completed
    metavar: Optional[str] = None  # instead of the choices (`--model NAME`)
    min: Optional[float] = None
    max: Optional[float] = None
    to_spec: bool = True  # passed to get_spec (model, weights and seed shape no architecture)

    def spelled(self, value: Any) -> str:
        """The option as typed for `value`: a bool says which of its pair."""
        on, pair, off = self.decls[0].partition("/")
        return (on if value else off) if pair else on


def _flag(help: str, *decls: str, **how: Any) -> dict[str, Flag]:
    """A field's metadata: how the option is given (`field(default=…, metadata=_flag(…))`)."""
    return {"flag": Flag(help, decls, **how)}


def flag(item: "Field[Any]") -> Flag:
    """The `Flag` of a `ModelOptions` field."""
    found: Flag = item.metadata["flag"]
    return found


@dataclass(frozen=True)
class ModelOptions:
    # fmt: off
    phi: Optional[float] = field(default=None, metadata=_flag(
        "Compound coefficient: 0..8 picks B0..B8; a non-integer follows the compound rule.",
        "--phi", min=0, max=12))
    model: Optional[str] = field(default=None, metadata=_flag(
        f"Variant: {', '.join(S.model_names())}.", "--model", "-m", metavar="NAME",
        choices=S.model_names, to_spec=False))
    resolution: Optional[int] = field(default=None, metadata=_flag(
        "Input height and width (default: the variant's).", "--resolution"))
    width: Optional[float] = field(default=None, metadata=_flag(
        "Width coefficient override.", "--width"))
    depth: Optional[float] = field(default=None, metadata=_flag(
        "Depth coefficient override.", "--depth"))
    num_classes: int = field(default=1000, metadata=_flag(
        "Classifier outputs.", "--num-classes"))
    include_top: bool = field(default=True, metadata=_flag(
        "Keep the pooling + dropout + classifier head.", "--include-top/--no-top"))
    pooling: Optional[str] = field(default=None, metadata=_flag(
        "With --no-top: global pooling (default none).", "--pooling",
        choices=lambda: S.POOLINGS))
    dropout: Optional[float] = field(default=None, metadata=_flag(
        "Dropout before the classifier (default: the variant's).", "--dropout"))
    # None: the family's (or variant's) own value, resolved by get_spec — never a fixed default
    # here, or the seed family's 0 drop-connect and no preprocessing are silently overridden.
    drop_connect: Optional[float] = field(default=None, metadata=_flag(
        "Final stochastic-depth rate, training only (default: the family's: 0.2, none for "
        "seed).", "--drop-connect"))
    classifier_activation: str = field(default="softmax", metadata=_flag(
        "softmax, or none for logits.", "--classifier-activation",
        choices=lambda: S.CLASSIFIER_ACTIVATIONS))
    preprocessing: Optional[bool] = field(default=None, metadata=_flag(
        "Carry the input normalization inside (default: yes where the family has one; seed "
        "has none).", "--preprocessing/--no-preprocessing"))
    weights: Optional[Path] = field(default=None, metadata=_flag(
        "Load a .weights.h5 (Keras 3) or legacy .h5 (keras.applications).", "--weights",
        to_spec=False))
    seed: Optional[int] = field(default=None, metadata=_flag(
        "Seed for reproducible random weights and inputs.", "--seed", to_spec=False))
    # fmt: on

    def given(self, *, besides: tuple[str, ...] = ()) -> list[str]:
        """The options set away from their defaults, as typed (`--phi`, `--no-top`…)."""
        return [
            flag(f).spelled(getattr(self, f.name)) for f in self._changed() if f.name not in besides
        ]

    def refuse(self, names: tuple[str, ...], reason: str) -> None:
        """Options that would change nothing here are refused, not silently ignored."""
        for item in self._changed():
            if item.name in names:
                raise UsageError(f"{flag(item).spelled(getattr(self, item.name))} {reason}")

    def args(self) -> list[str]:
        """The options that differ from their defaults, as command-line arguments: what a
        printed command (bench --recommend's `effnet export …`) repeats to build the same model."""
        args: list[str] = []
        for item in self._changed():
            value = getattr(self, item.name)
            if isinstance(value, bool):
                args.append(flag(item).spelled(value))
            else:
                args += [
                    flag(item).decls[0],
                    f"{value:g}" if isinstance(value, float) else str(value),
                ]
        return args

    def _changed(self) -> list[Any]:
        return [f for f in fields(self) if getattr(self, f.name) != f.default]

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
        shape = {f.name: getattr(self, f.name) for f in fields(self) if flag(f).to_spec}
        return S.get_spec("b0" if self.model is None else self.model, **shape)
