"""The output sink: one object per run that holds how output looks (quiet, wide, the format) and
the progress under way, and says everything a command says.

stdout carries the result (a table, or one JSON document); everything else (progress, notes,
errors) goes to stderr. Whether the result is JSON or a table is decided in one place,
`Sink.result`, from the sink's format.

`effnet_cli.cli.app.main` makes one sink per run and makes it current (`Sink.active`); commands and
views reach it with `current()`. Nothing here is a module-level variable: the current sink lives
in a context variable, reset when the run ends, so one run's settings never leak into the next.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from rich.console import Console

from effnet_cli.records.base import Document

SCHEMA_VERSION = 1  # the schema file's: effnet_cli/schemas/effnet-1.schema.json
# A kind whose document changed in a way a reader must notice (a field's meaning, a key gone)
# takes the next version; the others stay at SCHEMA_VERSION. bench/2: per-precision ceilings
# (`ceilings`), the roofline limit, and top-1 judged on real images instead of noise.
KIND_VERSIONS = {"bench": 2}
WIDE = 240  # columns for a non-terminal (CI logs) and for --wide, or a table's whole width
BAR = 12  # characters of the bar where a step says which of how many it is
Format = Literal["table", "json", "csv", "markdown"]

# A command's result: a record, whose `to_json()` is the command's document.
R = TypeVar("R", bound=Document)


def is_terminal(stream: Any) -> bool:
    """Whether a person reads `stream` (tests pin this, and the width through COLUMNS)."""
    return bool(stream.isatty()) if hasattr(stream, "isatty") else False


class SinkConsole(Console):
    """A rich console that knows whether its tables show every column (`--wide`, or a pipe)."""

    every_column: bool = False


def console(stream: Any, wide: bool = False) -> SinkConsole:
    tty = is_terminal(stream)
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    made = SinkConsole(
        file=stream,
        width=WIDE if wide or not tty else None,  # None: the terminal's (or COLUMNS)
        force_terminal=tty,
        # NO_COLOR (no-color.org) means no escape sequence at all: no colour, no bold, no italic
        color_system=None if plain else "auto",
        highlight=False,
        soft_wrap=False,
    )
    made.every_column = wide or not tty
    return made


@dataclass(frozen=True)
class Settings:
    """How a run's output looks: the root's --quiet, a command's --wide and --json/--format."""

    quiet: bool = False  # no progress on stderr (errors still show)
    wide: bool = False  # every column whatever the terminal's width
    format: Format = "table"  # --json is "json"; scale-table's --format gives csv and markdown too


class _Ticking:
    """The live status line: rich renders it again on every refresh, so the seconds move."""

    def __init__(self, message: str, started: float) -> None:
        self.message, self.started = message, started

    def __rich__(self) -> str:
        elapsed = f"{time.monotonic() - self.started:.0f} s"
        counted = re.search(r"\((\d+)/(\d+)\)$", self.message)  # "writing x.onnx (2/3)"
        if not counted:
            return f"{self.message} · {elapsed}"
        done, total = int(counted[1]) - 1, int(counted[2])  # the n-th step is under way
        bar = "━" * round(BAR * done / total) + "─" * (BAR - round(BAR * done / total))
        return f"{bar} {self.message} · {elapsed}"


class Sink:
    """Where one run's output goes.

    Progress: slow work says what it is doing, on stderr only. In a terminal each step becomes a
    line with its duration when the next begins, and the current one is a live status whose
    seconds tick; elsewhere (CI logs), one timestamped line per step. Quiet silences both.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._live: Any = None  # the running rich Status, while a step is shown live
        self._step: tuple[str, float] | None = None  # the current step: message, start
        self._emitted = False  # a document is on stdout already (a failed export's report)

    def configure(self, **changes: Any) -> Sink:
        """Set what the options say (`quiet=`, `wide=`, `format=`); returns the sink."""
        self.settings = replace(self.settings, **changes)
        return self

    @property
    def as_json(self) -> bool:
        return self.settings.format == "json"

    @contextmanager
    def active(self) -> Iterator[Sink]:
        """Make this the current sink for the run; the live status ends with it."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            self.end_progress()
            _CURRENT.reset(token)

    # ------------------------------------------------------------------------ streams

    def out(self) -> SinkConsole:
        """The console on stdout; the result replaces the live status, never interleaves."""
        self.end_progress()
        return console(sys.stdout, self.settings.wide)

    def err(self) -> SinkConsole:
        return console(sys.stderr, self.settings.wide)

    def note(self, message: str) -> None:
        """A line for the person at the terminal, on stderr."""
        (self._live.console if self._live else self.err()).print(message, markup=False)

    # ------------------------------------------------------------------------ results

    def result(self, kind: str, record: R, view: Callable[[Sink, R], None]) -> None:
        """A command's result: its record's JSON document, or the view a person reads."""
        if self.as_json:
            self.emit_json(kind, record.to_json())
        else:
            view(self, record)

    def emit_json(self, kind: str, document: Mapping[str, Any]) -> None:
        """One JSON document on stdout, tagged with its schema."""
        self.end_progress()
        payload = {"schema": schema_name(kind), **document}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        sys.stdout.flush()
        self._emitted = True

    def write(self, text: str) -> None:
        """Text as it is (CSV, markdown) on stdout."""
        self.end_progress()
        sys.stdout.write(text)
        sys.stdout.flush()

    def error(self, message: str, hint: str | None = None, exit_code: int = 1) -> None:
        """The `error:` line on stderr; under --json also `effnet.error/1` on stdout, so a script
        reads one JSON document whether the command worked or not."""
        self.end_progress()
        sys.stderr.write(f"error: {message}\n")
        if hint:
            sys.stderr.write(f"hint: {hint}\n")
        sys.stderr.flush()
        if self.as_json and not self._emitted:
            self.emit_json("error", {"error": message, "hint": hint, "exit": exit_code})

    # ------------------------------------------------------------------------ progress

    def progress(self, message: str) -> None:
        """A step of slow work has begun (its end is the next step, or the result)."""
        if self.settings.quiet:
            return
        if not is_terminal(sys.stderr):
            sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            sys.stderr.flush()
            return
        self._finish_step()
        now = time.monotonic()
        self._step = (message, now)
        if self._live is not None:
            self._live.update(_Ticking(message, now))
            return
        self._live = console(sys.stderr).status(_Ticking(message, now), spinner="line")
        self._live.start()

    @property
    def live(self) -> bool:
        """Whether a live status line is showing."""
        return self._live is not None

    def _finish_step(self) -> None:
        if self._step and self._live is not None:
            message, started = self._step
            self._live.console.print(
                f"{message} · {time.monotonic() - started:.1f} s", markup=False
            )
        self._step = None

    def end_progress(self) -> None:
        """The work is over (a result or an error follows): the live line gives way to the last
        step's line (stopped first: a line printed just before a transient Live stops can be
        erased with it)."""
        status, self._live = self._live, None
        if status is None:
            self._step = None
            return
        status.stop()
        if self._step:
            message, started = self._step
            status.console.print(f"{message} · {time.monotonic() - started:.1f} s", markup=False)
        self._step = None


_CURRENT: contextvars.ContextVar[Sink] = contextvars.ContextVar("effnet_sink")


def current() -> Sink:
    """The run's sink; outside a run (a test calling a view) a fresh one with the defaults."""
    try:
        return _CURRENT.get()
    except LookupError:
        return Sink()


def schema_name(kind: str) -> str:
    """A document's `schema` field: `effnet.bench/2`, `effnet.summary/1`."""
    return f"effnet.{kind}/{KIND_VERSIONS.get(kind, SCHEMA_VERSION)}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every --json document of this schema version (one $defs per kind)."""
    from importlib.resources import files as package_files

    text = package_files("effnet_cli").joinpath(f"schemas/effnet-{SCHEMA_VERSION}.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema
