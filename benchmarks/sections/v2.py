"""EfficientNetV2 (off by default: builds V2-L and exports three models, ~10 minutes): the
summary without TensorFlow, building beside keras.applications, and inference beside B0."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    EFFNET,
    ENV,
    Options,
    RateRow,
    TimeRow,
    interleaved,
    markdown,
    ort_options,
    wall_seconds,
)


def v2_startup_rows(repeats: int) -> list[TimeRow]:
    """The largest V2's stage summary, counted without TensorFlow, beside importing it."""
    import_tf = wall_seconds([sys.executable, "-c", "import tensorflow"], repeats)
    summary = wall_seconds([*EFFNET, "summary", "--model", "v2-l"], repeats)
    return [
        TimeRow(
            effnet="effnet summary --model v2-l",
            effnet_s=summary,
            reference="python -c 'import tensorflow'",
            reference_s=import_tf,
        )
    ]


def v2_build_rows(repeats: int) -> list[TimeRow]:
    """effnet's builder beside keras.applications' for V2-S and V2-L (default sizes),
    in one process, interleaved."""
    from effnet_cli import build_model
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    rows = []
    for name, reference in (("v2-s", "EfficientNetV2S"), ("v2-l", "EfficientNetV2L")):

        def ours(name: str = name) -> None:
            keras.backend.clear_session()
            build_model(name)

        def theirs(reference: str = reference) -> None:
            keras.backend.clear_session()
            getattr(keras.applications, reference)(weights=None)

        ours(), theirs()  # warm both code paths
        median = interleaved({"ours": ours, "reference": theirs}, repeats)
        rows.append(TimeRow(f"build_model('{name}') in-process", median["ours"],
                            f"keras.applications.{reference}", median["reference"]))  # fmt: skip
    return rows


ORT_CALLS = 5  # inferences per timing: less timer noise than one


def _ort_calls(session: Any, images: Any) -> Callable[[], object]:
    def call() -> None:
        for _ in range(ORT_CALLS):
            session.run(None, {"input": images})

    return call


def v2_inference_rows(repeats: int, threads: int = 2) -> list[RateRow]:
    """Images/s of V2-B0 and V2-S beside B0 on onnxruntime (each at its default size, as
    `effnet export` writes it), the three sessions timed in turn."""
    import numpy as np
    import onnxruntime as ort

    scratch = Path(tempfile.mkdtemp(prefix="effnet-v2-bench-"))
    sessions, sizes = {}, {}
    for name in ("b0", "v2-b0", "v2-s"):
        subprocess.run([*EFFNET, "export", "--model", name, "-f", "onnx", "--no-verify",
                        "-o", str(scratch)], check=True, env=ENV,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        (path,) = scratch.glob(f"efficientnet-{name}.onnx")
        sessions[name] = ort.InferenceSession(str(path), ort_options(ort, threads),
                                              providers=["CPUExecutionProvider"])  # fmt: skip
        sizes[name] = sessions[name].get_inputs()[0].shape[1]
    rows = []
    for batch in (1, 8):
        images = {
            name: np.random.default_rng(batch).uniform(0, 255, (batch, size, size, 3))
            .astype("float32") for name, size in sizes.items()
        }  # fmt: skip

        calls = {name: _ort_calls(session, images[name]) for name, session in sessions.items()}
        for call in calls.values():
            call()  # warm-up: allocations, kernel choice
        median = interleaved(calls, repeats)
        per_s = {name: ORT_CALLS * batch / seconds for name, seconds in median.items()}
        for name in ("v2-b0", "v2-s"):
            rows.append(
                RateRow(
                    effnet=f"{name} @{sizes[name]}, batch {batch} (img/s)",
                    effnet_images_per_s=per_s[name],
                    reference=f"b0 @{sizes['b0']}, batch {batch} (img/s)",
                    reference_images_per_s=per_s["b0"],
                )
            )
    return rows


def report(options: Options) -> str:
    repeats = options.repeats
    return "\n".join([
        markdown("EfficientNetV2: summary without TensorFlow (goal: under 0.3 s)",
                 v2_startup_rows(repeats)),
        markdown("EfficientNetV2: building (goal: within 1.1× of keras.applications)",
                 v2_build_rows(repeats)),
        markdown("EfficientNetV2 beside B0 on onnxruntime, 2 threads, default sizes (what "
                 "inference costs on this CPU)", v2_inference_rows(max(3, repeats)),
                 higher_is_better=True),
    ])  # fmt: skip
