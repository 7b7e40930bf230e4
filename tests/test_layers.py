"""The import direction of the layers (pyproject's [tool.importlinter]), proven able to fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module that plants the import, the line planted, what the report must name)
PLANTED = [
    (
        "model/spec.py",
        "from effnet_cli.cli import app",
        "effnet_cli.model is not allowed to import",
    ),
    (
        "keras/builder.py",
        "from effnet_cli.workflows import bench",
        "effnet_cli.keras is not allowed",
    ),
    (
        "output/table.py",
        "from effnet_cli.workflows import export",
        "effnet_cli.output is not allowed",
    ),
    ("model/costs.py", "import tensorflow", "effnet_cli.model is not allowed to import tensorflow"),
    (
        "workflows/doctor.py",
        "from effnet_cli.workflows.bench import machine",
        "effnet_cli.workflows.doctor is not allowed to import effnet_cli.workflows.bench",
    ),
]


def _lint_copy(tmp_path: Path, plant: tuple[str, str] | None = None) -> subprocess.CompletedProcess:
    """lint-imports over a copy of the package, with one import planted at the top of a module."""
    shutil.copytree(ROOT / "effnet_cli", tmp_path / "effnet_cli",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if plant is not None:
        module, line = plant
        path = tmp_path / "effnet_cli" / module
        path.write_text(f"{line}  # noqa\n{path.read_text()}")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)}
    return subprocess.run([str(LINT_IMPORTS)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def lint_imports():
    if not LINT_IMPORTS.exists():
        pytest.fail(f"no lint-imports beside {sys.executable}: pip install -e '.[dev]'")
    return _lint_copy


def test_the_package_as_it_is_keeps_every_contract(lint_imports, tmp_path):
    result = lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "named"), PLANTED)
def test_a_planted_upward_import_breaks_the_contract(lint_imports, tmp_path, module, line, named):
    result = lint_imports(tmp_path, (module, line))
    assert result.returncode == 1, result.stdout
    assert named in " ".join(result.stdout.split()), result.stdout
