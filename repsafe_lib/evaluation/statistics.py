"""Percentile-bootstrap intervals of means and Cohen's kappa for the evaluation tables (paper Sec
4.4, Table 1; appendix A.1, Table 3).

Values are `[k seeds, n prompts, J columns]` cubes; NaN marks an unparsed verdict, left out of
every mean. Intervals resample prompts, and seeds where several exist (hierarchically: a replicate
draws k seeds, then n prompts per drawn seed), with the same resampled prompts for every column of
a cube, so averages over columns are resampled coherently. scipy's `bootstrap` gives the intervals
over prompts alone; it has no hierarchical resampling, so `bootstrap_means` does that here. Kappa
is sklearn's `cohen_kappa_score`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap
from sklearn.metrics import cohen_kappa_score


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean along `axis` without the NaN entries; all-NaN gives NaN (without numpy's warning)."""
    present = ~np.isnan(values)
    counts = present.sum(axis=axis)
    sums = np.where(present, values, 0.0).sum(axis=axis)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def point_estimate(values: np.ndarray) -> np.ndarray:
    """Mean over prompts per seed, then over seeds: `[k, n, J] -> [J]`."""
    return nan_mean(nan_mean(values, axis=1), axis=0)


def bootstrap_means(
    values_by_group: Mapping[str, np.ndarray], *, resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap distributions `[R, J]` of `point_estimate` for each group of `[k, n, J]` values.

    Per replicate, k seeds are drawn with replacement (shared by all groups), and for each drawn
    seed the group's n prompts are drawn with replacement (shared by the J columns of a group:
    e.g. the judges of one benchmark).
    """
    rng = np.random.default_rng(seed)
    k = next(iter(values_by_group.values())).shape[0]
    seed_draws = rng.integers(k, size=(resamples, k))
    result = {}
    for group, values in values_by_group.items():
        if values.shape[0] != k:
            raise ValueError(f"group {group!r} has {values.shape[0]} seeds, expected {k}")
        n = values.shape[1]
        per_slot = [
            nan_mean(values[seed_draws[:, t][:, None], rng.integers(n, size=(resamples, n))], 1)
            for t in range(k)
        ]
        result[group] = nan_mean(np.stack(per_slot), axis=0)
    return result


def percentile_interval(draws: np.ndarray, estimate: float, confidence: float) -> Interval:
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return Interval(estimate, np.nan, np.nan)
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(estimate), float(low), float(high))


def bootstrap_ci(
    values: np.ndarray, *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of a mean; `values` is `[n]` (prompts) or `[k, n]` (seeds x
    prompts, resampled hierarchically). NaN entries are left out."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return prompt_bootstrap_ci(values[~np.isnan(values)], resamples, confidence, seed)
    cube = values[:, :, None]
    draws = bootstrap_means({"values": cube}, resamples=resamples, seed=seed)["values"][:, 0]
    return percentile_interval(draws, point_estimate(cube)[0], confidence)


def prompt_bootstrap_ci(
    values: np.ndarray, resamples: int, confidence: float, seed: int
) -> Interval:
    """scipy's percentile bootstrap interval of the mean of `values` `[n]` (without NaN); one value
    is its own interval, none gives NaN."""
    if len(values) < 2:  # scipy's bootstrap needs two values
        estimate = float(values[0]) if len(values) else np.nan
        return Interval(estimate, estimate, estimate)
    result = bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        axis=-1,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return Interval(float(np.mean(values)), float(low), float(high))


def cohens_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary labelings: (p_o - p_e) / (1 - p_e); NaN when p_e = 1 (both give
    every item the same one label)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or not len(a):
        raise ValueError("kappa needs two non-empty labelings of the same items")
    if len(np.unique(np.concatenate([a, b]))) == 1:  # sklearn would warn, then give NaN
        return np.nan
    return float(cohen_kappa_score(a, b))
