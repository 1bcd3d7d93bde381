"""The hybrid reward `R_h`: per-layer linear scorers mixed by a softmax gate (Sec 3.2, Fig 3).

    s_l(h) = w_l . (h_l - m_l) / sigma_l + b_l          one linear SVM margin per layer
    g(h)   = softmax(A s(h) + c)                         input-dependent gate (the method)
             softmax(c)                                  static gate (the ablation)
    R_h(h) = sum_l g_l(h) s_l(h)

The scorers start as the fitted SVMs of `repsafe_lib.probes`; the gate starts uniform (A = 0,
c = 0), so an untrained `R_h` is the mean of the layers' margins. A layer whose training states are
constant, or whose SVM learned nothing (w = 0), is *inactive*: its gate logit is fixed at -inf, so
it never takes weight however training goes.

Saved as safetensors (tensors) + JSON (config); `load_hybrid_reward` reads nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from repsafe_lib.artifacts import atomic_path, corrupt_artifact, write_json
from repsafe_lib.losses import margin_bt_loss
from repsafe_lib.probes import ProbeSet, ProbeSplit, evaluate_splits, pair_rows
from repsafe_lib.states_file import row_blocks

GateKind = Literal["input", "static"]
FORMAT = "repsafe-hybrid-reward/v1"
TENSOR_NAMES = ("mean", "scale", "active", "weight", "bias", "gate_weight", "gate_bias")


@dataclass(frozen=True)
class HybridRewardConfig:
    layers: tuple[int, ...]  # 1-based decoder layers, in the order of the states' L axis
    hidden_size: int
    gate: GateKind = "input"
    format: str = FORMAT


def _stacked(probes: Sequence, name: str) -> torch.Tensor:
    return torch.tensor(np.stack([getattr(p, name) for p in probes])).float()


class HybridReward(nn.Module):
    """`R_h`: states `[n, L, d]` (any float dtype) -> rewards `[n]` (float32).

    `reward(states, rows)` scores `states[rows]` without gathering them all at once: the rows are
    read and upcast a block at a time (`states_file.row_blocks`), which is how memory-mapped
    float16 states at the paper's size are scored.
    """

    def __init__(self, config: HybridRewardConfig):
        super().__init__()
        if config.gate not in ("input", "static"):
            raise ValueError(f"gate must be 'input' or 'static', got {config.gate!r}")
        self.config = config
        num_layers, d = len(config.layers), config.hidden_size
        self.register_buffer("mean", torch.zeros(num_layers, d))
        self.register_buffer("scale", torch.ones(num_layers, d))
        self.register_buffer("active", torch.ones(num_layers, dtype=torch.bool))
        self.weight = nn.Parameter(torch.zeros(num_layers, d))
        self.bias = nn.Parameter(torch.zeros(num_layers))
        self.gate_weight = nn.Parameter(torch.zeros(num_layers, num_layers))
        self.gate_bias = nn.Parameter(torch.zeros(num_layers))

    @classmethod
    def from_probes(
        cls, probes: Sequence, layers: Sequence[int], *, gate: GateKind = "input"
    ) -> HybridReward:
        """Scorers initialised from fitted `LayerProbe`s (one per entry of `layers`)."""
        if len(probes) != len(layers):
            raise ValueError(f"{len(probes)} probes for {len(layers)} layers")
        config = HybridRewardConfig(tuple(int(x) for x in layers), len(probes[0].weight), gate)
        reward = cls(config)
        with torch.no_grad():
            reward.mean.copy_(_stacked(probes, "mean"))
            reward.scale.copy_(_stacked(probes, "scale"))
            reward.weight.copy_(_stacked(probes, "weight"))
            reward.bias.copy_(torch.tensor([p.bias for p in probes]).float())
            # Constant states were standardised to 0; the SVM then has nothing to weigh.
            reward.active.copy_(reward.weight.abs().sum(dim=1) > 0)
        if not reward.active.any():
            raise ValueError("every layer is degenerate (constant states or a zero SVM)")
        return reward

    def layer_scores(self, states: torch.Tensor, rows=None) -> torch.Tensor:
        """Each layer's margin `s_l(h)` of `states[rows]` (every row when None): `[n, L]`."""
        blocks = [self._block_scores(block) for block in row_blocks(states, rows)]
        if not blocks:
            return torch.zeros((0, len(self.config.layers)), device=self.mean.device)
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)

    def _block_scores(self, states: torch.Tensor) -> torch.Tensor:
        z = (states - self.mean) / self.scale
        return (z * self.weight).sum(dim=-1) + self.bias

    def gate_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Softmax gate `[n, L]` over the layer scores `[n, L]`; inactive layers get exactly 0."""
        logits = self.gate_bias.expand_as(scores)
        if self.config.gate == "input":
            logits = logits + scores @ self.gate_weight.T
        return torch.softmax(logits.masked_fill(~self.active, float("-inf")), dim=-1)

    def forward(self, states: torch.Tensor, rows=None) -> torch.Tensor:
        if states.dim() != 3 or states.shape[1:] != self.mean.shape:
            expected = f"[n, {self.mean.shape[0]}, {self.mean.shape[1]}]"
            raise ValueError(f"states must be {expected}, got {list(states.shape)}")
        return self.mix(self.layer_scores(states, rows))

    def mix(self, scores: torch.Tensor) -> torch.Tensor:
        """`R_h` from precomputed layer scores `[n, L]`."""
        return (self.gate_weights(scores) * scores).sum(dim=-1)

    def trainable(self, *, train_scorers: bool) -> list[nn.Parameter]:
        gate = [self.gate_bias] + ([self.gate_weight] if self.config.gate == "input" else [])
        return gate + ([self.weight, self.bias] if train_scorers else [])


@dataclass(frozen=True)
class TrainingCurve:
    loss: list[float]  # margin-BT loss before each step, then after the last
    accuracy: list[float]  # share of pairs with R_h(h_c) > R_h(h_r), same points


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    return float((chosen_rewards > rejected_rewards).float().mean())


def train_gate(
    reward: HybridReward,
    chosen_scores: torch.Tensor,
    rejected_scores: torch.Tensor,
    *,
    mu: float,
    epochs: int,
    learning_rate: float,
    weight_decay: float = 0.0,
) -> TrainingCurve:
    """Full-batch AdamW on the margin-BT loss (Eq 7) of the gate alone, given the pairs' layer
    scores `[n, L]` (in-sample or out-of-fold), in place."""
    optimiser = torch.optim.AdamW(
        reward.trainable(train_scorers=False), lr=learning_rate, weight_decay=weight_decay
    )
    return _descend(
        optimiser, epochs, mu, lambda: (reward.mix(chosen_scores), reward.mix(rejected_scores))
    )


def train_hybrid_reward(
    reward: HybridReward,
    chosen_states: torch.Tensor,
    rejected_states: torch.Tensor,
    *,
    mu: float,
    epochs: int,
    learning_rate: float,
    weight_decay: float = 0.0,
    train_scorers: bool = False,
) -> TrainingCurve:
    """Full-batch AdamW on the margin-BT loss (Eq 7) over pairs of states `(h_c, h_r)`, in place.

    With the scorers fixed, the layer scores are computed once and only the gate trains on them.
    """
    if not train_scorers:
        with torch.no_grad():
            chosen_scores = reward.layer_scores(chosen_states)
            rejected_scores = reward.layer_scores(rejected_states)
        return train_gate(
            reward,
            chosen_scores,
            rejected_scores,
            mu=mu,
            epochs=epochs,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
        )
    optimiser = torch.optim.AdamW(
        reward.trainable(train_scorers=True), lr=learning_rate, weight_decay=weight_decay
    )
    return _descend(optimiser, epochs, mu, lambda: (reward(chosen_states), reward(rejected_states)))


def _descend(optimiser, epochs: int, mu: float, rewards) -> TrainingCurve:
    """`epochs` optimiser steps on the margin-BT loss of `rewards() -> (chosen, rejected)`."""
    losses, accuracies = [], []
    for step in range(epochs + 1):
        chosen, rejected = rewards()
        loss = margin_bt_loss(chosen, rejected, mu)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"hybrid reward loss is {loss.item()} at step {step}")
        losses.append(loss.item())
        accuracies.append(pairwise_accuracy(chosen, rejected))
        if step == epochs:
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return TrainingCurve(losses, accuracies)


def layer_strategy_accuracies(
    chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, active: torch.Tensor
) -> dict[str, float]:
    """Pairwise accuracy of single-layer reward strategies (Fig 6) from layer scores `[n, L]`.

    best: an oracle that picks, per pair, a layer that ranks it right (right if any layer is);
    worst: the adversarial pick (right only if every layer is); last: the deepest layer;
    random: a layer drawn uniformly per pair, as its exact expectation (the mean over layers), so
    it carries no sampling noise. Inactive (degenerate) layers are left out of all four.
    """
    right = (chosen_scores > rejected_scores)[:, active]
    return {
        "best_layer": float(right.any(dim=1).float().mean()),
        "worst_layer": float(right.all(dim=1).float().mean()),
        "last_layer": float(right[:, -1].float().mean()),
        "random_layer": float(right.float().mean()),
    }


def save_hybrid_reward(reward: HybridReward, path_stem: str | Path) -> tuple[Path, Path]:
    """`<stem>.safetensors` (tensors) and `<stem>.json` (config), each written atomically."""
    stem = Path(path_stem)
    tensors = {name: getattr(reward, name).detach().contiguous() for name in TENSOR_NAMES}
    weights = stem.with_suffix(".safetensors")
    with atomic_path(weights) as tmp:
        save_file(tensors, tmp, metadata={"format": FORMAT})
    config = write_json(stem.with_suffix(".json"), asdict(reward.config))
    return weights, config


def load_hybrid_reward(path_stem: str | Path) -> HybridReward:
    """Load what `save_hybrid_reward` wrote. Any other file (a pickle, a `.pt`, a file cut off, a
    tensor file with missing or misshapen tensors) is refused with a `CorruptArtifactError` naming
    it and the notebook whose outputs directory holds it (the one to rerun)."""
    stem = Path(path_stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    weights, config_file = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for path in (weights, config_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: hybrid reward file missing")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        config = HybridRewardConfig(
            layers=tuple(int(x) for x in raw["layers"]),
            hidden_size=int(raw["hidden_size"]),
            gate=raw["gate"],
            format=raw["format"],
        )
    except (ValueError, KeyError, TypeError) as error:
        raise corrupt_artifact(config_file, f"not a hybrid reward config ({error})") from None
    if config.format != FORMAT:
        raise corrupt_artifact(config_file, f"format {config.format!r}, expected {FORMAT!r}")
    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError) as error:
        raise corrupt_artifact(weights, f"not a safetensors file ({error})") from None
    reward = HybridReward(config)
    expected = {name: getattr(reward, name) for name in TENSOR_NAMES}
    if set(tensors) != set(expected):
        problem = f"tensors {sorted(tensors)}, expected {sorted(expected)}"
        raise corrupt_artifact(weights, problem)
    for name, target in expected.items():
        if tensors[name].shape != target.shape or tensors[name].dtype != target.dtype:
            raise corrupt_artifact(
                weights,
                f"tensor '{name}' is {tensors[name].dtype} {list(tensors[name].shape)},"
                f" expected {target.dtype} {list(target.shape)}",
            )
        with torch.no_grad():
            target.copy_(tensors[name])
    return reward


GATES: tuple[GateKind, ...] = ("input", "static")
STRATEGY_NAMES = {
    "best_layer": "best layer (oracle)",
    "worst_layer": "worst layer",
    "last_layer": "last layer",
    "random_layer": "random layer",
    "uniform": "uniform mix",
    "input_in_sample": "input gate, fit in-sample",
    "static": "static gate",
    "input": "ours (input gate)",
}


@dataclass(frozen=True)
class SplitRewards:
    """One split's hybrid rewards, fit on its training pairs.

    `rewards`: "input" and "static" gates trained on the probes' out-of-fold scores (or in-sample
    scores when `reward.gate_fit` says so), plus "input_in_sample", the input gate trained on the
    in-sample scores, as an ablation. `untrained`: the uniform gate, the mean of the layer margins.
    """

    split_index: int
    rewards: dict[str, HybridReward]
    curves: dict[str, TrainingCurve]
    untrained: HybridReward


def train_pair_scores(probe_set, examples: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Out-of-fold layer scores `[pairs, L]` of the chosen and rejected side of every training
    pair of the split."""
    position = {row: i for i, row in enumerate(probe_set.split.train_rows.tolist())}
    chosen, rejected = pair_rows(examples, probe_set.split.train_rows)
    scores = torch.tensor(probe_set.train_scores, dtype=torch.float32)
    return (
        scores[[position[r] for r in chosen.tolist()]],
        scores[[position[r] for r in rejected.tolist()]],
    )


def fit_split_rewards(
    states: torch.Tensor, examples: Sequence, probe_set, layers: Sequence[int], reward_params
) -> SplitRewards:
    """Every gate variant of one split, initialised from its probes (a `probes.ProbeSet`)."""
    chosen, rejected = pair_rows(examples, probe_set.split.train_rows)
    in_sample = HybridReward.from_probes(probe_set.probes, layers).eval()
    with torch.no_grad():
        in_sample_scores = (
            in_sample.layer_scores(states, chosen),
            in_sample.layer_scores(states, rejected),
        )
    out_of_fold_scores = train_pair_scores(probe_set, examples)
    default_scores = (
        out_of_fold_scores if reward_params.gate_fit == "out_of_fold" else in_sample_scores
    )
    variants = {
        "input": ("input", default_scores),
        "static": ("static", default_scores),
        "input_in_sample": ("input", in_sample_scores),
    }
    rewards, curves = {}, {}
    for name, (gate, scores) in variants.items():
        reward = HybridReward.from_probes(probe_set.probes, layers, gate=gate)
        curves[name] = train_gate(
            reward,
            *scores,
            mu=reward_params.mu,
            epochs=reward_params.epochs,
            learning_rate=reward_params.learning_rate,
            weight_decay=reward_params.weight_decay,
        )
        rewards[name] = reward.eval()
    return SplitRewards(probe_set.split.index, rewards, curves, in_sample)


@torch.no_grad()
def strategy_accuracies(
    states: torch.Tensor, examples: Sequence, split, fitted: SplitRewards
) -> dict[str, float]:
    """Held-out pairwise accuracy of every strategy of Fig 6, keyed as `STRATEGY_NAMES`."""
    chosen, rejected = pair_rows(examples, split.test_rows)
    uniform = fitted.untrained
    chosen_scores = uniform.layer_scores(states, chosen)
    rejected_scores = uniform.layer_scores(states, rejected)
    accuracies = layer_strategy_accuracies(chosen_scores, rejected_scores, uniform.active)
    accuracies["uniform"] = pairwise_accuracy(
        uniform.mix(chosen_scores), uniform.mix(rejected_scores)
    )
    for name, reward in fitted.rewards.items():
        accuracies[name] = pairwise_accuracy(reward(states, chosen), reward(states, rejected))
    return {key: accuracies[key] for key in STRATEGY_NAMES}


@torch.no_grad()
def mean_gate_weights(reward: HybridReward, states: torch.Tensor, rows=None) -> np.ndarray:
    """Average gate weight of each layer over `states [n, L, d]` (or its `rows`)."""
    return reward.gate_weights(reward.layer_scores(states, rows)).mean(dim=0).numpy()


@dataclass(frozen=True)
class FoldReward:
    """R_h fit on every training fold but one, and its accuracy on the fold it never saw."""

    fold: int
    reward: HybridReward
    held_out_pairwise_accuracy: float
    num_fit_pairs: int
    num_held_out_pairs: int


def fit_fold_rewards(
    states: torch.Tensor,
    examples: Sequence,
    row_folds: np.ndarray,
    layers: Sequence[int],
    probe_params,
    reward_params,
    *,
    seed: int,
) -> list[FoldReward]:
    """Cross-fitted hybrid rewards: for each fold f, probes and gate (as notebooks 02-03 fit
    them) on the rows of the other folds. `row_folds [n]` gives each row's fold, -1 for rows that
    take no part (held-out pairs)."""
    splits = [
        ProbeSplit(
            fold,
            None,
            np.flatnonzero((row_folds >= 0) & (row_folds != fold)),
            np.flatnonzero(row_folds == fold),
        )
        for fold in range(int(row_folds.max()) + 1)
    ]
    results = evaluate_splits(
        states.numpy(),
        examples,
        splits,
        c_grid=probe_params.c_grid,
        folds=probe_params.inner_folds,
        max_iter=probe_params.max_iter,
        seed=seed,
        solver=probe_params.solver,
        device=probe_params.device,
    )
    fitted = []
    for fold, (split, result) in enumerate(zip(splits, results, strict=True)):
        probe_set = ProbeSet(split, result.probes, result.train_scores)
        reward = fit_split_rewards(states, examples, probe_set, layers, reward_params)
        reward = reward.rewards[reward_params.gate]
        chosen, rejected = pair_rows(examples, split.test_rows)
        with torch.no_grad():
            accuracy = pairwise_accuracy(reward(states, chosen), reward(states, rejected))
        fit_pairs = len(pair_rows(examples, split.train_rows)[0])
        fitted.append(FoldReward(fold, reward, accuracy, fit_pairs, len(chosen)))
    return fitted
