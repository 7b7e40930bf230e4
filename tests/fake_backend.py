"""A backend that effnet does not ship: one record and its small functions, nothing else.

It stores the model as a renamed `.keras` archive and runs it with Keras: enough for export to
write and verify it, bench to time it, inspect to read it and doctor to list it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from effnet_cli import backends
from effnet_cli.backends import keras, runtimes


def _as_keras(path: Path, use: Callable[[Path], Any]) -> Any:
    """`use` of a `.keras` copy of the file, removed once used (Keras reads it whole)."""
    with tempfile.TemporaryDirectory(prefix="fake-backend-") as folder:
        copy = Path(folder) / "model.keras"
        shutil.copyfile(path, copy)
        return use(copy)


def write(model: Any, path: Path, **_: Any) -> None:
    model.save(path.parent / f"{path.name}.keras")
    (path.parent / f"{path.name}.keras").rename(path)


def load(path: Path, device: str = "cpu", threads: int | None = None,
         precision: str = "fp32") -> runtimes.Runner:  # fmt: skip
    runner = _as_keras(path, lambda copy: keras.keras_file_runner(copy, device))
    return replace(runner, runtime="fake")


FORMAT = backends.Format(
    name="fake", suffix=".fake", read=lambda path: _as_keras(path, keras.read_keras), write=write
)
RECORD = backends.Backend(
    name="fake",
    summary="a test's own format (a renamed .keras)",
    format=FORMAT,
    load=load,
    packages=("pytest",),
)
