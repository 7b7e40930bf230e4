"""`effnet bench`: time inference per runtime, precision and batch size.

Split along its seams: `request` (what to time, validated), `timing` (the loops and their
statistics), `tuning` (--tune's search and its cache), `machine` (threads, device, environment),
`ceilings` (the GEMM rate per precision and the memory bandwidth; `cache` keeps per-machine
measurements), `limits` (each row's share of its ceiling and of the roofline limit),
`artifacts` (what each row runs), `rows` (one runner's rows), `gate` (--baseline), `recommend`
(--recommend) and `workflow` (a whole run). The results are effnet_cli/records/bench.py's.
"""

from effnet_cli.records.bench import BenchResult
from effnet_cli.workflows.bench.gate import (
    Baseline,
    check_baseline,
    enforce_gate,
    expected_model_name,
    gate_threshold,
    load_baseline,
)
from effnet_cli.workflows.bench.machine import configure_threads, resolve_device
from effnet_cli.workflows.bench.request import BenchRequest, build_request
from effnet_cli.workflows.bench.rows import at_batch, refuse_not_finite
from effnet_cli.workflows.bench.timing import time_runner, time_streams
from effnet_cli.workflows.bench.workflow import BenchPlan, run

__all__ = [
    "Baseline",
    "BenchPlan",
    "BenchRequest",
    "BenchResult",
    "at_batch",
    "build_request",
    "check_baseline",
    "configure_threads",
    "enforce_gate",
    "expected_model_name",
    "gate_threshold",
    "load_baseline",
    "refuse_not_finite",
    "resolve_device",
    "run",
    "time_runner",
    "time_streams",
]
