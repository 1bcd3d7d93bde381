"""Fig 7's cost model by hand, and its timers on the tiny model."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from repsafe_lib import compute_cost, plots
from repsafe_lib.compute_cost import ModelShape

SMALL = ModelShape(parameters=10, layers=1, hidden=1)


def test_forward_flops_count_weights_and_attention():
    # 2 per weight + 2 * layers * context * hidden
    assert compute_cost.forward_flops_per_token(SMALL, context=3) == 20 + 6
    llama = compute_cost.LLAMA2_7B
    assert compute_cost.forward_flops_per_token(llama, 0) == 2 * 6.74e9


def test_hybrid_reward_flops_by_hand():
    # L = 2, d = 3: standardise + dot 4*2*3 = 24, gate 2*2^2 = 8, mixing 4*2 = 8; x4 with refresh
    assert compute_cost.hybrid_reward_flops(ModelShape(1e9, 2, 3)) == (24 + 8 + 8) * 4


def test_online_flops_by_hand():
    # prompt 2, T = 2: prefill 2 * (20 + 2*1) = 44; decode (20 + 4) + (20 + 6) = 50;
    # reward model over 4 tokens at context 2: 4 * (20 + 4) = 96
    assert compute_cost.online_flops(SMALL, prompt_tokens=2, new_tokens=2) == 44 + 50 + 96


def test_analytic_ratio_grows_with_length_and_ours_stays_flat():
    table = compute_cost.analytic_costs(compute_cost.LLAMA2_7B, 48, [64, 256, 2048])
    assert table["ours_flops"].nunique() == 1
    assert table["ratio"].is_monotonic_increasing
    assert table["orders_of_magnitude"].tolist() == pytest.approx(
        [math.log10(r) for r in table["ratio"]]
    )
    # 7B: online sampling dwarfs R_h by more than 5 orders of magnitude at every length
    assert (table["orders_of_magnitude"] > 5).all()


def test_measured_costs_are_per_sample():
    hybrid = {"score_s": 0.001, "refresh_s": 0.003}
    online = {32: {"generate_s": 4.0, "score_s": 0.4}, 16: {"generate_s": 2.0, "score_s": 0.2}}
    table = compute_cost.measured_costs(hybrid, online, samples=4)
    assert table["new_tokens"].tolist() == [16, 32]
    assert table["ours_s"].tolist() == pytest.approx([0.001, 0.001])
    assert table["online_s"].tolist() == pytest.approx([0.55, 1.1])
    assert table["ratio"].tolist() == pytest.approx([550, 1100])


def training_refresh(params, refresh: str):
    """A random R_h of the tiny model's shape with the refresh training would give it."""
    from repsafe_lib import training

    params = dataclasses.replace(
        params, training=dataclasses.replace(params.training, refresh=refresh)
    )
    hidden = params.model.tiny.hidden_size
    reward = compute_cost.random_hybrid_reward(params.model.tiny.num_layers, hidden, seed=0)
    return training.refreshed_rewards([reward], params)


@pytest.mark.parametrize("refresh", ["full", "gate"])
def test_fig7_times_the_refresh_training_takes(tiny_params, refresh):
    rewards = training_refresh(tiny_params, refresh)
    reward, optimiser = rewards.rewards[0], rewards.optimisers[0]
    before = {name: p.detach().clone() for name, p in reward.named_parameters()}
    compute_cost.time_hybrid_reward(rewards, samples=4, refresh_steps=2, repeats=3, seed=0)
    changed = {name for name, p in reward.named_parameters() if not torch.equal(p, before[name])}
    optimised = [p for group in optimiser.param_groups for p in group["params"]]
    trained = {name for name, p in reward.named_parameters() if any(p is q for q in optimised)}
    assert changed == trained  # exactly what training's refresh updates
    scorers = {"weight", "bias"}
    assert scorers <= changed if refresh == "full" else not scorers & changed
    steps = {float(state["step"]) for state in optimiser.state.values()}
    assert steps == {(3 + 1) * 2}  # warm-up + 3 timed calls, 2 refresh steps each


def test_timers_run_on_the_tiny_model(tiny_params, tiny_model):
    hybrid = compute_cost.time_hybrid_reward(
        training_refresh(tiny_params, "full"), samples=4, refresh_steps=1, repeats=2, seed=0
    )
    assert hybrid["score_s"] > 0 and hybrid["refresh_s"] > 0
    online = compute_cost.time_online_sampling(
        tiny_model.model,
        tiny_model.tokenizer,
        "How do I pick a lock?",
        samples=2,
        new_tokens=3,
        repeats=1,
        seed=0,
    )
    assert online["generate_s"] > 0 and online["score_s"] > 0
    measured = compute_cost.measured_costs(hybrid, {3: online}, samples=2)
    analytic = compute_cost.analytic_costs(compute_cost.LLAMA2_7B, 20, [64, 128])
    fig = plots.plot_fig7(measured, analytic, "tiny")
    assert len(fig.axes) == 2 and all(len(ax.lines) == 2 for ax in fig.axes)
