"""The suite's losses and the preference confidence, as small pure functions (paper Eq 2-9).

Every function takes float tensors and computes in float32 or wider, so fp16/bf16 inputs and
margins of any size give finite results (`logsigmoid` never forms `log(0)`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _wide(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def margin_bt_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, mu: float
) -> torch.Tensor:
    """Margin Bradley-Terry loss (Eq 7): `-mean log sigmoid(R(h_c) - R(h_r) - mu)`."""
    gap = _wide(chosen_rewards) - _wide(rejected_rewards)
    return -F.logsigmoid(gap - mu).mean()


def preference_confidence(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, alpha: float
) -> torch.Tensor:
    """gamma = sigmoid(alpha * (R(h_c) - R(h_r))) (Eq 8): how sure the reward is that the chosen
    response is the safer one. 0.5 for equal rewards; detached, since gamma is a target."""
    gap = _wide(chosen_rewards).detach() - _wide(rejected_rewards).detach()
    return torch.sigmoid(alpha * gap)


def sequence_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """`log pi(y | x)` per row `[B]`: the sum of log-probabilities of the response tokens.

    `logits [B, T, V]` are the model's outputs on `input_ids [B, T]`; position t predicts token
    t + 1. `response_mask [B, T]` is 1 on response tokens and 0 on prompt and padding, so only
    the response is scored. This is the plain reference formula (it holds `[B, T, V]`
    log-probabilities); training takes the cheaper `training.ResponseScorer`.
    """
    log_probs = torch.log_softmax(_wide(logits[:, :-1]), dim=-1)
    targets = input_ids[:, 1:].unsqueeze(-1)
    token_logprobs = log_probs.gather(-1, targets).squeeze(-1)
    return (token_logprobs * response_mask[:, 1:]).sum(dim=-1)


def dpo_margin(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """`z = r(x, y_c) - r(x, y_r)` with the implicit reward `r = beta * (log pi - log pi_ref)`."""
    chosen = _wide(policy_chosen) - _wide(reference_chosen)
    rejected = _wide(policy_rejected) - _wide(reference_rejected)
    return beta * (chosen - rejected)


def confidence_dpo_loss(margin: torch.Tensor, gamma: torch.Tensor | float) -> torch.Tensor:
    """cDPO (Eq 5 with Sec 4.7): `mean[-gamma log sigmoid(z) - (1 - gamma) log sigmoid(-z)]`.

    `gamma` (per pair, or one number) is the target probability that the chosen response is
    preferred; it is detached. Its gradient is `dL/dz = sigmoid(z) - gamma` per pair (Eq 9).
    """
    z = _wide(margin)
    gamma = torch.as_tensor(gamma, dtype=z.dtype, device=z.device).detach()
    return -(gamma * F.logsigmoid(z) + (1 - gamma) * F.logsigmoid(-z)).mean()


def dpo_loss(margin: torch.Tensor) -> torch.Tensor:
    """Vanilla DPO (Eq 3): `-mean log sigmoid(z)`, cDPO with gamma = 1."""
    return -F.logsigmoid(_wide(margin)).mean()
