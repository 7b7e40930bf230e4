"""What every runtime shares: the `Runner` a backend's loader returns, its throughput
`Streams`, and the thread budget they divide.

Export's verification and bench's timing both go through runners, so each format is loaded and
run in exactly one place: its backend's module (keras.py, savedmodel.py, onnx.py, tflite.py,
openvino.py). Every framework is imported inside the function that needs it.

A runner also reads its artifact's logits (the tensor before a softmax head): a softmax
saturates on random-weight models, so comparing probabilities proves little (DESIGN §1.1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from effnet_cli.util.errors import UsageError

if TYPE_CHECKING:
    from effnet_cli.util.arrays import Floats, Images

    # One call: a float32 NHWC batch in, the model's float32 answers (one row per image) out.
    Run = Callable[[Images], Floats]


class PrecisionUnavailable(UsageError):
    """A precision this runtime or this CPU cannot run natively: refused, never emulated."""


DEVICES = ("cpu", "gpu", "auto")
MODES = ("latency", "throughput")  # bench: one call at a time, or several in flight


@dataclass(frozen=True)
class Runner:
    """A loaded artifact: `run(batch)` maps float32 NHWC images to the model's output.

    Callers always pass NHWC, whatever the artifact's own input layout: a runner of an NCHW
    artifact transposes (the layout is the artifact's property, and the runner is the one place
    that loads it). Frozen: a caller that labels it otherwise (a precision, a runtime's name)
    makes a copy with `dataclasses.replace`.
    """

    runtime: str
    device: str  # what actually runs it: "cpu" or "gpu"
    provider: str  # the execution provider / delegate / backend, as reported by the runtime
    precision: str
    run: Run
    fixed_batch: int | None = None  # a batch size the artifact is pinned to, else None
    # The pre-softmax tensor, where the output is a softmax; None: the output itself is compared.
    run_logits: Run | None = None
    # What `comparable` calls, where the runtime answers a single call more cheaply another way
    # than the timed `run` does (Keras: eagerly, since a trace costs several calls); None: it
    # calls `run_logits`, else `run`. The same tensor (the logits, where there are any), equal
    # to float rounding (Keras eager and traced: ~3e-6 relative on B0): what verification and
    # drift compare.
    run_once: Run | None = None
    threads: int | None = None  # the intra-op threads it was given (recorded in every row)
    # effnet's metadata read with the file (ONNX metadata_props, TFLite's metadata table), for
    # callers that would otherwise parse the file again (predict)
    metadata: dict[str, str] = field(default_factory=dict)
    # Throughput mode: `streams(n)` loads what keeps n requests in flight (None: the runtime's
    # own choice), in the way this runtime supports it; None where it has no such mode.
    streams: Callable[[int | None], Streams] | None = None
    settings: str = ""  # the single-stream settings it runs with, in words (every row says them)
    # The same artifact compiled for one batch size (static shapes), where that runtime runs a
    # pinned shape faster than a dynamic one (OpenVINO: 13–20 % on B0, benchmarks/run.py); bench
    # times each batch with it. None: the runtime gains nothing from it.
    pinned: Callable[[int], Runner] | None = None
    # The same artifact loaded on another number of intra-op threads (`bench --tune` searches
    # it for latency rows); None where the threads are the process's (TensorFlow's pool).
    threaded: Callable[[int], Runner] | None = None

    @property
    def compared(self) -> str:
        """What verification and drift compare: "logits", or the model's own "outputs"."""
        return "logits" if self.run_logits else "outputs"

    def comparable(self, images: Images) -> Floats:
        return (self.run_once or self.run_logits or self.run)(images)

    def comparable_all(self, images: Images) -> Floats:
        """`comparable` for any number of images: a file pinned to a batch size answers them
        that many at a time (the last chunk filled with copies of the last image, their answers
        dropped)."""
        import numpy as np

        batch = self.fixed_batch
        if batch is None or len(images) == batch:
            return self.comparable(images)
        answers = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            filled = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            answers.append(np.asarray(self.comparable(filled))[: len(chunk)])
        return np.concatenate(answers)


Interval = tuple[float, float]  # one request's start and end, time.perf_counter() seconds


@dataclass(frozen=True)
class Streams:
    """Several requests in flight at once: `drive(images, seconds)` keeps `in_flight` requests
    of `images` going for `seconds` and returns each finished request's interval."""

    in_flight: int
    settings: str  # how, in words: "2 sessions × 1 thread", "AsyncInferQueue, 4 requests, …"
    drive: Callable[[Images, float], list[Interval]]
    threads_per_request: int | None = None


def threaded_drive(workers: list[Run]) -> Callable[[Images, float], list[Interval]]:
    """One Python thread per worker, each calling its own worker back to back until the time is
    up. The runtimes release the GIL while they compute, so the calls really overlap (bench
    records the intervals and reports the overlap it observed)."""
    import threading
    import time

    def drive(images: Images, seconds: float) -> list[Interval]:
        intervals: list[list[Interval]] = [[] for _ in workers]
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(workers))

        def loop(index: int) -> None:
            try:
                barrier.wait()
                deadline = time.perf_counter() + seconds
                while True:
                    started = time.perf_counter()
                    workers[index](images)
                    ended = time.perf_counter()
                    intervals[index].append((started, ended))
                    if ended >= deadline:
                        break
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)

        threads = [
            threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(workers))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return [interval for own in intervals for interval in own]

    return drive


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def split_threads(total: int, streams: int) -> int:
    """Threads per stream when `streams` share a budget of `total` (at least one each)."""
    return max(1, total // streams)


def session_streams(
    make: Callable[[int], Run], total_threads: int, what: str
) -> Callable[[int | None], Streams]:
    """Throughput for runtimes whose sessions are independent (onnxruntime, LiteRT): n sessions,
    each on its share of the thread budget, each driven by its own thread. By default one stream
    per thread (each session single-threaded): no synchronisation inside a request."""

    def streams(n: int | None) -> Streams:
        count = n or total_threads
        per = split_threads(total_threads, count)
        workers = [make(per) for _ in range(count)]
        settings = f"{plural(count, what)} × {plural(per, 'thread')}"
        return Streams(count, settings, threaded_drive(workers), per)

    return streams


def usable_cores() -> int:
    """The cores this process may run on: its affinity (taskset, a container's cpuset) where
    the OS has one, else every core. More threads than that only wait for each other."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def threads_or_default(threads: int | None) -> int:
    return threads if threads else usable_cores()
