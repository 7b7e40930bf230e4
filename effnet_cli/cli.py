"""The Typer app: thin commands that parse, call, and hand rows to render.

Nothing heavy is imported here: `effnet --help`, `scale-table` and the stage `summary` never load
TensorFlow (a test proves it). Errors become one `error:` line and an exit code in `main`.
"""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from click.exceptions import NoArgsIsHelpError
from click.exceptions import UsageError as ClickUsageError

from effnet_cli import __version__, backends, files, render
from effnet_cli import costs as C
from effnet_cli import export as E
from effnet_cli import spec as S
from effnet_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EffnetError,
    UsageError,
    require_choice,
)
from effnet_cli.options import ModelOptions, model_args, model_command
from effnet_cli.writers import DEFAULT_OPSET

app = typer.Typer(
    name="effnet",
    help="Build, inspect, export and benchmark EfficientNet models (Tan & Le, 2019).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]


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
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
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
    json_output: JsonOpt = False,
) -> None:
    """Per-stage table and totals: params, MACs, activation memory. Never loads TensorFlow."""
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
    json_output: JsonOpt = False,
) -> None:
    """Build the Keras model (optionally loading weights) and save it."""
    from effnet_cli import builder

    spec = model.spec()
    warn_if_huge(spec)
    report = builder.build_and_save(spec, model.weights, model.seed, output, force)
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
            help=f"{', '.join(backends.formats())} (repeat or comma-separate).",
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
            help=f"{', '.join(backends.quantize_modes())}: the precision converted into "
            "every file (formats that lack it are refused)."
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
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Write SavedModel, ONNX, TFLite, .keras and OpenVINO files from one model, each verified."""
    from effnet_cli import builder

    formats = E.parse_formats(fmt or [])
    if source is not None:
        builder.check_keras_file(source)
    spec = None if source is not None else model.spec()
    warn_if_huge(spec)
    name = source.stem if source is not None else spec.name  # type: ignore[union-attr]
    seed = model.seed if model.seed is not None else 0
    request = E.ExportRequest(formats, output, opset, batch, quantize, calibration, optimize,
                              verify, keep_failed, force, seed, nchw, dynamic_size,
                              allow_odd_padding)  # fmt: skip
    targets = E.check_request(request, name, spec.resolution if spec is not None else None,
                              dynamic_size and E.pads_explicitly(spec, source))  # fmt: skip
    try:
        artifacts = E.run_export(spec, source, model.weights, model.seed, request, targets,
                                        render.note)  # fmt: skip
    except E.ExportFailed as failure:
        render.export_result(name, failure.artifacts, json_output)
        raise
    render.export_result(name, artifacts, json_output)


def _artifact_kinds() -> str:
    return ", ".join(f"{b.name} (*{b.suffix})" for b in backends.BACKENDS.values())


@app.command(
    help="What a model holds: inputs, outputs, ops, params, size, effnet metadata.\n\n"
    f"PATH is an artifact that export writes, of any backend: {_artifact_kinds()}; "
    "an OpenVINO .xml file too."
)
def inspect(
    path: Annotated[Path, typer.Argument(help=f"An artifact: {_artifact_kinds()}.")],
    json_output: JsonOpt = False,
) -> None:
    from effnet_cli.describe import describe

    document = describe(path)
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
        str, typer.Option(help=f"{', '.join(backends.bench_runtimes())} or all (comma-separated).")
    ] = "all",
    precision: Annotated[
        str,
        typer.Option(
            help=f"{', '.join(backends.precisions())} or all; where a runtime and the CPU run it."
        ),
    ] = "fp32",
    calibration: Annotated[
        Optional[Path],
        typer.Option(help="int8 rows: calibration images, a folder or an (N,H,W,3) .npy."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, gpu or auto (gpu must exist).")] = "cpu",
    batch: Annotated[str, typer.Option(help="Batch sizes, comma-separated.")] = "1,8",
    warmup: Annotated[int, typer.Option(help="Untimed calls before timing.")] = 3,
    iterations: Annotated[int, typer.Option(help="Timed calls per row.")] = 20,
    duration: Annotated[
        Optional[float], typer.Option(help="Time each row for this many seconds instead.")
    ] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all).")] = None,
    xla: Annotated[bool, typer.Option(help="Keras: compile with XLA.")] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="latency (one call at a time), throughput (several requests in flight, "
            "wall images/s) or both."
        ),
    ] = "latency",
    streams: Annotated[
        Optional[int],
        typer.Option(help="Throughput: requests in flight (default: tuned, else the runtime's)."),
    ] = None,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune", help="Throughput: search the requests in flight again (bounded; cached)."
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
    json_output: JsonOpt = False,
) -> None:
    """Time inference per runtime and batch size: latency percentiles, images/s, MACs/s."""
    from effnet_cli import bench as B
    from effnet_cli import builder

    request = B.BenchRequest(
        runtimes=B.parse_runtimes(runtime), precisions=B.parse_precisions(precision),
        device=device, batches=B.parse_batches(batch), warmup=warmup,
        iterations=None if duration else iterations, duration_s=duration, threads=threads,
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
        bench_artifact(source, reference, model.resolution, request, threads, json_output,
                       recommend)  # fmt: skip
        return
    if source is not None:
        builder.check_keras_file(source)
    before = B.load_baseline(baseline) if baseline is not None else None
    for target in (csv_path, plot):
        if target is not None:
            files.check_target(target, force)
    if plot is not None:
        files.check_plot_target(plot, force)
    B.configure_threads(threads)
    spec = None if source is not None else model.spec()
    request.device = B.resolve_device(device, render.note)  # before minutes of building
    if before is not None:  # a baseline it cannot use is refused before anything is timed
        B.check_baseline(before, B.expected_model_name(spec, source), request)
    warn_if_huge(spec)
    built = builder.load_or_build(spec, source, model.weights, model.seed)
    macs = C.count(spec).macs if spec is not None else B.keras_macs(built)
    result = B.run_bench(built, spec, macs, request, render.note)
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
    from effnet_cli import bench as B
    from effnet_cli import builder

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
    try:
        return sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(
            f"--phi takes comma-separated numbers such as 0,1,2.5, not {text!r}"
        ) from None


@app.command("scale-table")
def scale_table(
    family: Annotated[
        str, typer.Option(help=f"Family: {', '.join(FAMILY_CHOICES[:-1])} or all.")
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
    fmt: Annotated[str, typer.Option("--format", help="table, json, csv or markdown.")] = "table",
    plot: Annotated[
        Optional[Path], typer.Option(help="Also draw params and MACs against φ into FILE.png.")
    ] = None,
    force: ForceOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Released coefficients beside the compound rule, with the paper's figures. No TensorFlow."""
    fmt = "json" if json_output else fmt
    require_choice("--family", family, FAMILY_CHOICES)
    require_choice("--format", fmt, FORMAT_CHOICES)
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
def doctor(json_output: JsonOpt = False) -> None:
    """Versions, devices and known-incompatible combinations; exit 1 when something is missing."""
    from effnet_cli.doctor import diagnose

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


def _main(argv: list[str]) -> int:
    try:
        result = app(args=argv, prog_name="effnet", standalone_mode=False)
        if result == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into a silent Exit(130)
            render.error_line("interrupted")
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:
        sys.stderr.write((exc.ctx.get_help() if exc.ctx else "") + "\n")
        return EXIT_USAGE
    except ClickUsageError as exc:
        command = _command_name(argv)
        render.error_line(
            exc.format_message(),
            f"see '{' '.join(['effnet', command, '--help']).replace('  ', ' ')}'",
        )
        return EXIT_USAGE
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        render.error_line("interrupted")
        return EXIT_INTERRUPTED
    except EffnetError as exc:
        if os.environ.get("EFFNET_DEBUG"):
            raise
        render.error_line(exc.message, exc.hint)
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
