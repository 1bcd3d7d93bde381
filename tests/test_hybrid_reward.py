"""The hybrid reward R_h: gate algebra, degenerate layers, training, strategies, safe storage."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.svm import LinearSVC
from synthetic_states import FIT, separable_states, synthetic_examples

from repsafe_lib import hybrid_reward, probes
from repsafe_lib.params import RewardParams

LAYERS = [1, 2, 3]


@pytest.fixture(scope="module")
def probe_result():
    """Probes on 3 layers where layer 2 (index 1) is constant."""
    examples = synthetic_examples(60)
    is_safe = np.array([e.is_safe for e in examples])
    states = separable_states(is_safe, d=12)
    states[:, 1] = -0.7
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    result = probes.evaluate_split(states, examples, split, **FIT)
    return examples, torch.tensor(states, dtype=torch.float32), result


@pytest.fixture(scope="module")
def fitted_probes(probe_result):
    examples, states, result = probe_result
    return examples, states, result.split, result.probes


def test_one_hot_gate_reduces_to_that_layers_svm_margin():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(50, 3, 6)) * 2 + 0.5
    is_safe = states[:, 2, 0] > 0.5
    fitted = [
        probes.fit_layer_probe(
            states[:, i], is_safe, np.arange(50), c_grid=(0.3,), folds=3, max_iter=10000, seed=0
        )
        for i in range(3)
    ]
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="static")
    with torch.no_grad():
        r_h.gate_bias.copy_(torch.tensor([-1e9, -1e9, 0.0]))  # all weight on layer 3
    values = r_h(torch.tensor(states, dtype=torch.float32)).detach().numpy()
    z = (states[:, 2] - states[:, 2].mean(0)) / states[:, 2].std(0)
    svm = LinearSVC(C=0.3, max_iter=10000, random_state=0).fit(z, np.where(is_safe, 1, -1))
    np.testing.assert_allclose(values, svm.decision_function(z), atol=1e-5)


def test_uniform_gate_is_the_mean_of_the_layer_scores(fitted_probes):
    _, states, _, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="input")
    with torch.no_grad():
        scores = r_h.layer_scores(states)
        expected = scores[:, [0, 2]].mean(dim=1)  # layer 2 is inactive
        torch.testing.assert_close(r_h(states), expected)


def test_input_gate_depends_on_the_input_and_static_gate_does_not(fitted_probes):
    _, states, _, fitted = fitted_probes
    for gate, varies in (("input", True), ("static", False)):
        r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate=gate)
        with torch.no_grad():
            r_h.gate_weight.copy_(torch.eye(3))
            r_h.gate_bias.copy_(torch.tensor([0.3, 0.0, -0.2]))
            weights = r_h.gate_weights(r_h.layer_scores(states[:10]))
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(10))
        assert bool((weights.std(dim=0) > 1e-4).any()) == varies


def test_constant_layer_neither_crashes_nor_wins_the_gate(fitted_probes):
    examples, states, split, fitted = fitted_probes
    for gate in hybrid_reward.GATES:
        r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate=gate)
        assert r_h.active.tolist() == [True, False, True]
        chosen, rejected = probes.pair_rows(examples, split.train_rows)
        curve = hybrid_reward.train_hybrid_reward(
            r_h, states[chosen], states[rejected], mu=1.0, epochs=50, learning_rate=0.1
        )
        assert np.isfinite(curve.loss).all()
        weights = hybrid_reward.mean_gate_weights(r_h, states)
        assert weights[1] == 0.0 and weights.sum() == pytest.approx(1.0, abs=1e-6)
        assert torch.isfinite(r_h(states)).all()


def test_every_layer_degenerate_is_an_error():
    constant = probes.LayerProbe(np.zeros(4), np.ones(4), np.zeros(4), 0.2, 1.0)
    with pytest.raises(ValueError, match="every layer is degenerate"):
        hybrid_reward.HybridReward.from_probes([constant, constant], [1, 2])


def test_training_lowers_the_loss_and_touches_only_what_it_should(fitted_probes):
    examples, states, split, fitted = fitted_probes
    chosen, rejected = probes.pair_rows(examples, split.train_rows)
    for train_scorers in (False, True):
        r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="input")
        before = {k: v.clone() for k, v in r_h.state_dict().items()}
        curve = hybrid_reward.train_hybrid_reward(
            r_h,
            states[chosen],
            states[rejected],
            mu=1.0,
            epochs=30,
            learning_rate=0.05,
            train_scorers=train_scorers,
        )
        assert curve.loss[-1] < curve.loss[0] and len(curve.loss) == 31
        after = r_h.state_dict()
        assert not torch.equal(after["gate_weight"], before["gate_weight"])
        assert torch.equal(after["weight"], before["weight"]) != train_scorers
        for buffer in ("mean", "scale", "active"):
            assert torch.equal(after[buffer], before[buffer])


def test_training_stops_on_a_non_finite_loss(fitted_probes):
    examples, states, split, fitted = fitted_probes
    chosen, rejected = probes.pair_rows(examples, split.train_rows)
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS)
    bad = states[chosen].clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="step 0"):
        hybrid_reward.train_hybrid_reward(
            r_h, bad, states[rejected], mu=1, epochs=5, learning_rate=0.1
        )


def test_forward_rejects_misshapen_states(fitted_probes):
    _, states, _, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS)
    with pytest.raises(ValueError, match=r"states must be \[n, 3, 12\]"):
        r_h(states[:, :2])


def test_half_precision_states_give_float32_rewards(fitted_probes):
    _, states, _, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS)
    with torch.no_grad():
        for dtype in (torch.float16, torch.bfloat16):
            values = r_h(states.to(dtype))
            assert values.dtype == torch.float32 and torch.isfinite(values).all()


def test_layer_strategies_by_hand():
    # 4 pairs x 3 layers: is the chosen score above the rejected one?
    right = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 1, 1]], dtype=torch.bool)
    chosen = right.float()
    rejected = torch.full_like(chosen, 0.5)
    accuracies = hybrid_reward.layer_strategy_accuracies(
        chosen, rejected, torch.ones(3, dtype=torch.bool)
    )
    assert accuracies == {
        "best_layer": 0.75,
        "worst_layer": 0.25,
        "last_layer": 0.5,
        "random_layer": pytest.approx(6 / 12),
    }
    only_first = hybrid_reward.layer_strategy_accuracies(
        chosen, rejected, torch.tensor([1, 0, 0]).bool()
    )
    assert only_first["last_layer"] == 0.5 and only_first["worst_layer"] == 0.5


def test_split_rewards_and_every_strategy(probe_result):
    examples, states, result = probe_result
    probe_set = probes.ProbeSet(result.split, result.probes, result.train_scores)
    params = RewardParams(epochs=20, learning_rate=0.05)
    fit = hybrid_reward.fit_split_rewards(states, examples, probe_set, LAYERS, params)
    assert set(fit.rewards) == {"input", "static", "input_in_sample"}
    assert all(c.loss[-1] < c.loss[0] for c in fit.curves.values())
    accuracies = hybrid_reward.strategy_accuracies(states, examples, result.split, fit)
    assert list(accuracies) == list(hybrid_reward.STRATEGY_NAMES)
    assert accuracies["best_layer"] >= accuracies["random_layer"] >= accuracies["worst_layer"]
    assert all(0.0 <= v <= 1.0 for v in accuracies.values())


def test_save_load_round_trip_gives_identical_outputs(tmp_path, fitted_probes):
    examples, states, split, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="input")
    chosen, rejected = probes.pair_rows(examples, split.train_rows)
    hybrid_reward.train_hybrid_reward(
        r_h, states[chosen], states[rejected], mu=1, epochs=10, learning_rate=0.1
    )
    weights, config = hybrid_reward.save_hybrid_reward(r_h, tmp_path / "r_h")
    assert (weights.name, config.name) == ("r_h.safetensors", "r_h.json")
    for path in (tmp_path / "r_h", weights, config):
        loaded = hybrid_reward.load_hybrid_reward(path)
        with torch.no_grad():
            assert torch.equal(loaded(states), r_h(states))
        assert loaded.config == r_h.config


def test_loading_refuses_anything_but_our_safetensors(tmp_path, fitted_probes):
    _, _, _, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS)
    hybrid_reward.save_hybrid_reward(r_h, tmp_path / "r_h")
    weights = tmp_path / "r_h.safetensors"

    weights.write_bytes(b"\x80\x04\x95 a pickle stream, not a tensor file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        hybrid_reward.load_hybrid_reward(tmp_path / "r_h")

    save_file({"weight": torch.zeros(3, 12)}, weights)
    with pytest.raises(ValueError, match="tensors"):
        hybrid_reward.load_hybrid_reward(tmp_path / "r_h")

    tensors = {
        name: getattr(r_h, name).detach().contiguous() for name in hybrid_reward.TENSOR_NAMES
    }
    tensors["weight"] = torch.zeros(3, 5)
    save_file(tensors, weights)
    with pytest.raises(ValueError, match="tensor 'weight'"):
        hybrid_reward.load_hybrid_reward(tmp_path / "r_h")

    config = json.loads((tmp_path / "r_h.json").read_text())
    (tmp_path / "r_h.json").write_text(json.dumps({**config, "format": "something-else"}))
    with pytest.raises(ValueError, match="format"):
        hybrid_reward.load_hybrid_reward(tmp_path / "r_h")

    with pytest.raises(FileNotFoundError, match="missing"):
        hybrid_reward.load_hybrid_reward(tmp_path / "absent")


def test_gate_trains_on_the_out_of_fold_scores_of_each_pair(probe_result):
    examples, _, result = probe_result
    probe_set = probes.ProbeSet(result.split, result.probes, result.train_scores)
    chosen_scores, rejected_scores = hybrid_reward.train_pair_scores(probe_set, examples)
    chosen, rejected = probes.pair_rows(examples, result.split.train_rows)
    position = {row: i for i, row in enumerate(result.split.train_rows.tolist())}
    for rows, scores in ((chosen, chosen_scores), (rejected, rejected_scores)):
        expected = result.train_scores[[position[r] for r in rows.tolist()]]
        np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6)


def test_rows_of_float16_states_score_as_the_gathered_float32_rows(fitted_probes, monkeypatch):
    """`reward(states, rows)` reads the rows a block at a time from (memory-mapped) float16
    states; it equals scoring the gathered rows upcast, whatever the block size."""
    _, states, split, fitted = fitted_probes
    r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="input")
    with torch.no_grad():
        r_h.gate_weight.copy_(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    half = states.half()
    rows = split.test_rows[::-1].copy()
    with torch.no_grad():
        expected = r_h(half[rows].float())
        assert torch.equal(r_h(half, rows), expected)
        small_blocks = functools.partial(hybrid_reward.row_blocks, max_elements=2 * 3 * 12)
        monkeypatch.setattr(hybrid_reward, "row_blocks", small_blocks)
        torch.testing.assert_close(r_h(half, rows), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(
            r_h.layer_scores(half, rows), r_h.layer_scores(half[rows].float()), rtol=0, atol=1e-6
        )
        gates = hybrid_reward.mean_gate_weights(r_h, half, rows)
        np.testing.assert_allclose(
            gates, hybrid_reward.mean_gate_weights(r_h, half[rows]), atol=1e-6
        )
    assert r_h.layer_scores(half, []).shape == (0, 3)


def test_gradients_flow_through_blocks_as_through_one(fitted_probes, monkeypatch):
    _, states, _, fitted = fitted_probes
    grads = []
    for max_elements in (1 << 24, 36):
        blocks = functools.partial(hybrid_reward.row_blocks, max_elements=max_elements)
        monkeypatch.setattr(hybrid_reward, "row_blocks", blocks)
        r_h = hybrid_reward.HybridReward.from_probes(fitted, LAYERS, gate="input")
        r_h(states).sum().backward()
        grads.append(r_h.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
