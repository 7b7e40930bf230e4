"""Rows streamed to `--output`, and read back to resume (docs/scale.md).

- `.csv` and `.jsonl`: one file, a row a line, flushed after every batch; a line cut by a killed
  run (no newline at its end) is dropped when the run resumes.
- `.parquet`: a folder of part files (what Ray's writer makes too, and what pyarrow, pandas and
  Spark read as one table). The local engine writes each part under a temporary name and renames
  it when complete; a part without a readable footer (a killed writer's) is dropped on resume.

What produced the rows (the artifacts' SHA-256, resolution, resize, top-k, class names) is
recorded beside them, `FILE.effnet.json` (or `_effnet.json` inside the Parquet folder, a name
the readers skip); `--resume` refuses to continue with anything else, naming the difference.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli.util import files
from effnet_cli.util.errors import UsageError, choices
from effnet_cli.workflows import stream

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
MANIFEST_SCHEMA = "effnet.rows/1"
PART_ROWS = 4096  # rows per Parquet part: what a killed run can lose, and redo on resume
Row = dict[str, Any]


def format_of(output: Path) -> str:
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"--output {output.name}: unknown format; valid suffixes: {choices(FORMATS)}"
        )
    return fmt


def manifest_path(output: Path) -> Path:
    if format_of(output) == "parquet":
        return output / "_effnet.json"
    return output.with_name(output.name + ".effnet.json")


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in order)."""
    digest = hashlib.sha256()
    members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for member in members:
        if path.is_dir():
            digest.update(str(member.relative_to(path)).encode() + b"\0")
        with member.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Producer:
    """What made the rows: resuming with anything else would mix two runs in one output."""

    command: str
    artifacts: tuple[tuple[str, str], ...]  # (what, SHA-256 or how it was built)
    resolution: tuple[int, ...]
    resize: str
    top: int | None
    draft: bool
    columns: tuple[str, ...]
    labels: str | None = None  # SHA-256 of the class names the rows carry

    def document(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA,
            "command": self.command,
            "artifacts": [{"path": p, "sha256": h} for p, h in self.artifacts],
            "resolution": list(self.resolution),
            "resize": self.resize,
            "top": self.top,
            "draft": self.draft,
            "columns": list(self.columns),
            "labels": self.labels,
        }

    def differences(self, recorded: dict[str, Any]) -> list[str]:
        """How `recorded` (a manifest) differs from this run, in words."""
        said: list[str] = []
        then = [(a.get("path"), a.get("sha256")) for a in recorded.get("artifacts", [])]
        now = [list(pair) for pair in self.artifacts]
        if [h for _, h in then] != [h for _, h in now]:
            was = ", ".join(f"{p} ({_short(h)})" for p, h in then) or "nothing"
            is_ = ", ".join(f"{p} ({_short(h)})" for p, h in now)
            said.append(f"the artifact: written by {was}, now {is_}")
        for key, label in (
            ("command", "the command"),
            ("resize", "--resize"),
            ("top", "--top"),
            ("draft", "--decode"),
            ("resolution", "the resolution"),
            ("columns", "the columns"),
            ("labels", "--labels"),
        ):
            mine = self.document()[key]
            if recorded.get(key) != mine:
                said.append(f"{label}: {recorded.get(key)!r} then, {mine!r} now")
        return said


def _short(made: object) -> str:
    """A file's hash, shortened; a built model's description, whole."""
    text = str(made)
    return f"sha256 {text[:12]}" if len(text) == 64 and text.isalnum() else text


@dataclass
class Existing:
    """What an output already holds, for --resume: which paths are done, and their rows
    counted as a run counts its own."""

    done: set[str] = field(default_factory=set)
    counted: stream.Stats = field(default_factory=stream.Stats)
    dropped: str | None = None  # what a killed run left half-written, removed

    def add(self, row: dict[str, Any]) -> None:
        path = str(row["path"])
        if path not in self.done:
            self.done.add(path)
            self.counted.count([row])


# ------------------------------------------------------------------------------ preparing


def check_output(output: Path, resume: bool, force: bool) -> str:
    """Refuse an output that cannot be written, before any work; returns its format."""
    fmt = format_of(output)
    if resume and force:
        raise UsageError("--resume continues an output and --force replaces it: choose one")
    if output.exists() and not resume and not force:
        raise UsageError(
            f"{output} already exists", hint="--resume continues it, --force replaces it"
        )
    if fmt != "parquet" and output.is_dir():
        raise UsageError(f"{output} is a directory; a {fmt} output is a file")
    if fmt == "parquet" and output.exists() and not output.is_dir():
        raise UsageError(f"{output} is a file; a Parquet output is a folder of part files")
    files.check_writable_dir(output.parent)
    return fmt


def start(output: Path, producer: Producer, resume: bool, force: bool) -> Existing:
    """Make `output` ready: a fresh one (its manifest written), or, resuming, the rows it holds
    (a half-written last line or part dropped; another producer refused)."""
    fmt = format_of(output)
    manifest = manifest_path(output)
    if resume and output.exists():
        if not manifest.is_file():
            raise UsageError(
                f"--resume: {output} has no {manifest.name} saying what produced it",
                hint="--force replaces it",
            )
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resume: {manifest} is not readable ({exc})") from None
        differences = producer.differences(recorded)
        if differences:
            raise UsageError(
                f"--resume: {output} was produced differently; {'; '.join(differences)}",
                hint="resume with what wrote it, or --force to start again",
            )
        return _read(output, fmt)
    if output.exists():  # --force (check_output refused it otherwise)
        files.remove(output)
        manifest.unlink(missing_ok=True)
    if fmt == "parquet":
        output.mkdir()
    files.write_text(manifest, json.dumps(producer.document(), indent=2) + "\n")
    return Existing()


# ------------------------------------------------------------------------------ reading back


def _read(output: Path, fmt: str) -> Existing:
    existing = Existing()
    if fmt == "parquet":
        existing.dropped = _drop_broken_parts(output)
        for row in parquet_rows(output):
            existing.add(row)
        return existing
    existing.dropped = _drop_partial_line(output)
    with output.open(newline="", encoding="utf-8") as f:
        rows: Iterator[dict[str, Any]] = (
            csv.DictReader(f) if fmt == "csv" else (json.loads(line) for line in f if line.strip())
        )
        for row in rows:
            existing.add(row)
    return existing


def _drop_partial_line(output: Path) -> str | None:
    """Cut what follows the last newline (a row the killed run did not finish)."""
    size = output.stat().st_size
    if size == 0:
        return None
    with output.open("rb+") as f:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        else:
            keep = 0
        if keep == size:
            return None
        f.truncate(keep)
    return f"a half-written row ({size - keep} bytes)"


def _parts(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix == ".parquet" and p.is_file() and not p.name.startswith((".", "_"))
    )


def _drop_broken_parts(folder: Path) -> str | None:
    """Remove temporary parts and parts whose footer cannot be read (a killed writer's)."""
    import pyarrow.parquet as pq

    dropped = [p for p in folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp"]
    for part in _parts(folder):
        try:
            pq.read_metadata(part)
        except Exception:  # no footer, or not Parquet at all: the killed run's
            dropped.append(part)
    for path in dropped:
        path.unlink(missing_ok=True)
    return f"{len(dropped)} half-written part file(s)" if dropped else None


def parquet_rows(folder: Path, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet folder (only `columns`, where given), part by part (never the
    whole table in memory)."""
    import pyarrow.parquet as pq

    for part in _parts(folder):
        yield from pq.read_table(part, columns=columns).to_pylist()


# ------------------------------------------------------------------------------ writing


def arrow_schema(columns: Sequence[str]) -> Any:
    """The Parquet columns' types, by name (every engine writes the same schema)."""
    import pyarrow as pa

    def kind(name: str) -> Any:
        if name.startswith("probability_"):
            return pa.float64()
        if name.startswith(("class", "top1_correct_", "top5_correct_")):
            return pa.int64()
        return pa.string()

    return pa.schema([(name, kind(name)) for name in columns])


def arrow_table(rows: Sequence[Row], schema: Any) -> Any:
    """Rows as a pyarrow table of `schema` (`arrow_schema`'s)."""
    import pyarrow as pa

    return pa.Table.from_pylist(list(rows), schema=schema)


class Writer:
    """Appends rows to an output as they come; `close()` flushes the rest."""

    def __init__(self, output: Path, columns: Sequence[str]) -> None:
        self.output, self.columns, self.fmt = output, list(columns), format_of(output)
        self._buffer: list[Any] = []  # Parquet: the part being filled, as Arrow tables
        self._buffered = 0  # rows in it
        self._run = uuid.uuid4().hex[:8]  # parts of a resumed run never take an earlier name
        self._parts = 0
        self._file: Any = None
        if self.fmt == "parquet":
            # pyarrow's Parquet libraries loaded, and its first conversion made, now rather than
            # at the first part: that conversion imports pandas where it is installed (Ray's
            # extra brings it; +50 MB measured), and a run's memory must be the same at its
            # start and at its end
            import pyarrow.parquet  # noqa: F401

            self._schema = arrow_schema(self.columns)
            arrow_table([], self._schema)
        else:
            fresh = not output.exists() or output.stat().st_size == 0
            self._file = output.open("a", newline="", encoding="utf-8")
            if self.fmt == "csv" and fresh:
                self._file.write(",".join(self.columns) + "\n")
                self._file.flush()

    def write(self, rows: Sequence[Row]) -> None:
        if self.fmt == "parquet":
            # held as Arrow, not as Python dicts: a part's rows take ~1 MB instead of ~10, so a
            # long run's memory is a short one's
            self._buffer.append(arrow_table(rows, self._schema))
            self._buffered += len(rows)
            if self._buffered >= PART_ROWS:
                self._flush_part()
            return
        self._file.write(self._text(rows))
        self._file.flush()

    def _text(self, rows: Sequence[Row]) -> str:
        if self.fmt == "jsonl":
            return "".join(json.dumps({c: row[c] for c in self.columns}) + "\n" for row in rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in self.columns])
        return buffer.getvalue()

    def _flush_part(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffered:
            return
        name = f"part-{self._run}-{self._parts:05d}.parquet"
        staged = self.output / f".{name}.tmp"
        pq.write_table(pa.concat_tables(self._buffer), staged)
        os.replace(staged, self.output / name)
        self._parts += 1
        self._buffer, self._buffered = [], 0

    def close(self) -> None:
        if self.fmt == "parquet":
            self._flush_part()
        elif self._file is not None:
            self._file.close()
