"""`--tune`: search the intra-op threads (latency rows) and the requests in flight (throughput
rows) within the --threads budget, and keep the answer per machine for later runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from effnet_cli.backends import runtimes
from effnet_cli.workflows.bench import timing
from effnet_cli.workflows.bench.cache import (
    machine_cache_path,
    read_cache_entry,
    write_cache_entry,
)
from effnet_cli.workflows.bench.request import BenchRequest

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Images

# Each candidate runs this long, a row's search at most TUNE_BUDGET_S (the rest of the
# candidates are skipped and the search says so).
TUNE_TRIAL_S = 0.7
TUNE_BUDGET_S = 8.0
TUNE_VERSION = 2  # part of the tuning cache's key: a changed search tunes again


@dataclass(frozen=True, kw_only=True)
class TuneKey:
    """What a tuning is cached under (besides this machine, which the path holds)."""

    model: str
    resolution: tuple[int, int]
    runtime: str
    precision: str
    batch: int
    threads: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "resolution": list(self.resolution)}


@dataclass(frozen=True, kw_only=True)
class Searched:
    """A search's answer: the fastest candidate (None: the runtime's own choice) of those tried."""

    best: int | None
    tried_images_per_s: dict[str, float]
    searched_s: float
    tuned_at: str


Search = Callable[[runtimes.Runner, Any, int, Callable[[str], None]], Searched]


def stream_candidates(threads: int) -> list[int | None]:
    """Requests in flight to try: the runtime's own choice (None), then 1..threads (one stream
    per thread is the usual optimum of a CPU; more only queue)."""
    return [None, *range(1, max(threads, 2) + 1)]


def thread_candidates(threads: int) -> list[int]:
    """Intra-op threads to try for one call at a time: the whole budget, then halves of it down
    to 1 (hyperthreads and memory-bound layers can make fewer threads faster)."""
    found = [threads]
    while found[-1] > 1:
        found.append(found[-1] // 2)
    return found


def search(
    trials: Sequence[tuple[int | None, Callable[[], float]]],
    what: str,
    progress: Callable[[str], None],
) -> Searched:
    """Run each candidate's trial (images/s) within TUNE_BUDGET_S; the fastest wins."""
    from datetime import datetime, timezone

    tried: dict[str, float] = {}
    best: tuple[float, int | None] = (0.0, None)
    started = time.perf_counter()
    for candidate, trial in trials:
        if tried and time.perf_counter() - started > TUNE_BUDGET_S:
            progress(f"tuning {what}: {TUNE_BUDGET_S:g} s spent, the rest not tried")
            break
        speed = trial()
        tried["auto" if candidate is None else str(candidate)] = speed
        if speed > best[0]:
            best = (speed, candidate)
    return Searched(
        best=best[1],
        tried_images_per_s=tried,
        searched_s=time.perf_counter() - started,
        tuned_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def search_streams(
    runner: runtimes.Runner, images: Images, threads: int, progress: Callable[[str], None]
) -> Searched:
    """Requests in flight: each candidate kept in flight for TUNE_TRIAL_S."""
    assert runner.streams is not None
    streams = runner.streams

    def trial(n: int | None) -> Callable[[], float]:
        return lambda: timing.time_streams(streams(n), images, TUNE_TRIAL_S).images_per_s

    trials = [(n, trial(n)) for n in stream_candidates(threads)]
    return search(trials, f"{runner.runtime}'s requests in flight", progress)


def search_threads(
    runner: runtimes.Runner, images: Images, threads: int, progress: Callable[[str], None]
) -> Searched:
    """Intra-op threads for one call at a time: each candidate loaded and called back to back
    for TUNE_TRIAL_S."""
    assert runner.threaded is not None
    threaded = runner.threaded

    def trial(n: int) -> Callable[[], float]:
        return lambda: calls_per_second(threaded(n), images)

    trials = [(n, trial(n)) for n in thread_candidates(threads)]
    return search(trials, f"{runner.runtime}'s threads", progress)


def calls_per_second(runner: runtimes.Runner, images: Images) -> float:
    """Images/s of synchronous calls for TUNE_TRIAL_S, after one warm-up call."""
    runner.run(images)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < TUNE_TRIAL_S:
        runner.run(images)
        calls += 1
    return calls * len(images) / (time.perf_counter() - started)


def tuned(
    setting: str,
    search_now: Search,
    runner: runtimes.Runner,
    images: Images,
    key: TuneKey,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[int | None, str]:
    """A tuned setting and where it comes from: `search_now` within the --threads budget
    (--tune, then cached), the cached search of an earlier --tune, or none (the default)."""
    path = machine_cache_path(
        f"tuned-{setting}-{key.runtime}-{key.precision}",
        {**key.to_json(), "setting": setting, "version": TUNE_VERSION},
    )
    if not request.tune:
        cached = read_cache_entry(path)
        if cached is None or "best" not in cached or "tuned_at" not in cached:
            return None, "default (--tune searches)"
        return cached["best"], f"tuned {cached['tuned_at']} (cached; --tune searches again)"
    progress(
        f"tuning {key.runtime} {key.precision} {setting} at batch {key.batch} "
        f"(at most {TUNE_BUDGET_S:g} s)"
    )
    found = search_now(runner, images, request.threads_or_default, progress)
    try:
        write_cache_entry(path, {**key.to_json(), **asdict(found)})
    except OSError as exc:
        progress(f"could not cache the tuning in {path.parent}: {exc.strerror or exc}")
    return found.best, f"tuned now in {found.searched_s:.0f} s (cached)"


def chosen_streams(
    runner: runtimes.Runner,
    images: Images,
    key: TuneKey,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[int | None, str]:
    """The requests in flight for a throughput row (None: the runtime's own choice), and
    where they come from: --streams, or `tuned`."""
    if request.streams is not None:
        return request.streams, "--streams"
    return tuned("streams", search_streams, runner, images, key, request, progress)


def chosen_threads(
    runner: runtimes.Runner,
    images: Images,
    key: TuneKey,
    request: BenchRequest,
    progress: Callable[[str], None],
) -> tuple[runtimes.Runner, str | None]:
    """The runner a latency row times — loaded on its tuned threads, within the --threads
    budget — and where they come from (None: its threads are the process's, never tuned)."""
    if runner.threaded is None:
        return runner, None
    threads, source = tuned("threads", search_threads, runner, images, key, request, progress)
    if threads is None or threads == runner.threads:
        return runner, source
    return runner.threaded(threads), source
