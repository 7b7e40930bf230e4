"""`effnet bench`'s views: the latency and throughput tables, the lines under them (ceiling,
skipped rows, recommendations, the gate's comparisons), the CSV and the plot.

They take the run's record (`BenchResult`); the tables' rows are its rows' JSON documents, the
one shape a script also reads, so the columns, the CSV's fields and the JSON keys are one name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from effnet_cli.output.sink import current
from effnet_cli.output.table import Column, cell, columns_csv, print_columns
from effnet_cli.records.bench import (
    Bandwidth,
    BenchResult,
    Ceilings,
    Comparison,
    GemmCeiling,
    LatencyRow,
    NoRecommendation,
    Recommendation,
    ThroughputRow,
)


def _timed(key: str, kind: str) -> Callable[[Mapping[str, Any]], str]:
    """A measured figure; a row that failed has none (its error says why)."""
    return lambda row: "–" if row.get("error") else cell(row.get(key), kind)


def _bench_column(
    header: str, key: str, kind: str, unit: str = "", priority: int = 1, in_table: bool = True
) -> Column:
    return Column(header, key, kind, unit, priority, show=_timed(key, kind), in_table=in_table)


def _settings_cell(row: Mapping[str, Any]) -> str:
    """What a row ran with, and where a tuned setting came from (the cache, a search now)."""
    if row.get("error") or not row.get("settings"):
        return "–"
    source = row.get("settings_source")
    return f"{row['settings']}; {source}" if source else row["settings"]


BENCH_TABLE = (
    Column("runtime", "runtime", left=True),
    Column("device", "device", left=True, in_table=False),
    Column("provider", "provider", left=True, priority=6),
    Column("precision", "precision", left=True),
    Column("mode", "mode", left=True, in_table=False),
    Column("batch", "batch"),
    Column("threads", "threads", in_table=False),
    _bench_column("mean", "latency_ms_mean", "f2", "ms", priority=2),
    _bench_column("std", "latency_ms_std", "f2", "ms", priority=4),
    _bench_column("min", "latency_ms_min", "f2", "ms", priority=4),
    _bench_column("p50", "latency_ms_p50", "f2", "ms"),
    _bench_column("p90", "latency_ms_p90", "f2", "ms", priority=3),
    _bench_column("p99", "latency_ms_p99", "f2", "ms", priority=3),
    _bench_column("img/s", "images_per_s", "f1"),
    Column("GMAC/s", "macs_per_s", priority=3, show=lambda r: "–" if r.get("error") or not
           r.get("macs_per_s") else f"{r['macs_per_s'] / 1e9:.1f}"),
    Column("ceiling", "ceiling_fraction", priority=3, show=lambda r: _share(r, "ceiling_fraction")),
    Column("limit", "limit_fraction", priority=2, show=lambda r: _share(r, "limit_fraction")),
    Column("limit img/s", "limit_images_per_s", "f1", in_table=False),
    Column("drift", "drift_max_rel", priority=2, show=lambda r: _drift_cell(r)),
    Column("top-1", "top1_agreement", priority=2, show=lambda r: _accuracy_cell(r)),
    Column("top-5", "top5_overlap", in_table=False),
    Column("SQNR dB", "sqnr_db", in_table=False),
    Column("not judged", "not_judged", in_table=False),
    Column("measurement problem", "measurement_problem", in_table=False),
    _bench_column("first", "first_inference_ms", "f0", "ms", priority=5),
    _bench_column("setup", "setup_s", "f1", "s", priority=5),
    Column("iterations", "iterations", in_table=False),
    Column("settings", "settings", left=True, wrap=True, priority=6, show=_settings_cell),
    Column("error", "error", left=True, wrap=True, show=lambda r: r.get("error") or "–"),
)  # fmt: skip
BENCH_COLUMNS = tuple(c.key for c in BENCH_TABLE)  # the CSV's fields


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


def print_bench(result: BenchResult) -> None:
    model, env = result.model, result.environment
    title = (
        f"{model['name']} {model['resolution'][0]}×{model['resolution'][1]} · {env.cpu} · "
        f"{env.threads} threads · ★ fastest per precision and batch"
    )
    console = current().out()
    print_columns(console, title, (*BENCH_TABLE, STAR), starred(result.rows))
    for line in ceiling_lines(result.ceilings):
        console.print(line, markup=False)
    console.print(_legend(result), markup=False)
    timed: tuple[LatencyRow | ThroughputRow, ...] = (*result.rows, *(result.throughput_rows or ()))
    for problem in timed:
        if problem.measurement_problem:
            console.print(
                f"measurement problem: {problem.runtime} {problem.precision} at batch "
                f"{problem.batch} ran at {problem.measurement_problem}",
                markup=False,
            )
    if any((row.limit_fraction or 0) > 1 for row in timed):
        console.print(
            "limit >100%: faster than the roofline allows from memory; its tensors stayed in the "
            "caches, which the roofline does not count (docs/bench.md).",
            markup=False,
        )
    if result.throughput_rows:
        print_throughput(result.throughput_rows, console)
    for skip in result.skipped:
        console.print(f"skipped {skip.runtime} {skip.precision}: {skip.reason}", markup=False)
    for recommendation in result.recommendations or ():
        console.print(recommend_line(recommendation), markup=False)


STAR = Column("", "fastest", show=lambda r: "★" if r["fastest"] else "")


def starred(rows: Sequence[LatencyRow | ThroughputRow]) -> list[dict[str, Any]]:
    """The rows' documents, each marked whether it is the fastest of its precision and batch."""
    documents = [row.to_json() for row in rows]
    best = fastest_rows(documents)
    return [{**document, "fastest": i in best} for i, document in enumerate(documents)]


def _share(row: Mapping[str, Any], key: str) -> str:
    """A share of a limit; "?" where the row ran faster than the limit (a measurement problem)."""
    if row.get("error"):
        return "–"
    if row.get("measurement_problem"):
        return "?"
    value = row.get(key)
    return "–" if value is None else ">100%" if value > 1 else f"{value:.0%}"


def _drift_cell(row: Mapping[str, Any]) -> str:
    """Drift on seeded images: none for a failed row, "unmeasured" for a file with no reference."""
    if row.get("error"):
        return "–"
    if row.get("drift_max_rel") is None:
        return (row.get("drift") or "unmeasured").split(":")[0]
    return f"{row['drift_max_rel']:.1e}"


def _accuracy_cell(row: Mapping[str, Any]) -> str:
    """Top-1 agreement on real images, or "not judged" (random weights, no reference)."""
    if row.get("error"):
        return "–"
    if row.get("top1_agreement") is None:
        return "not judged" if row.get("not_judged") else "–"
    return f"{row['top1_agreement']:.0%}"


def _legend(result: BenchResult) -> str:
    judged = next((a for a in result.agreement or () if a.images), None)
    on = (
        f"top-1: agreement with fp32 Keras on {judged.images} real images ({judged.judged_on})"
        if judged is not None
        else "top-1: agreement with fp32 Keras on real images"
    )
    why = next((a.not_judged for a in result.agreement or () if a.not_judged), None)
    return (
        "drift: max |Δ logits| ÷ max |fp32 Keras logit| on seeded images; "
        + on
        + (f"; not judged: {why}" if why else "")
        + "; limit: share of the roofline limit (docs/bench.md)."
    )


THROUGHPUT_TABLE = (
    Column("runtime", "runtime", left=True),
    Column("precision", "precision", left=True),
    Column("batch", "batch"),
    Column("in flight", "in_flight", priority=2, show=lambda r: "–" if r.get("error") else
           f"{r['in_flight']} ({r['in_flight_observed']} seen)"),
    _bench_column("img/s (wall)", "images_per_s", "f1"),
    _bench_column("load p50", "load_latency_ms_p50", "f2", "ms", priority=2),
    _bench_column("load p90", "load_latency_ms_p90", "f2", "ms", priority=3),
    _bench_column("load p99", "load_latency_ms_p99", "f2", "ms", priority=3),
    Column("limit", "limit_fraction", priority=3, show=lambda r: _share(r, "limit_fraction")),
    Column("drift", "drift_max_rel", priority=2, show=lambda r: _drift_cell(r)),
    Column("top-1", "top1_agreement", priority=2, show=lambda r: _accuracy_cell(r)),
    Column("settings", "settings", left=True, wrap=True, priority=4, show=_settings_cell),
    Column("error", "error", left=True, wrap=True, show=lambda r: r.get("error") or "–"),
)  # fmt: skip


def print_throughput(rows: Sequence[ThroughputRow], console: Console) -> None:
    """Throughput rows apart from the latency table: wall images/s with N requests in flight,
    and each request's latency under that load (never single-stream latency)."""
    title = "throughput: requests in flight for a fixed time · ★ fastest per precision and batch"
    print_columns(console, title, (*THROUGHPUT_TABLE, STAR), starred(rows))
    console.print(
        "in flight: requests kept running at once (seen: the most that overlapped); load "
        "latency: each request's own time while the others ran, not single-stream latency.",
        markup=False,
    )


def recommend_line(rec: Recommendation | NoRecommendation) -> str:
    """One `--recommend` answer: what to deploy for a precision and mode, and how to make it."""
    if isinstance(rec, NoRecommendation):
        return f"recommend {rec.precision} {rec.mode}: none ({rec.none})"
    drift = "drift unmeasured" if rec.drift_max_rel is None else f"drift {rec.drift_max_rel:.1e}"
    return (
        f"recommend {rec.precision} {rec.mode}: {rec.runtime} batch {rec.batch}, "
        f"{rec.images_per_s:.1f} img/s, {drift}; {rec.settings}; "
        + (f"make it: {rec.command}" if rec.command else f"the file: {rec.artifact}")
        + f"\n  why: {rec.why}"
    )


def _gemm_figure(gemm: GemmCeiling) -> str:
    """'fp32 195 GFLOP/s' (a GEMM's FLOP/s: two per MAC), or why there is none."""
    if gemm.macs_per_s is None:
        return f"{gemm.precision} none ({gemm.reason})"
    return f"{gemm.precision} {2 * gemm.macs_per_s / 1e9:.0f} GFLOP/s"


def ceiling_lines(ceilings: Ceilings) -> list[str]:
    """What each row is held to: a GEMM rate per precision and the memory bandwidth, each
    measured now or cached (and when), or why there is none; a busy probe says so."""
    if not any(g.macs_per_s for g in ceilings.gemm) and not ceilings.bandwidth.bytes_per_s:
        reasons = {g.reason for g in ceilings.gemm if g.reason} | {ceilings.bandwidth.reason}
        return [f"ceilings: not measured ({'; '.join(sorted(r for r in reasons if r))})."]
    figures = [_gemm_figure(g) for g in ceilings.gemm]
    band = ceilings.bandwidth
    probes: tuple[GemmCeiling | Bandwidth, ...] = (*ceilings.gemm, band)
    memory = f"{band.bytes_per_s / 1e9:.1f} GB/s" if band.bytes_per_s else f"none ({band.reason})"
    figures.append(f"memory {memory}")
    sources = {g.source for g in probes if g.source != "unavailable"}
    dates = sorted({g.measured_at for g in probes if g.measured_at})
    cached = f"cached, measured {dates[0] if dates else '?'}; --ceiling measures again"
    when = "measured now" if sources == {"measured"} else cached
    lines = [
        f"ceilings on {ceilings.threads} threads ({when}): " + ", ".join(figures) + "; a row's "
        "ceiling = its MACs/s ÷ its precision's GEMM MACs/s (fp16 rows: fp32's, dynamic: int8's)."
    ]
    busy = [g for g in probes if g.busy]
    if busy:
        names = [g.precision if isinstance(g, GemmCeiling) else "memory" for g in busy]
        lines.append(
            f"busy: the {', '.join(names)} probe{'s' * (len(busy) > 1)} ran on a busy machine "
            f"({busy[0].busy_reason}): not cached, shares may read high."
        )
    return lines


def gate_line(c: Comparison) -> str:
    """One compared row of `bench --baseline`, for stderr."""
    mode = "" if c.mode == "latency" else f" {c.mode}"
    verdict = "ok" if c.passed else "SLOWER"
    return (
        f"gate: {c.runtime} {c.precision}{mode} batch {c.batch} threads "
        f"{c.threads}: p50 {c.latency_ms_p50:.2f} ms vs "
        f"{c.baseline_latency_ms_p50:.2f} ms ({c.change_pct:+.0f} %, allowed "
        f"{c.allowed_pct:g} %) {verdict}"
    )


def bench_csv(rows: Sequence[LatencyRow]) -> str:
    return columns_csv(BENCH_TABLE, [row.to_json() for row in rows])


def plot_bench(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.5))
    # One line per runtime and precision: an fp32 and a bf16 row at one batch are two points.
    series = dict.fromkeys((row.runtime, row.precision) for row in result.rows)
    for runtime, precision in series:
        rows = [
            r
            for r in result.rows
            if (r.runtime, r.precision) == (runtime, precision) and not r.error
        ]
        label = f"{runtime} {precision}"
        batches = [r.batch for r in rows]
        latency.plot(batches, [r.latency_ms_p50 for r in rows], "o-", label=label)
        throughput.plot(batches, [r.images_per_s for r in rows], "o-", label=label)
    # The roofline limit per precision: what the machine allows at each batch (docs/bench.md).
    limits: dict[str, dict[int, float]] = {}
    for row in result.rows:
        if row.limit_images_per_s:
            limits.setdefault(row.precision, {})[row.batch] = row.limit_images_per_s
    for precision, by_batch in limits.items():
        batches = sorted(by_batch)
        throughput.plot(
            batches, [by_batch[b] for b in batches], "--", label=f"roofline limit {precision}"
        )
    for axis, label in ((latency, "p50 latency (ms)"), (throughput, "images / s")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("batch size")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.suptitle(f"{result.model['name']}: inference by runtime")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
