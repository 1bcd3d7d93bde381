"""The suite's losses and the preference confidence, as small pure functions (SPEC §1).

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
