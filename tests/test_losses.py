"""The suite's losses by value: margin Bradley-Terry (Eq 7), gamma (Eq 8), sequence log-probs,
DPO (Eq 3) and confidence DPO (Eq 5, 9)."""

from __future__ import annotations

import math

import pytest
import torch

from repsafe_lib.losses import (
    confidence_dpo_loss,
    dpo_loss,
    dpo_margin,
    margin_bt_loss,
    preference_confidence,
    sequence_logprobs,
)


def test_bt_loss_equals_hand_computed_values():
    chosen = torch.tensor([2.0, 0.5, -1.0])
    rejected = torch.tensor([0.0, 0.5, 1.0])
    # gaps - mu with mu = 1: 1, -1, -3;  -log sigmoid(x) = log(1 + exp(-x))
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.e) + math.log(1 + math.exp(3))) / 3
    assert margin_bt_loss(chosen, rejected, mu=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_bt_loss_without_margin_is_log2_at_equal_rewards():
    r = torch.tensor([0.3, -2.0])
    assert margin_bt_loss(r, r, mu=0.0).item() == pytest.approx(math.log(2), abs=1e-7)


def test_bt_margin_shifts_the_gap():
    chosen, rejected = torch.tensor([3.0]), torch.tensor([1.0])
    with_margin = margin_bt_loss(chosen, rejected, mu=1.5)
    without = margin_bt_loss(chosen - 1.5, rejected, mu=0.0)
    assert with_margin.item() == pytest.approx(without.item(), abs=1e-7)


def test_gamma_is_one_half_for_equal_rewards():
    r = torch.tensor([-3.0, 0.0, 12.5])
    assert torch.equal(preference_confidence(r, r, alpha=7.5), torch.full((3,), 0.5))


def test_gamma_matches_sigmoid_of_scaled_gap_and_is_monotone():
    gap = torch.linspace(-2, 2, 401, dtype=torch.float64)
    gamma = preference_confidence(gap, torch.zeros_like(gap), alpha=7.5)
    reference = 1 / (1 + torch.exp(-7.5 * gap))
    assert torch.max(torch.abs(gamma - reference)).item() < 1e-7
    assert torch.all(gamma[1:] >= gamma[:-1])
    assert torch.all(gamma[1:][gap[1:].abs() < 2] > gamma[:-1][gap[1:].abs() < 2])


def test_gamma_carries_no_gradient():
    chosen = torch.tensor([1.0], requires_grad=True)
    assert not preference_confidence(chosen, torch.zeros(1), alpha=1.0).requires_grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("gap", [1e4, -1e4, 6e4, -6e4])
def test_extreme_margins_stay_finite(dtype, gap):
    chosen, rejected = torch.tensor([gap], dtype=dtype), torch.tensor([0.0], dtype=dtype)
    loss = margin_bt_loss(chosen, rejected, mu=1.0)
    gamma = preference_confidence(chosen, rejected, alpha=7.5)
    assert torch.isfinite(loss) and torch.isfinite(gamma)
    assert 0.0 <= gamma.item() <= 1.0
    if gap > 0:
        assert loss.item() == pytest.approx(0.0, abs=1e-6) and gamma.item() == 1.0
    else:
        assert loss.item() == pytest.approx(1.0 - float(chosen.float()), rel=1e-3)
        assert gamma.item() == 0.0


# DPO and confidence DPO.


def conservative_dpo_reference(z: float, epsilon: float) -> float:
    """Mitchell's conservative DPO, written out: the chosen label is flipped with probability
    epsilon, so the loss is the expected logistic loss under label noise."""
    log_sigmoid = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
    return -(1 - epsilon) * log_sigmoid(z) - epsilon * log_sigmoid(-z)


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 0.93, 1.0])
def test_cdpo_at_zero_margin_is_log2_for_any_gamma(gamma):
    z = torch.zeros(3)
    assert confidence_dpo_loss(z, torch.full((3,), gamma)).item() == pytest.approx(math.log(2))


def test_cdpo_with_gamma_one_is_dpo():
    z = torch.tensor([-3.0, -0.2, 0.0, 0.7, 5.0])
    assert confidence_dpo_loss(z, torch.ones(5)).item() == pytest.approx(dpo_loss(z).item())
    expected = sum(math.log1p(math.exp(-v)) for v in z.tolist()) / 5
    assert dpo_loss(z).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("gamma", [0.6, 0.75, 0.9, 0.99])
def test_constant_gamma_is_conservative_dpo_with_epsilon_one_minus_gamma(gamma):
    z = torch.tensor([-2.5, -0.4, 0.3, 1.7, 6.0])
    expected = sum(conservative_dpo_reference(v, 1 - gamma) for v in z.tolist()) / len(z)
    assert confidence_dpo_loss(z, gamma).item() == pytest.approx(expected, abs=1e-6)


def test_per_pair_gamma_is_the_mean_of_per_pair_losses():
    z, gamma = torch.tensor([1.0, -1.0, 0.5]), torch.tensor([0.9, 0.2, 0.5])
    each = [
        conservative_dpo_reference(v, 1 - g)
        for v, g in zip(z.tolist(), gamma.tolist(), strict=True)
    ]
    assert confidence_dpo_loss(z, gamma).item() == pytest.approx(sum(each) / 3, abs=1e-6)


def test_cdpo_gradient_is_sigmoid_z_minus_gamma():
    z = torch.tensor([-3.0, -0.5, 0.0, 0.8, 4.0], requires_grad=True)
    gamma = torch.tensor([0.9, 0.3, 0.5, 0.99, 0.1])
    confidence_dpo_loss(z, gamma).backward()
    expected = (torch.sigmoid(z.detach()) - gamma) / len(z)  # the loss is a mean over pairs
    torch.testing.assert_close(z.grad, expected, atol=1e-7, rtol=1e-6)
    at_target = torch.logit(gamma).requires_grad_(True)  # sigmoid(z) = gamma: no gradient
    confidence_dpo_loss(at_target, gamma).backward()
    assert at_target.grad.abs().max() < 1e-7


def test_gamma_is_a_detached_target():
    z = torch.tensor([0.4], requires_grad=True)
    gamma = torch.tensor([0.7], requires_grad=True)
    confidence_dpo_loss(z, gamma).backward()
    assert gamma.grad is None and z.grad is not None


def test_dpo_margin_is_beta_times_difference_of_log_ratios():
    z = dpo_margin(
        torch.tensor([-10.0]),
        torch.tensor([-12.0]),
        torch.tensor([-11.0]),
        torch.tensor([-11.5]),
        1.5,
    )
    assert z.item() == pytest.approx(1.5 * ((-10 + 11) - (-12 + 11.5)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("z", [1e4, -1e4, 6e4, -6e4])
def test_dpo_and_cdpo_stay_finite_with_finite_gradients_for_extreme_margins(dtype, z):
    for gamma in (0.0, 0.3, 1.0):
        margin = torch.tensor([z], dtype=dtype, requires_grad=True)
        loss = confidence_dpo_loss(margin, torch.tensor([gamma]))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(margin.grad).all()
        # -gamma log sigmoid(z) - (1 - gamma) log sigmoid(-z) ~ |z| times the wrong-side weight
        wrong_side = (1 - gamma) if z > 0 else gamma
        assert loss.item() == pytest.approx(
            wrong_side * abs(float(margin.float())), rel=1e-3, abs=1e-6
        )
    huge = dpo_margin(*(torch.tensor([v], dtype=dtype) for v in (-3e4, 3e4, 3e4, -3e4)), 1.5)
    assert torch.isfinite(dpo_loss(huge)) and torch.isfinite(huge)


# Sequence log-probs.


def test_sequence_logprobs_on_uniform_logits_is_minus_n_log_vocab():
    vocab, ids = 7, torch.tensor([[1, 2, 3, 4, 5, 6], [3, 3, 3, 0, 0, 0]])
    response = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 0, 0, 0]])  # 4 and 2 response tokens
    logits = torch.zeros(2, 6, vocab)
    expected = torch.tensor([-4 * math.log(vocab), -2 * math.log(vocab)])
    torch.testing.assert_close(sequence_logprobs(logits, ids, response), expected)


def test_sequence_logprobs_ignore_prompt_and_padding():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 6, 5, generator=generator)
    ids = torch.tensor([[0, 1, 2, 3, 4, 0]])
    response = torch.tensor([[0, 0, 1, 1, 0, 0]])  # tokens 2 and 3 only
    log_probs = torch.log_softmax(logits, dim=-1)
    expected = log_probs[0, 1, 2] + log_probs[0, 2, 3]  # position t predicts token t + 1
    assert sequence_logprobs(logits, ids, response).item() == pytest.approx(expected.item())
    changed = logits.clone()
    changed[0, 0] += 5.0  # predicts the prompt token 1: outside the response
    changed[0, 4:] -= 3.0  # predict padding
    assert sequence_logprobs(changed, ids, response).item() == pytest.approx(expected.item())
