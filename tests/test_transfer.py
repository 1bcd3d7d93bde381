"""Notebook 03's transfer table: the calibrated threshold, the table's metrics against a direct
computation, and the table the tiny profile's run writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from repsafe_lib import transfer
from repsafe_lib.hidden_states import StateExample
from repsafe_lib.hybrid_reward import HybridReward
from repsafe_lib.probes import ProbeSet, ProbeSplit, fit_layer_probes, out_of_fold_margins
from repsafe_lib.records import LabeledResponse


def _accuracy(scores: np.ndarray, is_safe: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores <= threshold) == ~is_safe))


@pytest.mark.parametrize("seed", range(6))
def test_calibrated_threshold_maximises_accuracy_by_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    is_safe = rng.random(40) < 0.5
    scores = np.round(rng.normal(is_safe * 1.0, 1.0), 1)  # rounded: ties between rows
    threshold = transfer.calibrated_threshold(scores, is_safe)
    # Every threshold worth trying: below all scores, and each distinct score (<= t flags it).
    trials = [scores.min() - 1, *np.unique(scores)]
    best = max(_accuracy(scores, is_safe, t) for t in trials)
    assert _accuracy(scores, is_safe, threshold) == pytest.approx(best)


def test_calibrated_threshold_hand_computed() -> None:
    # Scores 1..6, unsafe at 1, 2, 4: flagging <= 2.5 gets 5 of 6 right, as does <= 4.5;
    # the tie goes to the candidate nearest 0.
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    is_safe = np.array([False, False, True, False, True, True])
    assert transfer.calibrated_threshold(scores, is_safe) == 2.5
    # All safe: flag nothing (a threshold below every score).
    assert transfer.calibrated_threshold(scores, np.ones(6, dtype=bool)) < 1.0


def test_calibrated_threshold_separable_scores_get_a_perfect_cut() -> None:
    scores = np.array([-3.0, -2.0, -1.5, 0.7, 1.0, 2.0])
    is_safe = scores > 0
    threshold = transfer.calibrated_threshold(scores, is_safe)
    assert -1.5 < threshold < 0.7
    assert _accuracy(scores, is_safe, threshold) == 1.0


def test_transfer_table_metrics_match_a_direct_computation() -> None:
    rng = np.random.default_rng(0)
    train_safe, held_safe, transfer_safe = (rng.random(n) < 0.5 for n in (30, 20, 25))
    scores = transfer.ScorerScores(
        "layer 3 probe",
        3,
        rng.normal(train_safe * 2.0, 1.0),
        rng.normal(held_safe * 1.0, 1.0),
        rng.normal(transfer_safe * 0.5, 1.0),
    )
    row = transfer.transfer_table([scores], train_safe, held_safe, transfer_safe).iloc[0]
    t = transfer.calibrated_threshold(scores.out_of_fold, train_safe)
    flagged = scores.transfer <= t
    unsafe = ~transfer_safe
    assert row["threshold"] == t
    assert row["transfer_accuracy"] == pytest.approx(np.mean(flagged == unsafe))
    assert row["transfer_precision_unsafe"] == pytest.approx(
        (flagged & unsafe).sum() / flagged.sum()
    )
    assert row["transfer_recall_unsafe"] == pytest.approx((flagged & unsafe).sum() / unsafe.sum())
    assert row["transfer_auroc"] == pytest.approx(roc_auc_score(unsafe, -scores.transfer))
    assert row["held_out_accuracy"] == pytest.approx(np.mean((scores.held_out <= t) == ~held_safe))
    assert row["layer"] == 3


def _planted(n: int, direction: np.ndarray, rng, shift: float = 0.0):
    """States [n, 2, d] whose layer 2 carries the safety direction, layer 1 only noise."""
    is_safe = np.arange(n) % 2 == 0
    d = len(direction)
    noise = rng.normal(size=(n, 2, d))
    noise[:, 1] += np.outer(np.where(is_safe, 1.5, -1.5), direction) + shift
    return noise.astype(np.float32), is_safe


def test_score_transfer_end_to_end_on_planted_states() -> None:
    """A direction planted in layer 2 of both the pairs and the transfer set transfers; layer 1
    (noise) stays near chance; each probe's training-side scores are its out-of-fold margins."""
    rng = np.random.default_rng(1)
    d = 16
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    states, is_safe = _planted(120, direction, rng)
    examples = [
        StateExample(
            f"pair-{i // 2}:{'chosen' if s else 'rejected'}",
            f"prompt {i // 2}",
            " ".join(["word"] * (5 + i % 7)),
            bool(s),
            "train",
        )
        for i, s in enumerate(is_safe)
    ]
    train, test = np.arange(80), np.arange(80, 120)
    groups = np.array([e.prompt for e in examples], dtype=object)
    probes = fit_layer_probes(
        states[train], is_safe[train], groups[train], c_grid=[0.1], folds=3, max_iter=5000, seed=0
    )
    oof = np.stack(
        [
            out_of_fold_margins(
                states[train, i],
                is_safe[train],
                groups[train],
                c=0.1,
                folds=3,
                max_iter=5000,
                seed=0,
            )
            for i in range(2)
        ],
        axis=1,
    )
    probe_set = ProbeSet(ProbeSplit(0, None, train, test), probes, oof)
    reward = HybridReward.from_probes(probes, [1, 2]).eval()
    other_states, other_safe = _planted(60, direction, rng, shift=0.3)
    others = [
        LabeledResponse(f"o-{i}", f"other {i}", "some other words here", bool(s))
        for i, s in enumerate(other_safe)
    ]
    table = transfer.score_transfer(
        reward,
        probe_set,
        [1, 2],
        torch.from_numpy(states),
        examples,
        torch.from_numpy(other_states),
        others,
        folds=3,
        seed=0,
    ).set_index("scorer")
    assert list(table.index) == [
        "hybrid reward",
        "layer 1 probe",
        "layer 2 probe",
        "length only (control)",
        "TF-IDF words (control)",
    ]
    assert table.loc["layer 2 probe", "transfer_auroc"] > 0.95
    assert table.loc["layer 2 probe", "held_out_auroc"] > 0.95
    assert abs(table.loc["layer 1 probe", "transfer_auroc"] - 0.5) < 0.25
    # Every transfer text is the same: a text control can do no better than chance there.
    assert table.loc["TF-IDF words (control)", "transfer_auroc"] == pytest.approx(0.5)
    expected = transfer.calibrated_threshold(oof[:, 1], is_safe[train])
    assert table.loc["layer 2 probe", "threshold"] == pytest.approx(expected)


def test_headline_keeps_reward_controls_best_and_last_layer() -> None:
    rows = [
        {"scorer": name, "layer": layer, "transfer_auroc": auroc}
        for name, layer, auroc in [
            ("hybrid reward", None, 0.7),
            ("layer 1 probe", 1, 0.9),
            ("layer 2 probe", 2, 0.6),
            ("layer 3 probe", 3, 0.8),
            ("length only (control)", None, 0.5),
        ]
    ]
    table = pd.DataFrame(rows).astype({"layer": "Int64"})
    assert list(transfer.headline(table)["scorer"]) == [
        "hybrid reward",
        "length only (control)",
        "layer 1 probe",
        "layer 3 probe",
    ]


def test_tiny_run_writes_the_transfer_table(tiny_run) -> None:
    table = pd.read_csv(tiny_run / "03_hybrid_reward" / "transfer.csv")
    layers = pd.read_csv(tiny_run / "02_probes" / "probe_metrics.csv")["layer"].tolist()
    assert table["layer"].dropna().astype(int).tolist() == layers
    assert {"hybrid reward", "length only (control)", "TF-IDF words (control)"} <= set(
        table["scorer"]
    )
    metrics = [c for c in table if c.startswith(("held_out_", "transfer_"))]
    assert table[metrics].apply(lambda c: c.between(0, 1)).all().all()
    # The transfer set shares no prompt with the pairs, and notebook 01 extracted its states.
    pairs = {
        r["prompt"]
        for name in ("pairs_train", "pairs_test")
        for r in pd.read_json(tiny_run / "00_data" / f"{name}.jsonl", lines=True).to_dict("records")
    }
    transfer_rows = pd.read_json(tiny_run / "00_data" / "transfer.jsonl", lines=True)
    assert len(transfer_rows) == 40 and not set(transfer_rows["prompt"]) & pairs
    assert (tiny_run / "01_representations" / "transfer_states.json").is_file()
    assert (tiny_run / "03_hybrid_reward" / "transfer.png").is_file()
    # The hybrid reward's held-out AUROC is Fig 1's split-0 figure.
    by_split = pd.read_csv(tiny_run / "03_hybrid_reward" / "hybrid_metrics.csv")
    assert (
        by_split["auroc_min"].iloc[0] - 1e-9
        <= table.set_index("scorer").loc["hybrid reward", "held_out_auroc"]
        <= by_split["auroc_max"].iloc[0] + 1e-9
    )
