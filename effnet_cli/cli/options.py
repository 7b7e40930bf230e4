"""The Typer side of the model options: each `ModelOptions` field (model/options.py, where it
is declared once: type, default, spelling, help) becomes a Typer option here.

`model_command` adds them to a command's signature and hands the command one `ModelOptions`.
"""

# No `from __future__ import annotations` here: Typer reads these Annotated types at run time.

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import Field, fields
from typing import Annotated, Any, get_type_hints

import typer

from effnet_cli.model.options import PANEL, ModelOptions, flag

__all__ = [
    "PANEL",
    "ModelOptions",
    "choice_metavar",
    "complete",
    "model_args",
    "model_command",
    "options_command",
]


def choice_metavar(values: Sequence[str], listed: bool = False) -> str:
    """The choices where --help would say TEXT: [a|b|c], and `,...` where several may be given."""
    return "[" + "|".join(values) + "]" + (",..." if listed else "")


def complete(
    values: Callable[[], Sequence[str]], listed: bool = False
) -> Callable[[str], list[str]]:
    """Shell completion of an option's values, from the same table that validates them; for a
    comma-separated option (`listed`), the item after the last comma."""

    def candidates(incomplete: str) -> list[str]:
        done, _, current = incomplete.rpartition(",") if listed else ("", "", incomplete)
        prefix = f"{done}," if done else ""
        return [prefix + v for v in values() if v.startswith(current.lower())]

    return candidates


def typer_option(item: Field[Any]) -> Any:  # an Annotated[type, typer.Option] form
    """The Typer option of a `ModelOptions` field, from its declaration there."""
    declared = flag(item)
    how: dict[str, Any] = {"help": declared.help, "rich_help_panel": PANEL}
    if declared.choices is not None:
        how["metavar"] = declared.metavar or choice_metavar(declared.choices())
        how["autocompletion"] = complete(declared.choices)
    elif declared.metavar is not None:
        how["metavar"] = declared.metavar
    how.update({k: v for k, v in (("min", declared.min), ("max", declared.max)) if v is not None})
    return Annotated[_TYPES[item.name], typer.Option(*declared.decls, **how)]


_TYPES = get_type_hints(ModelOptions)


def model_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared model options; it receives them as `model: ModelOptions`."""
    extra = [
        inspect.Parameter(
            item.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=item.default,
            annotation=typer_option(item),
        )
        for item in fields(ModelOptions)
    ]
    names = [item.name for item in fields(ModelOptions)]
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "model"]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        model = ModelOptions(**{name: kwargs.pop(name) for name in names})
        return func(model=model, **kwargs)

    # Typer reads the signature inspect finds; typeshed declares no __signature__ on functions
    wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
    return wrapper


def options_command(
    record: type[Any], name: str = "options"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command a frozen options record: each field of `record` (declared once, as
    `field: Annotated[type, typer.Option(...)] = default`) becomes an option of the command's
    signature, and the command receives them together as `name: record`."""
    hints = get_type_hints(record, include_extras=True)
    declared = fields(record)

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = [  # Typer passes every value by keyword
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(func).parameters.values()
            if p.name != name
        ]
        extra = [
            inspect.Parameter(
                item.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=item.default,
                annotation=hints[item.name],
            )
            for item in declared
        ]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            options = record(**{item.name: kwargs.pop(item.name) for item in declared})
            return func(**{name: options}, **kwargs)

        # the record's options first, as the command declares them (--help lists them so);
        # typeshed declares no __signature__ on functions, and Typer reads it
        wrapper.__signature__ = inspect.Signature(extra + own)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def model_args(model: ModelOptions) -> list[str]:
    """The model options that differ from their defaults, as command-line arguments."""
    return model.args()
