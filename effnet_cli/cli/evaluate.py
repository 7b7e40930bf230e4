"""`effnet evaluate`: top-1 and top-5 accuracy on a labelled folder, for a model or artifacts.

Registered on the app in cli/app.py. Imports nothing from app.py (the layers contract forbids a
circle between sibling modules), so the output options are declared here as predict declares
them there.
"""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from effnet_cli import backends
from effnet_cli.cli.common import (
    AddressOpt,
    BatchOpt,
    DecodeOpt,
    EngineOpt,
    ForceOpt,
    JsonOpt,
    OutputOpt,
    ResumeOpt,
    ThreadsOpt,
    WorkersOpt,
    artifact_list,
    output_sink,
    refuse_model_options,
    run_plan,
    say_once,
)
from effnet_cli.cli.options import ModelOptions, model_command
from effnet_cli.output.progress import images_progress
from effnet_cli.output.views import evaluate as view
from effnet_cli.util import files
from effnet_cli.util.errors import EXIT_PARTIAL, UsageError, require_choice

if TYPE_CHECKING:
    from effnet_cli.workflows.evaluate import Truth

# fmt: off
FolderArg = Annotated[Optional[Path], typer.Argument(
    help="A folder of class subfolders named by ImageNet synset id (n02123045/) or class "
    "index (281/); with --truth, a folder of images.", metavar="[DIR]", show_default=False)]
FromOpt = Annotated[Optional[Path], typer.Option(
    "--from", help="Evaluate this artifact instead of building: "
    f"{', '.join(f'{b.name} (*{b.suffix})' for b in backends.BACKENDS.values())}.")]
CompareOpt = Annotated[Optional[list[str]], typer.Option(
    help="More artifacts to evaluate on the same images; each row's drop is against the first "
    "(repeat or comma-separate).")]
TruthOpt = Annotated[Optional[Path], typer.Option(
    "--truth", help="A CSV of `file,class` rows (class: index or synset id; files relative to "
    "DIR) instead of class subfolders.")]
ListOpt = Annotated[Optional[Path], typer.Option(
    "--inputs", help="Instead of DIR: a list of labelled images, .csv or .parquet with `path` "
    "and `class` columns (paths relative to the list's folder).")]
ResizeOpt = Annotated[str, typer.Option(
    help="crop: the reference centre crop, size/(size+32); plain: the whole image.")]
CsvOpt = Annotated[Optional[Path], typer.Option(
    "--csv", help="Also write the accuracy rows as CSV.")]
# fmt: on


@model_command
def evaluate(
    model: ModelOptions,
    folder: FolderArg = None,
    source: FromOpt = None,
    compare: CompareOpt = None,
    truth: TruthOpt = None,
    inputs: ListOpt = None,
    resize: ResizeOpt = "crop",
    threads: ThreadsOpt = None,
    csv_path: CsvOpt = None,
    output: OutputOpt = None,
    resume: ResumeOpt = False,
    engine: EngineOpt = "local",
    workers: WorkersOpt = None,
    batch: BatchOpt = 16,
    address: AddressOpt = None,
    decode: DecodeOpt = "full",
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Top-1 and top-5 accuracy on a labelled folder; with --compare, each artifact's drop.

    The model built from the options, or --from an artifact, is the first (the reference);
    --compare adds artifacts. Images are prepared as predict prepares them, decoded in parallel
    while the models infer; --output streams a row per image (its top-5 per artifact), --resume
    continues one. An unreadable image is a row with an error, left out of the accuracies
    (exit 4)."""
    from effnet_cli.data import images as I
    from effnet_cli.workflows import engine as E
    from effnet_cli.workflows import evaluate as V
    from effnet_cli.workflows import predict as P

    require_choice("--resize", resize, I.RESIZE_MODES)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, not {threads}")
    if csv_path is not None:
        files.check_target(csv_path, force)
    plan = run_plan(engine, output, resume, force, batch, workers, address, decode)
    artifacts = ([source] if source is not None else []) + artifact_list(compare)
    builds = source is None and (not compare or bool(model.given()))
    if not builds:
        refuse_model_options(model, besides=())
    elif engine == "ray":
        raise UsageError(
            "--engine ray runs artifact files on every worker; add --from FILE",
            hint="effnet export ... writes one",
        )
    spec = model.spec() if builds else None
    V.check_model(spec, artifacts)
    notes: list[str] = []
    labelled = _truth(folder, truth, inputs, notes.append)
    if spec is not None:
        V.check_head(labelled, spec.num_classes, spec.name)  # before minutes of building
    sink = output_sink(json_output=json_output)
    sink.progress(f"building {spec.name}" if spec is not None else f"loading {artifacts[0]}")
    with files.stdout_to_stderr(), files.silenced_stderr():
        loaded = [V.built(spec, model.weights, model.seed, notes.append)] if spec else []
        loaded += [P.load_artifact(path, notes.append, threads) for path in artifacts]
        classes = V.heads(loaded, labelled)
    sink.end_progress()
    say_once(notes)
    job = V.job(loaded, resize, threads, decode == "draft")
    what = loaded[0].label if len(loaded) == 1 else f"{len(loaded)} artifacts"
    with images_progress(sink, f"evaluating {what}") as tick:
        built = E.built_from(model.weights, model.seed) if spec is not None else None
        made = E.producer(job, built)
        outcome = E.execute(loaded, job, V.items(labelled), plan, made, tick, sink.note)
    for line in outcome.conversions:
        sink.note(f"note: {line}")
    result = V.result(loaded, labelled, job, spec, classes, outcome, output)
    sink.result("evaluate", result, lambda _, evaluated: view.print_evaluate(evaluated))
    if csv_path is not None:
        files.write_text(csv_path, view.evaluate_csv(result))
    sink.note(outcome.line())
    if outcome.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _truth(
    folder: Optional[Path],
    table: Optional[Path],
    listed: Optional[Path],
    note: Callable[[str], None],
) -> "Truth":
    """The labelled images: a folder (of class subfolders, or with --truth), or --inputs."""
    from effnet_cli.workflows import evaluate as V

    if listed is not None:
        if folder is not None or table is not None:
            raise UsageError("--inputs lists the labelled images itself; drop DIR and --truth")
        return V.from_list(listed)
    if folder is None:
        raise UsageError("evaluate needs the labelled images: DIR, or --inputs LIST")
    return V.read_truth(folder, table, note)
