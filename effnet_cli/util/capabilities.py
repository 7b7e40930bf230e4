"""What this CPU runs natively, read in one place so that tests can fake it.

Machines of one kind differ in CPU (AVX2 only; AVX-512 with bf16; some with fp16 and AMX too),
and every precision decision (refuse, run, label "emulated") follows from this reading and from
OpenVINO's own (`openvino_capabilities`, in its backend). A test replaces `cpu_flags`
(monkeypatch) so that both branches of each decision run on every machine.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# The CPU flags (Linux /proc/cpuinfo names) that give a precision native arithmetic.
NATIVE_FLAGS = {
    "fp32": frozenset(),
    "bf16": frozenset({"avx512_bf16", "amx_bf16"}),
    "fp16": frozenset({"avx512_fp16", "amx_fp16"}),
}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_on_cpu(precision: str) -> bool:
    """Does this CPU compute `precision` natively (not by converting to fp32 and back)?"""
    needed = NATIVE_FLAGS[precision]
    return not needed or bool(needed & cpu_flags())
