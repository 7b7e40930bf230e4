"""The type checker (pyproject's [tool.mypy], run by `make lint`), proven able to fail: a copy of
the package passes as it is, and each planted type error is reported by its code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MYPY = Path(sys.executable).with_name("mypy")

# (module the lines are appended to, the lines planted, what the report must name)
PLANTED = [
    (
        "model/costs.py",
        'def planted() -> int:\n    return "B0"',
        'Incompatible return value type (got "str", expected "int")  [return-value]',
    ),
    (
        "util/drift.py",
        "def planted(outputs, reference):\n    return compare(outputs, reference)",
        "Function is missing a type annotation  [no-untyped-def]",
    ),
    (  # a writer that breaks the backends' Writer protocol (backends/record.py)
        "backends/keras.py",
        "def planted(model: Any, path: str) -> None: ...\n\n\n"
        'PLANTED = Format(name="x", suffix=".x", read=read_keras, write=planted)',
        'Argument "write" to "Format" has incompatible type',
    ),
    (  # a runner's answers read as something they are not
        "backends/runtimes.py",
        "def planted(runner: Runner, images: Images) -> str:\n    return runner.comparable(images)",
        "Incompatible return value type",
    ),
    (
        "util/errors.py",
        'planted: int = "b0"  # type: ignore',
        '"type: ignore" comment without error code',
    ),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One mypy cache for the module's runs, seeded from `make lint`'s where there is one:
    the libraries' stubs are then read once, not once a test."""
    if not MYPY.exists():
        pytest.fail(f"no mypy beside {sys.executable}: pip install -e '.[dev]'")
    cache = tmp_path_factory.mktemp("mypy") / "cache"
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", cache)
    return cache


def _mypy_copy(
    tmp_path: Path, cache: Path, plant: tuple[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """mypy over a copy of the package, with lines appended to one module."""
    shutil.copytree(
        ROOT / "effnet_cli", tmp_path / "effnet_cli", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if plant is not None:
        module, lines = plant
        path = tmp_path / "effnet_cli" / module
        path.write_text(f"{path.read_text()}\n\n{lines}\n")
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [str(MYPY), "--cache-dir", str(cache)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_as_it_is_passes_the_type_checker(cache, tmp_path):
    result = _mypy_copy(tmp_path, cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


@pytest.mark.parametrize(("module", "lines", "named"), PLANTED)
def test_a_planted_type_error_fails_the_type_checker(cache, tmp_path, module, lines, named):
    result = _mypy_copy(tmp_path, cache, (module, lines))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"effnet_cli/{module}:" in result.stdout, result.stdout
    assert named in result.stdout, result.stdout
