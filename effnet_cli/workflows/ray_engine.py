"""`--engine ray`: the same per-batch function on Ray Data (docs/scale.md).

The paths go to Ray as a dataset; an actor pool (`--workers` actors, each loading the artifacts
once) runs stream.prepare and stream.classify_batch on each batch; Ray's Parquet writer puts the
rows into the output folder, and Ray's aggregation sums evaluate's counts across the workers.
Without an address Ray starts embedded on this machine; with one (or RAY_ADDRESS) effnet joins
that cluster, where the inputs and the output folder must be on storage every node sees. Ray is
imported here only, inside the functions: it is an optional extra (`effnet-cli[ray]`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from effnet_cli.util import files
from effnet_cli.util.errors import UsageError, WorkError
from effnet_cli.workflows import classify as C
from effnet_cli.workflows import rowfiles, stream

INSTALL_HINT = "pip install 'effnet-cli[ray]' (or pip install 'ray[data]')"
# Threads that decode a batch inside each actor: Pillow releases the GIL, so a batch decodes on
# two cores while the runtime waits (Lite0 on 600 photos, 2-core EPYC: 1 thread 44 images/s,
# 2 threads 49, the local engine 50).
DECODERS_PER_ACTOR = 2


class Batches:
    """The actors' callable: loads the artifacts once, then classifies batch after batch."""

    def __init__(self, job: stream.Job, decoders: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.job = job
        self.schema = rowfiles.arrow_schema(job.columns())
        quiet = lambda _: None  # noqa: E731 (an actor has no terminal to note on)
        self.models = [C.load_artifact(Path(a), quiet, job.threads) for a in job.artifacts]
        self.pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="effnet-decode")

    def __call__(self, batch: dict[str, Any]) -> Any:
        paths = [str(p) for p in batch["path"]]
        truths = batch.get("truth")
        items = [
            stream.Item(p, int(truths[i]) if truths is not None else None)
            for i, p in enumerate(paths)
        ]
        job = self.job
        prepared = list(
            self.pool.map(lambda p: stream.prepare(p, job.sizes, job.resize, job.draft), paths)
        )
        rows = stream.classify_batch(self.models, self.job, items, prepared)
        return rowfiles.arrow_table(rows, self.schema)


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray, which is not installed", hint=INSTALL_HINT
        ) from None
    return ray


def check_address(address: str | None) -> str | None:
    """The cluster to join (`--address`, else RAY_ADDRESS), checked reachable in seconds:
    Ray itself retries an unreachable one for minutes."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None or address in ("local", "auto") or address.startswith("ray://"):
        return address
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--address {address!r} is not HOST:PORT",
            hint="the head's address, as `ray start --head` prints it (e.g. 10.0.0.5:6379)",
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc})",
            hint="start one with `ray start --head`, or drop --address to run embedded",
        ) from None
    return address


@dataclass(frozen=True)
class Cluster:
    """Where the job runs, in words, and how many CPUs it may use."""

    where: str
    cpus: float


@contextmanager
def connected(address: str | None, cpus: int) -> Iterator[Cluster]:
    """Ray joined (or started embedded); an instance this process already holds (a test
    session's) is used as it is and left running."""
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,
        }
        if address is None:
            options |= {"num_cpus": cpus, "object_store_memory": 512 * 1024 * 1024}
        try:
            with files.silenced_stderr():  # Ray's start-up logs on fd 2
                ray.init(address=address, **options)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkError(
                f"Ray did not start: {first}", hint="Ray's logs: /tmp/ray/session_latest/logs"
            ) from None
    try:
        context = ray.get_runtime_context()
        gcs = getattr(context, "gcs_address", None) or "this machine"
        where = "embedded on this machine" if address is None and owned else f"the cluster at {gcs}"
        yield Cluster(where, float(ray.cluster_resources().get("CPU", 1)))
    finally:
        if owned:
            with files.silenced_stderr():
                ray.shutdown()


def actor_cpus(cluster_cpus: float, workers: int) -> float:
    """Each actor's CPU share: one, but never so much that no whole CPU is left, since Ray's
    read and write tasks each ask for one (an actor pool that leaves none stalls the job)."""
    return max(0.1, min(1.0, (cluster_cpus - 1) / workers))


@dataclass(frozen=True)
class Totals:
    """What the Ray job wrote, counted by Ray over the whole output folder."""

    rows: int
    failed: int
    first_error: tuple[str, str] | None
    sums: dict[str, int]  # evaluate's *_correct_* columns
    wall_s: float


def run(
    job: stream.Job,
    items: Sequence[stream.Item],
    folder: Path,
    batch: int,
    workers: int,
    cluster: Cluster,
) -> Totals:
    """Classify `items` on Ray; Ray's Parquet writer adds their rows to `folder`, and every row
    the folder holds is counted (a resumed run's earlier rows too)."""
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    began = time.perf_counter()
    if items:
        labelled = job.kind == "evaluate"
        records = [{"path": i.path, **({"truth": i.truth} if labelled else {})} for i in items]
        # a block per PART_ROWS rows (at least one per actor): a part file each, as the local
        # engine writes them
        blocks = max(workers, -(-len(records) // rowfiles.PART_ROWS))
        dataset = ray.data.from_items(records, override_num_blocks=blocks)
        rows = dataset.map_batches(
            Batches,
            fn_constructor_args=(job, DECODERS_PER_ACTOR),
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=actor_cpus(cluster.cpus, workers),
        )
        try:
            # Ray's C++ core logs on fd 2 while the job runs (actor restarts, object store notes)
            with files.silenced_stderr():
                rows.write_parquet(str(folder), schema=rowfiles.arrow_schema(job.columns()))
        except Exception as exc:  # a worker could not load the artifact, or a node was lost
            text = str(exc).strip()
            first = text.splitlines()[-1] if text else type(exc).__name__
            raise WorkError(f"the Ray job failed: {first}") from None
    wall_s = time.perf_counter() - began
    return _totals(folder, job, wall_s)


def _totals(folder: Path, job: stream.Job, wall_s: float) -> Totals:
    """Rows, failures and evaluate's counts over the whole output folder, read in this process
    part by part and only the columns counted, as --resume reads it. Not a Ray aggregation:
    Ray Data runs one as a hash shuffle whose aggregator actors are new worker processes, each
    importing Ray Data (seconds of CPU apiece) to sum columns Arrow reads here at once."""
    counted_columns = ["path", "error", *(c for c in job.columns() if "_correct_" in c)]
    found = rowfiles.parquet_rows(folder, counted_columns) if folder.exists() else iter(())
    counted = stream.Stats()
    for row in found:
        counted.count([row])
    return Totals(
        rows=counted.classified + counted.failed,
        failed=counted.failed,
        first_error=counted.first_error,
        sums=counted.sums,
        wall_s=wall_s,
    )
