"""One run over many images, whichever engine runs it: the output prepared (or resumed), the
images already written skipped, the local engine or Ray, and what happened, counted
(docs/scale.md). `predict` and `evaluate` call `execute`; neither knows the engines apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from effnet_cli.backends.runtimes import usable_cores
from effnet_cli.records.predict import FirstError, OutputFile, RunSummary
from effnet_cli.util import files
from effnet_cli.util.errors import UsageError, choices
from effnet_cli.workflows import classify as C
from effnet_cli.workflows import rowfiles, stream

ENGINES = ("local", "ray")
BATCH_IMAGES = 16  # images per inference call: the runtimes' speed, bounded memory


@dataclass(frozen=True)
class Plan:
    """How to run: the engine, where rows go, and how wide."""

    engine: str = "local"
    output: Path | None = None
    resume: bool = False
    force: bool = False
    batch: int = BATCH_IMAGES
    workers: int | None = None  # local: decoding threads; ray: actors
    address: str | None = None  # ray: a cluster to join

    def check(self) -> None:
        """Everything that can be refused before a model loads."""
        if self.engine not in ENGINES:
            raise UsageError(f"unknown --engine {self.engine!r}; valid: {choices(ENGINES)}")
        if self.batch < 1:
            raise UsageError(f"--batch must be at least 1, not {self.batch}")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, not {self.workers}")
        if self.resume and self.output is None:
            raise UsageError("--resume continues an --output; give the same --output FILE")
        if self.address is not None and self.engine != "ray":
            raise UsageError("--address joins a Ray cluster; add --engine ray")
        if self.output is not None:
            fmt = rowfiles.check_output(self.output, self.resume, self.force)
            if self.engine == "ray" and fmt != "parquet":
                raise UsageError(
                    f"--engine ray writes Parquet part files; give --output FOLDER.parquet, "
                    f"not {self.output.name}"
                )
        if self.engine == "ray":
            from effnet_cli.workflows import ray_engine

            ray_engine.import_ray()
            ray_engine.check_address(self.address)


@dataclass
class Outcome:
    """What a run did."""

    engine: str
    where: str  # "this process", or where Ray ran
    workers: int
    images: int  # asked for, those already in the output included
    skipped: int  # already in the output (--resume)
    classified: int
    failed: int
    first_error: tuple[str, str] | None
    wall_s: float
    decode_s: float | None  # the workers' decoding seconds (local engine)
    infer_s: float | None
    sums: dict[str, int] = field(default_factory=dict)  # evaluate's counts, every row's
    rows: list[stream.Row] | None = None  # kept when there is no --output
    dropped: str | None = None  # what a killed run left half-written
    conversions: list[str] = field(default_factory=list)  # what decoding converted, by kind
    infer_s_per_model: list[float] | None = None  # local engine: each model's seconds

    @property
    def images_per_s(self) -> float:
        return (self.images - self.skipped) / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        """The run's last line: `N classified, M failed; first: PATH: why`."""
        said = f"{self.classified} classified, {self.failed} failed"
        if self.first_error:
            said += f"; first: {self.first_error[0]}: {self.first_error[1]}"
        return said

    def summary(self) -> RunSummary:
        """The `run` object of predict's and evaluate's results."""
        first = self.first_error
        return RunSummary(
            engine=self.engine,
            where=self.where,
            workers=self.workers,
            images=self.images,
            skipped=self.skipped,
            classified=self.classified,
            failed=self.failed,
            first_error=FirstError(path=first[0], error=first[1]) if first else None,
            wall_s=self.wall_s,
            images_per_s=self.images_per_s,
            decode_s=self.decode_s,
            inference_s=self.infer_s,
        )


def output_file(output: Path | None) -> OutputFile | None:
    """Where a run's rows went (`--output`), and in what format."""
    if output is None:
        return None
    return OutputFile(path=output, format=output.suffix.lstrip(".").lower())


def producer(job: stream.Job, built: str | None = None) -> rowfiles.Producer:
    """What the rows will record about their making: each artifact file's hash, or for a model
    built from options, `built` (its weights file's hash, or its seed); the class names' hash."""
    made = tuple(
        (a, rowfiles.fingerprint(Path(a)) if Path(a).exists() else built or a)
        for a in job.artifacts
    )
    names = hashlib.sha256("\n".join(job.labels).encode()).hexdigest() if job.labels else None
    return rowfiles.Producer(
        job.kind,
        made,
        job.sizes,
        job.resize,
        job.top if job.kind == "predict" else None,
        job.draft,
        tuple(job.columns()),
        names,
    )


def built_from(weights: Path | None, seed: int | None) -> str:
    """How a model built from options is recorded in place of an artifact's hash."""
    if weights is not None:
        return f"weights sha256 {rowfiles.fingerprint(weights)}"
    return f"random weights, seed {seed if seed is not None else 0}"


def execute(
    models: Sequence[C.Loaded],
    job: stream.Job,
    items: Sequence[stream.Item],
    plan: Plan,
    made: rowfiles.Producer,
    progress: Callable[[int, int], None],
    note: Callable[[str], None],
) -> Outcome:
    """Run `job` over `items` as `plan` says; `progress(done, total)` after each batch."""
    existing = rowfiles.Existing()
    if plan.output is not None:
        existing = rowfiles.start(plan.output, made, plan.resume, plan.force)
        if existing.dropped:
            note(f"note: {existing.dropped} left by an interrupted run dropped from {plan.output}")
    todo = [item for item in items if item.path not in existing.done] if existing.done else items
    skipped = len(items) - len(todo)
    if skipped:
        note(f"note: {skipped} of {len(items)} images already in {plan.output}: skipped")
    if plan.engine == "ray":
        return _on_ray(job, todo, plan, len(items), skipped, note)
    return _locally(models, job, todo, plan, existing, len(items), progress)


def _locally(
    models: Sequence[C.Loaded],
    job: stream.Job,
    todo: Sequence[stream.Item],
    plan: Plan,
    existing: rowfiles.Existing,
    images: int,
    progress: Callable[[int, int], None],
) -> Outcome:
    workers = plan.workers or usable_cores()
    writer = rowfiles.Writer(plan.output, job.columns()) if plan.output is not None else None
    kept: list[stream.Row] = []  # the rows, when there is no file to hold them
    done = 0

    def emit(rows: list[stream.Row]) -> None:
        nonlocal done
        if writer is not None:
            writer.write(rows)
        else:
            kept.extend(rows)
        done += len(rows)
        progress(done, len(todo))

    try:
        stats = stream.run_local(models, job, todo, plan.batch, workers, emit)
    finally:
        if writer is not None:
            writer.close()
    before = existing.counted
    sums = {k: before.sums.get(k, 0) + stats.sums.get(k, 0) for k in {*before.sums, *stats.sums}}
    return Outcome(
        "local",
        "this process",
        workers,
        images,
        images - len(todo),
        before.classified + stats.classified,
        before.failed + stats.failed,
        before.first_error or stats.first_error,
        stats.wall_s,
        stats.decode_s,
        stats.infer_s,
        sums,
        kept if writer is None else None,
        existing.dropped,
        stats.conversions.notes(),
        stats.infer_s_per_model,
    )


def _on_ray(
    job: stream.Job,
    todo: Sequence[stream.Item],
    plan: Plan,
    images: int,
    skipped: int,
    note: Callable[[str], None],
) -> Outcome:
    from effnet_cli.workflows import ray_engine

    address = ray_engine.check_address(plan.address)
    with ray_engine.connected(address, usable_cores()) as cluster:
        workers = plan.workers or max(1, int(cluster.cpus) - 1)
        # each actor's runtime gets its share of the cluster's cores, not every core of its node
        job = replace(job, threads=job.threads or max(1, round(cluster.cpus / workers)))
        note(f"Ray: {len(todo)} images on {workers} actor(s), {cluster.where}")
        if plan.output is not None:
            totals = ray_engine.run(job, todo, plan.output, plan.batch, workers, cluster)
            rows = None
        else:
            with files.scratch_dir("effnet-ray-") as scratch:
                folder = scratch / "rows.parquet"
                totals = ray_engine.run(job, todo, folder, plan.batch, workers, cluster)
                order = {item.path: n for n, item in enumerate(todo)}
                rows = sorted(
                    rowfiles.parquet_rows(folder),
                    key=lambda row: order.get(row["path"], len(order)),
                )
    return Outcome(
        "ray",
        cluster.where,
        workers,
        images,
        skipped,
        totals.rows - totals.failed,
        totals.failed,
        totals.first_error,
        totals.wall_s,
        None,
        None,
        totals.sums,
        rows,
    )
