"""The paper profile's rehearsal: `params/rehearsal.yaml` extends `params/paper.yaml` and differs
only in model sources, data sources and sizes; `extends:` itself is validated like any key."""

from __future__ import annotations

import fnmatch
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import shared_run

from repsafe_lib import pipeline
from repsafe_lib.models import nf4_supported
from repsafe_lib.params import ParamsError, load_params, merge_overlay, raw_params

# What a rehearsal may change, as dotted-key patterns: model sources, data sources, sizes.
MODEL_SOURCES = (
    "profile",
    "model.*",
    "evaluation.llama_guard_2.*",
    "evaluation.md_judge.*",
    "evaluation.reward_model.*",
    "evaluation.reward_models*",
)
DATA_SOURCES = (
    "data.hub_copies",
    "data.*.source",
    "evaluation.mmlu.source",
    "evaluation.mmlu_fewshot.source",
    "evaluation.instruction_prompts.source",
)
SIZES = (
    "data.*.max_rows",
    "evaluation.mmlu.max_rows",
    "evaluation.mmlu_fewshot.max_rows",
    "evaluation.instruction_prompts.max_rows",
    "pca.samples_per_class",
    "training.max_steps",
    "training.checkpoint_every",
    "training.drift_pairs",
    "evaluation.prompts_per_benchmark",
    "evaluation.max_new_tokens",
    "evaluation.judge_max_new_tokens",
    "evaluation.bootstrap_resamples",
    "sampling.train_prompts",
    "sampling.reward_model.steps",
    "sampling.online.rounds",
    "sampling.online.steps_per_round",
    "sampling.online.prompts_per_round",
    "compute.new_tokens",
    "compute.repeats",
    "compute.reward_repeats",
)
REHEARSALS = {"rehearsal": "paper", "rehearsal-80gb": "paper-80gb"}


def flattened(raw: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flattened(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def allowed(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in MODEL_SOURCES + DATA_SOURCES + SIZES)


@pytest.mark.parametrize("rehearsal", [r for r in REHEARSALS if Path(f"params/{r}.yaml").is_file()])
def test_rehearsal_differs_from_its_paper_profile_only_in_sources_and_sizes(rehearsal):
    paper = flattened(raw_params(Path(f"params/{REHEARSALS[rehearsal]}.yaml")))
    ours = flattened(raw_params(Path(f"params/{rehearsal}.yaml")))
    drifted = sorted(
        key
        for key in paper.keys() | ours.keys()
        if paper.get(key) != ours.get(key) and not allowed(key)
    )
    assert not drifted, f"{rehearsal}.yaml changes more than sources and sizes: {drifted}"
    assert load_params(f"params/{rehearsal}.yaml").profile == rehearsal


def test_rehearsal_models_are_the_paper_architectures_without_downloads():
    params = load_params("params/rehearsal.yaml")
    policy, evaluation = params.model, params.evaluation
    assert policy.kind == "tiny-random" and policy.tiny.architecture == "llama"
    assert not policy.tiny.chat_template  # Llama-2-7b-hf has none
    assert evaluation.llama_guard_2.tiny.architecture == "llama"
    assert evaluation.md_judge.tiny.architecture == "mistral"
    heads = [(m.tiny.architecture, m.tiny.scalar_head) for m in evaluation.reward_models]
    assert heads == [("deberta-v2", True), ("llama", True)]
    paper = load_params("params/paper.yaml")
    assert policy.dtype == paper.model.dtype == "bfloat16"
    assert params.training == dataclass_with(paper.training, params.training, SIZES, "training")


def dataclass_with(base, other, patterns, prefix):
    """`base` with the fields `patterns` allows taken from `other` (for a whole-block compare)."""
    import dataclasses

    changes = {
        f.name: getattr(other, f.name)
        for f in dataclasses.fields(base)
        if any(fnmatch.fnmatchcase(f"{prefix}.{f.name}", p) for p in patterns)
    }
    return dataclasses.replace(base, **changes)


def test_overlay_merges_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"z": 1}}
    overlay = {"a": {"y": [3]}, "c": None, "d": 4}
    assert merge_overlay(base, overlay) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": None, "d": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2, "c": {"z": 1}}  # not modified


def test_extends_reads_the_parent_relative_to_the_file(tmp_path):
    tiny = yaml.safe_load(Path("params/tiny.yaml").read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny))
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("extends: ../base.yaml\nprofile: child\ntraining: {max_steps: 2}\n")
    params = load_params(child)
    assert (params.profile, params.training.max_steps) == ("child", 2)
    assert params.training.beta == load_params("params/tiny.yaml").training.beta
    assert params.source_file == str(child)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("extends: nope.yaml\n", "no params file"),
        ("extends: 3\n", "expected a params file name"),
        ("extends: child.yaml\n", "cycle"),
        ("extends: base.yaml\ntraining: {max_stepz: 2}\n", "training.max_stepz"),
    ],
)
def test_bad_extends_names_the_file_and_key(tmp_path, text, problem):
    (tmp_path / "base.yaml").write_text(Path("params/tiny.yaml").read_text())
    child = tmp_path / "child.yaml"
    child.write_text(text)
    with pytest.raises(ParamsError) as error:
        load_params(child)
    assert str(child) in str(error.value) and problem in str(error.value)


# The rehearsal itself, from a clean outputs directory, as `make reproduce PROFILE=rehearsal`.


@pytest.fixture(scope="session")
def rehearsal_run(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory, "rehearsal")


def manifest(run_dir: Path, notebook: str) -> dict:
    return json.loads((run_dir / notebook / "manifest.json").read_text())


def test_rehearsal_reaches_every_paper_item_in_the_report(rehearsal_run):
    index = json.loads((rehearsal_run / "08_results" / "results.json").read_text())
    assert [item["key"] for item in index if not item["ran"]] == []
    page = (rehearsal_run / "report" / "index.html").read_text()
    assert all(item["title"].split(":")[0] in page for item in index)
    assert "not yet run" not in page


def test_rehearsal_runs_the_paper_profiles_settings(rehearsal_run):
    paper = load_params("params/paper.yaml")
    assert manifest(rehearsal_run, "02_probes")["solver"] == paper.probes.solver == "torch"
    training = manifest(rehearsal_run, "04_training")
    assert training["runs"] == list(paper.training.runs)
    assert training["reference"] == paper.training.reference == "precomputed"
    assert training["reference_quantization"] == ("nf4" if nf4_supported() else "none")
    for run in ("cdpo", "cdpo_crossfit"):
        rows = [
            json.loads(line)
            for line in (rehearsal_run / "04_training" / run / "metrics.jsonl").open()
        ]
        assert len(rows) == load_params("params/rehearsal.yaml").training.max_steps
        assert all(math.isfinite(r["loss"]) and 0 <= r["gamma_mean"] <= 1 for r in rows)
    evaluation = manifest(rehearsal_run, "06_evaluation")
    assert sorted(evaluation["judges"]) == sorted(paper.evaluation.judges)
    assert evaluation["mmlu_shots"] == paper.evaluation.mmlu_shots == 5
    judgments = [
        json.loads(line) for line in (rehearsal_run / "06_evaluation" / "judgments.jsonl").open()
    ]
    verdicts = {(j["judge"], j["unsafe"]) for j in judgments}
    assert verdicts >= {(name, flag) for name in paper.evaluation.judges for flag in (True, False)}
    agreement = pd.read_csv(rehearsal_run / "06_evaluation" / "judge_agreement.csv")
    assert agreement["items"].gt(0).all() and agreement["kappa"].notna().any()
    table3 = pd.read_csv(rehearsal_run / "06_evaluation" / "table3.csv")
    reward_columns = [c for c in table3.columns if c.startswith("general_reward ·")]
    assert len(reward_columns) == len(paper.evaluation.general_reward_models) == 2
    assert table3[reward_columns].apply(pd.to_numeric, errors="coerce").notna().all().all()
    samples = pd.read_json(rehearsal_run / "05_sampling" / "table2_samples.jsonl", lines=True)
    per_prompt = samples.groupby(["stage", "benchmark", "prompt_id"]).size()
    assert (per_prompt == paper.sampling.num_samples).all()
    rounds = sorted(p.name for p in (rehearsal_run / "05_sampling" / "online").glob("round-*"))
    assert len(rounds) == load_params("params/rehearsal.yaml").sampling.online.rounds
    compute = pd.read_csv(rehearsal_run / "07_compute" / "fig7_measured.csv")
    assert len(compute) > 0


def test_rehearsal_80gb_trains_every_model_with_lora(rehearsal_run, tmp_path, monkeypatch):
    """paper-80gb.yaml's LoRA path: notebooks 04 and 05 (every trained model: SFT, DPO, both cDPO
    runs, DPO*/cDPO*, online DPO and its reward model) on the rehearsal's notebooks 00-03."""
    profile = tmp_path / "rehearsal-80gb"
    for notebook in ("00_data", "01_representations", "02_probes", "03_hybrid_reward"):
        shutil.copytree(rehearsal_run / notebook, profile / notebook)
    monkeypatch.setenv("REPSAFE_OUTPUTS", str(tmp_path))
    assert pipeline.main(["--params", "params/rehearsal-80gb.yaml", "--only", "04", "05"]) == 0
    lora = load_params("params/rehearsal-80gb.yaml").training.lora
    assert lora is not None
    trained = [profile / "04_training" / run / "policy" for run in ("sft", "dpo", "cdpo")]
    trained += [profile / "05_sampling" / run / "policy" for run in ("dpo_star", "online")]
    for policy in trained:  # adapters merged: a plain model that loads without peft
        assert (policy / "model.safetensors").is_file() and not (
            policy / "adapter_config.json"
        ).exists()
