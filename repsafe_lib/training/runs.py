"""What notebook 04, notebook 05 and the command line share: the inputs every run of a notebook
trains on (`TrainingSetup`: encoded pairs, the rewards as fit before training, the reference) and
one run from the base policy (`run_training`), which says how to resume when interrupted.

Every run starts from a fresh copy of the base policy and of the rewards (paper Sec 4.1); gamma of
the `cdpo` run comes from the paper's single R_h (notebook 03, fit on every training pair; Sec 3.4),
that of `cdpo_crossfit` from R_h's cross-fitted on folds of the prompts.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from repsafe_lib.hybrid_reward import HybridReward, load_hybrid_reward
from repsafe_lib.losses import preference_confidence
from repsafe_lib.training.batches import EncodedPair, encode_pairs, prompt_fold
from repsafe_lib.training.checkpoints import latest_checkpoint
from repsafe_lib.training.fold_rewards import FoldRewards, refreshed_rewards
from repsafe_lib.training.loop import RunResult, train_run
from repsafe_lib.training.objectives import CROSS_FITTED_RUNS, Objective, objective_of
from repsafe_lib.training.policy import training_spec
from repsafe_lib.training.references import reference_for


@dataclass
class TrainingSetup:
    """Everything the runs share: encoded training pairs, the rewards as fit before training
    (the paper's single R_h; the cross-fitted ones, one per fold, when a run needs them) and the
    reference log-probs."""

    params: object
    tokenizer: PreTrainedTokenizerBase
    pairs: list[EncodedPair]
    layers: list[int]
    reward: HybridReward
    reference: Callable
    reference_quantization: str  # what "auto" resolved to
    directory: Path
    fold_rewards: list[HybridReward] = field(default_factory=list)


def fold_rewards_for_run(setup: TrainingSetup, name: str) -> FoldRewards:
    """Fresh copies of the rewards run `name` starts from (each run refreshes its own): the
    cross-fitted ones for a cross-fitted run, else the single R_h (gamma for cDPO, a monitor for
    DPO)."""
    rewards = setup.fold_rewards if name in CROSS_FITTED_RUNS else [setup.reward]
    if not rewards:
        raise ValueError(
            f"run {name!r} needs the cross-fitted rewards: list it in training.runs before"
            " prepare_training fits them"
        )
    return refreshed_rewards([copy.deepcopy(r) for r in rewards], setup.params)


def gamma_at_start(
    setup: TrainingSetup, states: torch.Tensor, examples: Sequence, runs: Sequence[str]
) -> dict[str, torch.Tensor]:
    """gamma (Eq 8) of every training pair `[pairs]` before training, for each run of `runs`
    whose loss uses it: from the rewards that run starts from, on the base policy's states
    (notebook 01's `states [n, L, d]`, one row per entry of `examples`)."""
    row_of = {e.example_id: i for i, e in enumerate(examples)}
    folds = torch.tensor([p.fold for p in setup.pairs])
    chosen = [row_of[f"{p.pair_id}:chosen"] for p in setup.pairs]
    rejected = [row_of[f"{p.pair_id}:rejected"] for p in setup.pairs]
    gamma = {}
    for name in (n for n in runs if objective_of(n).uses_gamma):
        rewards = fold_rewards_for_run(setup, name)
        gamma[name] = preference_confidence(
            rewards.score(states, folds, chosen),
            rewards.score(states, folds, rejected),
            rewards.alpha,
        )
    return gamma


def run_training(
    name: str,
    setup: TrainingSetup,
    *,
    objective: str | Objective | None = None,
    resume: bool = True,
    progress: bool = True,
) -> RunResult:
    """One run (`<setup.directory>/<name>/`) from the base policy on the setup's pairs, with
    `objective` (default: the run's, `objectives.RUNS`)."""
    from repsafe_lib.models import load_model

    objective = objective_of(name, objective)
    params = setup.params
    loaded = load_model(training_spec(params.model, params.training), seed=params.seed)
    preference = objective.needs_reference
    try:
        return train_run(
            name,
            objective=objective,
            model=loaded.model,
            tokenizer=setup.tokenizer,
            pairs=setup.pairs,
            training=params.training,
            seed=params.seed,
            out_dir=setup.directory / name,
            reference=setup.reference if preference else None,
            fold_rewards=fold_rewards_for_run(setup, name) if preference else None,
            resume=resume,
            progress=progress,
        )
    except KeyboardInterrupt:  # Ctrl-C, or JupyterLab's "interrupt the kernel"
        print(interrupted_message(name, setup), file=sys.stderr, flush=True)
        raise


def interrupted_message(name: str, setup: TrainingSetup) -> str:
    """The line an interrupted run prints: what survives it and how to go on from there."""
    notebook = setup.directory.name  # outputs/<profile>/NN_name, the notebook running the run
    again = (
        f"rerunning notebook {notebook} (or `python -m repsafe_lib.pipeline --params"
        f" {setup.params.source_file} --only {notebook}`)"
    )
    checkpoint = latest_checkpoint(setup.directory / name / "checkpoints")
    if checkpoint is None:
        return f"{name}: interrupted before its first checkpoint; {again} starts it afresh"
    return f"{name}: interrupted; kept its newest checkpoint {checkpoint}: {again} resumes from it"


def row_folds(examples: Sequence, *, seed: int, folds: int) -> np.ndarray:
    """Fold of every state row `[n]`: its prompt's fold for training rows, -1 for the others."""
    return np.array(
        [prompt_fold(e.prompt, seed, folds) if e.split == "train" else -1 for e in examples]
    )


def prepare_training(
    params,
    directory: Path,
    *,
    train_pairs: Sequence,
    states: torch.Tensor,
    examples: Sequence,
    layers: Sequence[int],
    hybrid_reward_path: Path,
    runs: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[TrainingSetup, list]:
    """Encode the training pairs (with their prompt folds), load notebook 03's single R_h (the
    paper's, fit on every training pair), fit the cross-fitted rewards on the base policy's
    states (notebook 01) when `runs` (default: `training.runs`) has a cross-fitted run, and get
    the reference log-probs of every pair the runs will visit. Returns the setup and the
    `FoldReward`s (empty when no run needs them)."""
    from repsafe_lib.hybrid_reward import fit_fold_rewards
    from repsafe_lib.models import load_tokenizer

    training = params.training
    tokenizer = load_tokenizer(params.model)
    pairs = encode_pairs(
        tokenizer,
        train_pairs,
        max_length=params.extraction.max_length,
        seed=params.seed,
        folds=training.confidence_folds,
    )
    fitted = []
    if any(name in CROSS_FITTED_RUNS for name in (training.runs if runs is None else runs)):
        fitted = fit_fold_rewards(
            states,
            examples,
            row_folds(examples, seed=params.seed, folds=training.confidence_folds),
            layers,
            params.probes,
            params.reward,
            seed=params.seed,
        )
    reward = load_hybrid_reward(hybrid_reward_path)
    if list(reward.config.layers) != list(layers):
        raise ValueError(
            f"{hybrid_reward_path}: R_h reads layers {list(reward.config.layers)}, the states are"
            f" of layers {list(layers)}: rerun notebook 03"
        )
    reference, quantization = reference_for(params, pairs, directory, tokenizer, progress=progress)
    setup = TrainingSetup(
        params,
        tokenizer,
        pairs,
        list(layers),
        reward,
        reference,
        quantization,
        directory,
        fold_rewards=[f.reward for f in fitted],
    )
    return setup, fitted


@dataclass(frozen=True)
class TrainingInputs:
    """What notebook 04 reads from notebooks 00, 01 and 03."""

    train_pairs: list
    test_pairs: list
    states: torch.Tensor
    layers: list[int]
    examples: list
    hybrid_reward_path: Path


def training_inputs(run) -> TrainingInputs:
    """Notebook 00's pairs, notebook 01's states and examples, notebook 03's R_h (an `artifacts.Run`
    finds them and names the notebook to rerun when one is missing)."""
    from repsafe_lib.hidden_states import StateExample, load_states
    from repsafe_lib.records import PreferencePair, read_records

    states, layers = load_states(run.upstream("01_representations", "states.json").parent)
    examples = read_records(
        run.upstream("01_representations", "examples.jsonl"),
        StateExample,
        producer="01_representations",
    )
    pairs = {
        split: read_records(
            run.upstream("00_data", f"pairs_{split}.jsonl"), PreferencePair, producer="00_data"
        )
        for split in ("train", "test")
    }
    reward = run.upstream("03_hybrid_reward", "hybrid_reward.json").with_suffix("")
    return TrainingInputs(pairs["train"], pairs["test"], states, layers, examples, reward)
