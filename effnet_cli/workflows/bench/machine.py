"""The machine a run times on: its threads and device, its environment (its ceilings:
ceilings.py)."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable

from effnet_cli import __version__, backends
from effnet_cli.backends import runtimes
from effnet_cli.backends.keras import gpus_visible
from effnet_cli.records.bench import Environment
from effnet_cli.util.capabilities import cpu_name
from effnet_cli.util.errors import UsageError


def configure_threads(threads: int | None) -> None:
    """TensorFlow reads its thread pools' sizes once, at start-up: set them before it loads."""
    if threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"


def resolve_device(device: str, progress: Callable[[str], None]) -> str:
    """`gpu` must exist (never a silent fallback); `auto` says what it picked."""
    if device == "cpu":
        return "cpu"
    gpus = gpus_visible()
    if device == "gpu" and not gpus:
        raise UsageError(
            "--device gpu, but no GPU is visible: TensorFlow found none "
            f"(CPU: {cpu_name()}, {os.cpu_count()} cores)",
            hint="use --device cpu, or install effnet-cli[gpu] on a machine with a CUDA GPU",
        )
    picked = "gpu" if gpus else "cpu"
    if device == "auto":
        progress(f"--device auto picked {picked}" + (f" ({', '.join(gpus)})" if gpus else ""))
    return picked


def environment(threads: int | None) -> Environment:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for package in backends.packages_needed():
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return Environment(
        effnet=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        gpus=tuple(gpus_visible()),
        threads=runtimes.threads_or_default(threads),
        versions=versions,
    )
