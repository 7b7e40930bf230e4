"""The only place that formats output: rich tables for people, JSON/CSV/markdown for programs.

Commands compute rows once (plain dicts of raw numbers) and hand them here. stdout carries the
result; everything else (progress, notes, errors) goes to stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from effnet_cli import costs as C
from effnet_cli import spec as S

SCHEMA_VERSION = 1
WIDE = 240  # columns for a non-terminal (CI logs): tables are never cut to 80


def _console(stream: Any) -> Console:
    is_tty = stream.isatty() if hasattr(stream, "isatty") else False
    return Console(
        file=stream,
        width=None if is_tty else WIDE,
        no_color=bool(os.environ.get("NO_COLOR")) or not is_tty,
        highlight=False,
        soft_wrap=False,
    )


def out() -> Console:
    return _console(sys.stdout)


def err() -> Console:
    return _console(sys.stderr)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr."""
    err().print(message, markup=False)


def error_line(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.stderr.flush()


def emit_json(kind: str, document: Mapping[str, Any]) -> None:
    """One JSON document on stdout, tagged with its schema."""
    payload = {"schema": f"effnet.{kind}/{SCHEMA_VERSION}", **document}
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()


def show(
    kind: str, document: Mapping[str, Any], as_json: bool, printer: Callable[[Any], None]
) -> None:
    """A command's result: one JSON document, or the table a person reads."""
    if as_json:
        emit_json(kind, document)
    else:
        printer(document)


# ---------------------------------------------------------------------------- humanised numbers


def count(value: float | None) -> str:
    """5,330,571 -> '5.33M'; for tables only (JSON keeps exact integers)."""
    if value is None:
        return "–"
    for factor, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return (
                f"{value / factor:.3g}{unit}"
                if value / factor < 100
                else f"{value / factor:.0f}{unit}"
            )
    return f"{value:g}"


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "–"
    for factor, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if num_bytes >= factor:
            return f"{num_bytes / factor:.1f} {unit}"
    return f"{num_bytes:.0f} B"


# ---------------------------------------------------------------------------- documents


def model_document(spec: S.ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "family": spec.family.name,
        "base": spec.base,
        "phi": spec.phi,
        "width": spec.width,
        "depth": spec.depth,
        "resolution": spec.resolution,
        "dropout": spec.dropout,
        "drop_connect": spec.drop_connect,
        "num_classes": spec.num_classes,
        "include_top": spec.include_top,
        "pooling": spec.pooling,
        "classifier_activation": spec.classifier_activation,
        "preprocessing": spec.preprocessing,
    }


def totals_document(costs: C.Costs) -> dict[str, int]:
    return {
        "params": costs.params,
        "params_trainable": costs.params_trainable,
        "params_non_trainable": costs.params_non_trainable,
        "params_bn_moving": costs.params_bn_moving,
        "params_preprocessing": costs.params_preprocessing,
        "macs": costs.macs,
        "param_bytes": costs.param_bytes,
        "peak_activation_bytes": costs.peak_activation_bytes,
    }


def published_document(spec: S.ModelSpec) -> dict[str, Any] | None:
    published = S.PUBLISHED.get(spec.base)
    if published is None or spec.name != f"efficientnet-{spec.base}":
        return None
    return {
        "params": published.params,
        "macs": published.macs,
        "top1": published.top1,
        "top1_v1": published.top1_v1,
        "source": published.source,
    }


def summary_document(costs: C.Costs, with_layers: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": model_document(costs.spec),
        "input": S.input_contract(costs.spec),
        "totals": totals_document(costs),
        "published": published_document(costs.spec),
        "stages": [vars(stage) for stage in costs.stages],
    }
    if with_layers:
        doc["layers"] = [
            {
                "name": layer.name,
                "class": layer.keras_class,
                "stage": layer.stage,
                "shape": list(layer.shape),
                "params": layer.params,
                "params_trainable": layer.params_trainable,
                "macs": layer.macs,
                "activation_bytes": layer.activation_bytes,
            }
            for layer in costs.layers
        ]
    return doc


# ---------------------------------------------------------------------------- tables


def _table(title: str | None, columns: Sequence[str], right_from: int = 1) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i >= right_from else "left", no_wrap=True)
    return table


def _contract_line(spec: S.ModelSpec) -> str:
    contract = S.input_contract(spec)
    h, w, c = spec.input_shape()
    pixels = "caller-normalized RGB" if contract["range"] == "caller-normalized" else (
        f"RGB in {contract['range']}")  # fmt: skip
    return (
        f"input: float32 NHWC (batch, {h}, {w}, {c}), {pixels}; "
        f"inside the model: {contract['preprocessing']}"
    )


def print_summary(costs: C.Costs, with_layers: bool) -> None:
    spec, console = costs.spec, out()
    stages = _table(
        f"{spec.name}  (width {spec.width:g}, depth {spec.depth:g}, resolution {spec.resolution})",
        ["stage", "operator", "resolution", "channels", "layers", "kernel", "stride", "expand",
         "SE", "params", "MACs", "peak act."],
        right_from=2,
    )  # fmt: skip
    for st in costs.stages:
        is_block = st.expand_ratio > 0
        stages.add_row(
            st.stage,
            st.operator,
            f"{st.input_resolution}→{st.output_resolution}",
            str(st.channels),
            str(st.layers),
            f"{st.kernel_size}x{st.kernel_size}",
            str(st.strides),
            str(st.expand_ratio) if is_block else "–",
            ("yes" if st.se else "no") if is_block else "–",
            count(st.params),
            count(st.macs),
            size(st.peak_activation_bytes),
        )
    console.print(stages)
    if with_layers:
        console.print()
        console.print(_layers_table(costs))
    console.print()
    console.print(_totals_table(costs))
    console.print(_contract_line(spec), markup=False)
    for deviation in spec.family.deviations:
        console.print(f"deviation from the paper: {deviation}", markup=False)


def _layers_table(costs: C.Costs) -> Table:
    table = _table("layers", ["name", "class", "output shape", "params", "MACs"], right_from=2)
    for layer in costs.layers:
        shape = "×".join(str(d) for d in layer.shape)
        table.add_row(layer.name, layer.keras_class, shape, f"{layer.params:,}", f"{layer.macs:,}")
    return table


def _totals_table(costs: C.Costs) -> Table:
    published = published_document(costs.spec)
    table = _table("totals", ["", "value", "published"])
    paper = published or {}
    rows = [
        ("params (Keras count_params)", f"{costs.params:,}", ""),
        (
            "  trainable (the paper's count)",
            f"{costs.params_trainable:,}",
            count(paper.get("params")),
        ),
        ("  BatchNorm moving statistics", f"{costs.params_bn_moving:,}", ""),
        ("  preprocessing (Normalization)", f"{costs.params_preprocessing:,}", ""),
        ("MACs (multiply-adds)", f"{costs.macs:,} ({count(costs.macs)})", count(paper.get("macs"))),
        ("parameter bytes (float32)", size(costs.param_bytes), ""),
        ("peak activation memory (batch 1)", size(costs.peak_activation_bytes), ""),
    ]
    if paper.get("top1") is not None:
        rows.append(("ImageNet top-1 %", "", f"{paper['top1']} ({paper['source']})"))
    for row in rows:
        table.add_row(*row)
    return table


def print_build(report: Mapping[str, Any]) -> None:
    table = _table(None, ["", ""], right_from=2)
    table.show_header = False
    model = report["model"]
    table.add_row("model", f"{model['name']} ({report['input']['shape'][1]}×"
                  f"{report['input']['shape'][2]}, {model['num_classes']} classes)")  # fmt: skip
    table.add_row("params", f"{report['params']:,} ({report['params_trainable']:,} trainable)")
    weights = report.get("weights")
    if weights:
        fix = "; ImageNet std-in-variance slot corrected" if weights["stddev_fix"] else ""
        loaded = f"{weights['tensors_loaded']} tensors from {weights['path']} ({weights['layout']})"
        table.add_row("weights", loaded + fix)
    else:
        seed = report.get("seed")
        table.add_row("weights", "random" + (f" (seed {seed})" if seed is not None else ""))
    table.add_row("build time", f"{report['build_seconds']:.2f} s")
    output = report.get("output")
    if output:
        table.add_row("written", f"{output['path']} ({output['format']}, {size(output['bytes'])})")
    out().print(table)


# ---------------------------------------------------------------------------- scale-table

SCALE_COLUMNS = (
    "name", "phi", "width", "depth", "resolution", "published_train_resolution", "dropout",
    "published_dropout", "params", "params_trainable", "macs", "peak_activation_bytes",
    "params_ratio", "macs_ratio", "published_params", "published_macs", "published_top1",
    "rule_width", "rule_depth", "rule_resolution", "rule_params", "rule_macs",
)  # fmt: skip


def scale_documents(rows: list[C.ScaleRow], origin: C.Costs) -> list[dict[str, Any]]:
    """Flat rows of raw numbers (CSV-ready); ratios are to `origin`, the family's φ = 0 member."""
    documents = []
    for row in rows:
        spec, costs = row.released, row.released_costs
        published = S.PUBLISHED.get(spec.base) if spec else None
        doc: dict[str, Any] = dict.fromkeys(SCALE_COLUMNS)
        doc.update(name=spec.name if spec else None, phi=row.phi)
        if spec is not None and costs is not None:
            doc.update(
                width=spec.width, depth=spec.depth, resolution=spec.resolution,
                dropout=spec.dropout, params=costs.params,
                params_trainable=costs.params_trainable, macs=costs.macs,
                peak_activation_bytes=costs.peak_activation_bytes,
            )  # fmt: skip
            doc.update(
                params_ratio=costs.params / origin.params, macs_ratio=costs.macs / origin.macs
            )
        if published is not None:
            doc.update(
                published_params=published.params and int(published.params),
                published_macs=published.macs and int(published.macs),
                published_top1=published.top1,
                published_train_resolution=published.train_resolution,
                published_dropout=published.dropout,
            )
        if row.rule is not None and row.rule_costs is not None:
            doc.update(
                rule_width=row.rule.width, rule_depth=row.rule.depth,
                rule_resolution=row.rule.resolution, rule_params=row.rule_costs.params,
                rule_macs=row.rule_costs.macs,
            )  # fmt: skip
        documents.append(doc)
    return documents


def rule_document(alpha: float, beta: float, gamma: float) -> dict[str, float | str]:
    return {
        "alpha": alpha,
        "beta": beta,
        "gamma": gamma,
        "alpha_beta2_gamma2": alpha * beta**2 * gamma**2,
        "resolution_rounding": "224 * gamma**phi to the nearest integer",
    }


def rule_footer(alpha: float, beta: float, gamma: float) -> str:
    product = alpha * beta**2 * gamma**2
    return (
        f"compound rule: depth = {alpha:g}^φ, width = {beta:g}^φ, resolution = 224·{gamma:g}^φ "
        f"(nearest integer); α·β²·γ² = {product:.3f}. Widths then round to multiples of 8 "
        "(V1: never below 90 %; V2: to the nearest), repeats round up."
    )


def scale_notes(documents: list[dict[str, Any]]) -> list[str]:
    """What the rows need said beside them: members off the rule, V2's two resolutions and two
    dropouts. Only the notes that the rows shown need."""
    notes = []
    off_rule = [d["name"] for d in documents if d["name"] and d["rule_params"] is None]
    if off_rule:
        notes.append(
            f"{', '.join(off_rule)}: no compound rule (scaled by hand, not from a φ = 0 member), "
            "so no rule columns; ratios are to the family's first member."
        )
    if any(d["published_train_resolution"] for d in documents):
        notes.append(
            "res: the default input size, which is the official evaluation size; train res: the "
            "size official training ended at (EfficientNetV2's progressive learning)."
        )
    if any(d["published_dropout"] not in (None, d["dropout"]) for d in documents):
        notes.append(
            "dropout: the rate the model is built with (keras.applications builds every V2 with "
            "0.2; --dropout changes it); official dropout: automl's training configuration."
        )
    return notes


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "count":
        return count(value)
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "coef":
        return f"{value:.3g}"
    if kind == "bytes":
        return size(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


_SCALE_TABLE = (
    ("model", "name", "text"), ("φ", "phi", "text"), ("width", "width", "coef"),
    ("depth", "depth", "coef"), ("res", "resolution", "text"),
    ("train res", "published_train_resolution", "text"), ("dropout", "dropout", "text"),
    ("official dropout", "published_dropout", "text"),
    ("params", "params", "count"), ("MACs", "macs", "count"),
    ("act. peak", "peak_activation_bytes", "bytes"), ("params ×φ0", "params_ratio", "ratio"),
    ("MACs ×φ0", "macs_ratio", "ratio"), ("paper params", "published_params", "count"),
    ("paper MACs", "published_macs", "count"), ("top-1 %", "published_top1", "text"),
    ("rule width", "rule_width", "coef"), ("rule depth", "rule_depth", "coef"),
    ("rule res", "rule_resolution", "text"), ("rule params", "rule_params", "count"),
    ("rule MACs", "rule_macs", "count"),
)  # fmt: skip


def _scale_view(documents: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The table's columns, less those empty in every row (no V1 row has a train size)."""
    return [c for c in _SCALE_TABLE if any(doc[c[1]] is not None for doc in documents)]


def _scale_cells(doc: Mapping[str, Any], columns: list[tuple[str, str, str]]) -> list[str]:
    return [_cell(doc[key], kind) for _, key, kind in columns]


def print_scale_table(documents: list[dict[str, Any]], footer: str, fmt: str) -> None:
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=SCALE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in doc.items()} for doc in documents)
        sys.stdout.flush()
        return
    columns = _scale_view(documents)
    headers = [header for header, _, _ in columns]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_scale_cells(doc, columns)) + " |" for doc in documents]
        sys.stdout.write("\n".join(lines) + f"\n\n{footer}\n")
        sys.stdout.flush()
        return
    table = _table(None, headers, right_from=1)
    for doc in documents:
        table.add_row(*_scale_cells(doc, columns))
    console = out()
    console.print(table)
    console.print(footer, markup=False)


def plot_scale(families: Mapping[str, list[dict[str, Any]]], path: Any) -> None:
    """Params and MACs against φ (log scale): released members and the compound rule per family,
    in the spirit of the paper's Figure 1, labelled with the published top-1."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, key, label in ((axes[0], "params", "parameters"), (axes[1], "macs", "MACs")):
        for family, documents in families.items():
            released = [d for d in documents if d[key] is not None and d["phi"] is not None]
            axis.plot([d["phi"] for d in released], [d[key] for d in released], "o-",
                      label=f"{family}: released coefficients")  # fmt: skip
            ruled = [d for d in documents if d[f"rule_{key}"] is not None]
            axis.plot([d["phi"] for d in ruled], [d[f"rule_{key}"] for d in ruled], "s--",
                      label=f"{family}: compound rule")  # fmt: skip
            for d in released:
                if d["published_top1"] is not None:
                    axis.annotate(f"{d['published_top1']}%", (d["phi"], d[key]), fontsize=8,
                                  textcoords="offset points", xytext=(4, -12))  # fmt: skip
        axis.set_yscale("log")
        axis.set_xlabel("φ (compound coefficient)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle("EfficientNet cost against φ (labels: published ImageNet top-1 %)")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- export


def export_documents(artifacts: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "format": a.target.backend,
            "path": str(a.target.path),
            "precision": a.target.precision,
            "bytes": a.bytes,
            "seconds": a.seconds,
            "kept": a.kept,
            "verification": None if a.verification is None else vars(a.verification),
        }
        for a in artifacts
    ]


def export_result(name: str, artifacts: Sequence[Any], as_json: bool) -> None:
    documents = export_documents(artifacts)
    if as_json:
        emit_json("export", {"model": name, "artifacts": documents})
        return
    columns = ["format", "path", "precision", "size", "time", "drift", "top-1", "verified"]
    table = _table(name, columns, right_from=3)
    compared = {d["verification"]["compared"] for d in documents if d["verification"]}
    for doc in documents:
        check = doc["verification"]
        table.add_row(
            doc["format"],
            doc["path"] + ("" if doc["kept"] else " (removed)"),
            doc["precision"],
            size(doc["bytes"]),
            f"{doc['seconds']:.1f} s",
            "–" if check is None else _gated(f"{check['max_rel_diff']:.1e}", check["tolerance"]),
            "–" if check is None else _gated(
                f"{check['top1_agreement']:.0%}", check["min_top1_agreement"] or None, "≥", "%"
            ),
            "skipped" if check is None else ("yes" if check["passed"] else "FAILED"),
        )  # fmt: skip
    out().print(table)
    sizes = sorted({n for d in documents if d["verification"] for n in d["verification"]["sizes"]})
    at = f" at {' and '.join(f'{n}×{n}' for n in sizes)}" if len(sizes) > 1 else ""
    for what in sorted(compared):
        note(f"drift: max |Δ| / max |Keras| of the {what}, on seeded random images{at}")


def _gated(value: str, limit: float | None, relation: str = "≤", unit: str = "") -> str:
    """A verification figure beside the limit it had to meet, if it had one."""
    if limit is None:
        return value
    shown = f"{limit:.0%}" if unit == "%" else f"{limit:g}"
    return f"{value} {relation} {shown}"


# ---------------------------------------------------------------------------- inspect


def print_inspect(doc: Mapping[str, Any]) -> None:
    console = out()
    head = _table(None, ["", ""], right_from=2)
    head.show_header = False
    head.add_row("file", f"{doc['path']} ({doc['format']}, {size(doc['bytes'])})")
    head.add_row("params", f"{doc['params']:,}")
    for key, value in doc.get("metadata", {}).items():
        head.add_row(key, str(value))
    console.print(head)
    tensors = _table(None, ["", "name", "shape", "dtype"], right_from=4)
    for role in ("inputs", "outputs"):
        for tensor in doc[role]:
            shape = "×".join("?" if d is None else str(d) for d in tensor["shape"])
            tensors.add_row(role[:-1], tensor["name"], shape, tensor["dtype"])
    console.print(tensors)
    ops = _table("ops", ["op", "count"])
    for op, number in doc["ops"].items():
        ops.add_row(op, str(number))
    console.print(ops)


# ---------------------------------------------------------------------------- bench

BENCH_COLUMNS = (
    "runtime", "device", "provider", "precision", "mode", "batch", "threads", "latency_ms_mean",
    "latency_ms_std", "latency_ms_min", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99",
    "images_per_s", "macs_per_s", "ceiling_fraction", "drift_max_rel", "top1_agreement",
    "first_inference_ms", "setup_s", "iterations", "error",
)  # fmt: skip


def fastest_rows(rows: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indexes of the fastest row for each precision and batch size."""
    best: dict[tuple[str, int], int] = {}
    for i, row in enumerate(rows):
        if row.get("error"):
            continue
        key = (row["precision"].split("-")[0], row["batch"])
        if key not in best or row["images_per_s"] > rows[best[key]]["images_per_s"]:
            best[key] = i
    return set(best.values())


def print_bench(result: Mapping[str, Any]) -> None:
    model, env = result["model"], result["environment"]
    title = (f"{model['name']} {model['resolution'][0]}×{model['resolution'][1]} · {env['cpu']} · "
             f"{env['threads']} threads · ★ fastest per precision and batch")  # fmt: skip
    ceiling = result["ceiling"]
    with_ceiling = bool(ceiling.get("gemm_flops"))  # no column where nothing was measured
    columns = ["runtime", "provider", "precision", "batch", "mean ms", "std", "min", "p50",
               "p90", "p99", "img/s", "GMAC/s", *(["ceiling"] if with_ceiling else []),
               "drift", "top-1", "first ms", "setup s", ""]  # fmt: skip
    table = _table(title, columns, right_from=3)
    best = fastest_rows(result["rows"])
    for i, row in enumerate(result["rows"]):
        head = [row["runtime"], row["provider"], row["precision"], str(row["batch"])]
        if row.get("error"):
            table.add_row(*head, row["error"], *["–"] * (len(columns) - 5))
            continue
        share = f"{row['ceiling_fraction']:.0%}" if row.get("ceiling_fraction") else "–"
        drift, top1 = _drift_cells(row)
        table.add_row(
            *head,
            *(f"{row[k]:.2f}" for k in ("latency_ms_mean", "latency_ms_std", "latency_ms_min",
                                        "latency_ms_p50", "latency_ms_p90", "latency_ms_p99")),
            f"{row['images_per_s']:.1f}",
            f"{row['macs_per_s'] / 1e9:.1f}" if row.get("macs_per_s") else "–",
            *([share] if with_ceiling else []),
            drift, top1,
            f"{row['first_inference_ms']:.0f}", f"{row['setup_s']:.1f}",
            "★" if i in best else "",
        )  # fmt: skip
    console = out()
    console.print(table)
    console.print(
        ceiling_line(ceiling) + " drift: max |Δ logits| ÷ max |fp32 Keras logit| on the same "
        "images; top-1: agreement with fp32 Keras.",
        markup=False,
    )
    if result.get("throughput_rows"):
        print_throughput(result, console)
    for skip in result.get("skipped", []):
        console.print(
            f"skipped {skip['runtime']} {skip['precision']}: {skip['reason']}", markup=False
        )
    for line in result.get("recommendations", []):
        console.print(recommend_line(line), markup=False)


def _drift_cells(row: Mapping[str, Any]) -> list[str]:
    if row.get("drift_max_rel") is None:
        return ["unmeasured", "–"]
    return [f"{row['drift_max_rel']:.1e}", f"{row['top1_agreement']:.0%}"]


def print_throughput(result: Mapping[str, Any], console: Any) -> None:
    """Throughput rows apart from the latency table: wall images/s with N requests in flight,
    and each request's latency under that load (never single-stream latency)."""
    columns = ["runtime", "precision", "batch", "in flight", "img/s (wall)", "load p50 ms",
               "load p90 ms", "load p99 ms", "drift", "top-1", "settings", ""]  # fmt: skip
    table = _table("throughput: requests in flight for a fixed time · ★ fastest per precision "
                   "and batch", columns, right_from=2)  # fmt: skip
    rows = result["throughput_rows"]
    best = fastest_rows(rows)
    for i, row in enumerate(rows):
        head = [row["runtime"], row["precision"], str(row["batch"])]
        if row.get("error"):
            table.add_row(*head, row["error"], *["–"] * (len(columns) - 4))
            continue
        table.add_row(
            *head, f"{row['in_flight']} ({row['in_flight_observed']} seen)",
            f"{row['images_per_s']:.1f}",
            *(f"{row[k]:.2f}" for k in ("load_latency_ms_p50", "load_latency_ms_p90",
                                        "load_latency_ms_p99")),
            *_drift_cells(row), f"{row['settings']}; {row['settings_source']}",
            "★" if i in best else "",
        )  # fmt: skip
    console.print(table)
    console.print(
        "in flight: requests kept running at once (seen: the most that overlapped); load "
        "latency: each request's own time while the others ran, not single-stream latency.",
        markup=False,
    )


def recommend_line(rec: Mapping[str, Any]) -> str:
    """One `--recommend` answer: what to deploy for a precision and mode, and how to make it."""
    if rec.get("none"):
        return f"recommend {rec['precision']} {rec['mode']}: none ({rec['none']})"
    drift = ("drift unmeasured" if rec.get("drift_max_rel") is None else
             f"drift {rec['drift_max_rel']:.1e}, top-1 {rec['top1_agreement']:.0%}")  # fmt: skip
    return (
        f"recommend {rec['precision']} {rec['mode']}: {rec['runtime']} batch {rec['batch']}, "
        f"{rec['images_per_s']:.1f} img/s, {drift}; {rec['settings']}; "
        + (f"make it: {rec['command']}" if rec["command"] else f"the file: {rec['artifact']}")
    )


def ceiling_line(ceiling: Mapping[str, Any]) -> str:
    """Where the ceiling column's rate comes from: measured now, cached, or not measured."""
    if not ceiling.get("gemm_flops"):
        return f"ceiling: not measured ({ceiling.get('reason', 'no probe')}), so no column."
    when = "measured now" if ceiling["source"] == "measured" else (
        f"cached, measured {ceiling['measured_at']}; --ceiling re-measures")  # fmt: skip
    return (
        f"ceiling: {ceiling['gemm_flops'] / 1e9:.0f} GFLOP/s dense fp32 GEMM on this CPU, "
        f"{ceiling['threads']} threads ({when}); a row's share = 2 × MACs/s ÷ that rate "
        "(int8 and bf16 rows can pass 100 %: their arithmetic is faster than fp32's)."
    )


def gate_line(comparison: Mapping[str, Any]) -> str:
    """One compared row of `bench --baseline`, for stderr."""
    c = comparison
    mode = "" if c["mode"] == "latency" else f" {c['mode']}"
    verdict = "ok" if c["passed"] else "SLOWER"
    return (
        f"gate: {c['runtime']} {c['precision']}{mode} batch {c['batch']} threads "
        f"{c['threads']}: p50 {c['latency_ms_p50']:.2f} ms vs "
        f"{c['baseline_latency_ms_p50']:.2f} ms ({c['change_pct']:+.0f} %, allowed "
        f"{c['allowed_pct']:g} %) {verdict}"
    )


def bench_csv(rows: list[dict[str, Any]]) -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=BENCH_COLUMNS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in BENCH_COLUMNS} for row in rows)
    return buffer.getvalue()


def plot_bench(result: Mapping[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.5))
    # One line per runtime and precision: an fp32 and a bf16 row at one batch are two points.
    series = dict.fromkeys((row["runtime"], row["precision"]) for row in result["rows"])
    for runtime, precision in series:
        rows = [r for r in result["rows"] if (r["runtime"], r["precision"]) == (runtime, precision)
                and not r.get("error")]  # fmt: skip
        label = f"{runtime} {precision}"
        batches = [r["batch"] for r in rows]
        latency.plot(batches, [r["latency_ms_p50"] for r in rows], "o-", label=label)
        throughput.plot(batches, [r["images_per_s"] for r in rows], "o-", label=label)
    for axis, label in ((latency, "p50 latency (ms)"), (throughput, "images / s")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(f"{result['model']['name']}: inference by runtime")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- doctor


def print_doctor(report: Mapping[str, Any]) -> None:
    console = out()
    table = _table(None, ["package", "version", "needed for"], right_from=3)
    for package in report["packages"]:
        version = package["version"] or ("MISSING" if package["required"] else "not installed")
        table.add_row(package["name"], version, package["purpose"])
    console.print(table)
    console.print(f"python {report['python']} · {report['platform']}", markup=False)
    console.print(f"CPU: {report.get('cpu', '?')} ({report['cpu_count']} cores)", markup=False)
    console.print(
        f"GPUs visible to TensorFlow: {', '.join(report['gpus']) or 'none'}", markup=False
    )
    providers = ", ".join(report["onnxruntime_providers"]) or "–"
    console.print(f"onnxruntime providers: {providers}", markup=False)
    for backend in report["backends"]:
        ways = ", ".join(f"{p} ({how})" for p, how in backend["precisions"].items())
        console.print(f"backend {backend['name']}: {backend['summary']}; {ways}", markup=False)
    for problem in report["incompatible"]:
        console.print(f"incompatible: {problem}", markup=False)
    if report["missing"]:
        console.print(f"missing: {', '.join(report['missing'])}", markup=False)
    console.print("ok" if report["ok"] else "not ok", markup=False)
