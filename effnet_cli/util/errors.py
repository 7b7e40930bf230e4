"""The project's exceptions and the one place that maps them to exit codes (DESIGN §4)."""

from __future__ import annotations

import re
from collections.abc import Iterable

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REGRESSION = 3
EXIT_PARTIAL = 4  # a run over many images finished, but some of them failed (rows with an error)
EXIT_INTERRUPTED = 130


class EffnetError(Exception):
    """An error the user can act on: one line of message, an optional hint."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(EffnetError):
    """Bad usage or bad input: an unknown choice, an impossible value, a missing file."""

    exit_code = EXIT_USAGE


class WorkError(EffnetError):
    """The input was fine but the work failed (conversion, verification, a runtime)."""

    exit_code = EXIT_FAILED


class RegressionError(EffnetError):
    """A benchmark is slower than its baseline beyond the allowed regression."""

    exit_code = EXIT_REGRESSION


def require_choice(option: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UsageError(f"unknown {option} {value!r}; valid: {choices(valid)}")


def choices(values: Iterable[object]) -> str:
    """'a, b or c' — the valid choices, for messages."""
    items = [str(v) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def split_list(option: str, text: str) -> list[str]:
    """'a,b, c' -> ['a', 'b', 'c']: every comma-separated option parses alike; an empty item
    (`1,,8`, a trailing comma) is a mistake, never silently dropped."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in parts):
        raise UsageError(f"{option} takes a comma-separated list without empty items, not {text!r}")
    return parts


# Lines of a runtime's exception that say where in its C++ the failure was caught, not why:
# OpenVINO stacks one "Exception from FILE:LINE:" per layer it passed and a "Check '...' failed
# at FILE:LINE:" before the sentence that explains (an IR without its .bin:
# "Empty weights data in bin file or bin file cannot be found!" on the third line).
_LOCATION_LINES = (
    re.compile(r"Exception from \S+:\d+:?"),
    re.compile(r"Check '.*' failed at \S+:\d+:?"),
    re.compile(r"\S+\.(?:cpp|cc|c|h|hpp):\d+:?"),
)
# onnxruntime's frame: "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from X failed:
# Protobuf parsing failed." — the status code's name stands in where nothing follows it.
_ONNXRUNTIME = re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*(.*)")
_ONNXRUNTIME_LOAD = re.compile(r"Load model from .*? failed:\s*")
# OpenVINO's older status prefix, "[ GENERAL_ERROR ] ..."
_STATUS_PREFIX = re.compile(r"\[\s*[A-Z_]+\s*\]\s*")
REASON_CHARS = 200  # a reason longer than this is cut: it is one line of an error, not a log


def runtime_reason(exc: BaseException, limit: int = REASON_CHARS) -> str:
    """Why a runtime (onnxruntime, OpenVINO, LiteRT, protobuf) refused a file, as one line.

    Their exception texts are several lines where the first is often only a location: the
    first line that explains is kept (and the next, where it ends in ':'), location lines and
    onnxruntime's "[ONNXRuntimeError] : N : CODE : Load model from PATH failed:" frame are
    dropped, the closing full stop too (the reason ends someone else's sentence). An exception
    with no text says its type."""
    lines = []
    for raw in str(exc).splitlines():
        line = _STATUS_PREFIX.sub("", raw.strip(), count=1) if raw.strip() else ""
        if not line or any(pattern.fullmatch(line) for pattern in _LOCATION_LINES):
            continue
        framed = _ONNXRUNTIME.fullmatch(line)
        if framed:
            line = _ONNXRUNTIME_LOAD.sub("", framed.group(2), count=1).strip() or framed.group(1)
        lines.append(line)
    if not lines:
        return type(exc).__name__
    reason = lines[0] if not lines[0].endswith(":") or len(lines) == 1 else " ".join(lines[:2])
    reason = reason.rstrip(" .!:") or type(exc).__name__
    return reason if len(reason) <= limit else reason[: limit - 1].rstrip() + "…"
