"""Running a script of the project in a fresh Python process, as a user would from the repository
root: the checkout (and any `extra_paths`) on `PYTHONPATH`, one thread per process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(
    arguments: Sequence[str], *, timeout: float, extra_paths: Sequence[Path] = ()
) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` from the repository root; its output captured as text."""
    path = os.pathsep.join([str(ROOT), *map(str, extra_paths), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
