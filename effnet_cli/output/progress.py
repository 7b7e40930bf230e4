"""Progress of a run over many images, on stderr: a bar with images/s and the time left in a
terminal, a line every `EVERY_S` seconds in a log, nothing with --quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from effnet_cli.output.sink import Sink, is_terminal

EVERY_S = 10.0  # a log's line interval


def _rate(done: int, began: float) -> tuple[float, str]:
    elapsed = time.monotonic() - began
    rate = done / elapsed if elapsed > 0 else 0.0
    return rate, f"{rate:.0f} images/s"


@contextmanager
def images_progress(sink: Sink, what: str) -> Iterator[Callable[[int, int], None]]:
    """`tick(done, total)` after each batch."""
    if sink.settings.quiet:
        yield lambda done, total: None
        return
    sink.end_progress()
    if is_terminal(sys.stderr):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn(what),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=sink.err(), transient=True) as bar:
            task = bar.add_task(what, total=None, rate="")
            began = time.monotonic()

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, rate=_rate(done, began)[1])

            yield tick
        return
    began = last = time.monotonic()

    def log(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < EVERY_S and done < total:
            return
        last = now
        rate, said = _rate(done, began)
        left = f", {(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        sys.stderr.write(f"{time.strftime('%H:%M:%S')} {what}: {done}/{total} · {said}{left}\n")
        sys.stderr.flush()

    yield log
