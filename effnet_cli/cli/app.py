"""The Typer app: thin commands that parse, call, and hand rows to render.

Nothing heavy is imported here: `effnet --help`, `scale-table` and the stage `summary` never load
TensorFlow (a test proves it). Errors become one `error:` line and an exit code in `main`.
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
from effnet_cli.backends import DEFAULT_OPSET
from effnet_cli.backends.runtimes import DEVICES, MODES
from effnet_cli.cli.options import (
    ModelOptions,
    choice_metavar,
    complete,
    model_args,
    model_command,
)
from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.model.identity import model_identity
from effnet_cli.output import render
from effnet_cli.util import files
from effnet_cli.util.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EffnetError,
    UsageError,
    require_choice,
    split_list,
)
from effnet_cli.workflows import export as E

app = typer.Typer(
    name="effnet",
    help="Build, inspect, export and benchmark EfficientNet models (Tan & Le, 2019).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: it wraps at 80 columns, rich cut option names
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every column, whatever the terminal's width (as a pipe).")
]


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
    render.set_quiet(quiet)
    if debug:
        os.environ["EFFNET_DEBUG"] = "1"
    if verbose:
        os.environ["EFFNET_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@app.command()
@model_command
def summary(
    model: ModelOptions,
    layers: Annotated[bool, typer.Option("--layers", help="Add the per-layer view.")] = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Per-stage table and totals: params, MACs, activation memory. Never loads TensorFlow."""
    render.set_wide(wide)
    model.refuse(("weights", "seed"), "changes nothing in summary: its counts come from the "
                 "architecture alone, not from weights")  # fmt: skip
    costs = C.count(model.spec())
    if json_output:
        render.emit_json("summary", render.summary_document(costs, layers))
    else:
        render.print_summary(costs, layers)


@app.command()
@model_command
def build(
    model: ModelOptions,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write a .keras model or .weights.h5 weights file."),
    ] = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Build the Keras model (optionally loading weights) and save it."""
    render.set_wide(wide)
    from effnet_cli.keras import builder

    if model.weights is not None:
        model.refuse(("seed",), "changes nothing beside --weights: every weight is loaded")
    spec = model.spec()
    warn_if_huge(spec)
    report = builder.build_and_save(spec, model.weights, model.seed, output, force, render.progress)
    report = {"model": render.model_document(spec), **report}
    render.show("build", report, json_output, render.print_build)


@app.command()
@model_command
def export(
    model: ModelOptions,
    fmt: Annotated[
        Optional[list[str]],
        typer.Option(
            "--format",
            "-f",
            help="Formats to write (repeat or comma-separate).",
            metavar=choice_metavar(backends.formats(), listed=True),
            autocompletion=complete(backends.formats, listed=True),
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for the artifacts.")
    ] = Path("."),
    source: Annotated[
        Optional[Path], typer.Option("--from", help="Export this .keras file instead of building.")
    ] = None,
    opset: Annotated[
        int, typer.Option(help="ONNX opset (OpenVINO converts from ONNX too).")
    ] = DEFAULT_OPSET,
    batch: Annotated[
        Optional[int], typer.Option(help="Fix the batch size (default: dynamic).")
    ] = None,
    quantize: Annotated[
        str,
        typer.Option(
            help="The precision converted into every file (formats that lack it are refused).",
            metavar=choice_metavar(backends.quantize_modes()),
            autocompletion=complete(backends.quantize_modes),
        ),
    ] = "none",
    calibration: Annotated[
        Optional[Path], typer.Option(help="int8: a folder of images or an (N,H,W,3) .npy.")
    ] = None,
    optimize: Annotated[
        bool,
        typer.Option(
            "--optimize/--no-optimize",
            help="onnxslim the ONNX graph (and the OpenVINO IR made from it).",
        ),
    ] = True,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Run each artifact against Keras.")
    ] = True,
    keep_failed: Annotated[
        bool, typer.Option("--keep-failed", help="Keep artifacts that failed verification.")
    ] = False,
    nchw: Annotated[
        bool,
        typer.Option(
            "--nchw",
            help=f"Input [N, 3, H, W] instead of NHWC ({', '.join(backends.with_layout('NCHW'))}).",
        ),
    ] = False,
    dynamic_size: Annotated[
        bool,
        typer.Option(
            "--dynamic-size",
            help="Any input height and width, verified at two sizes "
            f"({', '.join(backends.with_dynamic_size())}).",
        ),
    ] = False,
    allow_odd_padding: Annotated[
        bool,
        typer.Option(
            "--allow-odd-padding",
            help="Confirm --dynamic-size for a family that pads explicitly for its resolution "
            f"({E.explicit_padding_families()}): exact only "
            "at sizes congruent to it mod 32.",
        ),
    ] = False,
    verify_images: Annotated[
        Optional[Path],
        typer.Option(
            "--verify-images",
            help="Also compare each artifact with Keras on this folder's images (top-1, top-5, "
            "max |Δ prob|; reported).",
        ),
    ] = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write SavedModel, ONNX, TFLite, .keras and OpenVINO files from one model, each verified."""
    render.set_wide(wide)
    from effnet_cli.keras import builder

    formats = E.parse_formats(fmt or [])
    if source is not None:
        _refuse_model_options(model)
        builder.check_keras_file(source)
    elif model.weights is not None:
        builder.check_weights_file(model.weights)
    spec = None if source is not None else model.spec()
    warn_if_huge(spec)
    name = source.stem if source is not None else spec.name  # type: ignore[union-attr]
    seed = model.seed if model.seed is not None else 0
    request = E.ExportRequest(formats, output, opset, batch, quantize, calibration, optimize,
                              verify, keep_failed, force, seed, nchw, dynamic_size,
                              allow_odd_padding)  # fmt: skip
    targets = E.check_request(request, name, spec.resolution if spec is not None else None,
                              dynamic_size and E.pads_explicitly(spec, source))  # fmt: skip
    identity = render.model_document(spec) if spec is not None else (
        model_identity(name, None, None, None, None))  # fmt: skip
    if verify_images is not None:
        request.verify_images = _verify_images(verify_images, verify, spec)
    try:
        artifacts = E.run_export(spec, source, model.weights, model.seed, request, targets,
                                        render.progress)  # fmt: skip
    except E.ExportFailed as failure:
        render.export_result(identity, failure.artifacts, json_output)
        raise
    render.export_result(identity, artifacts, json_output)


def _artifact_kinds() -> str:
    return ", ".join(f"{b.name} (*{b.suffix})" for b in backends.BACKENDS.values())


@app.command(
    help="What a model holds: inputs, outputs, ops, params, size, effnet metadata.\n\n"
    f"PATH is an artifact that export writes, of any backend: {_artifact_kinds()}; "
    "an OpenVINO .xml file too; or a weights file (.weights.h5, legacy .h5): the variants and "
    "heads it fits."
)
def inspect(
    path: Annotated[Path, typer.Argument(help=f"An artifact: {_artifact_kinds()}.")],
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    render.set_wide(wide)
    from effnet_cli.backends.describe import describe, describe_weights

    is_weights = path.name.lower().endswith(".h5") and not path.is_dir()
    document = describe_weights(path) if is_weights else describe(path)
    render.show("inspect", document, json_output, render.print_inspect)


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


def _refuse_model_options(model: ModelOptions, besides: tuple[str, ...] = ("seed",)) -> None:
    """With --from the file is the model: an option that would shape another one is refused
    (the seed still draws the random inputs)."""
    given = model.given(besides=besides)
    if given:
        raise UsageError(
            f"{given[0]} does not apply with --from: the model comes from the file",
            hint="drop the model options, or drop --from to build one",
        )


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


FAMILY_CHOICES = (*S.FAMILIES, "all")
FORMAT_CHOICES = ("table", "json", "csv", "markdown")


def _phi_list(text: str) -> list[float]:
    parts = split_list("--phi", text)
    try:
        return sorted({float(part) for part in parts})
    except ValueError:
        raise UsageError(
            f"--phi takes comma-separated numbers such as 0,1,2.5, not {text!r}"
        ) from None


@app.command("scale-table")
def scale_table(
    family: Annotated[
        str,
        typer.Option(
            help="Model family, or all.",
            metavar=choice_metavar(FAMILY_CHOICES),
            autocompletion=complete(lambda: FAMILY_CHOICES),
        ),
    ] = "b",
    phi: Annotated[
        Optional[str], typer.Option(help="Comma-separated φ values, e.g. 0,1,2.5 (any real φ).")
    ] = None,
    phi_max: Annotated[
        Optional[float], typer.Option(help="Every integer φ up to this, plus released members.")
    ] = None,
    alpha: Annotated[float, typer.Option(help="Depth base of the compound rule.")] = S.ALPHA,
    beta: Annotated[float, typer.Option(help="Width base of the compound rule.")] = S.BETA,
    gamma: Annotated[float, typer.Option(help="Resolution base of the compound rule.")] = S.GAMMA,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Output format.",
            metavar=choice_metavar(FORMAT_CHOICES),
            autocompletion=complete(lambda: FORMAT_CHOICES),
        ),
    ] = "table",
    plot: Annotated[
        Optional[Path], typer.Option(help="Also draw params and MACs against φ into FILE.png.")
    ] = None,
    force: ForceOpt = False,
    wide: WideOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Released coefficients beside the compound rule, with the paper's figures. No TensorFlow."""
    render.set_wide(wide)
    require_choice("--family", family, FAMILY_CHOICES)
    require_choice("--format", fmt, FORMAT_CHOICES)
    if json_output and fmt not in ("table", "json"):
        raise UsageError(f"--json and --format {fmt} exclude each other: give one of them")
    fmt = "json" if json_output else fmt
    if phi_max is not None and not 0 <= phi_max <= 12:
        raise UsageError(f"--phi-max must lie between 0 and 12, not {phi_max:g}")
    if plot is not None:
        files.check_plot_target(plot, force)
    phis = _phi_list(phi) if phi is not None else None
    families = list(S.FAMILIES) if family == "all" else [family]
    documents = {
        name: render.scale_documents(
            C.scale_rows(name, phis, phi_max, alpha, beta, gamma), C.family_origin(name)
        )
        for name in families
    }
    rows = [doc for name in families for doc in documents[name]]
    notes = render.scale_notes(rows)
    if fmt == "json":
        rule = render.rule_document(alpha, beta, gamma)
        render.emit_json("scale-table", {**rule, "notes": notes, "rows": rows})
    else:
        footer = "\n".join([render.rule_footer(alpha, beta, gamma), *notes])
        render.print_scale_table(rows, footer, fmt)
    if plot is not None:
        files.write_plot(plot, lambda target: render.plot_scale(documents, target))
        render.note(f"plot written to {plot}")


@app.command()
def doctor(wide: WideOpt = False, json_output: JsonOpt = False) -> None:
    """Versions, devices and known-incompatible combinations; exit 1 when something is missing."""
    render.set_wide(wide)
    from effnet_cli.workflows.doctor import diagnose

    with files.stdout_to_stderr(), files.silenced_stderr():
        report = diagnose()
    render.show("doctor", report, json_output, render.print_doctor)
    if not report["ok"]:
        raise typer.Exit(1)


HUGE_PARAMS = 200_000_000


def warn_if_huge(spec: Optional[S.ModelSpec]) -> None:
    """L2 and friends: say what building costs before spending minutes and gigabytes on it."""
    if spec is None:
        return
    costs = C.count(spec)
    if costs.params >= HUGE_PARAMS:
        render.note(
            f"warning: {spec.name} has {costs.params / 1e6:.0f} M parameters "
            f"({render.size(costs.param_bytes)} of float32 weights, {render.count(costs.macs)} "
            "MACs per image); building it takes minutes and several GB of memory"
        )


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
    render.errors_as_json(_wants_json(argv))
    render.set_quiet(False)  # until the root options say otherwise
    try:
        return _dispatch(argv)
    finally:
        render.end_progress()


def _dispatch(argv: list[str]) -> int:
    try:
        result = app(args=argv, prog_name="effnet", standalone_mode=False)
        if result == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent Exit(130)
            render.error_line("interrupted", exit_code=EXIT_INTERRUPTED)
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:  # bare `effnet`: the help, once, and a usage exit
        sys.stderr.write((exc.ctx.get_help() if exc.ctx else "") + "\n")
        sys.stderr.flush()
        return EXIT_USAGE
    except ClickUsageError as exc:
        command = _command_name(argv)
        render.error_line(
            _once(exc.format_message()),
            f"see '{' '.join(['effnet', command, '--help']).replace('  ', ' ')}'",
            EXIT_USAGE,
        )
        return EXIT_USAGE
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        render.error_line("interrupted", exit_code=EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except EffnetError as exc:
        if os.environ.get("EFFNET_DEBUG"):
            raise
        render.error_line(exc.message, exc.hint, exc.exit_code)
        return exc.exit_code
    except Exception as exc:  # a bug or an unforeseen library failure: still one line
        if os.environ.get("EFFNET_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        render.error_line(f"{type(exc).__name__}: {first}", "run with --debug for the traceback")
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


# ---------------------------------------------------------------------------- predict


def _artifact_list(values: Optional[list[str]]) -> list[Path]:
    return [Path(part.strip()) for value in values or [] for part in value.split(",") if part]


@app.command()
@model_command
def predict(
    model: ModelOptions,
    image_paths: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (JPEG, PNG, WebP) or folders of them.", metavar="IMAGE..."
        ),
    ],
    source: Annotated[
        Optional[Path],
        typer.Option("--from", help=f"Run this artifact instead of building: {_artifact_kinds()}."),
    ] = None,
    compare: Annotated[
        Optional[list[str]],
        typer.Option(
            help="Artifacts to compare on the images, the first (or --from) the reference "
            "(repeat or comma-separate)."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Classes shown per image.")] = 5,
    resize: Annotated[
        str,
        typer.Option(
            help="crop: the reference centre crop, size/(size+32); plain: the whole image."
        ),
    ] = "crop",
    labels: Annotated[
        Optional[Path], typer.Option(help="Class names, one per line (default: ImageNet's 1000).")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    csv_path: Annotated[
        Optional[Path], typer.Option("--csv", help="Also write the rows as CSV.")
    ] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Classify images with a model or any artifact; --compare artifacts on the same images.

    Images are prepared as the reference evaluation does: RGB, a centre square of
    size/(size+32) of the shorter side, bicubic to the model's resolution, pixels in [0, 255]."""
    from effnet_cli.util import images as I
    from effnet_cli.util import labels as L
    from effnet_cli.workflows import predict as P

    P.check_top(top)
    require_choice("--resize", resize, I.RESIZE_MODES)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, not {threads}")
    paths = I.collect(image_paths)
    if labels is not None:
        L.read_file(labels)  # a bad labels file is refused before any model loads
    if csv_path is not None:
        files.check_target(csv_path, force)
    compared = ([source] if source is not None else []) + _artifact_list(compare)
    # Runtimes log to fd 2 while loading (LiteRT's delegate line): effnet's own notes are kept
    # aside meanwhile and said afterwards, each once.
    notes: list[str] = []
    spec = model.spec() if source is None and not compare else None
    P.check_request(spec, compared, bool(compare))
    if compare:
        with files.stdout_to_stderr(), files.silenced_stderr():
            loaded = [P.load_artifact(path, notes.append, threads) for path in compared]
            result = P.compare(loaded, paths, resize, notes.append)
        _say_once(notes)
        render.show("predict-compare", result, json_output, render.print_compare)
        if csv_path is not None:
            files.write_text(csv_path, render.compare_csv(result))
        return
    warn_if_huge(spec)
    with files.stdout_to_stderr(), files.silenced_stderr():
        item = (
            P.load_artifact(source, notes.append, threads)
            if source is not None
            else _built(model, spec, notes.append)
        )
        batch = I.load_batch(paths, item.contract.resolution, resize, notes.append)
        probs = P.probabilities(item, batch)
    _say_once(notes)
    names, missing = L.for_head(probs.shape[1], labels)
    if missing:
        render.note(missing)
    render.note(P.describe_run(item, len(paths), resize))
    size = item.contract.resolution
    if spec is not None:
        identity = model_identity(spec.name, spec.family.name, [size, size],
                                         probs.shape[1], spec.preprocessing)  # fmt: skip
    else:  # what the artifact says about itself, the contract it was fed by where it is silent
        from effnet_cli.backends import describe

        said = describe.model_from_metadata(describe.typed_metadata(item.runner.metadata))
        identity = {**said, "name": said["name"] or item.contract.name or item.label,
                    "resolution": [size, size], "classes": probs.shape[1]}  # fmt: skip
    result = {
        "model": identity, "source": item.label, "runtime": item.runner.runtime,
        "provider": item.runner.provider, "precision": item.runner.precision, "resize": resize,
        "images": P.predictions(paths, probs, top, names),
    }  # fmt: skip
    render.show("predict", result, json_output, render.print_predict)
    if csv_path is not None:
        files.write_text(csv_path, render.predict_csv(result))


def _verify_images(folder: Path, verify: bool, spec: Optional[S.ModelSpec]) -> list[Path]:
    """`export --verify-images`: the images, checked before anything is built."""
    from effnet_cli.util import images as I

    if not verify:
        raise UsageError("--verify-images is part of verification; drop --no-verify")
    if spec is not None and not spec.include_top:
        raise UsageError("--verify-images compares classes; the model needs its top (no --no-top)")
    return I.collect([folder])


def _say_once(notes: list[str]) -> None:
    for line in dict.fromkeys(notes):
        render.note(line)


def _built(model: ModelOptions, spec: S.ModelSpec, note):  # -> predict.Loaded (lazy import)
    """The model built from options; random weights get export's BatchNorm calibration, so that
    `predict --seed N` and the artifacts `export --seed N` writes hold the same model."""
    from effnet_cli.keras import builder
    from effnet_cli.workflows import predict as P

    built = builder.load_or_build(spec, None, model.weights, model.seed)
    if model.weights is None:
        seed = model.seed if model.seed is not None else 0
        builder.calibrate_batchnorm(built, seed=seed)
        note(
            f"note: random weights (seed {seed}, BatchNorm statistics calibrated as export "
            "does): the classes mean nothing; --weights FILE loads real ones"
        )
    return P.load_built(built, spec)
