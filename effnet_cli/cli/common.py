"""What several commands share: the output options, the sink they configure, the checks on
model options, and the warning before a huge build."""

# No `from __future__ import annotations`: Typer reads the Annotated options at run time.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from effnet_cli import backends
from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.model.options import ModelOptions
from effnet_cli.output.sink import Sink, current
from effnet_cli.output.table import count, size
from effnet_cli.util.errors import UsageError

if TYPE_CHECKING:
    from effnet_cli.workflows.engine import Plan

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every column, whatever the terminal's width (as a pipe).")
]
# bench, predict and evaluate: the runtimes' thread budget (backends/runtimes.threads_or_default)
ThreadsOpt = Annotated[
    Optional[int], typer.Option(help="CPU threads (default: every core this process may use).")
]

HUGE_PARAMS = 200_000_000


def output_sink(wide: bool = False, json_output: bool = False) -> Sink:
    """The run's sink, as the command's --wide and --json set it."""
    return current().configure(wide=wide, **({"format": "json"} if json_output else {}))


def warn_if_huge(spec: Optional[S.ModelSpec]) -> None:
    """L2 and friends: say what building costs before spending minutes and gigabytes on it."""
    if spec is None:
        return
    costs = C.count(spec)
    if costs.params >= HUGE_PARAMS:
        current().note(
            f"warning: {spec.name} has {costs.params / 1e6:.0f} M parameters "
            f"({size(costs.param_bytes)} of float32 weights, {count(costs.macs)} "
            "MACs per image); building it takes minutes and several GB of memory"
        )


def refuse_model_options(model: ModelOptions, besides: tuple[str, ...] = ("seed",)) -> None:
    """With --from the file is the model: an option that would shape another one is refused
    (the seed still draws the random inputs)."""
    given = model.given(besides=besides)
    if given:
        raise UsageError(
            f"{given[0]} does not apply with --from: the model comes from the file",
            hint="drop the model options, or drop --from to build one",
        )


def artifact_kinds() -> str:
    return ", ".join(f"{b.name} (*{b.suffix})" for b in backends.BACKENDS.values())


def say_once(notes: list[str]) -> None:
    for line in dict.fromkeys(notes):
        current().note(line)


def artifact_list(values: Optional[list[str]]) -> list[Path]:
    """Artifacts given as repeated and/or comma-separated options (--compare A,B --compare C)."""
    return [Path(part.strip()) for value in values or [] for part in value.split(",") if part]


# predict and evaluate over many images (docs/scale.md): the engine and where rows go
# fmt: off
InputsOpt = Annotated[Optional[list[Path]], typer.Option(
    "--inputs", help="A list of images: .txt (a path a line), .csv or .parquet (a `path` "
    "column); relative paths are relative to the list's folder.")]
RecursiveOpt = Annotated[bool, typer.Option(
    "--recursive", "-r", help="Folders contribute the images in their subfolders too.")]
OutputOpt = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Stream a row per image to FILE.csv, FILE.jsonl or FOLDER.parquet "
    "(part files) as they finish; stdout gets a summary.")]
ResumeOpt = Annotated[bool, typer.Option(
    "--resume", help="Continue an interrupted --output: images already written are skipped.")]
EngineOpt = Annotated[str, typer.Option(
    help="local: this process, decoding in parallel; ray: Ray Data, embedded or --address.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    help="local: decoding threads (default: every core); ray: actors, each loading the "
    "artifact once (default: the cluster's CPUs less one).")]
BatchOpt = Annotated[int, typer.Option("--batch", help="Images per inference call.")]
AddressOpt = Annotated[Optional[str], typer.Option(
    help="--engine ray: the cluster to join, HOST:PORT (default: RAY_ADDRESS, else embedded).")]
DecodeOpt = Annotated[str, typer.Option(
    help="full: the reference decode; draft: JPEGs decoded at 1/2-1/8 scale, never below twice "
    "the model's size (faster on large photos, pixels differ slightly: docs/scale.md).")]
# fmt: on
DECODE_MODES = ("full", "draft")


def run_plan(
    engine: str,
    output: Optional[Path],
    resume: bool,
    force: bool,
    batch: int,
    workers: Optional[int],
    address: Optional[str],
    decode: str,
) -> "Plan":  # (imported lazily: the engine module is not needed for --help)
    """The run's plan, checked before any model loads."""
    from effnet_cli.util.errors import require_choice
    from effnet_cli.workflows.engine import Plan

    require_choice("--decode", decode, DECODE_MODES)
    plan = Plan(engine, output, resume, force, batch, workers, address)
    plan.check()
    return plan
