"""`effnet evaluate`: top-1 and top-5 accuracy on a labelled folder, per artifact, and the drop
of each against the first (issue #21 item 6: the number a deployer checks before shipping).

The truth is a folder of class subfolders, each named by an ImageNet synset id (`n02123045/`)
or a class index (`281/`), as ImageNet's own validation folders are laid out; or a CSV of
`file,class` rows (`--truth`). Every artifact runs through predict's loaders and runners, fed the
images as predict prepares them (data/images.py); the images stream through in chunks, so a
50,000-image folder never sits in memory whole, and only each image's top classes are kept.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from effnet_cli.data import images
from effnet_cli.data import labels as L
from effnet_cli.model import spec as S
from effnet_cli.records.evaluate import AccuracyRow, EvaluateResult, TruthSummary
from effnet_cli.util.errors import UsageError
from effnet_cli.workflows import classify as C
from effnet_cli.workflows import engine, stream

Note = Callable[[str], None]
TOP_K = stream.EVALUATE_K  # the top-k each artifact is scored by
SYNSET = re.compile(r"n\d{8}")  # a WordNet noun id, as ImageNet names its classes
CSV_HEADERS = ("file", "path", "image", "filename")  # a first row starting so is a header
VALID_NAMES = "an ImageNet synset id (n01440764 … n15075141) or a class index (0, 1, …)"


@dataclass(frozen=True)
class Truth:
    """The labelled images: each path with its class index, and where the labels came from."""

    paths: tuple[Path, ...]
    classes: tuple[int, ...]
    source: Literal["folders", "csv", "list"]
    location: str  # the folder, or the CSV or list file
    naming: str  # "synset", "index" or "synset and index"
    named: Mapping[int, str] = field(default_factory=dict)  # class -> where it was named first

    def summary(self) -> TruthSummary:
        return TruthSummary(
            source=self.source,
            path=self.location,
            naming=self.naming,
            images=len(self.paths),
            classes=len(set(self.classes)),
        )


# ------------------------------------------------------------------------------ the truth


def class_of(name: str, where: str, synsets: Mapping[str, int]) -> tuple[int, str]:
    """A class index and how it was named ("synset" or "index"), from a folder name or a cell."""
    if SYNSET.fullmatch(name):
        if name not in synsets:
            raise UsageError(
                f"{where}: {name!r} is not one of ImageNet's 1000 synset ids",
                hint="the valid ids are in effnet_cli/data/imagenet_synsets.txt",
            )
        return synsets[name], "synset"
    if name.isascii() and name.isdigit() and len(name) <= 9:  # int() refuses 4,300 digits
        return int(name), "index"
    raise UsageError(f"{where}: {name[:40]!r} names no class; valid: {VALID_NAMES}")


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; a name the system cannot look up (past 255 bytes) is none."""
    try:
        return path.is_file()
    except OSError:
        return False


def _synsets() -> dict[str, int]:
    return {synset: index for index, synset in enumerate(L.imagenet_synsets())}


def _naming(kinds: set[str]) -> str:
    return " and ".join(sorted(kinds))


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_folder(folder: Path) -> None:
    if not folder.exists():
        raise UsageError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder; evaluate takes a folder of class subfolders, or a "
            "folder of images with --truth labels.csv"
        )


def from_folders(folder: Path, note: Note) -> Truth:
    """Images labelled by the subfolder they lie in (not recursive below it)."""
    _check_folder(folder)
    subfolders, loose = _subfolders(folder), _images_in(folder)
    if not subfolders:
        what = (
            f"{images.count_text(len(loose))} but no class subfolders"
            if loose
            else ("no class subfolders")
        )
        raise UsageError(
            f"{folder} holds {what}; valid: subfolders named by {VALID_NAMES}",
            hint="n02123045/cat.jpg or 281/cat.jpg; or --truth labels.csv for a flat folder",
        )
    if loose:
        raise UsageError(
            f"{folder} holds {images.count_text(len(loose))} outside its class subfolders "
            f"({loose[0].name}): their class is unknown",
            hint="move them into a class subfolder, or label every image with --truth labels.csv",
        )
    synsets = _synsets()
    paths: list[Path] = []
    classes: list[int] = []
    named: dict[int, str] = {}
    kinds: set[str] = set()
    empty = []
    for sub in subfolders:
        index, kind = class_of(sub.name, f"folder {sub.name}/", synsets)
        if index in named:
            raise UsageError(
                f"folders {named[index]} and {sub.name}/ both name class {index}",
                hint="merge them into one folder",
            )
        named[index] = f"{sub.name}/"
        kinds.add(kind)
        inside = _images_in(sub)
        if not inside:
            empty.append(sub.name)
        paths += inside
        classes += [index] * len(inside)
    if not paths:
        raise UsageError(
            f"{folder}'s class subfolders hold no images; valid: "
            f"{', '.join(images.IMAGE_SUFFIXES)} files"
        )
    if empty:
        note(
            f"note: {len(empty)} class folder{'s' if len(empty) > 1 else ''} hold no images "
            f"({empty[0]}/{', …' if len(empty) > 1 else ''})"
        )
    return Truth(tuple(paths), tuple(classes), "folders", str(folder), _naming(kinds), named)


def from_csv(table: Path, folder: Path, note: Note) -> Truth:
    """Images labelled by a CSV of `file,class` rows; a file is relative to `folder`."""
    _check_folder(folder)
    if not table.is_file():
        raise UsageError(
            f"--truth {str(table)!r} does not exist"
            if not table.exists()
            else f"--truth {table} is a folder, not a CSV file"
        )
    classed = [sub.name for sub in _subfolders(folder) if _names_a_class(sub.name)]
    if classed:
        raise UsageError(
            f"{folder} holds class subfolders ({classed[0]}/) and --truth {table.name} labels "
            "images too: which labels count is ambiguous",
            hint="drop --truth to label by folder, or give a folder without class subfolders",
        )
    try:
        with table.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--truth {table} is not a readable UTF-8 CSV file ({exc})") from None
    synsets = _synsets()
    paths: list[Path] = []
    classes: list[int] = []
    named: dict[int, str] = {}
    kinds: set[str] = set()
    seen: set[Path] = set()
    missing: list[str] = []
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if line == 1 and cells[0].lower() in CSV_HEADERS:
            continue
        where = f"{table.name} line {line}"
        if len(cells) != 2:
            raise UsageError(
                f"{where}: {len(cells)} columns; valid: 2 (file, class)",
                hint="one `file,class` row per image, e.g. cat.jpg,281",
            )
        path = Path(cells[0]) if Path(cells[0]).is_absolute() else folder / cells[0]
        index, kind = class_of(cells[1], where, synsets)
        if not _is_file(path):
            missing.append(cells[0])
            continue
        if path.resolve() in seen:
            raise UsageError(f"{where}: {cells[0]} is labelled twice")
        seen.add(path.resolve())
        named.setdefault(index, where)
        kinds.add(kind)
        paths.append(path)
        classes.append(index)
    if missing:
        raise UsageError(
            f"--truth {table.name} names {len(missing)} file{'s' if len(missing) > 1 else ''} "
            f"not in {folder}: {missing[0]}{', …' if len(missing) > 1 else ''}",
            hint=f"files are relative to {folder}",
        )
    if not paths:
        raise UsageError(f"--truth {table} labels no images; valid: `file,class` rows")
    unlisted = [p for p in _images_in(folder) if p.resolve() not in seen]
    if unlisted:
        note(
            f"note: {len(unlisted)} image{'s' if len(unlisted) > 1 else ''} in {folder} "
            f"not in {table.name}: not evaluated"
        )
    return Truth(tuple(paths), tuple(classes), "csv", str(table), _naming(kinds), named)


def from_list(table: Path) -> Truth:
    """Images labelled by a list, `--inputs`: .csv or .parquet with `path` and `class`
    columns (paths relative to the list's folder). At this scale a listed file that is missing
    is one bad row among many, not a refusal."""
    suffix = table.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UsageError(
            f"--inputs {table.name}: valid lists: .csv or .parquet with `path` and `class` columns"
        )
    if not table.is_file():
        raise UsageError(f"--inputs {str(table)!r} does not exist")
    cells = _list_cells(table, suffix)
    synsets = _synsets()
    paths: list[Path] = []
    classes: list[int] = []
    named: dict[int, str] = {}
    kinds: set[str] = set()
    for line, (path, name) in enumerate(cells, start=2):
        where = f"{table.name} row {line}"
        index, kind = class_of(name, where, synsets)
        named.setdefault(index, where)
        kinds.add(kind)
        paths.append(Path(path) if Path(path).is_absolute() else table.parent / path)
        classes.append(index)
    if not paths:
        raise UsageError(f"--inputs {table} labels no images; valid: `path,class` rows")
    return Truth(tuple(paths), tuple(classes), "list", str(table), _naming(kinds), named)


def _list_cells(table: Path, suffix: str) -> list[tuple[str, str]]:
    """(path, class) pairs of a list file, as text."""
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            read = pq.read_table(table)
            names: list[str] = read.column_names
            columns = {
                n: [str(v) for v in read.column(n).to_pylist()]
                for n in names
                if n in ("path", "class")
            }
        else:
            with table.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                names = list(reader.fieldnames or [])
                rows = [(r.get("path") or "", r.get("class") or "") for r in reader]
                columns = {"path": [a for a, _ in rows], "class": [b for _, b in rows]}
    except UsageError:
        raise
    except Exception as exc:  # pyarrow's and csv's ways of saying the file is not one
        raise UsageError(f"--inputs {table} is not a readable list ({exc})") from None
    if "path" not in names or "class" not in names:
        raise UsageError(
            f"--inputs {table.name} needs `path` and `class` columns; its columns: "
            f"{', '.join(names) or 'none'}"
        )
    return [
        (p.strip(), c.strip())
        for p, c in zip(columns["path"], columns["class"], strict=True)
        if p.strip()
    ]


def _names_a_class(name: str) -> bool:
    return bool(SYNSET.fullmatch(name)) or (name.isascii() and name.isdigit())


def read_truth(folder: Path, table: Path | None, note: Note) -> Truth:
    return from_csv(table, folder, note) if table is not None else from_folders(folder, note)


def check_head(truth: Truth, classes: int, label: str) -> None:
    """The truth's classes against a head of `classes` outputs (refused before the run where
    the head is known: a built model, or an artifact whose metadata says)."""
    if "synset" in truth.naming and classes != L.IMAGENET_CLASSES:
        raise UsageError(
            f"{label} has {classes} classes, but synset ids name ImageNet's "
            f"{L.IMAGENET_CLASSES}; valid for this model: class indices 0–{classes - 1}"
        )
    top = max(truth.classes)
    if top >= classes:
        raise UsageError(
            f"{truth.named[top]} names class {top}, outside {label}'s {classes} classes; "
            f"valid: 0–{classes - 1}"
        )


# ------------------------------------------------------------------------------ the models


def check_model(spec: S.ModelSpec | None, artifacts: Sequence[Path]) -> None:
    if spec is not None and not spec.include_top:
        raise UsageError("evaluate needs a classifier head; drop --no-top")
    for path in artifacts:
        if not path.exists():
            raise UsageError(f"artifact {str(path)!r} does not exist")


def built(spec: S.ModelSpec, weights: Path | None, seed: int | None, note: Note) -> C.Loaded:
    """The model built from options (random weights: their accuracy is chance, and says so)."""
    if weights is None:
        note("note: random weights: the accuracy is chance; --weights FILE loads real ones")
    return C.built(spec, weights, seed)


# ------------------------------------------------------------------------------ the run


def heads(loaded: Sequence[C.Loaded], truth: Truth) -> int:
    """Each model's head checked against the truth and the first's (before any image runs);
    returns the first's class count."""
    counts = [C.head_classes(item) for item in loaded]
    for item, classes in zip(loaded, counts, strict=True):
        check_head(truth, classes, item.label)
        if classes != counts[0]:
            raise UsageError(
                f"{item.label} has {classes} classes and {loaded[0].label} {counts[0]}: "
                "they cannot be compared"
            )
    return counts[0]


def job(loaded: Sequence[C.Loaded], resize: str, threads: int | None, draft: bool) -> stream.Job:
    sizes = tuple(item.contract.resolution for item in loaded)
    return stream.Job(
        "evaluate",
        tuple(item.label for item in loaded),
        sizes,
        resize,
        threads=threads,
        draft=draft,
    )


def items(truth: Truth) -> list[stream.Item]:
    return [stream.Item(str(p), c) for p, c in zip(truth.paths, truth.classes, strict=True)]


def accuracy_rows(loaded: Sequence[C.Loaded], outcome: engine.Outcome) -> list[AccuracyRow]:
    """One row per artifact: correct counts over the images classified, accuracies (fractions)
    and the drop against the first in percentage points (positive: worse than the first)."""
    count = outcome.classified

    def correct(n: int) -> tuple[int, int]:
        return outcome.sums.get(f"top1_correct_{n}", 0), outcome.sums.get(f"top5_correct_{n}", 0)

    def share(part: int) -> float:
        return part / count if count else 0.0

    def points(drop: int) -> float:
        return 100 * drop / count if count else 0.0

    first1, first5 = correct(0)
    rows: list[AccuracyRow] = []
    for n, item in enumerate(loaded):
        top1, top5 = correct(n)
        size = item.contract.resolution
        rows.append(
            AccuracyRow(
                path=item.label,
                runtime=item.runner.runtime,
                precision=item.runner.precision,
                resolution=(size, size),
                images=count,
                top1_correct=top1,
                top5_correct=top5,
                top1_accuracy=share(top1),
                top5_accuracy=share(top5),
                inference_s=outcome.infer_s_per_model[n] if outcome.infer_s_per_model else None,
                # from the counts: equal counts give exactly 0.0, not a float's residue
                top1_drop_points=points(first1 - top1),
                top5_drop_points=points(first5 - top5),
            )
        )
    return rows


def result(
    loaded: Sequence[C.Loaded],
    truth: Truth,
    work: stream.Job,
    spec: S.ModelSpec | None,
    classes: int,
    outcome: engine.Outcome,
    output: Path | None,
) -> EvaluateResult:
    """evaluate's result: a row per artifact, against the first."""
    return EvaluateResult(
        model=C.identity(loaded[0], spec, classes),
        truth=truth.summary(),
        resize=work.resize,
        top_k=min(TOP_K, classes),
        reference=loaded[0].label,
        rows=tuple(accuracy_rows(loaded, outcome)),
        run=outcome.summary(),
        output=engine.output_file(output),
    )
