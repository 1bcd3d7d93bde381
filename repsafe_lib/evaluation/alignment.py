"""Fig 1 after alignment (paper Sec 1, Fig 1): each layer's reward accuracy on held-out pairs,
before alignment (notebook 03's R_h on the base policy's states) and after it (the R_h that notebook
04's cDPO run refreshed during training, on the states of its trained policy).

Each layer's scorer ranks a pair on its own (pairwise accuracy, s_l(chosen) > s_l(rejected)); the
gated R_h is scored the same way. A run that saved one R_h per confidence fold gives the mean over
them, with their min and max.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from repsafe_lib.evaluation.statistics import nan_mean
from repsafe_lib.hidden_states import (
    StateExample,
    cached_hidden_states,
    format_conversation,
    load_states,
)
from repsafe_lib.hybrid_reward import HybridReward, load_hybrid_reward, pairwise_accuracy
from repsafe_lib.models import load_saved_policy
from repsafe_lib.probes import pair_rows
from repsafe_lib.records import read_records

FIG1_ALIGNED_RUN = "cdpo"  # the paper's cDPO (notebook 04): one R_h, refreshed during training


def saved_hybrid_rewards(run_dir: str | Path) -> list[HybridReward]:
    """The hybrid rewards a cDPO run saved when it finished (`hybrid_reward-<k>`, one per
    confidence fold), in the order of k; empty when there are none."""
    stems = sorted(
        Path(run_dir).glob("hybrid_reward-*.json"), key=lambda p: int(p.stem.split("-")[-1])
    )
    return [load_hybrid_reward(p.with_suffix("")) for p in stems]


@torch.no_grad()
def layer_pairwise_accuracies(
    reward: HybridReward, chosen_states: torch.Tensor, rejected_states: torch.Tensor
) -> np.ndarray:
    """Each layer's scorer alone as a reward: share of pairs with s_l(h_c) > s_l(h_r), `[L]`;
    NaN for a degenerate (inactive) layer, which scores every response alike."""
    right = reward.layer_scores(chosen_states) > reward.layer_scores(rejected_states)
    accuracy = right.float().mean(dim=0).numpy().astype(float)
    return np.where(reward.active.numpy(), accuracy, np.nan)


@torch.no_grad()
def reward_accuracy_by_layer(
    rewards: Sequence[HybridReward],
    chosen_states: torch.Tensor,
    rejected_states: torch.Tensor,
    *,
    stage: str,
) -> pd.DataFrame:
    """Fig 1's reward series: pairwise accuracy of every layer's scorer and of the gated R_h on
    the given pairs' states `[n, L, d]`, one row each, averaged over `rewards` (several when a run
    cross-fitted one R_h per fold), with their min and max."""
    layers = list(rewards[0].config.layers)
    per_layer = np.stack(
        [layer_pairwise_accuracies(r, chosen_states, rejected_states) for r in rewards]
    )
    gated = np.array([pairwise_accuracy(r(chosen_states), r(rejected_states)) for r in rewards])
    rows = [("layer", layer, per_layer[:, i]) for i, layer in enumerate(layers)]
    rows.append(("hybrid reward", None, gated))
    return pd.DataFrame(
        [
            {
                "stage": stage,
                "scorer": scorer,
                "layer": layer,
                "pairwise_accuracy": nan_mean(values, axis=0).item(),
                "min": np.nanmin(values) if np.isfinite(values).any() else np.nan,
                "max": np.nanmax(values) if np.isfinite(values).any() else np.nan,
                "rewards": len(rewards),
                "pairs": len(chosen_states),
            }
            for scorer, layer, values in rows
        ]
    ).astype({"layer": "Int64"})


def _base_reward(run, state_layers: Sequence[int]) -> HybridReward:
    """Notebook 03's R_h, which must read the layers of notebook 01's states."""
    reward = load_hybrid_reward(
        run.upstream("03_hybrid_reward", "hybrid_reward.json").with_suffix("")
    )
    if list(reward.config.layers) != list(state_layers):
        raise ValueError("notebook 03's R_h reads other layers than notebook 01's states: rerun 03")
    return reward


def _aligned_rewards(run, aligned_run: str) -> tuple[Path, list[HybridReward]]:
    """The directory of notebook 04's `aligned_run` policy and the R_h it saved."""
    policy_dir = run.upstream("04_training", f"{aligned_run}/policy/config.json").parent
    rewards = saved_hybrid_rewards(policy_dir.parent)
    if not rewards:
        raise FileNotFoundError(f"04_training/{aligned_run} saved no hybrid reward: rerun 04")
    return policy_dir, rewards


def _policy_states(aligned, examples, rows, layers, cache_dir: Path, extraction) -> torch.Tensor:
    """The `aligned` policy's states `[n, L, d]` of the examples at `rows` (cached)."""
    texts = [
        format_conversation(aligned.tokenizer, examples[i].prompt, examples[i].response)
        for i in rows
    ]
    return cached_hidden_states(
        aligned.model,
        aligned.tokenizer,
        texts,
        model_fingerprint=aligned.fingerprint,
        cache_dir=cache_dir,
        layers=list(layers),
        max_length=extraction.max_length,
        batch_size=extraction.batch_size,
    ).states


def alignment_reward_accuracy(run, params, aligned_run: str = FIG1_ALIGNED_RUN) -> pd.DataFrame:
    """Fig 1's reward series before and after alignment on notebook 00's held-out pairs: notebook
    03's R_h on the base policy's states (notebook 01), and the refreshed R_h that notebook 04's
    `aligned_run` saved, on the states of that run's trained policy (extracted here, cached in
    `run.path("states")`). `run` is the calling notebook's `artifacts.Run`."""
    examples = read_records(
        run.upstream("01_representations", "examples.jsonl"),
        StateExample,
        producer="01_representations",
    )
    base_states, state_layers = load_states(
        run.upstream("01_representations", "states.json").parent
    )
    chosen_rows, rejected_rows = pair_rows(
        examples, np.flatnonzero([e.split == "test" for e in examples])
    )
    before = _base_reward(run, state_layers)
    policy_dir, after = _aligned_rewards(run, aligned_run)
    aligned = load_saved_policy(policy_dir, params.model, name=aligned_run)
    rows = (*chosen_rows, *rejected_rows)
    layers = after[0].config.layers
    states = _policy_states(aligned, examples, rows, layers, run.path("states"), params.extraction)
    n_pairs = len(chosen_rows)
    before_rows = reward_accuracy_by_layer(
        [before], base_states[chosen_rows], base_states[rejected_rows], stage="before alignment"
    )
    after_rows = reward_accuracy_by_layer(
        after, states[:n_pairs], states[n_pairs:], stage="after alignment"
    )
    return pd.concat([before_rows, after_rows], ignore_index=True)
