"""The hybrid rewards R_h a run scores its states with, and their per-batch refresh (paper Eq 7-8,
Sec 3.4).

A run holds the paper's single R_h (notebook 03's, fit on every training pair), which scores and
is refreshed on every pair; or, for a cross-fitted run, one R_h per fold of the prompts, each fit
without its fold: a pair of fold f is scored by the R_h of fold f and refreshes every other one,
so no reward scores a pair it trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from repsafe_lib.hybrid_reward import HybridReward
from repsafe_lib.losses import margin_bt_loss


@dataclass
class FoldRewards:
    """The R_h's of a run. Cross-fitted (several): a pair of fold f is scored by `rewards[f]` (fit
    without fold f) and refreshes every other fold's reward. Single (one, the paper's): it scores
    and refreshes on every pair, whatever its fold. `train_scorers`: the refresh updates the
    per-layer scorers as well as the gate."""

    rewards: list[HybridReward]
    alpha: float
    mu: float
    train_scorers: bool
    learning_rate: float
    optimisers: list[torch.optim.Optimizer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimisers = [
            torch.optim.AdamW(
                r.trainable(train_scorers=self.train_scorers),
                lr=self.learning_rate,
                weight_decay=0.0,
            )
            for r in self.rewards
        ]

    @property
    def cross_fitted(self) -> bool:
        return len(self.rewards) > 1

    @property
    def layers(self) -> list[int]:
        """The decoder layers whose last-token states the rewards read, in their order."""
        return list(self.rewards[0].config.layers)

    def scored_rows(self, fold: int, folds: torch.Tensor) -> torch.Tensor:
        """Rows `[n]` (bool) that reward `fold` scores."""
        return folds == fold if self.cross_fitted else torch.ones_like(folds, dtype=torch.bool)

    def refreshed_rows(self, fold: int, folds: torch.Tensor) -> torch.Tensor:
        """Rows `[n]` (bool) that reward `fold` is refreshed on: never one it scores, when
        cross-fitted."""
        return folds != fold if self.cross_fitted else torch.ones_like(folds, dtype=torch.bool)

    @torch.no_grad()
    def score(self, states: torch.Tensor, folds: torch.Tensor, rows=None) -> torch.Tensor:
        """R_h `[n]` of each row of `states` (or of `states[rows]`, read a block at a time), from
        its fold's reward when cross-fitted; `folds [n]` are the scored rows' folds."""
        index = None if rows is None else torch.as_tensor(rows)
        out = torch.empty(len(folds), device=states.device)
        for f, reward in enumerate(self.rewards):
            scored = self.scored_rows(f, folds)
            if not scored.any():
                continue
            if index is None:
                out[scored] = reward(states[scored])
            else:
                out[scored] = reward(states, index[scored.cpu()])
        return out

    def refresh(
        self, chosen: torch.Tensor, rejected: torch.Tensor, folds: torch.Tensor, steps: int
    ) -> float:
        """`steps` margin-BT AdamW steps of every reward on the pairs it may train on; returns the
        mean loss before the first step (NaN when no reward had pairs)."""
        losses = []
        for f, (reward, optimiser) in enumerate(zip(self.rewards, self.optimisers, strict=True)):
            rows = self.refreshed_rows(f, folds)
            if not rows.any():
                continue
            for step in range(steps):
                loss = margin_bt_loss(reward(chosen[rows]), reward(rejected[rows]), self.mu)
                if step == 0:
                    losses.append(loss.item())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        return float(np.mean(losses)) if losses else float("nan")


def refreshed_rewards(rewards: Sequence[HybridReward], params) -> FoldRewards:
    """`rewards` (used in place) with the refresh training takes: `params.training.refresh`
    ("full": scorers and gate; "gate"), `refresh_learning_rate`, and the reward's alpha and mu.
    Notebook 07 times this same refresh."""
    return FoldRewards(
        list(rewards),
        alpha=params.reward.alpha,
        mu=params.reward.mu,
        train_scorers=params.training.refresh == "full",
        learning_rate=params.training.refresh_learning_rate,
    )
