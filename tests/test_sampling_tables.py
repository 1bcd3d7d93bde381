"""Notebook 05's tables by value: samples, re-ranked pairs and runs, the reward model's fit."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from repsafe_lib import tables
from repsafe_lib.sampling import ResponseRecord


def record(prompt_id: str, index: int, text: str, num_tokens: int, finished: bool):
    return ResponseRecord(prompt_id, index, text, num_tokens, finished, not text, 0, "sha")


def test_sample_summary_by_value():
    samples = {
        "train": [record("a", 0, "x", 4, True), record("a", 1, "", 0, True)],
        "red_team": [record("b", k, "y", 10, k == 0) for k in range(4)],
    }
    scores = {"train": torch.tensor([1.0, 3.0]), "red_team": torch.tensor([0.0, 0.0, 2.0, 2.0])}
    table = tables.sample_summary(samples, scores).set_index("prompts")
    assert table.loc["train"].to_dict() == {
        "samples": 2,
        "mean tokens": 2.0,
        "stopped at EOS": 1.0,
        "empty": 1,
        "R_h mean": 2.0,
        "R_h std": pytest.approx(2**0.5),  # the sample standard deviation
    }
    assert table.loc["red_team", "stopped at EOS"] == 0.25
    assert table.loc["red_team", "R_h std"] == pytest.approx((4 / 3) ** 0.5)


def test_picked_sample_indices_count_each_index():
    picked = [record(p, k, "x", 1, True) for p, k in (("a", 1), ("b", 0), ("c", 1))]
    counts = tables.picked_sample_indices(picked)
    assert counts.name == "picked sample index"
    assert counts.to_dict() == {0: 1, 1: 2}


def test_pair_confidence_by_value():
    gaps = torch.tensor([0.1, 2.0, 3.0, 9.0])
    gammas = torch.tensor([0.6, 0.995, 0.999, 1.0])
    row = tables.pair_confidence(gaps, gammas).iloc[0].to_dict()
    assert row == {
        "pairs": 4,
        "R_h gap, median": pytest.approx(2.0),  # torch's median: the lower of the middle two
        "gamma, mean": pytest.approx(0.8985),
        "share gamma > 0.99": 0.75,
    }


def test_reranked_runs_average_the_last_steps():
    history = [
        {"loss": float(s), "reward_accuracy": 1.0, "reward_margin": 0.0, "hybrid_accuracy": 0.5}
        | {"gamma_mean": 0.9}
        for s in range(12)
    ]
    table = tables.reranked_runs({"DPO* (re-ranked samples)": history}, pairs=7)
    assert list(table.columns) == [
        "run",
        "pairs",
        "steps",
        "loss (last 10 steps)",
        "reward_accuracy (last 10 steps)",
        "reward_margin (last 10 steps)",
        "hybrid_accuracy (last 10 steps)",
        "gamma_mean (last 10 steps)",
    ]
    row = table.iloc[0]
    assert (row["run"], row["pairs"], row["steps"]) == ("DPO* (re-ranked samples)", 7, 12)
    assert row["loss (last 10 steps)"] == 6.5  # mean of steps 2..11


def test_reward_model_fit_by_value():
    row = tables.reward_model_fit([0.7, 0.5, 0.2], 0.75, 8).iloc[0].to_dict()
    assert row == {
        "steps": 3,
        "first loss": 0.7,
        "last loss": 0.2,
        "held-out pairwise accuracy": 0.75,
        "test pairs": 8,
    }


def test_online_rounds_take_each_rounds_pairs_and_mean_metrics():
    metrics = [
        {
            "round": r,
            "step": s,
            "pairs": 4 - r,
            "loss": loss,
            "reward_accuracy": a,
            "reward_margin": 0.1,
        }
        for r, s, loss, a in (
            (0, 0, 0.7, 0.0),
            (0, 1, 0.5, 1.0),
            (1, 2, 0.4, 1.0),
            (1, 3, 0.2, 1.0),
        )
    ]
    table = tables.online_rounds(metrics)
    expected = pd.DataFrame(
        {
            "round": [0, 1],
            "pairs": [4, 3],
            "loss": [0.6, 0.3],
            "reward_accuracy": [0.5, 1.0],
            "reward_margin": [0.1, 0.1],
        }
    )
    pd.testing.assert_frame_equal(table, expected)
