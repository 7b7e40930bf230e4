"""Which images a run over many of them reads (`predict`, `evaluate`; docs/scale.md).

Named files, folders (their images; `recursive` descends), glob patterns, and list files
(`--inputs`: .txt one path a line, .csv or .parquet with a `path` column). Paths stay as the user
wrote them (relative stays relative): a row's `path` is what `--resume` matches on.

A file named on the command line that is missing is a mistake in the command (refused before any
work); a file a list names that is missing is one bad input among many (a row with an error).
pyarrow is imported only for a Parquet list.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from effnet_cli.data.images import IMAGE_SUFFIXES
from effnet_cli.util.errors import UsageError, choices

LIST_SUFFIXES = (".txt", ".csv", ".parquet")
GLOB_CHARACTERS = frozenset("*?[")


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def folder_images(folder: Path, recursive: bool) -> list[str]:
    """The images in `folder` (sorted; `recursive`: every folder below too, hidden ones
    skipped)."""
    if not recursive:
        return sorted(str(p) for p in folder.iterdir() if p.is_file() and _is_image(p.name))
    found: list[str] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(top, n) for n in sorted(names) if _is_image(n)]
    return found


def _expand(argument: Path, recursive: bool) -> list[str]:
    text = str(argument)
    if argument.is_dir():
        inside = folder_images(argument, recursive)
        if not inside:
            raise UsageError(
                f"{argument} holds no images; valid: {choices(IMAGE_SUFFIXES)} files",
                hint=None if recursive else "--recursive descends into its subfolders",
            )
        return inside
    if argument.exists():
        return [text]  # a named file is always tried, whatever its suffix
    if GLOB_CHARACTERS & set(text):
        matched = sorted(glob.glob(text, recursive=True))
        files = [m for m in matched if os.path.isfile(m)]
        if not files:
            raise UsageError(f"the pattern {text!r} matches no file")
        return files
    raise UsageError(f"image {text!r} does not exist")


def read_list(path: Path) -> list[str]:
    """The paths a list file names; a relative one is relative to the list's folder."""
    suffix = path.suffix.lower()
    if suffix not in LIST_SUFFIXES:
        raise UsageError(
            f"--inputs {path.name}: unknown list format; valid: {choices(LIST_SUFFIXES)}"
        )
    if not path.is_file():
        raise UsageError(f"--inputs {str(path)!r} does not exist")
    named = _parquet_paths(path) if suffix == ".parquet" else _text_paths(path, suffix)
    base = path.parent
    return [p if os.path.isabs(p) else str(base / p) for p in named]


def _text_paths(path: Path, suffix: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            if suffix == ".txt":
                lines = (line.strip() for line in f)
                return [line for line in lines if line and not line.startswith("#")]
            reader = csv.DictReader(f)
            column = _path_column(reader.fieldnames or [], path)
            return [row[column].strip() for row in reader if (row.get(column) or "").strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--inputs {path} is not a readable UTF-8 list ({exc})") from None


def _parquet_paths(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        column = _path_column(schema.names, path)
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    except UsageError:
        raise
    except Exception as exc:  # pyarrow's errors for a file that is not Parquet
        raise UsageError(f"--inputs {path} is not a readable Parquet file ({exc})") from None
    return [str(v) for v in values if v]


def _path_column(names: Sequence[str], path: Path) -> str:
    if "path" not in names:
        found = choices(names) if names else "none"
        raise UsageError(f"--inputs {path.name} has no `path` column (its columns: {found})")
    return "path"


def collect(
    arguments: Iterable[Path], recursive: bool = False, lists: Iterable[Path] = ()
) -> list[str]:
    """Every image the arguments and list files name, in order, each once."""
    found: list[str] = []
    for argument in arguments:
        found += _expand(argument, recursive)
    for listed in lists:
        found += read_list(listed)
    if not found:
        raise UsageError(
            "no images given", hint="name files, folders or patterns, or --inputs FILE"
        )
    return list(dict.fromkeys(found))
