"""The Typer app: the root options, the commands (one module each, beside this one), and `main`,
which maps every failure to one `error:` line and an exit code.

Nothing heavy is imported here: `effnet --help`, `scale-table` and the stage `summary` never load
TensorFlow (a test proves it).
"""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from click.exceptions import NoArgsIsHelpError
from click.exceptions import UsageError as ClickUsageError

from effnet_cli import __version__, backends
from effnet_cli.backends.runtimes import DEVICES, MODES
from effnet_cli.cli import build as build_command
from effnet_cli.cli import doctor as doctor_command
from effnet_cli.cli import export as export_command
from effnet_cli.cli import inspect as inspect_command
from effnet_cli.cli import predict as predict_command
from effnet_cli.cli import scale_table as scale_table_command
from effnet_cli.cli import summary as summary_command
from effnet_cli.cli.common import ForceOpt, JsonOpt, WideOpt, warn_if_huge
from effnet_cli.cli.common import refuse_model_options as _refuse_model_options
from effnet_cli.cli.options import (
    ModelOptions,
    choice_metavar,
    complete,
    model_args,
    model_command,
)
from effnet_cli.model import costs as C
from effnet_cli.output import render
from effnet_cli.output.sink import Settings, Sink, current
from effnet_cli.util import files
from effnet_cli.util.errors import EXIT_INTERRUPTED, EXIT_USAGE, EffnetError, UsageError

app = typer.Typer(
    name="effnet",
    help="Build, inspect, export and benchmark EfficientNet models (Tan & Le, 2019).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: it wraps at 80 columns, rich cut option names
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"effnet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Let TensorFlow's and converters' logs through.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress on stderr (errors still show).")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    current().configure(quiet=quiet)
    if debug:
        os.environ["EFFNET_DEBUG"] = "1"
    if verbose:
        os.environ["EFFNET_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


# The commands, in the order --help lists them (bench, declared below, between inspect and
# scale-table).
app.command()(summary_command.summary)
app.command()(build_command.build)
app.command()(export_command.export)
app.command(help=inspect_command.HELP)(inspect_command.inspect)


@app.command()
@model_command
def bench(
    model: ModelOptions,
    source: Annotated[
        Optional[Path],
        typer.Option(
            "--from",
            help="Benchmark this .keras file instead, or time any artifact (.onnx, .tflite, "
            "OpenVINO .xml or folder, SavedModel folder) at the precision read from it.",
        ),
    ] = None,
    reference: Annotated[
        Optional[Path],
        typer.Option(help="With --from an artifact: the .keras model its drift is measured on."),
    ] = None,
    runtime: Annotated[
        str,
        typer.Option(
            help="Runtimes to time, comma-separated.",
            metavar=choice_metavar((*backends.bench_runtimes(), "all"), listed=True),
            autocompletion=complete(lambda: (*backends.bench_runtimes(), "all"), listed=True),
        ),
    ] = "all",
    precision: Annotated[
        str,
        typer.Option(
            help="Precisions, comma-separated; where a runtime and the CPU run it.",
            metavar=choice_metavar((*backends.precisions(), "all"), listed=True),
            autocompletion=complete(lambda: (*backends.precisions(), "all"), listed=True),
        ),
    ] = "fp32",
    calibration: Annotated[
        Optional[Path],
        typer.Option(help="int8 rows: calibration images, a folder or an (N,H,W,3) .npy."),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            help="gpu must exist; auto says what it picked.",
            metavar=choice_metavar(DEVICES),
            autocompletion=complete(lambda: DEVICES),
        ),
    ] = "cpu",
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,8",
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = 3,
    iterations: Annotated[
        Optional[int], typer.Option(help="Timed calls per row (default 20).")
    ] = None,
    duration: Annotated[
        Optional[float], typer.Option(help="Time each row for this many seconds instead.")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    xla: Annotated[bool, typer.Option(help="Keras: compile with XLA.")] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="latency (one call at a time), throughput (several requests in flight, "
            "wall images/s) or both.",
            metavar=choice_metavar((*MODES, "both")),
            autocompletion=complete(lambda: (*MODES, "both")),
        ),
    ] = "latency",
    streams: Annotated[
        Optional[int],
        typer.Option(help="Throughput: requests in flight (default: tuned, else the runtime's)."),
    ] = None,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune",
            help="Search the threads (latency) and requests in flight (throughput) again, "
            "within --threads (bounded; cached).",
        ),
    ] = False,
    recommend: Annotated[
        bool,
        typer.Option(
            "--recommend", help="End with the fastest artifact per precision and mode to deploy."
        ),
    ] = False,
    ceiling: Annotated[
        bool,
        typer.Option(
            "--ceiling", help="Re-measure this machine's GEMM ceiling (else the cached one)."
        ),
    ] = False,
    baseline: Annotated[
        Optional[Path],
        typer.Option(help="An earlier --json result to gate against (same model and device)."),
    ] = None,
    max_regression: Annotated[
        Optional[float],
        typer.Option(help="With --baseline: allowed p50 slowdown in percent (default 10)."),
    ] = None,
    csv_path: Annotated[
        Optional[Path], typer.Option("--csv", help="Also write rows as CSV.")
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option(help="Also draw latency and throughput against batch.")
    ] = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Time inference per runtime and batch size: latency percentiles, images/s, MACs/s."""
    render.set_wide(wide)
    from effnet_cli.keras import builder
    from effnet_cli.workflows import bench as B

    request = B.BenchRequest(
        runtimes=B.parse_runtimes(runtime), precisions=B.parse_precisions(precision),
        device=device, batches=B.parse_batches(batch), warmup=warmup,
        iterations=_iterations(iterations, duration), duration_s=duration, threads=threads,
        seed=model.seed or 0, xla=xla, measure_ceiling=ceiling, calibration=calibration,
        modes=B.parse_modes(mode), streams=streams, tune=tune,
    )  # fmt: skip
    B.check_request(request)
    allowed_pct = B.gate_threshold(baseline, max_regression)
    if baseline is not None and "latency" not in request.modes:
        raise UsageError("--baseline compares latency rows: use --mode latency or both")
    if reference is not None:
        if source is None or source.suffix == ".keras":
            raise UsageError("--reference applies with --from an artifact (.onnx, .tflite, …)")
        builder.check_keras_file(reference)
    if source is not None and source.suffix != ".keras":
        if baseline is not None or csv_path is not None or plot is not None:
            raise UsageError("--baseline, --csv and --plot apply to models, not --from an artifact")
        # --resolution sizes a file that takes any input size
        _refuse_model_options(model, besides=("seed", "resolution"))
        for option, value, default in (("--runtime", runtime, "all"),
                                       ("--precision", precision, "fp32")):  # fmt: skip
            if value != default:
                raise UsageError(f"{option} does not apply with --from an artifact: its own "
                                 "runtime runs it, at the precision it holds")  # fmt: skip
        bench_artifact(source, reference, model.resolution, request, threads, json_output,
                       recommend)  # fmt: skip
        return
    if source is not None:
        _refuse_model_options(model)
        builder.check_keras_file(source)
    elif model.weights is not None:
        builder.check_weights_file(model.weights)
    before = B.load_baseline(baseline) if baseline is not None else None
    for target in (csv_path, plot):
        if target is not None:
            files.check_target(target, force)
    if plot is not None:
        files.check_plot_target(plot, force)
    B.configure_threads(threads)
    spec = None if source is not None else model.spec()
    request.device = B.resolve_device(device, render.progress)  # before minutes of building
    if before is not None:  # a baseline it cannot use is refused before anything is timed
        B.check_baseline(before, B.expected_model_name(spec, source), request)
    warn_if_huge(spec)
    render.progress(f"loading {source}" if spec is None else f"building {spec.name}")
    built = builder.load_or_build(spec, source, model.weights, model.seed)
    macs = C.count(spec).macs if spec is not None else B.keras_macs(built)
    result = B.run_bench(built, spec, macs, request, render.progress)
    compared = B.compare_baseline(result, before, allowed_pct) if before is not None else None
    if compared is not None:
        result["gate"] = {"baseline": str(baseline), "max_regression_pct": allowed_pct,
                          "compared": compared}  # fmt: skip
    if recommend:
        args = ["--from", str(source)] if source is not None else model_args(model)
        result["recommendations"] = B.recommend(result, args, calibration)
    render.show("bench", result, json_output, render.print_bench)
    if csv_path is not None:
        files.write_text(csv_path, render.bench_csv(result["rows"]))
    if plot is not None:
        files.write_plot(plot, lambda target: render.plot_bench(result, target))
    if compared is not None:
        for comparison in compared:
            render.note(render.gate_line(comparison))
        B.enforce_gate(compared)


DEFAULT_ITERATIONS = 20


def _iterations(iterations: Optional[int], duration: Optional[float]) -> Optional[int]:
    """Timed calls per row: a count or a duration, never both (one would be ignored)."""
    if duration is not None and iterations is not None:
        raise UsageError("--duration and --iterations exclude each other: give one of them")
    if duration is not None:
        return None
    return DEFAULT_ITERATIONS if iterations is None else iterations


def bench_artifact(
    source: Path,
    reference: Optional[Path],
    resolution: Optional[int],
    request: Any,  # bench.BenchRequest (bench loads lazily)
    threads: Optional[int],
    json_output: bool,
    recommend: bool,
) -> None:
    """`bench --from` an artifact that is no .keras: that file, timed by its own runtime."""
    from effnet_cli.keras import builder
    from effnet_cli.workflows import bench as B

    B.configure_threads(threads)
    request.device = B.resolve_device(request.device, render.note)
    keras = builder.load_keras_file(reference) if reference is not None else None
    result = B.run_artifact_bench(source, keras, resolution, request, render.note)
    if recommend:
        result["recommendations"] = B.recommend(result, None, None)
    render.show("bench", result, json_output, render.print_bench)


app.command("scale-table")(scale_table_command.scale_table)
app.command()(doctor_command.doctor)
app.command()(predict_command.predict)


def _command_name(argv: list[str]) -> str:
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    return next((a for a in argv if a in names), "")


def _once(message: str) -> str:
    """Click and Typer each append "Did you mean 'x'?" to an unknown command: say it once."""
    return re.sub(r"(Did you mean [^?]*\?)(\s*\1)+", r"\1", message)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; map every failure to one `error:` line and DESIGN §4's exit codes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGINT, files.exit_on_interrupt)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGINT, previous)  # for callers that embed effnet (tests, API)


def _wants_json(argv: list[str]) -> bool:
    """--json (or scale-table's --format json) among the options, before any `--`."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    pairs = zip(options, [*options[1:], ""], strict=False)  # [] against [""]: no pair
    return "--json" in options or (
        "scale-table" in options
        and any((a, b) == ("--format", "json") or a == "--format=json" for a, b in pairs)
    )


def _main(argv: list[str]) -> int:
    # The sink of this run: errors are a JSON document too where --json is among the options.
    with Sink(Settings(format="json" if _wants_json(argv) else "table")).active() as sink:
        return _dispatch(argv, sink)


def _dispatch(argv: list[str], sink: Sink) -> int:
    try:
        result = app(args=argv, prog_name="effnet", standalone_mode=False)
        if result == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent Exit(130)
            sink.error("interrupted", exit_code=EXIT_INTERRUPTED)
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:  # bare `effnet`: the help, once, and a usage exit
        sys.stderr.write((exc.ctx.get_help() if exc.ctx else "") + "\n")
        sys.stderr.flush()
        return EXIT_USAGE
    except ClickUsageError as exc:
        command = _command_name(argv)
        sink.error(
            _once(exc.format_message()),
            f"see '{' '.join(['effnet', command, '--help']).replace('  ', ' ')}'",
            EXIT_USAGE,
        )
        return EXIT_USAGE
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        sink.error("interrupted", exit_code=EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except EffnetError as exc:
        if os.environ.get("EFFNET_DEBUG"):
            raise
        sink.error(exc.message, exc.hint, exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # a bug or an unforeseen library failure: still one line
        if os.environ.get("EFFNET_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        sink.error(f"{type(exc).__name__}: {first}", "run with --debug for the traceback")
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
