"""`benchmarks/states_memory.py` at a tiny shape: every stage runs in its own process on a states
file written through the suite's cache and reports its peak memory, so the paper-shape run that
BENCHMARKS.md records stays runnable."""

from __future__ import annotations

import json

import pytest
from script_runs import ROOT, run_python


@pytest.mark.slow
def test_states_memory_benchmark_runs_every_stage_at_a_tiny_shape(tmp_path):
    out = tmp_path / "states_memory.json"
    command = [str(ROOT / "benchmarks" / "states_memory.py"), "--baseline"]
    command += ["--examples", "400", "--layers", "2", "--dim", "32", "--dir", str(tmp_path)]
    done = run_python([*command, "--json", str(out)], timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["shape"] == [400, 2, 32]
    # 8-byte length, the JSON header, then the float16 values
    assert result["file_bytes"] > 2 * 400 * 2 * 32
    assert set(result["stages"]) == {"write", "probes", "reward", "baseline"}
    for stage in result["stages"].values():
        assert stage["peak_rss"] >= result["imports_rss"] * 0.9 and stage["seconds"] >= 0
    for label in ("| 01 write |", "| 02 probes (2 layers) |", "| 03 reward |", "| baseline |"):
        assert label in done.stdout
    assert list(tmp_path.iterdir()) == [out], "the states file is removed afterwards"
