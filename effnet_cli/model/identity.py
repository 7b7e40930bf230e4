"""What a model is, as every command's JSON names it: one place for the `model` object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def model_identity(
    name: str | None,
    family: str | None,
    resolution: Sequence[int | None] | None,
    classes: int | None,
    preprocessing: bool | None,
) -> dict[str, Any]:
    """The `model` object every command's JSON carries (schemas/model.schema.json): the same
    five fields everywhere, None where a command cannot know one (a foreign .keras file)."""
    return {
        "name": name,
        "family": family,
        "resolution": None if resolution is None else list(resolution),
        "classes": classes,
        "preprocessing": preprocessing,
    }
