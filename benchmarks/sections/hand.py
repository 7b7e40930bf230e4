"""effnet against tuning by hand (~5 minutes): effnet's runners in latency and throughput modes
beside the best a user gets by hand from the same runtimes, B0 at 224."""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from common import FnRunner, Options


@dataclass(frozen=True, order=True)
class Candidate:
    """One way of running B0 in the comparison; ordered as the report lists them."""

    precision: str  # fp32, bf16
    mode: str  # latency, throughput
    side: str  # effnet, hand
    name: str  # the runner, or what the user writes by hand

    def is_in(self, precision: str, mode: str, side: str) -> bool:
        return (self.precision, self.mode, self.side) == (precision, mode, side)


HAND_SECONDS = 2.0  # each candidate's run in each round
HAND_ROUNDS = 3


def hand_section(threads: int = 2, rounds: int = HAND_ROUNDS) -> str:
    """effnet's runners (latency and throughput modes) beside the best a user gets by hand from
    the same runtimes on keras.applications' B0 at 224: tf2onnx → onnxslim → onnxruntime with
    explicit threads (N sessions × 1 thread for throughput); LiteRT; OpenVINO from the ONNX
    under the LATENCY and THROUGHPUT hints with an AsyncInferQueue. fp32, and bf16 where the
    CPU has it; batch 1 and 8; every candidate once per round, rounds interleaved; the cell
    compares effnet's fastest with the fastest by hand. (Keras under tf.function is left out of
    both sides: at 26–45 img/s here it is never the fastest.)"""
    import threading

    import numpy as np

    from effnet_cli import backends
    from effnet_cli.backends.onnx import DEFAULT_OPSET, write_onnx
    from effnet_cli.backends.openvino import OPENVINO_HINTS, native_in_openvino
    from effnet_cli.keras.builder import import_keras
    from effnet_cli.keras.calibration import calibrate_batchnorm
    from effnet_cli.util import capabilities, files
    from effnet_cli.util.drift import compare
    from effnet_cli.workflows.bench import BenchRequest, at_batch, time_runner, time_streams

    keras = import_keras()
    import onnxruntime as ort
    import onnxslim
    import openvino as ov
    from ai_edge_litert.interpreter import Interpreter

    scratch = Path(tempfile.mkdtemp(prefix="effnet-hand-"))
    reference = keras.applications.EfficientNetB0(weights=None, classifier_activation=None)
    calibrate_batchnorm(reference, seed=0)  # real statistics, so that drift means something
    # The files: tf2onnx's raw graph (no effnet optimisation), then onnxslim by hand; LiteRT's
    # converter; OpenVINO's convert_model on the slimmed ONNX. effnet's own files beside them.
    raw, slim = scratch / "hand-raw.onnx", scratch / "hand-slim.onnx"
    ours = {fmt: scratch / f"effnet.{fmt}" for fmt in ("onnx", "tflite", "openvino")}
    with files.stdout_to_stderr(), files.silenced_stderr():
        write_onnx(reference, raw, opset=DEFAULT_OPSET, batch=None, meta={},
                           optimize=False)  # fmt: skip
        onnxslim.slim(str(raw), str(slim))
        for fmt, path in ours.items():
            backends.get(fmt).write(reference, path, opset=DEFAULT_OPSET, batch=None,
                                    meta={})  # fmt: skip
    hand_tflite = ours["tflite"]  # the TFLite converter's file: effnet adds nothing to it
    core = ov.Core()
    hand_ir = core.read_model(str(slim))

    def ort_call(per_thread: int):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = per_thread, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(slim), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"input": x})[0]

    def litert_call(per_thread: int):
        interpreter = Interpreter(model_path=str(hand_tflite), num_threads=per_thread)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        output = interpreter.get_output_details()[0]["index"]

        def call(x):
            if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
                interpreter.resize_tensor_input(detail["index"], list(x.shape))
                interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return call

    def by_threads(calls):
        """N callers, each on its own Python thread, as a user writes it by hand."""

        def run(images, seconds):
            done = [0] * len(calls)
            deadline = time.perf_counter() + seconds

            def loop(i):
                while time.perf_counter() < deadline:
                    calls[i](images)
                    done[i] += 1

            workers = [threading.Thread(target=loop, args=(i,)) for i in range(len(calls))]
            started = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return sum(done) * len(images) / (time.perf_counter() - started)

        return run

    def ov_latency(hint):
        compiled = core.compile_model(hand_ir, "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                      "INFERENCE_PRECISION_HINT": hint,
                                      "INFERENCE_NUM_THREADS": threads})  # fmt: skip
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})

    def ov_throughput(hint):
        compiled = core.compile_model(hand_ir, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                      "INFERENCE_PRECISION_HINT": hint,
                                      "INFERENCE_NUM_THREADS": threads})  # fmt: skip
        queue = ov.AsyncInferQueue(
            compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        )

        def run(images, seconds):
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                queue.start_async({0: images})
                count += 1
            queue.wait_all()
            return count * len(images) / (time.perf_counter() - started)

        return run

    def latency_of(call):
        request = BenchRequest(runtimes=(), iterations=None, duration_s=HAND_SECONDS, warmup=2)
        return lambda images: time_runner(FnRunner(call), images, request).stats.images_per_s

    def streams_of(streams):
        return lambda images: time_streams(streams, images, HAND_SECONDS).images_per_s

    def warmed(run):
        def go(images):
            run(images, 0.3)
            return run(images, HAND_SECONDS)

        return go

    precisions = ["fp32"] + (["bf16"] if native_in_openvino("bf16") else [])
    candidates: dict[Candidate, Callable[[object], float]] = {}
    for precision in precisions:
        hint = OPENVINO_HINTS[precision]
        effnet = [("openvino", backends.load_runner("openvino", ours["openvino"], threads=threads,
                                                    precision=precision))]  # fmt: skip
        if precision == "fp32":
            effnet = [(fmt, backends.load_runner(fmt, ours[fmt], threads=threads))
                      for fmt in ("onnx", "tflite")] + effnet  # fmt: skip
        for name, runner in effnet:
            # as bench runs it: each batch on the runner bench times it with (at_batch)
            pinned = functools.cache(lambda batch, runner=runner: at_batch(runner, batch))
            streams = functools.cache(lambda batch, pinned=pinned: pinned(batch).streams(None))
            candidates[Candidate(precision, "latency", "effnet", name)] = partial(
                lambda images, pinned: latency_of(pinned(len(images)).run)(images), pinned=pinned
            )
            candidates[Candidate(precision, "throughput", "effnet", name)] = partial(
                lambda images, streams: streams_of(streams(len(images)))(images), streams=streams
            )
        candidates[Candidate(precision, "latency", "hand", "OpenVINO LATENCY")] = latency_of(
            ov_latency(hint)
        )
        throughput = Candidate(precision, "throughput", "hand",
                               "OpenVINO THROUGHPUT + AsyncInferQueue")  # fmt: skip
        candidates[throughput] = warmed(ov_throughput(hint))
        if precision == "fp32":
            candidates[Candidate("fp32", "latency", "hand", "onnxruntime + onnxslim")] = latency_of(
                ort_call(threads)
            )
            candidates[Candidate("fp32", "latency", "hand", "LiteRT")] = latency_of(
                litert_call(threads)
            )
            candidates[
                Candidate("fp32", "throughput", "hand", f"onnxruntime, {threads} sessions")
            ] = warmed(by_threads([ort_call(1) for _ in range(threads)]))
            candidates[
                Candidate("fp32", "throughput", "hand", f"LiteRT, {threads} interpreters")
            ] = warmed(by_threads([litert_call(1) for _ in range(threads)]))
    speeds: dict[tuple[int, Candidate], list[float]] = {}
    for _ in range(rounds):
        for batch in (1, 8):
            images = (
                np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
            )
            for key, measure in candidates.items():
                speeds.setdefault((batch, key), []).append(measure(images))
    median = {k: statistics.median(v) for k, v in speeds.items()}
    images8 = np.random.default_rng(9).uniform(0, 255, (8, 224, 224, 3)).astype("float32")
    expected = reference.predict(images8, verbose=0)
    drift = {}
    for precision in precisions:
        runner = backends.load_runner("openvino", ours["openvino"], threads=threads,
                                      precision=precision)  # fmt: skip
        drift[precision] = compare(np.asarray(runner.run(images8)), expected)
    lines = [
        f"## effnet against tuning by hand, B0 224 (keras.applications), {threads} threads, "
        f"images/s (median of {rounds} interleaved rounds of {HAND_SECONDS:g} s)",
        "",
        "CPU flags: " + " ".join(sorted(f for f in capabilities.cpu_flags()
                                       if f in ("avx512_bf16", "amx_bf16", "avx512_fp16"))),
        "",
        "| precision | batch | mode | effnet's fastest | img/s | by hand, best | img/s | "
        "effnet / hand |",
        "|---|---:|---|---|---:|---|---:|---:|",
    ]  # fmt: skip
    best_fp32 = {}
    for precision in precisions:
        for batch in (1, 8):
            for mode in ("latency", "throughput"):
                cell = (batch, precision, mode)
                (ours_name, ours_v), (hand_name, hand_v) = (
                    _fastest(median, *cell, "effnet"),
                    _fastest(median, *cell, "hand"),
                )
                if precision == "fp32":
                    best_fp32[(batch, mode)] = ours_v
                lines.append(f"| {precision} | {batch} | {mode} | {ours_name} | {ours_v:.1f} | "
                             f"{hand_name} | {hand_v:.1f} | {ours_v / hand_v:.2f}× |")  # fmt: skip
    lines.append("")
    for precision, (rel, agreement) in drift.items():
        lines.append(f"- OpenVINO {precision}: drift {rel:.1e} of the largest logit, top-1 "
                     f"agreement {agreement:.0%} with Keras fp32 (8 images)")  # fmt: skip
    if "bf16" in precisions:
        for batch in (1, 8):
            for mode in ("latency", "throughput"):
                bf16 = max(v for (b, k), v in median.items()
                           if b == batch and k.is_in("bf16", mode, "effnet"))  # fmt: skip
                lines.append(f"- bf16 ÷ best fp32 (effnet), batch {batch}, {mode}: "
                             f"{bf16 / best_fp32[(batch, mode)]:.2f}×")  # fmt: skip
    lines.append("")
    lines.append(
        "All candidates, median img/s: "
        + "; ".join(
            f"{k.precision} b{b} {k.mode} {k.side} {k.name} {v:.1f}"
            for (b, k), v in sorted(median.items())
        )
    )
    return "\n".join(lines) + "\n"


def _fastest(
    median: dict[tuple[int, Candidate], float], batch: int, precision: str, mode: str, side: str
) -> tuple[str, float]:
    rows = {
        k.name: v for (b, k), v in median.items() if b == batch and k.is_in(precision, mode, side)
    }
    name = max(rows, key=rows.__getitem__)
    return name, rows[name]


def report(options: Options) -> str:
    return hand_section()
