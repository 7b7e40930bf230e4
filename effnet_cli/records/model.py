"""The model object every command's JSON carries (schemas/model.schema.json; model/identity.py
makes it as a plain document): the same five fields everywhere, None where a command cannot know
one (a foreign file that says nothing about itself)."""

from __future__ import annotations

from dataclasses import dataclass

from effnet_cli.records.base import Record


@dataclass(frozen=True, kw_only=True)
class ModelIdentity(Record):
    name: str | None
    family: str | None
    resolution: tuple[int | None, ...] | None  # (height, width)
    classes: int | None
    preprocessing: bool | None
