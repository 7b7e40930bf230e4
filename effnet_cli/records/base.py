"""`Record` and `to_json`: a frozen dataclass's fields are its JSON document's keys, in order.

A field may be left out of the JSON, as the commands always have left it out: `omit="none"`
where it is None (a figure not measured, a setting not made), `omit="error"` on a row that
failed (a failed row has no drift), `omit="streams"` on a throughput row that never started its
requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import PurePath
from typing import Any, Literal, Protocol

Omit = Literal["none", "error", "streams"]

OMIT_NONE = {"omit": "none"}
OMIT_ON_ERROR = {"omit": "error"}
OMIT_WITHOUT_STREAMS = {"omit": "streams"}


def _left_out(record: Any, value: Any, omit: Omit | None) -> bool:
    if omit == "none":
        return value is None
    if omit == "error":
        return record.error is not None
    if omit == "streams":
        return record.in_flight is None
    return False


def to_json(value: Any) -> Any:
    """A record as JSON values: fields in order, tuples as lists, paths as strings, left-out
    fields absent; a field may name its JSON key (`metadata={"key": "class"}`)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.metadata.get("key", f.name): to_json(getattr(value, f.name))
            for f in fields(value)
            if not _left_out(value, getattr(value, f.name), f.metadata.get("omit"))
        }
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, PurePath):
        return str(value)
    return value


class Record:
    """`to_json()` for every record."""

    def to_json(self) -> dict[str, Any]:
        document = to_json(self)
        assert isinstance(document, dict)
        return document


class Document(Protocol):
    """What `Sink.result` prints: a command's result record."""

    def to_json(self) -> dict[str, Any]: ...
