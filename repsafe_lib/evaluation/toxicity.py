"""Toxic rates per policy, benchmark and judge with bootstrap intervals (paper Sec 4.3-4.4,
Table 1), the judges' agreement, and the hazard categories among unsafe answers (Sec 4.5, Table 2).

Toxic rate = share of a benchmark's responses a judge calls unsafe, over the responses it could
parse. Intervals come from `statistics.bootstrap_means`: prompts (and seeds where several exist)
are resampled once per policy for all its judges, so averages over cells are resampled coherently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from repsafe_lib import published
from repsafe_lib.evaluation.statistics import (
    Interval,
    bootstrap_means,
    cohens_kappa,
    percentile_interval,
    point_estimate,
)
from repsafe_lib.judges import category_codes
from repsafe_lib.seeding import stable_seed

# The paper's numbers live in `published`; these names are what Table 1 compares against.
PAPER_TABLE1, PAPER_BENCHMARKS, PAPER_JUDGES = (
    published.TABLE1,
    published.BENCHMARKS,
    published.JUDGES,
)
UNAVAILABLE = "unavailable"
ALL_JUDGES = "all judges"  # the judge of Table 1's average over every benchmark x judge cell


def _verdict_cube(judgments: pd.DataFrame, judges: Sequence[str]) -> tuple[np.ndarray, int]:
    """`[k seeds, n prompts, J judges]` of unsafe shares (samples averaged per prompt; NaN =
    unparsed) for one policy and benchmark; rows aligned by prompt id."""
    frame = judgments.assign(value=judgments["unsafe"].map({True: 1.0, False: 0.0}))
    table = frame.pivot_table(
        index=["seed", "prompt_id"], columns="judge", values="value", aggfunc="mean", dropna=False
    ).reindex(columns=list(judges))
    seeds = sorted(frame["seed"].unique())
    prompts = sorted(frame["prompt_id"].unique())
    full = pd.MultiIndex.from_product([seeds, prompts], names=["seed", "prompt_id"])
    cube = table.reindex(full).to_numpy(dtype=float).reshape(len(seeds), len(prompts), len(judges))
    return cube, len(prompts)


def toxic_rates(
    judgments: pd.DataFrame, *, resamples: int, confidence: float, seed: int
) -> pd.DataFrame:
    """Long table, one row per (policy, benchmark, judge) plus per-judge averages over benchmarks
    (`benchmark = "average"`) and, with several judges, the average over every benchmark x judge
    cell (`judge = ALL_JUDGES`: the paper's "Avg" of Table 1, over its 3 x 2 cells): toxic rate,
    its interval, prompts, seeds, unparsed verdicts."""
    judges = list(dict.fromkeys(judgments["judge"]))
    rows = []
    for policy in dict.fromkeys(judgments["policy"]):
        of_policy = judgments[judgments["policy"] == policy]
        rows += _policy_rates(of_policy, policy, judges, resamples, confidence, seed)
    return pd.DataFrame(rows)


def _policy_rates(of_policy, policy, judges, resamples, confidence, seed) -> list[dict]:
    """`toxic_rates`' rows of one policy: its cells, then its averages."""
    benchmarks = list(dict.fromkeys(of_policy["benchmark"]))
    cubes = {b: _verdict_cube(of_policy[of_policy["benchmark"] == b], judges) for b in benchmarks}
    draws = bootstrap_means(
        {b: cube for b, (cube, _) in cubes.items()},
        resamples=resamples,
        seed=stable_seed(seed, policy),
    )
    rows = []
    for b, (cube, n_prompts) in cubes.items():
        for j, judge in enumerate(judges):
            cell = of_policy[(of_policy["benchmark"] == b) & (of_policy["judge"] == judge)]
            interval = percentile_interval(draws[b][:, j], point_estimate(cube)[j], confidence)
            rows.append(_rate_row(policy, b, judge, interval, n_prompts, cube.shape[0], cell))
    n_prompts = sum(n for _, n in cubes.values())
    for j, judge in enumerate(judges):
        interval = _average_interval(draws, cubes, benchmarks, [j], confidence)
        cell = of_policy[of_policy["judge"] == judge]
        rows.append(_rate_row(policy, "average", judge, interval, n_prompts, 0, cell))
    if len(judges) > 1:
        interval = _average_interval(draws, cubes, benchmarks, range(len(judges)), confidence)
        row = _rate_row(policy, "average", ALL_JUDGES, interval, n_prompts, 0, of_policy)
        if set(judges) != set(PAPER_JUDGES):  # the paper's Avg is over SG and MJ only
            row["paper_llama2_7b"] = np.nan
        rows.append(row)
    return rows


def _average_interval(draws, cubes, benchmarks, judge_columns, confidence: float) -> Interval:
    """The mean of the cells (benchmark x judge column) and its interval from the same bootstrap
    replicates, so the cells' shared prompts are resampled together."""
    cells = [(b, j) for b in benchmarks for j in judge_columns]
    mean_draws = np.mean([draws[b][:, j] for b, j in cells], axis=0)
    estimate = float(np.mean([point_estimate(cubes[b][0])[j] for b, j in cells]))
    return percentile_interval(mean_draws, estimate, confidence)


def _rate_row(policy, benchmark, judge, interval: Interval, n_prompts, n_seeds, cell) -> dict:
    return {
        "policy": policy,
        "benchmark": benchmark,
        "judge": judge,
        "toxic_rate": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "prompts": n_prompts,
        "seeds": n_seeds or int(cell["seed"].nunique()),
        "verdicts": len(cell),
        "unparsed": int(cell["unsafe"].isna().sum()),
        "paper_llama2_7b": paper_cell(policy, benchmark, judge),
    }


def paper_cell(policy: str, benchmark: str, judge: str) -> float:
    """The paper's Table 1 number (as a fraction) for this cell, NaN where it has none."""
    reference = PAPER_TABLE1.get(policy)
    if reference is None or judge not in (*PAPER_JUDGES, ALL_JUDGES):
        return np.nan
    if benchmark == "average":
        # The paper's only average is over its six SG/MJ cells.
        return reference["average"] / 100 if judge == ALL_JUDGES else np.nan
    if benchmark not in PAPER_BENCHMARKS:
        return np.nan
    return reference[PAPER_JUDGES[judge]][PAPER_BENCHMARKS.index(benchmark)] / 100


def _cell_text(row) -> str:
    if np.isnan(row["toxic_rate"]):
        return "n/a"
    return f"{100 * row['toxic_rate']:.1f} [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"


def table1(rates: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Rows = policies; a column per benchmark x judge, a per-judge average and, with several
    judges, the average over all benchmark x judge cells (the paper's Avg), cells
    "rate [low, high]" in %, plus the paper's Llama2-7B average (over its six SG/MJ cells)."""
    rates = rates.assign(
        column=rates["benchmark"] + " · " + rates["judge"], text=rates.apply(_cell_text, axis=1)
    )
    wide = rates.pivot(index="policy", columns="column", values="text")
    wide = wide.reindex(index=list(dict.fromkeys(rates["policy"])))
    wide = wide.reindex(columns=list(dict.fromkeys(rates["column"]))).reset_index()
    level = f"{round(100 * confidence)}%"
    wide.columns = ["policy", *[f"{c} (toxic %, {level} CI)" for c in wide.columns[1:]]]
    wide["paper avg, Llama2-7B SG+MJ (%)"] = [
        f"{PAPER_TABLE1[p]['average']:.1f}" if p in PAPER_TABLE1 else "-" for p in wide["policy"]
    ]
    return wide


def judge_agreement(judgments: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa for each pair of judges, per benchmark and overall, on items both parsed."""
    judges = list(dict.fromkeys(judgments["judge"]))
    keys = ["run", "benchmark", "prompt_id", "sample_index"]
    rows = []
    for i, first in enumerate(judges):
        for second in judges[i + 1 :]:
            pair = judgments[judgments["judge"] == first].merge(
                judgments[judgments["judge"] == second], on=keys, suffixes=("_a", "_b")
            )
            pair = pair[pair["unsafe_a"].notna() & pair["unsafe_b"].notna()]
            groups = [(b, pair[pair["benchmark"] == b]) for b in dict.fromkeys(pair["benchmark"])]
            rows += [
                _agreement_row(first, second, b, items) for b, items in [*groups, ("all", pair)]
            ]
    return pd.DataFrame(rows)


def _agreement_row(first: str, second: str, benchmark: str, items: pd.DataFrame) -> dict:
    a, b = items["unsafe_a"].astype(bool), items["unsafe_b"].astype(bool)
    return {
        "judge_a": first,
        "judge_b": second,
        "benchmark": benchmark,
        "items": len(items),
        "agreement": float((a == b).mean()) if len(items) else np.nan,
        "kappa": cohens_kappa(a, b) if len(items) else np.nan,
    }


def category_shares(judgments: pd.DataFrame, judge: str, codes: Sequence[str]) -> pd.DataFrame:
    """Per policy: toxic rate, unsafe outputs, and the share of unsafe outputs naming each code
    (an output may name several). A judge without categories gets "unavailable" cells."""
    rows = []
    of_judge = judgments[judgments["judge"] == judge]
    for policy in dict.fromkeys(of_judge["policy"]):
        cell = of_judge[of_judge["policy"] == policy]
        parsed = cell[cell["unsafe"].notna()]
        unsafe = parsed[parsed["unsafe"].astype(bool)]
        row = {"policy": policy, "judge": judge, "unsafe_outputs": len(unsafe)}
        row["toxic_rate"] = len(unsafe) / len(parsed) if len(parsed) else np.nan
        available = bool(cell["categories_available"].all())
        named = [set(filter(None, c.split(","))) for c in unsafe["categories"]]
        for code in codes:
            share = sum(code in n for n in named) / len(named) if named else np.nan
            row[code] = share if available else UNAVAILABLE
        if available:
            row["none_named"] = sum(not n for n in named) / len(named) if named else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def hazard_tables(judgments: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`category_shares` per judge (in the judgments' order), each with its own hazard codes."""
    return {
        name: category_shares(judgments, name, category_codes(name))
        for name in dict.fromkeys(judgments["judge"])
    }
