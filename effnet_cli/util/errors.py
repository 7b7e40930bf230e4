"""The project's exceptions and the one place that maps them to exit codes (DESIGN §4)."""

from __future__ import annotations

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


def choices(values: object) -> str:
    """'a, b or c' — the valid choices, for messages."""
    items = [str(v) for v in values]  # type: ignore[attr-defined]
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
