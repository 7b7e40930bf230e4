"""Backends: one module per backend (keras, savedmodel, onnx, tflite, openvino), each holding
its format's writer, reader and input contract and its runtime's loader and precisions; the
records they are made of (record.py), the `Runner` every loader returns (runtimes.py), what
their artifacts share (artifact.py), and the registry of them all (registry.py).

This package's own names are the registry's and the records', for callers that need no more.
"""

from effnet_cli.backends.onnx import DEFAULT_OPSET, reusing_conversions
from effnet_cli.backends.record import (
    FP16_GATE,
    FP32,
    FP32_GATE,
    QUANTIZED_GATE,
    RECIPES,
    Backend,
    Declared,
    Format,
    Gate,
    Loader,
    ModelRunner,
    Precision,
    Recipe,
    Steer,
    Writer,
    WriterOptions,
)
from effnet_cli.backends.registry import (
    BACKENDS,
    bench_runtimes,
    formats,
    get,
    load_runner,
    of_path,
    packages,
    packages_needed,
    precisions,
    quantize_modes,
    register,
    with_dynamic_size,
    with_layout,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_OPSET",
    "FP16_GATE",
    "FP32",
    "FP32_GATE",
    "QUANTIZED_GATE",
    "RECIPES",
    "Backend",
    "Declared",
    "Format",
    "Gate",
    "Loader",
    "ModelRunner",
    "Precision",
    "Recipe",
    "Steer",
    "Writer",
    "WriterOptions",
    "bench_runtimes",
    "formats",
    "get",
    "load_runner",
    "of_path",
    "packages",
    "packages_needed",
    "precisions",
    "quantize_modes",
    "register",
    "reusing_conversions",
    "with_dynamic_size",
    "with_layout",
]
