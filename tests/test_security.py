"""No pickle loading, no remote code unless asked, safe YAML: checked over the whole code base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(
    p
    for folder in ("repsafe_lib", "benchmarks", "scripts", "notebooks")
    for p in (ROOT / folder).rglob("*")
    if p.suffix in (".py", ".ipynb")
)
FORBIDDEN = {
    r"\bpickle\.loads?\(": "pickle loading",
    r"\bimport (cloud)?pickle\b|\bfrom (cloud)?pickle import": "pickle import",
    r"\bjoblib\.load\(": "joblib (pickle) loading",
    r"\byaml\.load\(": "unsafe YAML loading (use yaml.safe_load)",
    r"\byaml\.(unsafe_load|full_load)\(": "unsafe YAML loading",
    r"trust_remote_code\s*=\s*True": "trust_remote_code=True hard-coded",
    r"\bnp\.load\([^)]*allow_pickle\s*=\s*True": "numpy pickle loading",
    r"(?<![.\w])(eval|exec)\(": "eval/exec",
}


def test_sources_found():
    assert any(p.name == "hidden_states.py" for p in SOURCES)


@pytest.mark.parametrize("pattern, what", FORBIDDEN.items())
def test_no_forbidden_calls(pattern, what):
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in SOURCES
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not hits, f"{what}: {hits}"


def test_torch_load_only_with_weights_only():
    pattern = re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)")
    hits = [str(p) for p in SOURCES if pattern.search(p.read_text(encoding="utf-8"))]
    assert not hits, f"torch.load without weights_only=True: {hits}"
