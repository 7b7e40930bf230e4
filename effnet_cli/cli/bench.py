"""`effnet bench`: parse the options, plan (every refusal before minutes of building), run the
workflow, show the result."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from effnet_cli import backends
from effnet_cli.backends.runtimes import DEVICES, MODES
from effnet_cli.cli.common import (
    ForceOpt,
    JsonOpt,
    ThreadsOpt,
    WideOpt,
    output_sink,
    refuse_model_options,
    warn_if_huge,
)
from effnet_cli.cli.options import (
    ModelOptions,
    choice_metavar,
    complete,
    model_args,
    model_command,
    options_command,
)
from effnet_cli.output.sink import current
from effnet_cli.output.views import bench as bench_view
from effnet_cli.records.bench import BenchResult
from effnet_cli.util import files
from effnet_cli.util.errors import UsageError

if TYPE_CHECKING:
    from effnet_cli.workflows.bench import BenchPlan, BenchRequest

SourceOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--from",
        help="Benchmark this .keras file instead, or time any artifact (.onnx, .tflite, "
        "OpenVINO .xml or folder, SavedModel folder) at the precision read from it.",
    ),
]
ReferenceOpt = Annotated[
    Optional[Path],
    typer.Option(help="With --from an artifact: the .keras model its drift is measured on."),
]
RuntimeOpt = Annotated[
    str,
    typer.Option(
        help="Runtimes to time, comma-separated.",
        metavar=choice_metavar((*backends.bench_runtimes(), "all"), listed=True),
        autocompletion=complete(lambda: (*backends.bench_runtimes(), "all"), listed=True),
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="Precisions, comma-separated; where a runtime and the CPU run it.",
        metavar=choice_metavar((*backends.precisions(), "all"), listed=True),
        autocompletion=complete(lambda: (*backends.precisions(), "all"), listed=True),
    ),
]
CalibrationOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="int8 rows: calibration images, a folder or an (N,H,W,3) .npy (default: the "
        "shipped photos, flipped and cropped)."
    ),
]
VerifyImagesOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--verify-images",
        help="Judge each row's accuracy on these images (default: the shipped photos).",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        help="gpu must exist; auto says what it picked.",
        metavar=choice_metavar(DEVICES),
        autocompletion=complete(lambda: DEVICES),
    ),
]
BatchOpt = Annotated[str, typer.Option(help="Batch sizes, comma-separated.")]
WarmupOpt = Annotated[int, typer.Option(help="Untimed calls before timing.")]
IterationsOpt = Annotated[Optional[int], typer.Option(help="Timed calls per row (default 20).")]
DurationOpt = Annotated[
    Optional[float], typer.Option(help="Time each row for this many seconds instead.")
]
XlaOpt = Annotated[bool, typer.Option(help="Keras: compile with XLA.")]
ModeOpt = Annotated[
    str,
    typer.Option(
        help="latency (one call at a time), throughput (several requests in flight, wall images/s) "
        "or both.",
        metavar=choice_metavar((*MODES, "both")),
        autocompletion=complete(lambda: (*MODES, "both")),
    ),
]
StreamsOpt = Annotated[
    Optional[int],
    typer.Option(help="Throughput: requests in flight (default: tuned, else the runtime's)."),
]
TuneOpt = Annotated[
    bool,
    typer.Option(
        "--tune",
        help="Search the threads (latency) and requests in flight (throughput) again, "
        "within --threads (bounded; cached).",
    ),
]
RecommendOpt = Annotated[
    bool,
    typer.Option(
        "--recommend", help="End with the fastest artifact per precision and mode to deploy."
    ),
]
CeilingOpt = Annotated[
    bool,
    typer.Option("--ceiling", help="Re-measure this machine's GEMM ceiling (else the cached one)."),
]
BaselineOpt = Annotated[
    Optional[Path],
    typer.Option(help="An earlier --json result to gate against (same model and device)."),
]
MaxRegressionOpt = Annotated[
    Optional[float],
    typer.Option(help="With --baseline: allowed p50 slowdown in percent (default 10)."),
]
CsvOpt = Annotated[Optional[Path], typer.Option("--csv", help="Also write rows as CSV.")]
PlotOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Also draw latency and images/s against batch, with the roofline limit (a PNG)."
    ),
]


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """bench's own options, declared once: each field is an option of the command (its
    Annotated type says how it is given), and the command receives them as one record."""

    source: SourceOpt = None
    reference: ReferenceOpt = None
    runtime: RuntimeOpt = "all"
    precision: PrecisionOpt = "fp32"
    calibration: CalibrationOpt = None
    verify_images: VerifyImagesOpt = None
    device: DeviceOpt = "cpu"
    batch: BatchOpt = "1,8"
    warmup: WarmupOpt = 3
    iterations: IterationsOpt = None
    duration: DurationOpt = None
    threads: ThreadsOpt = None
    xla: XlaOpt = False
    mode: ModeOpt = "latency"
    streams: StreamsOpt = None
    tune: TuneOpt = False
    recommend: RecommendOpt = False
    ceiling: CeilingOpt = False
    baseline: BaselineOpt = None
    max_regression: MaxRegressionOpt = None
    csv_path: CsvOpt = None
    plot: PlotOpt = None
    force: ForceOpt = False


@model_command
@options_command(BenchOptions)
def bench(
    model: ModelOptions,
    options: BenchOptions,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Time inference per runtime and batch size: latency percentiles, images/s, MACs/s."""
    from effnet_cli.workflows import bench as B

    sink = output_sink(wide=wide, json_output=json_output)
    plan = plan_bench(model, options)
    result = B.run(plan, sink.note if plan.artifact else sink.progress)
    show_bench(result, options.csv_path, options.plot)
    B.refuse_not_finite([*result.rows, *(result.throughput_rows or ())])
    if result.gate is not None:
        B.enforce_gate(result.gate)


def plan_bench(model: ModelOptions, options: BenchOptions) -> "BenchPlan":
    """The options checked and turned into a plan, every refusal before anything is built,
    loaded or timed (a refused baseline included); the device is resolved here."""
    from effnet_cli.workflows import bench as B

    o = options
    request = _request(model, o)
    allowed_pct = B.gate_threshold(o.baseline, o.max_regression)
    if o.baseline is not None and "latency" not in request.modes:
        raise UsageError("--baseline compares latency rows: use --mode latency or both")
    artifact = _check_source(model, o)
    before = B.load_baseline(o.baseline) if o.baseline is not None else None
    _check_targets(o)
    B.configure_threads(o.threads)
    spec = None if o.source is not None else model.spec()
    # before minutes of building
    sink = current()
    request = replace(
        request, device=B.resolve_device(request.device, sink.note if artifact else sink.progress)
    )
    if before is not None:  # a baseline it cannot use is refused before anything is timed
        B.check_baseline(before, B.expected_model_name(spec, o.source), request)
    warn_if_huge(spec)
    rebuild = ("--from", str(o.source)) if o.source is not None else tuple(model_args(model))
    return B.BenchPlan(
        request=request,
        spec=spec,
        source=o.source,
        weights=model.weights,
        seed=model.seed,
        resolution=model.resolution,
        reference=o.reference,
        baseline=before,
        max_regression_pct=allowed_pct,
        recommend=o.recommend,
        model_args=None if artifact else rebuild,
    )


def _request(model: ModelOptions, o: BenchOptions) -> "BenchRequest":
    """What is timed, each value checked: runtimes, precisions, batches, modes, threads."""
    from effnet_cli.workflows import bench as B

    return B.build_request(
        runtime=o.runtime,
        precision=o.precision,
        device=o.device,
        batch=o.batch,
        warmup=o.warmup,
        iterations=o.iterations,
        duration_s=o.duration,
        threads=o.threads,
        seed=model.seed or 0,
        xla=o.xla,
        measure_ceiling=o.ceiling,
        calibration=o.calibration,
        verify_images=_verify_images(o.verify_images),
        mode=o.mode,
        streams=o.streams,
        tune=o.tune,
    )


def _check_source(model: ModelOptions, o: BenchOptions) -> bool:
    """The model timed, checked without loading it: --from a .keras file, --weights, or --from
    an artifact, which takes none of a model's options. Whether it is an artifact."""
    from effnet_cli.keras import archive
    from effnet_cli.keras.checkpoints import keras_files as keras_weights

    if o.reference is not None:
        if o.source is None or o.source.suffix == ".keras":
            raise UsageError("--reference applies with --from an artifact (.onnx, .tflite, …)")
        archive.check_keras_file(o.reference)
    artifact = o.source is not None and o.source.suffix != ".keras"
    if artifact:
        if o.baseline is not None or o.csv_path is not None or o.plot is not None:
            raise UsageError("--baseline, --csv and --plot apply to models, not --from an artifact")
        # --resolution sizes a file that takes any input size
        refuse_model_options(model, besides=("seed", "resolution"))
        for option, value, default in (
            ("--runtime", o.runtime, "all"),
            ("--precision", o.precision, "fp32"),
        ):
            if value != default:
                raise UsageError(
                    f"{option} does not apply with --from an artifact: its own "
                    "runtime runs it, at the precision it holds"
                )
    elif o.source is not None:
        refuse_model_options(model)
        archive.check_keras_file(o.source)
    elif model.weights is not None:
        keras_weights.check_weights_file(model.weights)
    return artifact


def _check_targets(o: BenchOptions) -> None:
    """--csv and --plot: writable, and not replacing a file without --force."""
    for target in (o.csv_path, o.plot):
        if target is not None:
            files.check_target(target, o.force)
    if o.plot is not None:
        files.check_plot_target(o.plot, o.force)


def show_bench(result: BenchResult, csv_path: Optional[Path], plot: Optional[Path]) -> None:
    """The result as JSON or tables; its CSV and plot; the gate's comparisons on stderr."""
    sink = current()
    sink.result("bench", result, lambda _, result: bench_view.print_bench(result))
    if csv_path is not None:
        files.write_text(csv_path, bench_view.bench_csv(result.rows))
    if plot is not None:
        files.write_plot(plot, lambda target: bench_view.plot_bench(result, target))
    for comparison in result.gate.compared if result.gate else ():
        sink.note(bench_view.gate_line(comparison))


def _verify_images(folder: Optional[Path]) -> Optional[tuple[Path, ...]]:
    """`bench --verify-images`: the images, checked before anything is built."""
    from effnet_cli.data import images as I

    return None if folder is None else tuple(I.collect([folder]))
