"""What a run optimises, as small objects in a registry (paper Eq 3, 5, 8-9, Sec 3.3-3.4).

An objective turns a micro-batch of pairs into the terms of its loss (`terms`), the loss itself
(`loss`, the same function on one micro-batch and on a whole step's gathered terms) and the
step's metrics (`metrics`); its flags say what it needs and whether R_h is refreshed after each
step:

- `sft`: the mean token NLL of the chosen responses;
- `dpo`: the DPO loss (Eq 3); given R_h's, they score the policy's states as a monitor only;
- `cdpo`: the cDPO loss (Eq 5) with a per-pair gamma = sigmoid(alpha * (R_h(h_c) - R_h(h_r)))
  (Eq 8) from the policy's own states, computed before R_h's refresh on them.

A run name (`RUNS`) picks an objective, the label tables and figures show, and whether gamma comes
from R_h's cross-fitted on folds of the prompts (`cdpo_crossfit`) rather than the paper's single
R_h fit on every training pair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from repsafe_lib.losses import confidence_dpo_loss, dpo_loss, dpo_margin, preference_confidence
from repsafe_lib.training.batches import EncodedPair, collate_chosen, collate_pairs
from repsafe_lib.training.fold_rewards import FoldRewards

Terms = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StepInputs:
    """What a micro-batch's loss needs besides its pairs: the policy's `ResponseScorer`, the
    reference (`reference(pairs, device) -> [b, 2]`) and the R_h's, for preference objectives."""

    scorer: nn.Module
    pad_id: int
    device: torch.device
    beta: float
    reference: Callable | None = None
    fold_rewards: FoldRewards | None = None


class Objective:
    """Base of the registry's objectives. `needs_reference`: the loss compares the policy with the
    frozen reference. `reads_states`: R_h's, where the run has them, score the policy's last-token
    states. `uses_gamma`: the loss weighs each pair by gamma from R_h, so it needs them.
    `refreshes_reward`: R_h takes its refresh steps on each step's states."""

    name = ""
    title = ""
    needs_reference = False
    reads_states = False
    uses_gamma = False
    refreshes_reward = False

    def terms(self, micro: Sequence[EncodedPair], inputs: StepInputs) -> tuple[Terms, int]:
        """The loss's terms on one micro-batch (the policy's with their graph) and the number of
        tokens the forward read."""
        raise NotImplementedError

    def loss(self, terms: Terms) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, merged: Terms) -> dict[str, float]:
        """The step's metrics row from the terms of all its micro-batches, concatenated."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<objective {self.name}>"


class SupervisedFineTuning(Objective):
    name, title = "sft", "SFT"

    def terms(self, micro, inputs):
        batch = collate_chosen(micro, inputs.pad_id).to(inputs.device)
        logprobs, _ = inputs.scorer(batch)
        tokens = batch.response_mask[:, 1:].sum()
        return {"nll_sum": -logprobs.sum(), "tokens": tokens}, batch.num_tokens

    def loss(self, terms):
        """Mean NLL per response token."""
        return terms["nll_sum"].sum() / terms["tokens"].sum()

    def metrics(self, merged):
        return {"loss": float(self.loss(merged))}


class DirectPreference(Objective):
    name, title = "dpo", "vanilla DPO"
    needs_reference = reads_states = True

    def terms(self, micro, inputs):
        batch = collate_pairs(micro, inputs.pad_id).to(inputs.device)
        logprobs, states = inputs.scorer(batch)
        policy_chosen, policy_rejected = logprobs.chunk(2)
        reference = inputs.reference(micro, inputs.device)
        beta = inputs.beta
        terms = {
            "margin": dpo_margin(
                policy_chosen, policy_rejected, reference[:, 0], reference[:, 1], beta
            ),
            "chosen_reward": beta * (policy_chosen.detach() - reference[:, 0]),
            "rejected_reward": beta * (policy_rejected.detach() - reference[:, 1]),
        }
        if states is not None:
            terms.update(confidence_terms(states, micro, inputs.fold_rewards, inputs.device))
        return terms, batch.num_tokens

    def loss(self, terms):
        return dpo_loss(terms["margin"])

    def metrics(self, merged):
        margin = merged["margin"]
        row = {
            "loss": float(self.loss(merged)),
            "reward_accuracy": float((margin > 0).float().mean()),
            "reward_margin": float(margin.mean()),
            "chosen_reward": float(merged["chosen_reward"].mean()),
            "rejected_reward": float(merged["rejected_reward"].mean()),
        }
        if "gamma" in merged:
            row.update(confidence_metrics(merged))
        return row


class ConfidenceDPO(DirectPreference):
    name, title = "cdpo", "cDPO"
    uses_gamma = refreshes_reward = True

    def loss(self, terms):
        return confidence_dpo_loss(terms["margin"], terms["gamma"])


def confidence_terms(
    states: torch.Tensor, micro: Sequence[EncodedPair], fold_rewards: FoldRewards, device
) -> Terms:
    """R_h of both sides of every pair on the policy's detached states `[2b, L, d]` (chosen rows
    first), gamma (Eq 8), and the states and folds the refresh trains on."""
    folds = torch.tensor([p.fold for p in micro], device=device)
    h_chosen, h_rejected = (s.detach().float() for s in states.chunk(2))
    r_chosen = fold_rewards.score(h_chosen, folds).to(device)
    r_rejected = fold_rewards.score(h_rejected, folds).to(device)
    return {
        "h_chosen": h_chosen,
        "h_rejected": h_rejected,
        "folds": folds,
        "r_chosen": r_chosen,
        "r_rejected": r_rejected,
        "gamma": preference_confidence(r_chosen, r_rejected, fold_rewards.alpha),
    }


def confidence_metrics(merged: Terms) -> dict[str, float]:
    """How R_h ranks the step's pairs, and its gamma."""
    gamma = merged["gamma"]
    return {
        "hybrid_accuracy": float((merged["r_chosen"] > merged["r_rejected"]).float().mean()),
        "hybrid_margin": float((merged["r_chosen"] - merged["r_rejected"]).mean()),
        "gamma_mean": float(gamma.mean()),
        "gamma_below_half": float((gamma < 0.5).float().mean()),
    }


SFT, DPO, CDPO = SupervisedFineTuning(), DirectPreference(), ConfidenceDPO()
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (SFT, DPO, CDPO)}


@dataclass(frozen=True)
class RunKind:
    """A named run: its objective, its label in tables and figures, and whether gamma comes from
    R_h's cross-fitted on folds of the prompts."""

    objective: Objective
    label: str
    cross_fitted: bool = False


# Notebook 04's runs on the dataset pairs, notebook 05's on re-ranked samples and online DPO.
RUNS: dict[str, RunKind] = {
    "sft": RunKind(SFT, "SFT"),
    "dpo": RunKind(DPO, "vanilla DPO"),
    "cdpo": RunKind(CDPO, "cDPO (dataset pairs)"),
    "cdpo_crossfit": RunKind(CDPO, "cDPO (dataset pairs, cross-fitted gamma)", cross_fitted=True),
    "dpo_star": RunKind(DPO, "DPO* (re-ranked samples)"),
    "cdpo_star": RunKind(CDPO, "cDPO* (ours)"),
    "online": RunKind(DPO, "online DPO"),
}
RUN_LABELS = {name: run.label for name, run in RUNS.items()}
CROSS_FITTED_RUNS = frozenset(name for name, run in RUNS.items() if run.cross_fitted)


def objective_of(run: str, objective: str | Objective | None = None) -> Objective:
    """The objective run `run` optimises: `objective` where given (an `Objective` or a name in
    `OBJECTIVES`), else the registry's (`RUNS`)."""
    if isinstance(objective, Objective):
        return objective
    if objective is None:
        if run not in RUNS:
            raise ValueError(
                f"unknown run {run!r}: expected one of {list(RUNS)}, or pass its objective"
            )
        return RUNS[run].objective
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")
    return OBJECTIVES[objective]
