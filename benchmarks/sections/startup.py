"""Start-up: commands that must not load TensorFlow, beside importing it."""

from __future__ import annotations

import sys

from common import EFFNET, Options, TimeRow, markdown, wall_seconds


def startup_rows(repeats: int) -> list[TimeRow]:
    """Commands that must not load TensorFlow, beside `python -c "import tensorflow"`."""
    import_tf = wall_seconds([sys.executable, "-c", "import tensorflow"], repeats)
    rows = []
    for argv in (["--help"], ["summary", "--phi", "7"], ["scale-table"]):
        seconds = wall_seconds([*EFFNET, *argv], repeats)
        rows.append(
            TimeRow(
                effnet=f"effnet {' '.join(argv)}",
                effnet_s=seconds,
                reference="python -c 'import tensorflow'",
                reference_s=import_tf,
            )
        )
    return rows


def report(options: Options) -> str:
    return markdown("Start-up (goal: under 0.3 s, no TensorFlow)", startup_rows(options.repeats))
