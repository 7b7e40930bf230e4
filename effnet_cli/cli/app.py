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
from typing import Annotated, Optional

import typer
from click.exceptions import NoArgsIsHelpError
from click.exceptions import UsageError as ClickUsageError

from effnet_cli import __version__
from effnet_cli.cli import build as build_command
from effnet_cli.cli import doctor as doctor_command
from effnet_cli.cli import evaluate as evaluate_command
from effnet_cli.cli import export as export_command
from effnet_cli.cli import inspect as inspect_command
from effnet_cli.cli import predict as predict_command
from effnet_cli.cli import scale_table as scale_table_command
from effnet_cli.cli import summary as summary_command
from effnet_cli.cli.bench import bench
from effnet_cli.output.sink import Settings, Sink, current
from effnet_cli.util import files
from effnet_cli.util.errors import EXIT_INTERRUPTED, EXIT_USAGE, EffnetError, runtime_reason

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


app.command()(bench)


app.command("scale-table")(scale_table_command.scale_table)
app.command()(doctor_command.doctor)
app.command()(predict_command.predict)
app.command()(evaluate_command.evaluate)


def _command_name(argv: list[str]) -> str:
    names = {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in app.registered_commands
    }
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
        kind, reason = type(exc).__name__, runtime_reason(exc)  # its reason, not its C++ line
        sink.error(
            kind if reason == kind else f"{kind}: {reason}", "run with --debug for the traceback"
        )
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
