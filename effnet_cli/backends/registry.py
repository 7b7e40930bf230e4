"""The registry: every backend's frozen record by name, and the choices the CLI offers from them.

A backend is a runtime over a format (record.py); each lives in its own module (keras.py,
savedmodel.py, onnx.py, tflite.py, openvino.py) with its writer, loader, reader, precisions and
input contract, and is registered here. Adding a backend is one record, registered with
`register`; nothing else in effnet names backends.
"""

from __future__ import annotations

from pathlib import Path

from effnet_cli.backends import keras, onnx, openvino, savedmodel, tflite
from effnet_cli.backends.record import Backend
from effnet_cli.backends.runtimes import PrecisionUnavailable, Runner
from effnet_cli.util.errors import UsageError, choices

BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


for _module in (keras, savedmodel, onnx, tflite, openvino):
    register(_module.BACKEND)


def get(name: str, role: str = "--runtime") -> Backend:
    if name not in BACKENDS:
        raise UsageError(f"unknown {role} {name!r}; valid: {choices(BACKENDS)}")
    return BACKENDS[name]


def formats() -> tuple[str, ...]:
    """Backends that `export` writes: each format's own runtime."""
    return tuple(name for name, b in BACKENDS.items() if b.write is not None)


def bench_runtimes() -> tuple[str, ...]:
    return tuple(name for name, b in BACKENDS.items() if b.benched)


def precisions() -> tuple[str, ...]:
    """Every precision some backend offers, fp32 first."""
    seen: dict[str, None] = {}
    for backend in BACKENDS.values():
        seen.update(dict.fromkeys(backend.precisions))
    return tuple(seen)


def quantize_modes() -> tuple[str, ...]:
    """`export --quantize` values: none, and each precision some backend converts into a file."""
    modes = {p for b in BACKENDS.values() for p in b.file_precisions() if p != "fp32"}
    return ("none", *sorted(modes))


def with_layout(layout: str) -> tuple[str, ...]:
    """Backends that `export` writes with inputs in `layout` ("NCHW": `--nchw`)."""
    return tuple(name for name in formats() if layout in BACKENDS[name].layouts)


def with_dynamic_size() -> tuple[str, ...]:
    """Backends that `export --dynamic-size` writes."""
    return tuple(name for name in formats() if BACKENDS[name].dynamic_size)


def packages() -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for b in BACKENDS.values() for p in b.packages))


def of_path(path: Path) -> Backend:
    """The backend whose artifact `path` is (for `inspect`)."""
    if not path.exists():
        raise UsageError(f"{str(path)!r} does not exist")
    for backend in BACKENDS.values():
        if backend.recognises(path):
            return backend
    files = [b.suffix for b in BACKENDS.values() if not b.folder]
    folders = [f"{b.name} ({b.marker})" for b in BACKENDS.values() if b.folder]
    if path.is_dir():
        raise UsageError(f"{path} is a folder without {choices(folders)}: not a model folder")
    raise UsageError(
        f"cannot inspect {path.name!r}; valid: a {choices(files)} file, or a folder of "
        f"{choices(folders)}"
    )


def load_runner(
    name: str, path: Path, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
) -> Runner:
    """Load an artifact with its own runtime, at `precision` (the file's, or a hint or policy)."""
    backend = get(name)
    if device not in backend.devices:
        raise UsageError(
            f"effnet runs {name} on the {choices(backend.devices)} here; use --device cpu"
        )
    if precision not in backend.precisions:
        raise PrecisionUnavailable(f"{name} offers {choices(backend.precisions)}, not {precision}")
    return backend.load(path, device, threads, precision)


def packages_needed() -> tuple[str, ...]:
    """Every distribution effnet uses: TensorFlow and Keras, each backend's own, then numpy."""
    return ("tensorflow", "keras", *packages(), "numpy")
