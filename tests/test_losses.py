"""The margin Bradley-Terry loss (Eq 7) and the preference confidence gamma (Eq 8), by value."""

from __future__ import annotations

import math

import pytest
import torch

from repsafe_lib.losses import margin_bt_loss, preference_confidence


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
