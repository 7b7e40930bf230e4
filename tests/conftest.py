"""Shared test helpers: run the real CLI in-process, and give BatchNorm real statistics."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# bench caches the machine's measured GEMM ceiling: tests keep theirs out of the user's cache
os.environ["EFFNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="effnet-test-cache-")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """Run `effnet ARGS` through `main` (the console script's path), capturing both streams."""
    from typer.testing import CliRunner

    from effnet_cli.cli.app import main

    def run(*args: str) -> Result:
        runner = CliRunner()
        with runner.isolation() as (out, err, _):
            code = main([str(a) for a in args])
            stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
        return Result(code, stdout, stderr)

    return run


def calibrate(model, resolution: int, seed: int = 0, batch: int = 4):
    """Give the model real BatchNorm statistics, and return seeded images to compare on.

    With fresh statistics EfficientNet's logits are ~1e-5 and any parity check passes trivially
    (DESIGN §1.1); afterwards they are ~0.1-1 and a difference means something.
    """
    import numpy as np

    from effnet_cli.keras.calibration import calibrate_batchnorm

    calibrate_batchnorm(model, seed=seed)
    images = np.random.default_rng(seed + 100).uniform(0, 255, (batch, resolution, resolution, 3))
    return images.astype("float32")


def relative_diff(a, b) -> float:
    """max |a - b| relative to the largest magnitude of the reference `b`."""
    import numpy as np

    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@dataclass(frozen=True)
class SharedB0:
    """Files of one B0 written by `effnet export`: see the `b0_r64` fixture."""

    folder: Path
    name: str  # the file stem export chose, efficientnet-b0-r64
    resolution: int
    seed: int

    def path(self, fmt: str, precision: str = "fp32") -> Path:
        """The artifact of that format and precision (the IR's folder for openvino)."""
        from effnet_cli import backends

        return self.folder / backends.get(fmt).artifact_name(self.name, precision)


@pytest.fixture(scope="session")
def b0_r64(tmp_path_factory) -> SharedB0:
    """One random-weight B0 at 64 px (seed 0), exported once for the whole run and shared by
    the test modules that need some artifact of a kind (predict, bench --from, --tune):

    - .keras, .onnx, .tflite, OpenVINO IR and SavedModel from one `effnet export --seed 0`, each
      verified by its own runtime (export gives BatchNorm real statistics first, so the .keras
      holds calibrated weights and every file holds the same ones);
    - the .keras quantized to an int8 and an fp16 TFLite (same weights, unverified).

    Read-only: a test that writes beside these files, or changes one, copies it to tmp_path
    first, so that no test depends on another or on their order.
    """
    import numpy as np
    from typer.testing import CliRunner

    from effnet_cli.cli.app import main

    shared = SharedB0(tmp_path_factory.mktemp("b0-r64"), "efficientnet-b0-r64", 64, 0)
    size, folder = str(shared.resolution), str(shared.folder)
    calibration = shared.folder.parent / "b0-r64-calibration.npy"
    rng = np.random.default_rng(3)
    np.save(calibration, rng.uniform(0, 255, (16, shared.resolution, shared.resolution, 3))
            .astype("float32"))  # fmt: skip
    keras_file = str(shared.path("keras"))
    commands = [
        ["export", "--phi", "0", "--resolution", size, "--seed", str(shared.seed),
         "-f", "keras,onnx,tflite,openvino,savedmodel", "-o", folder],
        ["export", "--from", keras_file, "-f", "tflite", "--quantize", "int8",
         "--calibration", str(calibration), "--no-verify", "-o", folder],
        ["export", "--from", keras_file, "-f", "tflite", "--quantize", "fp16", "--no-verify",
         "-o", folder],
    ]  # fmt: skip
    for argv in commands:
        with CliRunner().isolation() as (_, err, _):
            code = main(argv)
        assert code == 0, err.getvalue().decode()
    return shared


@pytest.fixture(scope="session")
def bench_every_runtime(tmp_path_factory):
    """One `effnet bench` of B0 at 64 px on every runtime at batches 1 and 4, in both modes
    (latency rows: 5 iterations; throughput rows: 0.4 s each instead of the 2 s default, the
    length --duration would set), with its CSV, plot and a fresh ceiling cache. Shared by
    tests/test_bench.py (its latency rows, CSV, plot, ceiling) and tests/test_bench_modes.py
    (its throughput rows): one build and one conversion per runtime for both.

    Returns (folder, the JSON document, stdout); read-only, as `b0_r64`.
    """
    import json

    from typer.testing import CliRunner

    from effnet_cli.cli.app import main
    from effnet_cli.workflows.bench import rows

    folder = tmp_path_factory.mktemp("bench")
    args = ["bench", "--resolution", "64", "--runtime", "all", "--batch", "1,4", "--warmup", "1",
            "--iterations", "5", "--threads", "2", "--mode", "both", "--csv",
            str(folder / "rows.csv"), "--plot", str(folder / "bench.png"), "--json"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch, CliRunner().isolation() as (out, err, _):
        patch.setenv("EFFNET_CACHE_DIR", str(folder / "cache"))  # the real probe, a fresh cache
        patch.setattr(rows, "THROUGHPUT_DEFAULT_S", 0.4)
        code = main(args)
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    assert code == 0, stderr
    return folder, json.loads(stdout), stdout
