"""`make reproduce PROFILE=tiny` end to end: papermill runs every notebook and the artifacts appear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repsafe_lib import paths, pipeline
from repsafe_lib.training import TIMING_METRICS

EXPECTED = [
    "00_data/pairs_train.jsonl",
    "00_data/pairs_test.jsonl",
    "00_data/data_summary.csv",
    "00_data/manifest.json",
    "00_data/response_words.csv",
    "01_representations/pca_kde.png",
    "01_representations/pca_kde.pdf",
    "01_representations/pca_separation.csv",
    "01_representations/pca_points.csv",
    "01_representations/states.json",
    "02_probes/probe_metrics.csv",
    "02_probes/control_metrics.csv",
    "02_probes/probes.safetensors",
    "02_probes/probe_layers.png",
    "03_hybrid_reward/fig1_probes.png",
    "03_hybrid_reward/fig1_probes.pdf",
    "03_hybrid_reward/fig6_strategies.csv",
    "03_hybrid_reward/fig6_strategies.png",
    "03_hybrid_reward/hybrid_reward.safetensors",
    "03_hybrid_reward/hybrid_reward.json",
    "03_hybrid_reward/reward_training.csv",
    "03_hybrid_reward/gate_weights.csv",
    "03_hybrid_reward/gamma_per_pair.csv",
    "03_hybrid_reward/transfer.csv",
    "03_hybrid_reward/transfer.png",
    "00_data/transfer.jsonl",
    "01_representations/transfer_states.json",
    "04_training/fig5_training_curves.png",
    "04_training/run_summary.csv",
    "04_training/fold_rewards.csv",
    "04_training/held_out_implicit_reward.csv",
    "04_training/sft/metrics.jsonl",
    "04_training/dpo/policy/model.safetensors",
    "04_training/cdpo/policy/config.json",
    "04_training/cdpo/hybrid_reward-0.safetensors",
    "04_training/cdpo/summary.json",
    "04_training/gamma_start.csv",
    "04_training/cdpo_crossfit/policy/config.json",
    "04_training/cdpo_crossfit/hybrid_reward-1.safetensors",
    "05_sampling/rs_star/responses.jsonl",
    "05_sampling/reranked_pairs.jsonl",
    "05_sampling/dpo_star/policy/model.safetensors",
    "05_sampling/cdpo_star/policy/config.json",
    "05_sampling/cdpo_star/hybrid_reward-0.safetensors",
    "05_sampling/online/policy/config.json",
    "05_sampling/online/metrics.jsonl",
    "05_sampling/reward_model/head.safetensors",
    "05_sampling/table2_samples.jsonl",
    "05_sampling/table2_refusal.csv",
    "05_sampling/table2_toxic_rate.png",
    "05_sampling/fig6_samples.jsonl",
    "06_evaluation/table1.csv",
    "06_evaluation/table3.csv",
    "06_evaluation/fig4_xstest.png",
    "06_evaluation/fig6_top_k.csv",
    "06_evaluation/fig6_top_k.png",
    "06_evaluation/fig1_reward_accuracy.csv",
    "06_evaluation/fig1_alignment.png",
    "06_evaluation/manifest.json",
    "07_compute/fig7_measured.csv",
    "07_compute/fig7_analytic.csv",
    "07_compute/fig7_compute.pdf",
    "08_results/results.json",
    "08_results/table1.tex",
    "08_results/table1_paper.tex",
    "08_results/table2_paper.csv",
    "08_results/fig7.png",
    "08_results/fig1_controls.md",
    "08_results/fig1_reward_accuracy.csv",
    "08_results/fig1_probes.png",
    "08_results/fig6.png",
    "08_results/fig6_pairwise.csv",
    "08_results/transfer.csv",
    "08_results/transfer.png",
    "report/index.html",
    "executed/00_data.ipynb",
    "executed/01_representations.ipynb",
    "executed/08_results.ipynb",
]


DETERMINISTIC = ("*.csv", "*.md", "*.jsonl", "*.png", "*.pdf", "*.safetensors")
# Fig 7's measured seconds (and the figure drawn from them) are the only timings in a table.
TIMED = ("07_compute/fig7_measured.*", "07_compute/fig7_compute.*", "08_results/fig7_measured.*")
TIMED += ("08_results/fig7.png", "08_results/fig7.pdf")


def artifact_bytes(root) -> dict[str, bytes]:
    """Every deterministic artifact's bytes; training logs without their wall-clock fields."""
    timed = {p for pattern in TIMED for p in root.glob(pattern)}
    files = [
        p
        for pattern in DETERMINISTIC
        for p in root.rglob(pattern)
        if "executed" not in p.parts and p not in timed
    ]
    return {
        str(p.relative_to(root)): without_timing(p) if p.name == "metrics.jsonl" else p.read_bytes()
        for p in files
    }


def without_timing(path) -> bytes:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    kept = [{k: v for k, v in row.items() if k not in TIMING_METRICS} for row in rows]
    return json.dumps(kept).encode()


@pytest.mark.slow
def test_tiny_profile_runs_every_notebook_and_twice_gives_identical_artifacts(
    tiny_run, tmp_path, monkeypatch
):
    out = tiny_run  # the first run, shared with the kill-and-rerun test in test_reliability.py
    missing = [name for name in EXPECTED if not (out / name).exists()]
    assert not missing, missing
    times = json.loads((out / "run_times.json").read_text())
    assert set(times) == {nb.stem for nb in pipeline.numbered_notebooks()} | {"total"}
    executed = json.loads((out / "executed" / "01_representations.ipynb").read_text())
    assert any(c.get("outputs") for c in executed["cells"]), "executed copy has no outputs"

    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path / "second"))
    assert pipeline.main(["--params", "params/tiny.yaml"]) == 0
    first, second = artifact_bytes(out), artifact_bytes(paths.profile_dir("tiny"))
    assert len(first) > 15 and first.keys() == second.keys()
    differing = [name for name in first if first[name] != second[name]]
    assert not differing, f"not byte-identical across two runs: {differing}"


def test_every_cell_of_every_notebook_ran_in_the_tiny_run(tiny_run):
    """What nbval would check, read off the session's one pipeline run: papermill executed every
    code cell of every committed notebook (parameters injected), in order, and none raised."""
    for notebook in pipeline.numbered_notebooks():
        committed = json.loads(notebook.read_text())
        executed = json.loads((tiny_run / "executed" / notebook.name).read_text())
        code = [c for c in executed["cells"] if c["cell_type"] == "code"]
        sources = ["".join(c["source"]) for c in code]
        expected = ["".join(c["source"]) for c in committed["cells"] if c["cell_type"] == "code"]
        assert [s for s in sources if s in expected] == expected, notebook.name
        assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), notebook.name
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors and executed["metadata"]["papermill"]["exception"] is None, notebook.name


def test_partial_run_keeps_other_times(tmp_path):
    record = tmp_path / "run_times.json"
    pipeline.record_run_times(record, {"00_data": 2.0, "01_representations": 10.0})
    pipeline.record_run_times(record, {"01_representations": 12.5})
    assert json.loads(record.read_text()) == {
        "00_data": 2.0,
        "01_representations": 12.5,
        "total": 14.5,
    }


def test_bad_params_stop_before_any_notebook(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path("params/tiny.yaml").read_text().replace("beta: 1.5", "beta: -1"))
    assert pipeline.main(["--params", str(bad)]) == 2
    assert f"{bad}: key 'training': beta must be > 0" in capsys.readouterr().err
    assert not paths.profile_dir("tiny").exists()
