"""Shared test helpers: run the real CLI in-process, and give BatchNorm real statistics."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

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

    from effnet_cli.cli import main

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

    from effnet_cli.builder import calibrate_batchnorm

    calibrate_batchnorm(model, seed=seed)
    images = np.random.default_rng(seed + 100).uniform(0, 255, (batch, resolution, resolution, 3))
    return images.astype("float32")


def relative_diff(a, b) -> float:
    """max |a - b| relative to the largest magnitude of the reference `b`."""
    import numpy as np

    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
