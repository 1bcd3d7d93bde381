"""Tables: records in, DataFrame out, with fixed column order so regenerated files diff cleanly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def dataset_summary(
    name: str, source: str, loaded, split: tuple[Sequence, Sequence] | None = None
) -> dict:
    """One row of the data table: rows read = filtered by design + skipped as bad + left out by
    the size cap + used.

    `source` is the params' spelling (e.g. `demo:...`), so tables don't depend on the install path.
    """
    return {
        "dataset": name,
        "source": source,
        "rows_read": loaded.n_rows,
        "filtered": loaded.n_filtered,
        "bad_rows_skipped": loaded.n_skipped,
        "prompt_overlap": loaded.n_overlap,
        "capped": loaded.n_capped,
        "used": len(loaded.records),
        "train/test": f"{len(split[0])}/{len(split[1])}" if split else "-",
        "revision": _short_revision(loaded.revision),
    }


def _short_revision(revision: str | None) -> str:
    """A content digest or hub commit cut to 12 hex digits: enough to tell copies apart."""
    if revision is None:
        return "-"
    kind, _, digest = revision.rpartition(":")
    return f"{kind}:{digest[:12]}" if kind else digest[:12]


def category_counts(train_pairs: Sequence, test_pairs: Sequence) -> pd.DataFrame:
    """Pairs per harm category of the rejected response, per split (a pair may have several)."""
    counts = {
        split: Counter(c for pair in pairs for c in (pair.categories or ("(none)",)))
        for split, pairs in (("train", train_pairs), ("test", test_pairs))
    }
    categories = sorted(set(counts["train"]) | set(counts["test"]), key=_category_order)
    return pd.DataFrame(
        {
            "category": categories,
            "train": [counts["train"][c] for c in categories],
            "test": [counts["test"][c] for c in categories],
        }
    )


def _category_order(name: str) -> tuple:
    # "S10: ..." sorts after "S9: ...".
    head = name.split(":", 1)[0]
    return (0, int(head[1:]), name) if head[:1] == "S" and head[1:].isdigit() else (1, 0, name)


def length_summary(words: np.ndarray, is_safe: np.ndarray) -> pd.DataFrame:
    """Mean / median / max response length in words, safe vs unsafe."""
    rows = []
    for label, name in ((True, "safe"), (False, "unsafe")):
        w = words[is_safe == label]
        rows.append(
            {
                "class": name,
                "responses": len(w),
                "mean_words": float(w.mean()),
                "median_words": float(np.median(w)),
                "max_words": int(w.max()),
            }
        )
    return pd.DataFrame(rows)


def response_words(words: np.ndarray, is_safe: np.ndarray) -> pd.DataFrame:
    """`response_words.csv`: one row per response, its length in words and whether it is safe."""
    return pd.DataFrame({"words": np.asarray(words), "is_safe": np.asarray(is_safe, dtype=bool)})


def pca_summary(panels: Sequence) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": [p.layer for p in panels],
            "pc1_variance": [float(p.explained[0]) for p in panels],
            "pc2_variance": [float(p.explained[1]) for p in panels],
            "separation_d_prime": [p.separation for p in panels],
            "n_safe": [int(p.is_safe.sum()) for p in panels],
            "n_unsafe": [int((~p.is_safe).sum()) for p in panels],
        }
    )


def pca_points(panels: Sequence) -> pd.DataFrame:
    """`pca_points.csv`: one row per (panel layer, state), its coordinates on the layer's top-2
    principal directions and its class, in the panels' order."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "layer": panel.layer,
                    "pc1": panel.coords[:, 0],
                    "pc2": panel.coords[:, 1],
                    "is_safe": np.asarray(panel.is_safe, dtype=bool),
                }
            )
            for panel in panels
        ],
        ignore_index=True,
    )


def probe_layer_metrics(results: Sequence, layers: Sequence[int]) -> pd.DataFrame:
    """One row per (split, layer): the chosen C and the held-out metrics (Fig 1)."""
    rows = [
        {"split": r.split.index, "layer": layer, "C": probe.c, **metrics}
        for r in results
        for layer, probe, metrics in zip(layers, r.probes, r.layer_metrics, strict=True)
    ]
    return pd.DataFrame(rows)


def control_metrics(results: Sequence) -> pd.DataFrame:
    """One row per (split, control): held-out metrics of the text-only controls."""
    rows = [
        {"split": r.split.index, "control": name, **metrics}
        for r in results
        for name, metrics in r.control_metrics.items()
    ]
    return pd.DataFrame(rows)


def over_splits(long: pd.DataFrame, by: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, standard deviation, min and max of each metric over splits, per `by` value (kept in
    first-seen order)."""
    grouped = long.groupby(by, sort=False)[list(metrics)]
    stats = {
        "mean": grouped.mean(),
        "std": grouped.std(ddof=0),
        "min": grouped.min(),
        "max": grouped.max(),
    }
    columns = {f"{m}_{s}": stats[s][m] for m in metrics for s in stats}
    table = pd.DataFrame(columns).reset_index()
    table.insert(1, "splits", grouped.size().to_numpy())
    return table


def confidence_summary(gammas: dict[str, np.ndarray]) -> pd.DataFrame:
    """Distribution of the preference confidence gamma over pairs (Eq 8), one row per pair set."""
    rows = []
    for name, gamma in gammas.items():
        gamma = np.asarray(gamma, dtype=np.float64)
        rows.append(
            {
                "pairs": name,
                "n": len(gamma),
                "gamma_mean": gamma.mean(),
                "gamma_median": float(np.median(gamma)),
                "share_below_0.5": float(np.mean(gamma < 0.5)),
                "share_below_0.9": float(np.mean(gamma < 0.9)),
                "gamma_min": gamma.min(),
            }
        )
    return pd.DataFrame(rows)


def reward_training(curves: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """`reward_training.csv`: one row per (run, step), the margin-BT loss (Eq 7) before it."""
    return pd.DataFrame(
        [
            {"run": name, "step": step, "loss": loss}
            for name, losses in curves.items()
            for step, loss in enumerate(losses)
        ]
    )


def gate_weights(layers: Sequence[int], weights: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`gate_weights.csv`: one row per (gate kind, layer), the layer's mean gate weight."""
    return pd.DataFrame(
        [
            {"gate": name, "layer": layer, "mean_weight": weight}
            for name, values in weights.items()
            for layer, weight in zip(layers, values, strict=True)
        ]
    )


def gamma_per_pair(gammas: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """`gamma_per_pair.csv`: one row per (set of pairs, pair), its gamma (Eq 8)."""
    return pd.concat(
        [
            pd.DataFrame({"pairs": name, "gamma": np.asarray(gamma, dtype=np.float64)})
            for name, gamma in gammas.items()
        ],
        ignore_index=True,
    )


# Notebook 04: the rewards training starts from, the runs, held-out pairs.


def fold_reward_fit(fitted: Sequence) -> pd.DataFrame:
    """Per cross-fitted R_h (`hybrid_reward.FoldReward`): its fold, the pairs it was fit on and its
    pairwise accuracy on the fold it never saw."""
    return pd.DataFrame(
        [
            {
                "fold": f.fold,
                "fit on pairs": f.num_fit_pairs,
                "held-out pairs": f.num_held_out_pairs,
                "held-out pairwise accuracy": f.held_out_pairwise_accuracy,
            }
            for f in fitted
        ]
    )


def training_runs(summaries: Mapping[str, dict]) -> pd.DataFrame:
    """One row per run (keyed by its label) from its `training.run_summary`: steps, wall time,
    median throughput, and each metric's mean over the last steps."""
    return pd.DataFrame(
        [
            {
                "run": label,
                "steps": summary["steps"],
                "seconds": summary["seconds"],
                "tokens/s": summary["tokens_per_s"],
                **summary["final"],
            }
            for label, summary in summaries.items()
        ]
    )


def held_out_implicit_reward(accuracies: Mapping[str, dict], pairs: int) -> pd.DataFrame:
    """One row per run (keyed by its label): the implicit DPO reward's accuracy and mean margin
    (`training.implicit_reward_accuracy`) on `pairs` held-out pairs."""
    return pd.DataFrame(
        [{"run": label, "pairs": pairs, **accuracy} for label, accuracy in accuracies.items()]
    )


# Notebook 05: samples of the reference policy, the runs trained on them, the reward model.


def sample_summary(samples_by_set: Mapping, hybrid_scores: Mapping) -> pd.DataFrame:
    """Per named set of sampled responses: samples, mean generated tokens, the share stopped at
    the end of the turn, empty ones, and the mean and standard deviation of R_h (a tensor `[n]`
    per set)."""
    rows = []
    for name, samples in samples_by_set.items():
        scores = hybrid_scores[name]
        rows.append(
            {
                "prompts": name,
                "samples": len(samples),
                "mean tokens": sum(s.num_tokens for s in samples) / len(samples),
                "stopped at EOS": sum(s.finished for s in samples) / len(samples),
                "empty": sum(s.empty for s in samples),
                "R_h mean": float(scores.mean()),
                "R_h std": float(scores.std()),
            }
        )
    return pd.DataFrame(rows)


def picked_sample_indices(responses: Sequence) -> pd.Series:
    """How often best-of-N picked each sample index (R_h never sees the index)."""
    picked = pd.Series([r.sample_index for r in responses]).value_counts().sort_index()
    return picked.rename("picked sample index")


def pair_confidence(gaps, gammas) -> pd.DataFrame:
    """Re-ranked pairs (tensors `[pairs]`): the median R_h gap between chosen and rejected, and
    the gamma (Eq 8) they start cDPO* with: mean and share above 0.99 (where cDPO* acts as DPO)."""
    row = {
        "pairs": len(gaps),
        "R_h gap, median": float(gaps.median()),
        "gamma, mean": float(gammas.mean()),
        "share gamma > 0.99": float((gammas > 0.99).float().mean()),
    }
    return pd.DataFrame([row])


RERANKED_RUN_METRICS = ("loss", "reward_accuracy", "reward_margin", "hybrid_accuracy", "gamma_mean")


def reranked_runs(
    metrics_by_run: Mapping[str, Sequence[dict]],
    pairs: int,
    metrics: Sequence[str] = RERANKED_RUN_METRICS,
    window: int = 10,
) -> pd.DataFrame:
    """One row per run (keyed by its label) on `pairs` re-ranked pairs: steps, and each metric's
    mean over the last `window` steps."""
    rows = [
        {
            "run": label,
            "pairs": pairs,
            "steps": len(history),
            **{
                f"{k} (last {window} steps)": pd.Series([m[k] for m in history[-window:]]).mean()
                for k in metrics
            },
        }
        for label, history in metrics_by_run.items()
    ]
    return pd.DataFrame(rows)


def reward_model_fit(
    loss: Sequence[float], held_out_accuracy: float, test_pairs: int
) -> pd.DataFrame:
    """The reward model's Bradley-Terry fit: steps, first and last loss, held-out accuracy."""
    row = {
        "steps": len(loss),
        "first loss": loss[0],
        "last loss": loss[-1],
        "held-out pairwise accuracy": held_out_accuracy,
        "test pairs": test_pairs,
    }
    return pd.DataFrame([row])


def online_rounds(metrics: Sequence[dict]) -> pd.DataFrame:
    """Per online-DPO round: its pairs, and the mean loss, reward accuracy and margin of its
    steps."""
    means = {"pairs": "first", "loss": "mean", "reward_accuracy": "mean", "reward_margin": "mean"}
    return pd.DataFrame(metrics).groupby("round")[list(means)].agg(means).reset_index()
