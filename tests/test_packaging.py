"""Packaging: notebooks are committed stripped, versions live in the lock file, and the Makefile
installs into .venv or into an active conda environment (docs/install.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def lock_pins() -> dict[str, str]:
    """Package (canonical name) -> exact version, from constraints.txt."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def declared_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in project["dependencies"] + extras]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_hold_no_outputs_or_execution_counts(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{notebook.name} cell {index} has outputs: strip them"
        assert cell.get("execution_count") is None, (
            f"{notebook.name} cell {index} has an execution count: strip it"
        )


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 9


def test_every_declared_dependency_is_locked_within_its_range():
    pins = lock_pins()
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside {requirement}"
        )


def test_torch_takes_a_range_and_only_the_lock_pins_it():
    torch = next(r for r in declared_requirements() if r.name == "torch")
    assert not any(s.operator in ("==", "===") for s in torch.specifier), str(torch)
    assert "torch" in lock_pins()
    for name in ("Makefile", "environment.yml", "pyproject.toml"):
        assert "torch==" not in (ROOT / name).read_text(encoding="utf-8"), name


def test_jupyterlab_is_locked():
    assert "jupyterlab" in lock_pins()


def make_dry_run(target: str, **env: str) -> str:
    """`make -n -B target` with `env` laid over a copy of this process's environment from which
    every conda variable is removed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONDA_")}
    result = subprocess.run(
        ["make", "-n", "-B", target],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_install_builds_a_venv_from_the_lock_without_conda():
    commands = make_dry_run("install")
    assert "-m venv .venv" in commands
    assert ".venv/bin/python -m pip install --quiet -c constraints.txt torch" in commands
    assert '-c constraints.txt -e ".[dev,train]"' in commands


@needs_make
@pytest.mark.parametrize("env_name", ["repsafe", "/opt/envs/repsafe"])
def test_make_install_uses_an_active_conda_environment(env_name):
    commands = make_dry_run("install", CONDA_PREFIX="/opt/envs/repsafe", CONDA_DEFAULT_ENV=env_name)
    assert "venv" not in commands
    assert "/opt/envs/repsafe/bin/python -m pip install" in commands
    assert "/opt/envs/repsafe/.repsafe-installed" in commands


@needs_make
def test_make_install_ignores_conda_base():
    commands = make_dry_run("install", CONDA_PREFIX="/opt/conda", CONDA_DEFAULT_ENV="base")
    assert "-m venv .venv" in commands and "/opt/conda" not in commands


@needs_make
def test_make_lab_installs_from_the_lock_once_and_opens_at_the_repository_root():
    commands = make_dry_run("lab")
    assert '-c constraints.txt -e ".[dev,train,lab]"' in commands
    assert "touch .venv/.repsafe-lab-installed" in commands
    assert f'jupyter lab --notebook-dir="{ROOT}"' in commands


@needs_make
@pytest.mark.parametrize("target", ["lint", "test", "test-fast"])
def test_lint_checks_the_format_too(target):
    commands = make_dry_run(target)
    assert "ruff check repsafe_lib tests benchmarks scripts notebooks" in commands
    assert "ruff format --check repsafe_lib tests benchmarks scripts notebooks" in commands


@needs_make
def test_make_test_runs_every_test_and_test_fast_leaves_the_slow_ones_out():
    full, fast = make_dry_run("test"), make_dry_run("test-fast")
    assert "pytest tests -p no:cacheprovider" in full and "not slow" not in full
    assert "-n auto" in full and "-n auto" in fast  # pytest-xdist, one worker per core
    assert '-m "not slow"' in fast or "-m not slow" in fast
    assert "nbval" not in full and "--nbval-lax" in make_dry_run("nbval")
