"""A whole benchmark: the plan checked before anything is built, then every runtime × precision
× batch row, the environment and the ceiling, the gate and the recommendations."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from effnet_cli import backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.keras import keras_runner
from effnet_cli.model import costs as C
from effnet_cli.model import spec as S
from effnet_cli.records.bench import (
    Agreement,
    BenchResult,
    LatencyRow,
    Settings,
    Skipped,
    ThroughputRow,
)
from effnet_cli.workflows.accuracy import RealImages, real_images
from effnet_cli.workflows.bench import artifacts as A
from effnet_cli.workflows.bench.ceilings import measure_ceilings
from effnet_cli.workflows.bench.gate import (
    DEFAULT_MAX_REGRESSION_PCT,
    Baseline,
    compare_baseline,
)
from effnet_cli.workflows.bench.limits import AnyRow, Limits, with_limits
from effnet_cli.workflows.bench.machine import environment
from effnet_cli.workflows.bench.recommend import recommend
from effnet_cli.workflows.bench.request import BenchRequest
from effnet_cli.workflows.bench.rows import RowCount, time_modes

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """Everything a run needs, checked: what to time (`request`, its device resolved), the
    model (a spec to build, or a file), and what to do with the rows."""

    request: BenchRequest
    spec: S.ModelSpec | None = None  # a model built from options
    source: Path | None = None  # --from: a .keras file, or an artifact of any backend
    weights: Path | None = None
    seed: int | None = None  # the model's seed, as given
    resolution: int | None = None  # an artifact that takes any input size is timed at this
    reference: Path | None = None  # the .keras model an artifact's drift is measured on
    baseline: Baseline | None = None
    max_regression_pct: float = DEFAULT_MAX_REGRESSION_PCT
    recommend: bool = False
    model_args: tuple[str, ...] | None = None  # the options that rebuild the model (--recommend)

    @property
    def artifact(self) -> bool:
        """--from a file that is no .keras: its own runtime times it."""
        return self.source is not None and self.source.suffix != ".keras"


def run(plan: BenchPlan, progress: Progress) -> BenchResult:
    from effnet_cli.keras import archive

    if plan.artifact:
        assert plan.source is not None
        keras = archive.load_keras_file(plan.reference) if plan.reference is not None else None
        result = run_artifact_bench(plan.source, keras, plan.resolution, plan.request, progress)
        args = None
    else:
        from effnet_cli.keras.macs import keras_macs

        spec = plan.spec
        progress(f"loading {plan.source}" if spec is None else f"building {spec.name}")
        built = archive.load_or_build(spec, plan.source, plan.weights, plan.seed)
        costs = C.count(spec) if spec is not None else None
        macs = costs.macs if costs is not None else keras_macs(built)
        result = run_bench(built, spec, costs, macs, plan.request, progress)
        if plan.baseline is not None:
            result = compare_baseline(result, plan.baseline, plan.max_regression_pct)
        args = plan.model_args
    if plan.recommend:
        calibration = plan.request.calibration if args is not None else None
        result = replace(result, recommendations=recommend(result, args, calibration))
    return result


def run_bench(
    model: Any,
    spec: S.ModelSpec | None,
    costs: C.Costs | None,
    macs: int | None,
    request: BenchRequest,
    progress: Progress,
) -> BenchResult:
    """Every runtime × precision × batch row, the environment, and the ceilings.

    `request.device` is already resolved to cpu or gpu (`resolve_device`). Each row also
    carries its drift against the fp32 Keras model on the same seeded images, and each runtime
    × precision its agreement with it on real images (the shipped photos, or
    --verify-images), the accuracy export's gate and --recommend judge: not judged where the
    model has none to keep (random weights). `costs` (a model built from a spec) gives each
    row its roofline limit.
    """
    from effnet_cli.keras.calibration import calibrate_batchnorm, fresh_batchnorm
    from effnet_cli.util import files

    kept = []
    for runtime in request.runtimes:
        if request.device not in backends.get(runtime).devices:
            progress(f"{runtime} runs on the CPU here: its rows are skipped on --device gpu")
        else:
            kept.append(runtime)
    request = replace(request, runtimes=tuple(kept))
    fresh = fresh_batchnorm(model)
    if fresh:  # random weights: drift and agreement would compare noise
        calibrate_batchnorm(model, seed=request.seed)
    real = real_images(model, spec, request.verify_images, fresh, progress)
    agreements: list[Agreement] = []
    rows: list[LatencyRow] = []
    loaded: list[ThroughputRow] = []  # throughput rows: a shape of their own (docs/bench.md)
    skipped: list[Skipped] = []
    per_pair = len(request.batches) * len(request.modes)
    count = RowCount(len(request.runtimes) * len(request.precisions) * per_pair)
    with files.scratch_dir(prefix="effnet-bench-") as scratch:
        artifacts = A.convert_all(model, request, scratch, progress)
        inputs, reference = A.reference_batches(model, request)
        for runtime in request.runtimes:
            for precision in request.precisions:
                started = time.perf_counter()
                try:
                    with files.stdout_to_stderr(), files.silenced_stderr():
                        runner = A.make_runner(runtime, precision, model, spec, artifacts, request)
                except runtimes.PrecisionUnavailable as exc:
                    skipped.append(
                        Skipped(runtime=runtime, precision=precision, reason=exc.message)
                    )
                    count.done += per_pair  # its rows will not come: the bar moves past them
                    continue
                agreements.append(agreement_of(runner, precision, real))
                converted = artifacts.get(A.artifact_key(runtime, precision), (None, 0.0))[1]
                setup_s = time.perf_counter() - started + converted
                latency, throughput = time_modes(
                    runner, inputs, reference, setup_s, request, model.name, progress, count
                )
                rows += latency
                loaded += throughput
    ceilings = measure_ceilings(request.threads, request.device, request.measure_ceiling, progress)
    limits = Limits(costs, ceilings)
    height, width = model.input.shape[1:3]
    identity = {
        "name": model.name,
        "resolution": [height, width],
        "macs": macs,
        "family": spec.family.name if spec else None,
        # the model object every command's JSON shares (model/identity.py)
        "classes": spec.num_classes if spec is not None and spec.include_top else None,
        "preprocessing": spec.preprocessing if spec else None,
    }
    return BenchResult(
        model=identity,
        settings=settings(request),
        ceilings=ceilings,
        environment=environment(request.threads),
        rows=with_limits(judged(rows, agreements), macs, limits),
        skipped=tuple(skipped),
        throughput_rows=(
            with_limits(judged(loaded, agreements), macs, limits)
            if "throughput" in request.modes
            else None
        ),
        agreement=tuple(agreements),
    )


def settings(request: BenchRequest, xla: bool | None = None) -> Settings:
    return Settings(
        device=request.device,
        batches=request.batches,
        warmup=request.warmup,
        iterations=request.iterations,
        duration_s=request.duration_s,
        threads=request.threads_or_default,
        seed=request.seed,
        xla=request.xla if xla is None else xla,
        modes=request.modes,
    )


def judged(rows: list[AnyRow], agreements: list[Agreement]) -> list[AnyRow]:
    """Each row with its runtime × precision's agreement on real images: one accuracy per
    row, the same in the table, in --json and in --recommend."""
    of = {(a.runtime, a.precision): a for a in agreements}
    done = []
    for row in rows:
        agreement = of.get((row.runtime, row.precision))
        if agreement is not None and row.error is None:
            row = replace(
                row,
                top1_agreement=agreement.top1_agreement,
                top5_overlap=agreement.top5_overlap,
                sqnr_db=agreement.sqnr_db,
                not_judged=agreement.not_judged,
            )
        done.append(row)
    return done


def agreement_of(runner: runtimes.Runner, precision: str, real: RealImages) -> Agreement:
    """The runner's agreement with fp32 Keras on the real images, against export's accuracy
    gate (the same limits for every precision: fp32 agrees exactly)."""
    from effnet_cli.util.drift import NonFinite, agreement_on

    name = runner.runtime
    if real.inputs is None or real.not_judged:  # no number for a model with none to keep
        return Agreement(
            runtime=name,
            precision=precision,
            judged_on=real.judged_on,
            images=0 if real.inputs is None else len(real.inputs),
            top1_agreement=None,
            top5_overlap=None,
            sqnr_db=None,
            passed=None,
            not_judged=real.not_judged,
        )
    try:
        figures = agreement_on(runner.comparable_all(real.inputs), real.expected)
    except NonFinite:  # failed, with no figure: the row's drift says what was not finite
        return Agreement(
            runtime=name,
            precision=precision,
            judged_on=real.judged_on,
            images=len(real.inputs),
            top1_agreement=None,
            top5_overlap=None,
            sqnr_db=None,
            passed=False,
            not_judged=None,
        )
    top1, top5, sqnr = figures["top1_agreement"], figures["top_k_overlap"], figures["sqnr_db"]
    passed = backends.QUANTIZED_GATE.reached(top1, top5, sqnr)
    return Agreement(
        runtime=name,
        precision=precision,
        judged_on=real.judged_on,
        images=len(real.inputs),
        top1_agreement=top1,
        top5_overlap=top5,
        sqnr_db=sqnr,
        passed=passed,
        not_judged=real.not_judged,
    )


def run_artifact_bench(
    path: Path,
    reference: Any | None,
    resolution: int | None,
    request: BenchRequest,
    progress: Progress,
) -> BenchResult:
    """`bench --from FILE` for any backend's artifact: that file timed with its own runtime,
    labelled with the precision read from it; drift against `reference` (a Keras model) and
    agreement with it on real images when given, else said to be unmeasured and not judged."""
    import numpy as np

    from effnet_cli.backends import describe
    from effnet_cli.util import files
    from effnet_cli.util.errors import UsageError

    backend = backends.of_path(path)
    if backend.runs_model is not None:
        raise UsageError("a .keras file is benched as a model: bench --from FILE.keras")
    document = describe.describe(path)  # inspect's reading: typed metadata, the model object
    size = A.artifact_resolution(document) or ((resolution, resolution) if resolution else None)
    if size is None:
        raise UsageError(f"{path.name} takes any input size: give --resolution")
    precision = document["metadata"].get("precision") or describe.artifact_precision(
        backend.name, path
    )
    started = time.perf_counter()
    with files.stdout_to_stderr(), files.silenced_stderr():
        runner = backend.load(path, request.device, request.threads, precision)
    runner = replace(runner, runtime=backend.name)
    setup_s = time.perf_counter() - started
    inputs = A.seeded_inputs(request, size)
    expected = None
    unjudged = Agreement(
        runtime=backend.name,
        precision=precision,
        judged_on="",
        images=0,
        top1_agreement=None,
        top5_overlap=None,
        sqnr_db=None,
        passed=None,
        not_judged="no reference: give --reference",
    )
    agreements = [unjudged]
    if reference is not None:
        from effnet_cli.keras.calibration import fresh_batchnorm

        if fresh_batchnorm(reference):  # export gave its model statistics before writing
            progress(
                "the reference's BatchNorm statistics are fresh (random weights): give the "
                ".keras that `export -f keras` wrote with the artifact"
            )
        keras = keras_runner(reference, request.device)
        expected = {b: np.asarray(keras.comparable(x)) for b, x in inputs.items()}
        fresh = fresh_batchnorm(reference)
        real = real_images(reference, None, request.verify_images, fresh, progress)
        agreements = [agreement_of(runner, precision, real)]
    name = document.get("metadata", {}).get("model") or path.stem
    latency, throughput = time_modes(runner, inputs, expected, setup_s, request, name, progress)
    ceilings = measure_ceilings(request.threads, request.device, request.measure_ceiling, progress)
    limits = Limits(None, ceilings)  # a file's layers are not counted: no roofline
    return BenchResult(
        # the one model object (docs/output.md), from what the file says
        model={
            **document["model"],
            "name": name,
            "resolution": list(size),
            "macs": None,
            "artifact": str(path),
            "precision": precision,
        },
        settings=settings(request, xla=False),
        ceilings=ceilings,
        environment=environment(request.threads),
        rows=with_limits(judged(latency, agreements), None, limits),
        skipped=(),
        throughput_rows=(
            with_limits(judged(throughput, agreements), None, limits)
            if "throughput" in request.modes
            else None
        ),
        agreement=tuple(agreements),
    )
