"""Does the reward recognise harm beyond the data it was fit on? (notebook 03's transfer table)

R_h, every layer's probe and the two text-only controls are fit on the profile's preference pairs
(the training side of split 0, as notebook 02 and 03 fit them) and scored on labelled responses of
*other* data (`data.transfer`, e.g. BeaverTails), whose prompts the pairs do not hold.

Each scorer's decision threshold is calibrated on the training side, never on the transfer set:
the threshold that maximises accuracy on the training rows' *out-of-fold* scores (each row scored
by a scorer fit on the other prompt-grouped folds; in-sample scores of a probe separate its own
training rows perfectly and would calibrate nothing). AUROC needs no threshold. The same
threshold is applied to split 0's held-out pairs, so in-domain and transfer figures sit side by
side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from repsafe_lib.probes import (
    classification_metrics,
    inner_folds,
    length_control_scores,
    tfidf_control_scores,
)
from repsafe_lib.records import LabeledResponse, read_records
from repsafe_lib.states_file import layer_rows

TRANSFER_METRICS = ("accuracy", "precision_unsafe", "recall_unsafe", "auroc")
CONTROL_SCORERS = {"length": "length only (control)", "tfidf": "TF-IDF words (control)"}
REWARD_SCORER = "hybrid reward"


def read_transfer_set(transfer_params, run) -> list[LabeledResponse]:
    """Notebook 00's transfer set for a later notebook's `artifacts.Run`: empty when the params
    name none, or when an optional one could not be read."""
    if transfer_params is None:
        return []
    path = run.upstream("00_data", "transfer.jsonl")
    return read_records(path, LabeledResponse, producer="00_data")


@dataclass(frozen=True)
class ScorerScores:
    """One scorer's safe-vs-unsafe scores (> threshold predicts safe) on the three sets."""

    scorer: str
    layer: int | None
    out_of_fold: np.ndarray  # training rows of the pairs, each from a fit that never saw it
    held_out: np.ndarray  # split 0's test rows of the pairs
    transfer: np.ndarray  # the transfer set


def calibrated_threshold(safe_score: np.ndarray, is_safe: np.ndarray) -> float:
    """The threshold t that maximises the accuracy of "unsafe when score <= t" on these scores.

    Candidates are midpoints between consecutive distinct scores, and one below the lowest (all
    called safe); ties go to the candidate nearest 0, the scorers' own boundary.
    """
    scores = np.asarray(safe_score, dtype=np.float64)
    is_unsafe = ~np.asarray(is_safe, dtype=bool)
    distinct = np.unique(scores)
    candidates = np.concatenate([[distinct[0] - 1.0], (distinct[1:] + distinct[:-1]) / 2])
    order = np.argsort(scores, kind="stable")
    sorted_scores, sorted_unsafe = scores[order], is_unsafe[order]
    # Rows with score <= t are flagged: count unsafe (right) and safe (wrong) among them.
    flagged = np.searchsorted(sorted_scores, candidates, side="right")
    unsafe_flagged = np.concatenate([[0], np.cumsum(sorted_unsafe)])[flagged]
    safe_flagged = flagged - unsafe_flagged
    correct = unsafe_flagged + (np.sum(~is_unsafe) - safe_flagged)
    best = np.flatnonzero(correct == correct.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best]))]])


def _out_of_fold_control(
    control,
    texts: Sequence[str],
    is_safe: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    folds: int,
) -> np.ndarray:
    scores = np.zeros(len(train))
    for fit, held in inner_folds(groups[train], folds):
        scores[held] = control(texts, is_safe, groups, train[fit], train[held])
    return scores


def control_scores(
    source_texts: Sequence[str],
    source_is_safe: np.ndarray,
    source_groups: np.ndarray,
    split,
    transfer_texts: Sequence[str],
    *,
    folds: int,
    seed: int,
) -> list[ScorerScores]:
    """The length and TF-IDF controls, fit on the split's training rows, on the three sets."""
    texts = [*source_texts, *transfer_texts]
    n_source = len(source_texts)
    # Transfer labels are never read: the controls fit on training rows only.
    is_safe = np.concatenate([source_is_safe, np.zeros(len(transfer_texts), dtype=bool)])
    groups = np.concatenate([source_groups, np.full(len(transfer_texts), "", dtype=object)])
    scored = np.concatenate([split.test_rows, n_source + np.arange(len(transfer_texts))])
    n_test = len(split.test_rows)
    controls = {
        "length": lambda t, y, g, train, test: length_control_scores(t, y, train, test),
        "tfidf": lambda t, y, g, train, test: tfidf_control_scores(
            t, y, g, train, test, folds=folds, seed=seed
        ),
    }
    results = []
    for name, control in controls.items():
        score = control(texts, is_safe, groups, split.train_rows, scored)
        oof = _out_of_fold_control(control, texts, is_safe, groups, split.train_rows, folds)
        results.append(
            ScorerScores(CONTROL_SCORERS[name], None, oof, score[:n_test], score[n_test:])
        )
    return results


def state_scores(
    reward, probe_set, layers: Sequence[int], states: torch.Tensor, transfer_states: torch.Tensor
) -> list[ScorerScores]:
    """R_h and every layer's probe of `probe_set` (a `probes.ProbeSet`) on the three sets.

    The training side's out-of-fold scores are notebook 02's out-of-fold margins; R_h's mixes
    them with its gate (the gate itself was fit on those pairs' scores).
    """
    held_out = probe_set.split.test_rows
    out_of_fold = torch.as_tensor(probe_set.train_scores, dtype=torch.float32)
    with torch.no_grad():
        results = [
            ScorerScores(
                REWARD_SCORER,
                None,
                reward.mix(out_of_fold).numpy(),
                reward(states, held_out).numpy(),
                reward(transfer_states).numpy(),
            )
        ]
    for i, (layer, probe) in enumerate(zip(layers, probe_set.probes, strict=True)):
        results.append(
            ScorerScores(
                f"layer {layer} probe",
                int(layer),
                probe_set.train_scores[:, i],
                probe.margin(layer_rows(states, i, held_out)),
                probe.margin(layer_rows(transfer_states, i)),
            )
        )
    return results


def transfer_table(
    scores: Sequence[ScorerScores],
    train_is_safe: np.ndarray,
    held_out_is_safe: np.ndarray,
    transfer_is_safe: np.ndarray,
) -> pd.DataFrame:
    """One row per scorer: the calibrated threshold, then held-out (in-domain) and transfer
    metrics at that threshold; unsafe is the positive class, as in Fig 1."""
    rows = []
    for s in scores:
        threshold = calibrated_threshold(s.out_of_fold, train_is_safe)
        held_out = classification_metrics(held_out_is_safe, s.held_out - threshold)
        transfer = classification_metrics(transfer_is_safe, s.transfer - threshold)
        rows.append(
            {
                "scorer": s.scorer,
                "layer": s.layer,
                "threshold": threshold,
                "held_out_accuracy": held_out["accuracy"],
                "held_out_auroc": held_out["auroc"],
                **{f"transfer_{m}": transfer[m] for m in TRANSFER_METRICS},
            }
        )
    table = pd.DataFrame(rows)
    table["layer"] = table["layer"].astype("Int64")
    return table


def score_transfer(
    reward,
    probe_set,
    layers: Sequence[int],
    states: torch.Tensor,
    examples: Sequence,
    transfer_states: torch.Tensor,
    transfer_responses: Sequence[LabeledResponse],
    *,
    folds: int,
    seed: int,
) -> pd.DataFrame:
    """The transfer table of R_h (`reward`), every probe of `probe_set` and both text controls,
    all fit on the split's training rows of `examples` (rows of `states`)."""
    is_safe = np.array([e.is_safe for e in examples])
    scores = state_scores(reward, probe_set, layers, states, transfer_states)
    scores += control_scores(
        [e.response for e in examples],
        is_safe,
        np.array([e.prompt for e in examples], dtype=object),
        probe_set.split,
        [r.response for r in transfer_responses],
        folds=folds,
        seed=seed,
    )
    split = probe_set.split
    transfer_is_safe = np.array([r.is_safe for r in transfer_responses])
    return transfer_table(
        scores, is_safe[split.train_rows], is_safe[split.test_rows], transfer_is_safe
    )


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """R_h, the two controls and the best and last layers' probes (by transfer AUROC)."""
    probes = table[table["layer"].notna()]
    picked = [
        table[table["layer"].isna()],
        probes.loc[[probes["transfer_auroc"].idxmax()]],
        probes.loc[[probes["layer"].idxmax()]],
    ]
    return pd.concat(picked).drop_duplicates("scorer")
