"""`effnet doctor`: packages, devices and backends."""

from __future__ import annotations

from effnet_cli.output.sink import Sink
from effnet_cli.output.table import Column, print_columns
from effnet_cli.records.doctor import Diagnosis

PACKAGE_TABLE = (
    Column("package", "name", left=True),
    Column("version", "version", left=True, show=lambda p: p["version"] or (
        "MISSING" if p["required"] else "not installed")),
    Column("needed for", "purpose", left=True, wrap=True),
)  # fmt: skip


def view(sink: Sink, report: Diagnosis) -> None:
    console = sink.out()
    print_columns(console, None, PACKAGE_TABLE, [p.to_json() for p in report.packages])
    console.print(f"python {report.python} · {report.platform}", markup=False)
    cpu = "?" if report.cpu is None else report.cpu  # not probed without TensorFlow
    console.print(f"CPU: {cpu} ({report.cpu_count} cores)", markup=False)
    console.print(f"GPUs visible to TensorFlow: {', '.join(report.gpus) or 'none'}", markup=False)
    providers = ", ".join(report.onnxruntime_providers) or "–"
    console.print(f"onnxruntime providers: {providers}", markup=False)
    for backend in report.backends:
        ways = ", ".join(f"{p} ({how})" for p, how in backend.precisions.items())
        console.print(f"backend {backend.name}: {backend.summary}; {ways}", markup=False)
    for problem in report.incompatible:
        console.print(f"incompatible: {problem}", markup=False)
    if report.missing:
        console.print(f"missing: {', '.join(report.missing)}", markup=False)
    console.print("ok" if report.ok else "not ok", markup=False)
