"""One adapter per runtime: load an artifact, say where it runs, run a batch.

Export's verification and bench's timing both go through these adapters, so each format is
loaded and run in exactly one place. Every framework is imported inside its loader.

A runner also reads its artifact's logits (the tensor before a softmax head): a softmax
saturates on random-weight models, so comparing probabilities proves little (DESIGN §1.1).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effnet_cli.util import capabilities
from effnet_cli.util.errors import UsageError, WorkError


class PrecisionUnavailable(UsageError):
    """A precision this runtime or this CPU cannot run natively: refused, never emulated."""


DEVICES = ("cpu", "gpu", "auto")
MODES = ("latency", "throughput")  # bench: one call at a time, or several in flight


@dataclass
class Runner:
    """A loaded artifact: `run(batch)` maps float32 NHWC images to the model's output.

    Callers always pass NHWC, whatever the artifact's own input layout: a runner of an NCHW
    artifact transposes (the layout is the artifact's property, and the runner is the one place
    that loads it).
    """

    runtime: str
    device: str  # what actually runs it: "cpu" or "gpu"
    provider: str  # the execution provider / delegate / backend, as reported by the runtime
    precision: str
    run: Callable[[Any], Any]
    fixed_batch: int | None = None  # a batch size the artifact is pinned to, else None
    # The pre-softmax tensor, where the output is a softmax; None: the output itself is compared.
    run_logits: Callable[[Any], Any] | None = None
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

    def comparable(self, images: Any) -> Any:
        return (self.run_logits or self.run)(images)


Interval = tuple[float, float]  # one request's start and end, time.perf_counter() seconds


@dataclass
class Streams:
    """Several requests in flight at once: `drive(images, seconds)` keeps `in_flight` requests
    of `images` going for `seconds` and returns each finished request's interval."""

    in_flight: int
    settings: str  # how, in words: "2 sessions × 1 thread", "AsyncInferQueue, 4 requests, …"
    drive: Callable[[Any, float], list[Interval]]
    threads_per_request: int | None = None


def threaded_drive(workers: list[Callable[[Any], Any]]) -> Callable[[Any, float], list[Interval]]:
    """One Python thread per worker, each calling its own worker back to back until the time is
    up. The runtimes release the GIL while they compute, so the calls really overlap (bench
    records the intervals and reports the overlap it observed)."""
    import threading
    import time

    def drive(images: Any, seconds: float) -> list[Interval]:
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

        threads = [threading.Thread(target=loop, args=(i,), daemon=True)
                   for i in range(len(workers))]  # fmt: skip
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
    make: Callable[[int], Callable[[Any], Any]], total_threads: int, what: str
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


def threads_or_default(threads: int | None) -> int:
    return threads if threads else (os.cpu_count() or 1)


def gpus_visible() -> list[str]:
    """GPU names TensorFlow can see (empty on a CPU-only machine)."""
    from effnet_cli.keras.builder import import_keras

    import_keras()
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def keras_runner(model: Any, device: str = "cpu", xla: bool = False) -> Runner:
    """A compiled `tf.function` around `model(x, training=False)` (never `predict` in a loop)."""
    import tensorflow as tf

    from effnet_cli.keras.builder import logits_function

    target = "/GPU:0" if device == "gpu" else "/CPU:0"

    # One trace per batch size, with its static shape: a relaxed (None, ...) signature costs
    # about 7 % on CPU (measured in benchmarks/run.py).
    def compiled(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        infer = tf.function(function, jit_compile=xla)

        def run(images: Any) -> Any:
            with tf.device(target):
                return infer(tf.constant(images)).numpy()

        return run

    logits = logits_function(model)
    provider = "TensorFlow " + ("XLA " if xla else "") + device.upper()
    run = compiled(lambda x: model(x, training=False))

    def streams(n: int | None) -> Streams:
        """Keras' own parallelism: n callers share one traced function and TensorFlow's pool
        (its size is fixed when TensorFlow loads, so the budget cannot be split)."""
        count = n or 2
        pool = tensorflow_threads()
        return Streams(count, f"{count} callers of one tf.function, a shared pool of {pool} "
                       "threads", threaded_drive([run] * count), pool)  # fmt: skip

    return Runner(
        "keras", device, provider, "fp32", run,
        run_logits=compiled(logits) if logits else None, threads=tensorflow_threads(),
        streams=streams, settings=f"tf.function{' (XLA)' if xla else ''}, "
        f"pool of {tensorflow_threads()} threads",
    )  # fmt: skip


def tensorflow_threads() -> int:
    """TensorFlow's intra-op pool: sized from TF_NUM_INTRAOP_THREADS when it loaded
    (bench.configure_threads sets it), else one thread per core."""
    return int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or threads_or_default(None)


def keras_file_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    """A `.keras` file, loaded in safe mode; bf16 (a dtype policy) needs a model built here."""
    from effnet_cli.keras.builder import load_keras_file

    if precision != "fp32":
        raise PrecisionUnavailable(
            "Keras runs bf16 through the mixed_bfloat16 policy on a model built from options, "
            "not on a loaded file"
        )
    return keras_runner(load_keras_file(path), device)


def savedmodel_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    import tensorflow as tf

    from effnet_cli.keras.builder import import_keras

    import_keras()
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1].keys()
    target = "/GPU:0" if device == "gpu" else "/CPU:0"

    def caller(function: Any) -> Callable[[Any], Any]:
        (name,) = function.structured_outputs.keys()

        def run(images: Any) -> Any:
            with tf.device(target):
                return function(**{input_name: tf.constant(images)})[name].numpy()

        return run

    # export writes a "logits" signature beside serving_default when the head is a softmax
    logits = loaded.signatures.get("logits")
    return Runner("savedmodel", device, f"TensorFlow {device.upper()}", "fp32", caller(signature),
                  run_logits=caller(logits) if logits is not None else None,
                  threads=tensorflow_threads())  # fmt: skip


def onnx_runner(
    path: Path,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    find_logits: bool = True,
) -> Runner:
    """onnxruntime; on `gpu` the CUDA provider must really be active (a fallback is an error).

    `find_logits=False` skips looking for the softmax's input (no `run_logits`): it needs the
    `onnx` package, whose import alone costs ~0.4 s, and `predict` reads only the outputs."""
    import onnxruntime as ort

    options = _onnx_options(ort, threads)
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "gpu" else [
        "CPUExecutionProvider"]  # fmt: skip
    if device == "gpu" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise UsageError(
            "onnxruntime here has no CUDA provider (available: "
            + ", ".join(ort.get_available_providers()) + ")",
            hint="pip install onnxruntime-gpu, or use --device cpu",
        )  # fmt: skip
    session = ort.InferenceSession(str(path), options, providers=wanted)
    active = session.get_providers()
    if device == "gpu" and active[0] != "CUDAExecutionProvider":
        raise WorkError(f"onnxruntime fell back to {active[0]} instead of CUDA")
    meta = session.get_inputs()[0]
    batch = meta.shape[0] if isinstance(meta.shape[0], int) else None
    input_name, output_name = meta.name, session.get_outputs()[0].name
    feed = _nchw if onnx_layout(session) == "NCHW" else _unchanged

    def run(images: Any) -> Any:
        return session.run([output_name], {input_name: feed(images)})[0]

    metadata = dict(session.get_modelmeta().custom_metadata_map)

    def session_of(threads_each: int) -> Callable[[Any], Any]:
        own = ort.InferenceSession(str(path), _onnx_options(ort, threads_each), providers=wanted)
        return lambda images: own.run([output_name], {input_name: feed(images)})[0]

    streams = session_streams(session_of, options.intra_op_num_threads, "session")
    runner = Runner("onnx", device, active[0], precision, run, batch,
                    threads=options.intra_op_num_threads, metadata=metadata, streams=streams,
                    settings=_onnx_settings(options))  # fmt: skip
    runner.threaded = lambda n: onnx_runner(path, device, n, precision, find_logits)
    logits_name = _onnx_softmax_input(path, output_name) if find_logits else None
    if logits_name is None:
        return runner

    @functools.cache
    def logits_session() -> Any:
        """A second session whose graph also outputs the softmax's input, built on first use so
        that timing runs the graph exactly as written."""
        import onnx

        proto = onnx.load(str(path))
        proto.graph.output.append(onnx.ValueInfoProto(name=logits_name))
        return ort.InferenceSession(proto.SerializeToString(), options, providers=wanted)

    runner.run_logits = lambda images: logits_session().run(
        [logits_name], {input_name: feed(images)})[0]  # fmt: skip
    return runner


def _onnx_settings(options: Any) -> str:
    return f"1 session × {options.intra_op_num_threads} threads, all graph optimizations"


def onnx_layout(session: Any) -> str:
    """The input layout, NCHW or NHWC, that effnet's metadata records (`export --nchw`); for a
    file effnet did not write, read from the input's shape ([N, 3, H, W]: channels second)."""
    recorded = session.get_modelmeta().custom_metadata_map.get("input_layout")
    if recorded in ("NCHW", "NHWC"):
        return recorded
    shape = session.get_inputs()[0].shape
    return "NCHW" if len(shape) == 4 and shape[1] == 3 and shape[3] != 3 else "NHWC"


def _nchw(images: Any) -> Any:
    import numpy as np

    return np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2)))


def _unchanged(images: Any) -> Any:
    return images


def _onnx_softmax_input(path: Path, output_name: str) -> str | None:
    """The tensor a final Softmax reads (the logits), or None when the output is no softmax."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get(output_name)
    while node is not None and node.op_type in PASS_THROUGH:  # fp16's Cast, int8's Q/DQ
        node = producers.get(node.input[0])
    return node.input[0] if node is not None and node.op_type == "Softmax" else None


# Ops a converter may put between the softmax and the graph output without changing its values.
PASS_THROUGH = ("Cast", "QuantizeLinear", "DequantizeLinear", "Identity")


def _onnx_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads_or_default(threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def tflite_runner(
    path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    """`precision` describes the file (fp16/int8 weights come from the converter)."""
    from ai_edge_litert.interpreter import Interpreter

    from effnet_cli.backends import tflite_file

    interpreter = Interpreter(model_path=str(path), num_threads=threads_or_default(threads))
    detail = interpreter.get_input_details()[0]
    signature = list(detail.get("shape_signature", detail["shape"]))
    fixed = None if signature[0] == -1 else int(signature[0])
    run = _tflite_caller(interpreter, interpreter.get_output_details()[0]["index"])

    def interpreter_of(threads_each: int) -> Callable[[Any], Any]:
        own = Interpreter(model_path=str(path), num_threads=threads_each)
        return _tflite_caller(own, own.get_output_details()[0]["index"])

    runner = Runner("tflite", "cpu", "LiteRT XNNPACK", precision, run, fixed,
                    threads=threads_or_default(threads),
                    streams=session_streams(interpreter_of, threads_or_default(threads),
                                            "interpreter"),
                    settings=f"1 interpreter × {threads_or_default(threads)} threads, XNNPACK",
                    metadata=tflite_file.read_metadata(path),
                    threaded=lambda n: tflite_runner(path, device, n, precision))  # fmt: skip
    # LiteRT reads only a graph's outputs (preserving every tensor instead costs gigabytes on
    # B7): the logits come from a copy of the file whose graph also outputs the softmax's input,
    # run by a second interpreter built on first use; `run` keeps the file as deployed.
    found = _tflite_with_logits(path)
    if found is not None:
        content, logits_index = found
        logits = functools.cache(
            lambda: _tflite_caller(
                Interpreter(model_content=content, num_threads=threads_or_default(threads)),
                logits_index,
            )
        )
        runner.run_logits = lambda images: logits()(images)
    return runner


def _tflite_with_logits(path: Path) -> tuple[bytes, int] | None:
    """The file rewritten so that its graph also outputs the tensor a final SOFTMAX reads (past
    int8's DEQUANTIZE), and that tensor's index; None when the output is no softmax."""
    from ai_edge_litert import schema_py_generated as schema

    from effnet_cli.backends import tflite_file

    model = tflite_file.unpack(path.read_bytes())
    graph, ops = model.subgraphs[0], schema.BuiltinOperator
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producers = {int(out): op for op in graph.operators for out in op.outputs}
    op = producers.get(int(graph.outputs[0]))
    while op is not None and codes[op.opcodeIndex] in (ops.DEQUANTIZE, ops.QUANTIZE):
        op = producers.get(int(op.inputs[0]))
    if op is None or codes[op.opcodeIndex] != ops.SOFTMAX:
        return None
    logits_index = int(op.inputs[0])
    graph.outputs = [*(int(o) for o in graph.outputs), logits_index]
    return tflite_file.pack(model), logits_index


def _tflite_caller(interpreter: Any, tensor_index: int) -> Callable[[Any], Any]:
    """Run `interpreter` on a batch (resizing its input when the batch changes) and read one
    tensor, dequantized when the file stores it as integers."""
    import numpy as np

    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    state = {"batch": int(detail["shape"][0])}
    scale, zero_point = next(
        t["quantization"] for t in interpreter.get_tensor_details() if t["index"] == tensor_index
    )

    def run(images: Any) -> Any:
        if images.shape[0] != state["batch"]:
            interpreter.resize_tensor_input(detail["index"], list(images.shape))
            interpreter.allocate_tensors()
            state["batch"] = images.shape[0]
        interpreter.set_tensor(detail["index"], images)
        interpreter.invoke()
        value = interpreter.get_tensor(tensor_index)
        if np.issubdtype(value.dtype, np.integer) and scale:
            return (value.astype("float32") - zero_point) * scale
        return value.copy()

    return run


OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# Precisions of the IR itself, and the hint their float parts run with. NNCF's int8 IR leaves
# swish, squeeze-and-excitation's gates and the softmax in float, which a CPU with bf16 would
# run in bf16 by itself (its INFERENCE_PRECISION_HINT reads back bf16 when none is given):
# pinned to f32, so that an int8 row differs from the fp32 row by the quantization alone.
OPENVINO_FILE_PRECISIONS = {"int8": "fp32"}
# Layers whose runtime precision says whether the CPU plugin really runs the IR in int8.
OPENVINO_INT8_LAYERS = ("Convolution", "FullyConnected", "MatMul")


def openvino_xml(path: Path) -> Path:
    return path if path.suffix == ".xml" else next(path.glob("*.xml"))


def openvino_label(element_type: Any) -> str:
    """effnet's name of the element type OpenVINO compiled with, compared as types: the text of
    bf16 is "bfloat16", which contains "float16"."""
    import openvino as ov

    for label, hint in OPENVINO_HINTS.items():
        if element_type == getattr(ov.Type, hint):
            return label
    raise WorkError(f"OpenVINO compiled the model in {element_type}, which effnet does not name")


def compiled_precision(compiled: Any) -> Any:
    """The element type OpenVINO actually infers in (a test fakes it with the capabilities)."""
    return compiled.get_property("INFERENCE_PRECISION_HINT")


def fake_quantize_ops(model: Any) -> int:
    """How many FakeQuantize operations the IR holds: NNCF's int8 is written as FakeQuantize."""
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def compiled_int8_layers(compiled: Any) -> int:
    """How many convolution and dense layers the CPU plugin runs on int8 inputs (its runtime
    graph's `runtimePrecision`; a test fakes it). A CPU without int8 kernels would run the
    FakeQuantize as float arithmetic instead."""
    count = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in OPENVINO_INT8_LAYERS and info[
            "runtimePrecision"
        ].astype(str) in ("i8", "u8"):
            count += 1
    return count


def openvino_runner(
    path: Path,
    device: str = "cpu",
    threads: int | None = None,
    precision: str = "fp32",
    batch: int | None = None,
) -> Runner:
    """OpenVINO on the CPU with the inference precision pinned: it would otherwise pick bf16
    by itself on CPUs that have it, and report nothing. A row is labelled with the precision
    that was compiled, and a precision the CPU lacks is refused rather than emulated. int8 is
    the IR's own (NNCF's FakeQuantize), run with f32 for what stays float, and labelled int8
    only when the IR is quantized and the CPU plugin runs its convolutions in int8.

    `batch` compiles the IR with its batch dimension pinned to that size: the CPU plugin then
    runs static-shape kernels (the runner's `pinned` gives that runner for each batch)."""
    import openvino as ov

    if not capabilities.native_in_openvino(precision):
        raise PrecisionUnavailable(
            f"{precision} is not native on this CPU (OpenVINO capabilities: "
            f"{', '.join(capabilities.openvino_capabilities())}); refused rather than emulated"
        )
    hinted = OPENVINO_FILE_PRECISIONS.get(precision, precision)
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[hinted],
        "INFERENCE_NUM_THREADS": threads_or_default(threads),
        "PERFORMANCE_HINT": "LATENCY",
    }
    core = ov.Core()
    model = read_openvino(core, path, batch)
    quantizers = fake_quantize_ops(model)
    if (precision in OPENVINO_FILE_PRECISIONS) != bool(quantizers):
        holds = f"{quantizers} FakeQuantize operations" if quantizers else "no FakeQuantize"
        raise WorkError(f"{path.name} holds {holds}: it is not an OpenVINO {precision} IR")
    compiled = core.compile_model(model, "CPU", config)
    used = openvino_label(compiled_precision(compiled))
    if used != hinted:
        raise PrecisionUnavailable(f"OpenVINO compiled {used} when asked for {hinted}")
    if precision == "int8":
        if not compiled_int8_layers(compiled):
            raise PrecisionUnavailable(
                "OpenVINO runs no convolution of the int8 IR in int8 on this CPU "
                "(its FakeQuantize would be float arithmetic); refused rather than emulated"
            )
        used = precision
    shape = compiled.inputs[0].get_partial_shape()
    fixed = None if shape[0].is_dynamic else shape[0].get_length()
    settings = (f"LATENCY hint, {config['INFERENCE_NUM_THREADS']} threads, inference precision "
                f"{config['INFERENCE_PRECISION_HINT']}")  # fmt: skip
    if batch:
        settings += f", static batch {batch}"
    runner = Runner("openvino", "cpu", "OpenVINO CPU", used, _openvino_caller(compiled), fixed,
                    threads=int(compiled.get_property("INFERENCE_NUM_THREADS")),
                    streams=lambda n: openvino_streams(
                        core, read_openvino(core, path, batch), config, n),
                    settings=settings)  # fmt: skip
    runner.threaded = lambda n: openvino_runner(path, device, n, precision, batch)
    if fixed is None:
        runner.pinned = lambda size: openvino_runner(path, device, threads, precision, size)
    source = model.get_results()[0].input_value(0).get_node()
    if source.get_type_name() == "Softmax":

        @functools.cache
        def with_logits() -> Any:  # compiled on first use: timing runs the model as written
            model.add_outputs([source.input_value(0)])
            return core.compile_model(model, "CPU", config)

        runner.run_logits = lambda images: _openvino_caller(with_logits(), output=1)(images)
    return runner


def read_openvino(core: Any, path: Path, batch: int | None = None) -> Any:
    """The IR, with its batch dimension pinned to `batch` where it is dynamic and one is given."""
    model = core.read_model(str(openvino_xml(path)))
    shape = model.inputs[0].get_partial_shape()
    if batch and shape[0].is_dynamic:
        shape[0] = batch
        model.reshape({model.inputs[0]: shape})
    return model


def openvino_streams(core: Any, model: Any, config: dict[str, Any], n: int | None) -> Streams:
    """OpenVINO's own throughput mode: the model compiled under the THROUGHPUT hint (with
    `n` streams where given, else its choice) and driven by an AsyncInferQueue of its optimal
    number of requests, each request's interval taken from its start to its callback."""
    import time

    import openvino as ov

    wanted = {**config, "PERFORMANCE_HINT": "THROUGHPUT"}
    if n:
        wanted["NUM_STREAMS"] = n
    compiled = core.compile_model(model, "CPU", wanted)
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    streams = int(compiled.get_property("NUM_STREAMS"))
    threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))

    def drive(images: Any, seconds: float) -> list[Interval]:
        queue = ov.AsyncInferQueue(compiled, requests)
        intervals: list[Interval] = []
        started: dict[int, float] = {}
        queue.set_callback(lambda request, slot: intervals.append(
            (started[slot], time.perf_counter())))  # fmt: skip
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            slot = queue.get_idle_request_id()  # waits for a request to come back
            started[slot] = time.perf_counter()
            queue.start_async({0: images}, userdata=slot)
        queue.wait_all()
        return intervals

    settings = (f"THROUGHPUT hint, {streams} stream{'s' if streams > 1 else ''}, "
                f"AsyncInferQueue of {requests} requests, {threads} threads")  # fmt: skip
    batch = model.inputs[0].get_partial_shape()[0]
    if batch.is_static:
        settings += f", static batch {batch.get_length()}"
    return Streams(requests, settings, drive, split_threads(threads, streams))


def _openvino_caller(compiled: Any, output: int = 0) -> Callable[[Any], Any]:
    request = compiled.create_infer_request()
    port = compiled.outputs[output]

    def run(images: Any) -> Any:
        return request.infer({0: images})[port].copy()

    return run
