"""Where things live: the repository root, each profile's outputs, and the shared cache.

Notebooks never write paths by hand; they ask this module.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "REPSAFE_CACHE"
OUTPUTS_ENV_VAR = "REPSAFE_OUTPUTS"


def repo_root() -> Path:
    """The checkout holding `pyproject.toml` and `params/` (the package lives inside it)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "params").is_dir():
        return here
    return Path.cwd()


def outputs_root() -> Path:
    """`outputs/` at the repository root, or $REPSAFE_OUTPUTS (tests point it at a tmp dir)."""
    return Path(os.environ.get(OUTPUTS_ENV_VAR, repo_root() / "outputs"))


def profile_dir(profile: str) -> Path:
    return outputs_root() / profile


def notebook_dir(profile: str, notebook: str) -> Path:
    """`outputs/<profile>/<notebook>/`, e.g. notebook = "01_representations"."""
    return profile_dir(profile) / notebook


def cache_root() -> Path:
    """Cache for converted model weights, shared by profiles: $REPSAFE_CACHE or ~/.cache/repsafe."""
    return Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "repsafe"))


def bundled_data_dir() -> Path:
    return Path(__file__).resolve().parent / "data"


def resolve_data_source(source: str) -> str:
    """`demo:<path>` → bundled data; an existing relative path → from the repo root; else as is.

    `<path>` is a file in `repsafe_lib/data/` or a folder under it, e.g. `demo:hub/cais/mmlu`: a
    local copy of a hub repository in its published layout, which the loaders read like the hub id.
    A `demo:` path that resolves outside that folder (`demo:../x`, `demo:/etc/passwd`) is a
    `DatasetError` naming the source: `demo:` promises the suite's own bundled files.
    """
    if source.startswith("demo:"):
        data_dir = bundled_data_dir()
        path = data_dir / source.removeprefix("demo:")
        resolved, inside = path.resolve(), data_dir.resolve()
        if resolved == inside or not resolved.is_relative_to(inside):
            from repsafe_lib.loaders import DatasetError  # lazy: loaders imports this module

            reason = f"demo: names a file or folder inside {inside}; this resolves to {resolved}"
            raise DatasetError(reason, path=source)
        return str(path)
    candidate = repo_root() / source
    if not Path(source).is_absolute() and candidate.exists():
        return str(candidate)
    return source
