"""`effnet predict`: classify images with a model or any artifact, or --compare artifacts."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from effnet_cli.cli.common import (
    AddressOpt,
    BatchOpt,
    DecodeOpt,
    EngineOpt,
    ForceOpt,
    InputsOpt,
    JsonOpt,
    OutputOpt,
    RecursiveOpt,
    ResumeOpt,
    ThreadsOpt,
    WorkersOpt,
    artifact_kinds,
    artifact_list,
    output_sink,
    run_plan,
    say_once,
    warn_if_huge,
)
from effnet_cli.cli.options import ModelOptions, model_command
from effnet_cli.model import spec as S
from effnet_cli.output.progress import images_progress
from effnet_cli.output.views import predict as views
from effnet_cli.util import files
from effnet_cli.util.errors import EXIT_PARTIAL, UsageError, require_choice

if TYPE_CHECKING:
    from effnet_cli.records.predict import CompareResult, PredictResult
    from effnet_cli.workflows.classify import Loaded
    from effnet_cli.workflows.engine import Outcome, Plan

# fmt: off
ImagesArg = Annotated[Optional[list[Path]], typer.Argument(
    help="Image files (JPEG, PNG, WebP), folders of them, or glob patterns.",
    metavar="[IMAGE]...", show_default=False)]
FromOpt = Annotated[Optional[Path], typer.Option(
    "--from", help=f"Run this artifact instead of building: {artifact_kinds()}.")]
CompareOpt = Annotated[Optional[list[str]], typer.Option(
    help="Artifacts to compare on the images, the first (or --from) the reference "
    "(repeat or comma-separate).")]
TopOpt = Annotated[int, typer.Option(help="Classes shown per image.")]
ResizeOpt = Annotated[str, typer.Option(
    help="crop: the reference centre crop, size/(size+32); plain: the whole image.")]
LabelsOpt = Annotated[Optional[Path], typer.Option(
    help="Class names, one per line (default: ImageNet's 1000).")]
CsvOpt = Annotated[Optional[Path], typer.Option(
    "--csv", help="Also write the table's rows (one per image and rank) as CSV.")]
# fmt: on


@model_command
def predict(
    model: ModelOptions,
    image_paths: ImagesArg = None,
    source: FromOpt = None,
    compare: CompareOpt = None,
    top: TopOpt = 5,
    resize: ResizeOpt = "crop",
    labels: LabelsOpt = None,
    threads: ThreadsOpt = None,
    csv_path: CsvOpt = None,
    inputs: InputsOpt = None,
    recursive: RecursiveOpt = False,
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
    """Classify images with a model or any artifact; --compare artifacts on the same images.

    Images are prepared as the reference evaluation does: RGB, a centre square of
    size/(size+32) of the shorter side, bicubic to the model's resolution, pixels in [0, 255].
    Images are decoded in parallel while the model infers; with --output, rows stream to the
    file as they finish and --resume continues an interrupted run. An image that cannot be
    read is a row with an error and the run goes on (exit 4 when any failed)."""
    from effnet_cli.data import images as I
    from effnet_cli.data import inputs as IN
    from effnet_cli.data import labels as L
    from effnet_cli.workflows import predict as P

    sink = output_sink(json_output=json_output)
    P.check_top(top)
    require_choice("--resize", resize, I.RESIZE_MODES)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, not {threads}")
    plan = run_plan(engine, output, resume, force, batch, workers, address, decode)
    paths = IN.collect(image_paths or [], recursive, inputs or [])
    if labels is not None:
        L.read_file(labels)  # a bad labels file is refused before any model loads
    if csv_path is not None:
        files.check_target(csv_path, force)
    compared = ([source] if source is not None else []) + artifact_list(compare)
    spec = model.spec() if source is None and not compare else None
    P.check_request(spec, compared, bool(compare))
    if compare:
        if output is not None or engine != "local":
            raise UsageError(
                "--compare runs a few images in memory; --output and --engine "
                "ray classify with one artifact"
            )
        agreed = _compare(compared, [Path(p) for p in paths], resize, threads)
        sink.result("predict-compare", agreed, views.compare_view)
        if csv_path is not None:
            files.write_text(csv_path, views.compare_csv(agreed))
        return
    if engine == "ray" and source is None:
        raise UsageError(
            "--engine ray runs an artifact file on every worker; add --from FILE",
            hint="effnet export ... writes one",
        )
    result, outcome = _classify(
        model, spec, source, paths, top, resize, labels, threads, plan, decode == "draft"
    )
    sink.result("predict", result, views.view if output is None else views.summary_view)
    if csv_path is not None:
        files.write_text(csv_path, views.predict_csv(result))
    sink.note(outcome.line())
    if outcome.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _compare(
    compared: list[Path], paths: list[Path], resize: str, threads: Optional[int]
) -> "CompareResult":
    """Every artifact on the same images, against the first."""
    from effnet_cli.workflows import predict as P

    # Runtimes log to fd 2 while loading (LiteRT's delegate line): effnet's own notes are kept
    # aside meanwhile and said afterwards, each once.
    notes: list[str] = []
    with files.stdout_to_stderr(), files.silenced_stderr():
        loaded = [P.load_artifact(path, notes.append, threads) for path in compared]
        result = P.compare(loaded, paths, resize, notes.append)
    say_once(notes)
    return result


def _classify(
    model: ModelOptions,
    spec: Optional[S.ModelSpec],
    source: Optional[Path],
    paths: list[str],
    top: int,
    resize: str,
    labels: Optional[Path],
    threads: Optional[int],
    plan: "Plan",
    draft: bool,
) -> "tuple[PredictResult, Outcome]":
    """Each image's top classes, from the model built from options or the --from artifact,
    streamed through the run's engine."""
    from effnet_cli.data import labels as L
    from effnet_cli.workflows import engine as E
    from effnet_cli.workflows import predict as P
    from effnet_cli.workflows import stream

    sink = output_sink()
    warn_if_huge(spec)
    notes: list[str] = []
    with files.stdout_to_stderr(), files.silenced_stderr():
        if source is not None:
            item = P.load_artifact(source, notes.append, threads)
        elif spec is not None:
            item = _built(model, spec, notes.append)
        else:  # predict derives a spec wherever there is no --from: a bug if reached
            raise ValueError("predict needs a spec or a source")
        classes = P.head_classes(item)
    say_once(notes)
    names, missing = L.for_head(classes, labels)
    if missing:
        sink.note(missing)
    job = P.job(item, resize, top, names, threads, draft, classes)
    built = E.built_from(model.weights, model.seed) if source is None else None
    made = E.producer(job, built)
    sink.note(P.describe_run(item, len(paths), resize))
    items = [stream.Item(path) for path in paths]
    with images_progress(sink, "classifying") as tick:
        outcome = E.execute([item], job, items, plan, made, tick, sink.note)
    for line in outcome.conversions:
        sink.note(f"note: {line}")
    return P.result(item, spec, classes, job, outcome, plan.output), outcome


def _built(model: ModelOptions, spec: S.ModelSpec, note: Callable[[str], None]) -> "Loaded":
    """The model built from options, calibrated as export calibrates random weights."""
    from effnet_cli.workflows import classify

    if model.weights is None:
        seed = model.seed if model.seed is not None else 0
        note(
            f"note: random weights (seed {seed}, BatchNorm statistics calibrated as export "
            "does): the classes mean nothing; --weights FILE loads real ones"
        )
    return classify.built(spec, model.weights, model.seed)
