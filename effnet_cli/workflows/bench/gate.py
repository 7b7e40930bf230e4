"""`--baseline FILE --max-regression PCT`: this run's p50 latencies against an earlier
`effnet bench --json` result's, row by row, refused early when the two cannot be compared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from effnet_cli.backends.keras import tensorflow_threads
from effnet_cli.model import spec as S
from effnet_cli.records.bench import BenchResult, Comparison, Gate, LatencyRow
from effnet_cli.util.errors import RegressionError, UsageError
from effnet_cli.workflows.bench.request import BenchRequest

DEFAULT_MAX_REGRESSION_PCT = 10.0

GateKey = tuple[str, str, str, int, int]  # runtime, precision, mode, batch, threads
GATE_FIELDS = ("runtime", "precision", "mode", "batch", "threads")


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """What the gate reads of an earlier result: its model, device, and timed rows' p50s."""

    path: Path
    model_name: str
    device: str
    p50_ms: Mapping[GateKey, float]

    @classmethod
    def from_json(cls, document: Mapping[str, Any], path: Path) -> Baseline:
        threads = int(document["settings"]["threads"])
        rows = {
            gate_key(row, threads): row["latency_ms_p50"]
            for row in document["rows"]
            if not row.get("error") and row.get("latency_ms_p50")
        }
        return cls(
            path=path,
            model_name=str(document["model"]["name"]),
            device=str(document["settings"]["device"]),
            p50_ms=rows,
        )


def gate_key(row: Mapping[str, Any], threads: int) -> GateKey:
    """What a row is compared on; rows of results older than `mode`/`threads` in rows get the
    defaults of their time (latency; the run's threads)."""
    return (
        str(row["runtime"]),
        str(row["precision"]),
        str(row.get("mode", "latency")),
        int(row["batch"]),
        int(row.get("threads", threads)),
    )


def row_key(row: LatencyRow) -> GateKey:
    return (row.runtime, row.precision, row.mode, row.batch, row.threads)


def load_baseline(path: Path) -> Baseline:
    """An earlier `effnet bench --json` result, checked before any benchmark runs."""
    import json

    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"baseline {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read baseline {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict) or not str(document.get("schema", "")).startswith(
        "effnet.bench/"
    ):
        raise UsageError(f"{path} is not an `effnet bench --json` result")
    try:
        return Baseline.from_json(document, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a complete `effnet bench --json` result (missing or malformed: {exc})"
        ) from None


def gate_threshold(baseline: Path | None, max_regression_pct: float | None) -> float:
    """The allowed p50 slowdown in percent; `--max-regression` means nothing without a baseline."""
    if baseline is None:
        if max_regression_pct is not None:
            raise UsageError(
                "--max-regression applies only with --baseline FILE",
                hint="give an earlier `effnet bench --json` result to compare with",
            )
        return DEFAULT_MAX_REGRESSION_PCT
    pct = DEFAULT_MAX_REGRESSION_PCT if max_regression_pct is None else max_regression_pct
    if not 0 <= pct <= 10_000:
        raise UsageError(f"--max-regression must lie between 0 and 10000 percent, not {pct:g}")
    return pct


def keras_file_model_name(path: Path) -> str | None:
    """The model name a `.keras` file records (its config.json), read without loading it."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        return str(config["config"]["name"])
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None


def expected_model_name(spec: S.ModelSpec | None, source: Path | None) -> str:
    """The name the benchmarked model will carry, known without building or loading it."""
    if spec is not None:
        return spec.name
    if source is None:
        raise ValueError("a benchmark has a spec or a source file")
    return keras_file_model_name(source) or source.stem


def _check_same_model_and_device(baseline: Baseline, name: str, device: str) -> None:
    if baseline.model_name != name:
        raise UsageError(
            f"baseline is for {baseline.model_name}, this run is {name}",
            hint="compare with a baseline of the same model, resolution and options",
        )
    if baseline.device != device:
        raise UsageError(
            f"baseline ran on --device {baseline.device}, this run is on {device}",
            hint="compare with a baseline recorded on the same device",
        )


def _listed(values: set[Any]) -> str:
    return ",".join(str(v) for v in sorted(values))


def check_baseline(baseline: Baseline, name: str, request: BenchRequest) -> None:
    """Refuse, before anything is built or timed, a baseline this run cannot be compared with:
    another model, another device, or no row that the requested runtimes × precisions × batches
    × threads could match (a `bf16` request matches a `bf16-emulated` row: the label is known
    only after the run)."""
    _check_same_model_and_device(baseline, name, request.device)
    ours: dict[str, set[Any]] = {
        "runtime": set(request.runtimes),
        "precision": set(request.precisions),
        "mode": {"latency"},
        "batch": set(request.batches),
        "threads": {request.threads_or_default},
    }
    if "keras" in request.runtimes:  # its rows say TensorFlow's pool, which the user may size
        ours["threads"].add(tensorflow_threads())

    def comparable(key: GateKey) -> tuple[Any, ...]:
        return (key[0], key[1].split("-")[0], *key[2:])

    theirs = [comparable(key) for key in baseline.p50_ms]
    if not theirs:
        raise UsageError("the baseline has no timed row to compare with")
    if any(all(v in ours[f] for f, v in zip(GATE_FIELDS, key, strict=True)) for key in theirs):
        return
    differing = [
        f"{field_} {_listed(values)} (this run: {_listed(ours[field_])})"
        for i, field_ in enumerate(GATE_FIELDS)
        if not (values := {key[i] for key in theirs}) & ours[field_]
    ]
    raise UsageError(
        "the baseline has no row this run could match: it has "
        + (
            "; ".join(differing)
            or "no row with this run's runtime, precision, batch and threads together"
        ),
        hint="run with the baseline's runtimes, precisions, batches and --threads, "
        "or record a new baseline",
    )


def compare_baseline(
    result: BenchResult, baseline: Baseline, max_regression_pct: float
) -> BenchResult:
    """The result with its gate: one comparison of p50 latency for each row of this run that the
    baseline has under the same key (runtime, precision, mode, batch, threads), and each
    compared row's change. fp32 and bf16 rows never meet."""
    _check_same_model_and_device(baseline, result.model["name"], result.settings.device)
    rows, compared = [], []
    for row in result.rows:
        old = baseline.p50_ms.get(row_key(row)) if row.error is None else None
        if old is None or row.latency_ms_p50 is None:
            rows.append(row)
            continue
        change = (row.latency_ms_p50 / old - 1) * 100
        rows.append(replace(row, regression_pct=change))
        compared.append(
            Comparison(
                runtime=row.runtime,
                precision=row.precision,
                mode=row.mode,
                batch=row.batch,
                threads=row.threads,
                latency_ms_p50=row.latency_ms_p50,
                baseline_latency_ms_p50=old,
                change_pct=change,
                allowed_pct=max_regression_pct,
                passed=change <= max_regression_pct,
            )
        )
    gate = Gate(
        baseline=str(baseline.path), max_regression_pct=max_regression_pct, compared=tuple(compared)
    )
    return replace(result, rows=tuple(rows), gate=gate)


def enforce_gate(gate: Gate) -> None:
    """Exit 2 when nothing was compared (a gate that checks nothing must not pass), 3 when a
    compared row is slower than allowed."""
    compared = gate.compared
    if not compared:
        raise UsageError(
            "no row of this run matches a baseline row (runtime, precision, mode, batch and "
            "threads): nothing was compared",
            hint="run with the baseline's settings, or record a new baseline",
        )
    slower = [c for c in compared if not c.passed]
    if slower:
        raise RegressionError(
            f"{len(slower)} of {len(compared)} row(s) slower than the baseline beyond "
            f"{slower[0].allowed_pct:g} %: "
            + "; ".join(
                f"{c.runtime} {c.precision} batch {c.batch} threads {c.threads} "
                f"{c.change_pct:+.0f} %"
                for c in slower
            )
        )
