"""`effnet doctor`: what is installed, what the machine offers, and what does not fit together."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from effnet_cli.records.doctor import BackendOffer, Diagnosis, Package

# (distribution, required?, why) — required ones make doctor exit 1 when missing. Each backend's
# own packages come from its record (backends/), so a new backend is diagnosed too.
CORE_PACKAGES = (
    ("tensorflow", True, "builds and runs the models"),
    ("keras", True, "the model API (Keras 3)"),
    ("numpy", True, "arrays"),
    ("h5py", True, "weights files"),
    ("matplotlib", False, "--plot (optional)"),
)


def packages() -> list[tuple[str, bool, str]]:
    from effnet_cli import backends

    listed = [*CORE_PACKAGES]
    for backend in backends.BACKENDS.values():
        for name in backend.packages:
            if all(name != known for known, _, _ in listed):
                listed.append((name, True, f"{backend.name}: {backend.summary}"))
    return listed


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        if distribution == "tensorflow":  # the CPU-only wheel provides the same module
            return _version("tensorflow-cpu")
        return None


def _major_minor(version: str | None) -> tuple[int, int] | None:
    if version is None:
        return None
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def incompatibilities(versions: dict[str, str | None]) -> list[str]:
    """Combinations known to break effnet, each with its reason in the message.

    Upstream facts, not measured here: TensorFlow made Keras 3 its default in 2.16, supports
    numpy 2 from 2.18, and tf2onnx converts Keras 3 models from 1.16.
    """
    problems = []
    keras, tf = _major_minor(versions.get("keras")), _major_minor(versions.get("tensorflow"))
    numpy = _major_minor(versions.get("numpy"))
    if keras is not None and keras[0] < 3:
        problems.append(f"keras {versions['keras']}: effnet needs Keras 3 (weights layout, export)")
    if tf is not None and tf < (2, 16):
        problems.append(f"tensorflow {versions['tensorflow']}: older than 2.16 ships Keras 2")
    if numpy is not None and tf is not None and numpy >= (2, 0) and tf < (2, 18):
        problems.append("numpy 2 with tensorflow older than 2.18: TensorFlow fails to import")
    if versions.get("tf2onnx") and keras is not None and keras >= (3, 0):
        t2o = _major_minor(versions["tf2onnx"])
        if t2o is not None and t2o < (1, 16):
            problems.append(f"tf2onnx {versions['tf2onnx']} cannot convert Keras 3 models (1.16+)")
    return problems


def diagnose(probe_devices: bool = True) -> Diagnosis:
    from effnet_cli import backends

    listed = packages()
    versions = {name: _version(name) for name, _, _ in listed}
    missing = tuple(name for name, required, _ in listed if required and versions[name] is None)
    incompatible = tuple(incompatibilities(versions))
    cpu: str | None = None  # not probed without TensorFlow
    gpus: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    if probe_devices and versions["tensorflow"]:
        from effnet_cli.backends.keras import gpus_visible
        from effnet_cli.util.capabilities import cpu_name

        cpu, gpus = cpu_name(), tuple(gpus_visible())
    if probe_devices and versions["onnxruntime"]:
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    return Diagnosis(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu_count=os.cpu_count(),
        packages=tuple(
            Package(name=name, version=versions[name], required=required, purpose=why)
            for name, required, why in listed
        ),
        missing=missing,
        incompatible=incompatible,
        gpus=gpus,
        onnxruntime_providers=providers,
        cpu=cpu,
        backends=tuple(
            BackendOffer(
                name=b.name,
                summary=b.summary,
                devices=tuple(b.devices),
                precisions={p: way.how for p, way in b.precisions.items()},
            )
            for b in backends.BACKENDS.values()
        ),
        ok=not missing and not incompatible,
    )
