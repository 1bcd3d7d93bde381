"""`benchmarks/paper_gpu.py` at its tiny shape on this machine: the prepared GPU benchmark runs end to
end (its children, `accelerate launch` included) and writes its tables and JSON, so a run on a lent
GPU needs no debugging there. On a machine without CUDA the FSDP rows must say why they are
skipped rather than run unsharded."""

from __future__ import annotations

import json

import pytest
import torch
from script_runs import ROOT, run_python


@pytest.mark.slow
def test_paper_gpu_benchmark_runs_at_tiny_shape(tmp_path):
    out = tmp_path / "paper_gpu.json"
    command = [
        str(ROOT / "benchmarks" / "paper_gpu.py"),
        "--shape",
        "tiny",
        "--texts",
        "8",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--json",
        str(out),
    ]
    done = run_python(command, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    printed = done.stdout
    for heading in ("## Extraction vs a bare bf16 forward", "## One training step", "## GPU-hours"):
        assert heading in printed
    assert "extract / bare tokens/s = " in printed and "FAILED" not in printed
    assert "| 00, 02, 03, 05, 06, 07, 08 | | not measured by this script |" in printed

    result = json.loads(out.read_text())
    assert result["shape"] == "tiny" and result["failures"] == {}
    assert result["machine"]["torch"] == torch.__version__
    assert {row["mode"] for row in result["extraction"]} == {"bare", "extract"}
    steps = [row for row in result["training"] if row["part"] == "training"]
    measured = {(row["layout"], row["run"]) for row in steps}
    layouts = ["one process", "LoRA, one process"]
    if torch.cuda.is_available():
        layouts.append("FSDP-1")
    else:
        assert "no CUDA device" in result["skipped"]["FSDP-1"]
    assert measured == {(layout, run) for layout in layouts for run in ("sft", "dpo", "cdpo")}
    assert all(row["seconds"] > 0 and row["peak_mb"] > 0 for row in steps)
    assert all(row["lora"] == (row["layout"] == "LoRA, one process") for row in steps)
    assert any(row["part"] == "reference" for row in result["training"])
    notebooks = {row["notebook"] for row in result["gpu_hours"]}
    assert "01_representations" in notebooks
    assert "04_training: cdpo_crossfit, one GPU, full fine-tuning" in notebooks
    assert all(row["gpu_hours"] > 0 for row in result["gpu_hours"])
