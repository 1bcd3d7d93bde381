"""Safety evaluation: toxic rates with bootstrap intervals, judge agreement, hazard categories,
XSTest over-refusal and over-alignment (paper Sec 4.2-4.6, Table 1-3, Fig 4).

Which policies exist is read off the outputs tree, by this convention:

- `base` is always present: the params' `model`.
- `outputs/<profile>/<NN_notebook>/<run>/policy/config.json`: a saved policy (`save_pretrained`;
  tokenizer files beside it, else the base tokenizer is used), named `<run>`.
- `outputs/<profile>/<NN_notebook>/<run>/responses.jsonl`: a policy given by its responses
  (`sampling.ResponseRecord`s, e.g. best-of-N picks), named `<run>`.
- A run named `<name>-seed<k>` is seed `k` of policy `<name>`: intervals then resample seeds too.

Toxic rate = share of a benchmark's responses a judge calls unsafe, over the responses it could
parse. Intervals are percentile bootstraps over prompts (and over seeds where several exist), with
the same resampled prompts for every judge of a benchmark, so averages over cells are resampled
coherently.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from repsafe_lib import published
from repsafe_lib.datasets import MMLU_LETTERS, EvalPrompt, MmluQuestion, subsample
from repsafe_lib.hidden_states import (
    StateExample,
    cached_hidden_states,
    format_conversation,
    load_states,
    pad_batch,
    position_ids_from_mask,
)
from repsafe_lib.judges import RESPONSE_CLASSES, JudgeRecord, XSTestRecord
from repsafe_lib.models import (
    DTYPES,
    LoadedModel,
    load_model,
    load_saved_policy,
    pick_device,
    pretrained_source,
)
from repsafe_lib.plots import use_style
from repsafe_lib.probes import pair_rows
from repsafe_lib.records import read_records
from repsafe_lib.reward import HybridReward, load_hybrid_reward, pairwise_accuracy
from repsafe_lib.sampling import DecodingConfig, ResponseRecord, cached_responses, for_generation
from repsafe_lib.seeding import stable_seed

# The paper's numbers live in `published`; these names are what this module compares against.
PAPER_TABLE1, PAPER_BENCHMARKS, PAPER_JUDGES = (
    published.TABLE1,
    published.BENCHMARKS,
    published.JUDGES,
)
PAPER_MMLU = published.MMLU
POLICY_ORDER = (
    "base",
    "sft",
    "dpo",
    "cdpo",
    "cdpo_crossfit",
    "rs_star",
    "dpo_star",
    "cdpo_star",
    "online",
)
LLAMA_GUARD_2_CODES = tuple(f"S{i}" for i in range(1, 12))
UNAVAILABLE = "unavailable"
ALL_JUDGES = "all judges"  # the judge of Table 1's average over every benchmark x judge cell

_SEED_SUFFIX = re.compile(r"^(?P<name>.+)-seed(?P<seed>\d+)$")
_NOTEBOOK_DIR = re.compile(r"^\d{2}_[a-z0-9_]+$")


# Policies present under outputs/<profile>/.


@dataclass(frozen=True)
class PolicySource:
    """A policy to evaluate: the base model, saved weights, or a file of responses."""

    run: str  # unique: the directory name (`base` for the base model)
    policy: str  # the row it belongs to: `run` without a `-seed<k>` suffix
    seed: int | None
    kind: Literal["base", "weights", "responses"]
    path: Path | None


def _policy_rank(name: str) -> tuple:
    return (POLICY_ORDER.index(name), "") if name in POLICY_ORDER else (len(POLICY_ORDER), name)


def _source(run_dir: Path, kind: str, path: Path) -> PolicySource:
    match = _SEED_SUFFIX.match(run_dir.name)
    policy, seed = (match["name"], int(match["seed"])) if match else (run_dir.name, None)
    return PolicySource(run_dir.name, policy, seed, kind, path)


def discover_policies(profile_dir: str | Path, exclude: Sequence[str] = ()) -> list[PolicySource]:
    """`base`, then every saved policy or response file under `profile_dir` (see module doc),
    in the paper's row order (unknown names after, alphabetically); duplicate runs are an error.
    Notebook directories named in `exclude` are not searched."""
    found = [PolicySource("base", "base", None, "base", None)]
    root = Path(profile_dir)
    notebooks = sorted(
        p
        for p in root.glob("*")
        if p.is_dir() and _NOTEBOOK_DIR.match(p.name) and p.name not in exclude
    )
    for run_dir in sorted(d for notebook in notebooks for d in notebook.iterdir() if d.is_dir()):
        if (run_dir / "policy" / "config.json").is_file():
            found.append(_source(run_dir, "weights", run_dir / "policy"))
        elif (run_dir / "responses.jsonl").is_file():
            found.append(_source(run_dir, "responses", run_dir / "responses.jsonl"))
    runs = [source.run for source in found]
    duplicates = sorted({run for run in runs if runs.count(run) > 1})
    if duplicates:
        raise ValueError(f"{root}: policy run names must be unique, found twice: {duplicates}")
    return sorted(found, key=lambda s: (_policy_rank(s.policy), s.seed or 0, s.run))


def load_policy(source: PolicySource, base_spec, *, seed: int) -> LoadedModel | None:
    """The policy's model in eval mode (None for a responses-only policy)."""
    if source.kind == "responses":
        return None
    if source.kind == "base":
        return load_model(base_spec, seed=seed)
    return load_saved_policy(source.path, base_spec, name=source.run)


# Prompts and responses.


def select_prompts(prompts: Sequence[EvalPrompt], limit: int | None, seed: int) -> list[EvalPrompt]:
    """At most `limit` prompts, a seeded choice in file order, stratified by label (XSTest's
    safe/unsafe keep their proportions)."""
    if limit is None or len(prompts) <= limit:
        return list(prompts)
    labels = sorted({p.label or "" for p in prompts})
    kept: set[str] = set()
    for i, label in enumerate(labels):
        group = [p for p in prompts if (p.label or "") == label]
        share = round(limit * len(group) / len(prompts)) if i < len(labels) - 1 else None
        share = limit - len(kept) if share is None else share
        kept |= {p.prompt_id for p in subsample(group, share, seed)}
    return [p for p in prompts if p.prompt_id in kept]


def for_generation_of(loaded: LoadedModel | None, dtype_name: str | None) -> LoadedModel | None:
    """`loaded`, or a copy decoding in `dtype_name` whose fingerprint says so (response caches
    of the two never mix)."""
    if loaded is None or dtype_name is None:
        return loaded
    model = for_generation(loaded.model, dtype_name)
    if model is loaded.model:
        return loaded
    return dataclasses.replace(
        loaded, model=model, fingerprint=f"{loaded.fingerprint}|{dtype_name}"
    )


def policy_responses(
    source: PolicySource,
    loaded: LoadedModel | None,
    prompt_sets: Mapping[str, Sequence[EvalPrompt]],
    *,
    decoding: DecodingConfig,
    cache_dir: Path,
    batch_size: int,
    progress: bool = True,
) -> dict[str, list[ResponseRecord]]:
    """Responses per benchmark: generated (cached) for a model, read for a responses-only policy."""
    if loaded is None:
        return read_policy_responses(source.path, prompt_sets)
    return {
        name: cached_responses(
            loaded.model,
            loaded.tokenizer,
            prompts,
            model_key=loaded.fingerprint,
            cache_dir=cache_dir,
            decoding=decoding,
            batch_size=batch_size,
            progress=progress,
        )
        for name, prompts in prompt_sets.items()
    }


def read_policy_responses(
    path: Path, prompt_sets: Mapping[str, Sequence[EvalPrompt]]
) -> dict[str, list[ResponseRecord]]:
    """A responses-only policy's records, per benchmark; every selected prompt must be answered."""
    records = read_records(path, ResponseRecord, producer=path.parent.parent.name)
    by_prompt: dict[str, list[ResponseRecord]] = {}
    for record in records:
        by_prompt.setdefault(record.prompt_id, []).append(record)
    result = {}
    for name, prompts in prompt_sets.items():
        missing = [p.prompt_id for p in prompts if p.prompt_id not in by_prompt]
        if missing:
            raise ValueError(f"{path}: no response to {len(missing)} {name} prompts: {missing[:3]}")
        result[name] = [r for p in prompts for r in by_prompt[p.prompt_id]]
    return result


@dataclass(frozen=True)
class PolicyOutputs:
    """What one policy produced: responses per benchmark, responses to instruction prompts (for
    Table 3's general reward) and MMLU predictions; the last two only for policies with weights."""

    responses: dict[str, list[ResponseRecord]]
    instruction_responses: list[ResponseRecord] | None
    mmlu: pd.DataFrame | None


def collect_outputs(
    source: PolicySource,
    base_spec,
    prompt_sets: Mapping[str, Sequence[EvalPrompt]],
    *,
    instruction_prompts: Sequence[EvalPrompt] = (),
    mmlu_questions: Sequence[MmluQuestion] = (),
    mmlu_shots: int = 0,
    mmlu_fewshot: Sequence[MmluQuestion] = (),
    decoding: DecodingConfig,
    cache_dir: Path,
    batch_size: int,
    seed: int,
    generation_dtype: str | None = None,
    progress: bool = True,
) -> PolicyOutputs:
    """Load the policy once, generate (cached; from a copy in `generation_dtype` if given) and
    score MMLU (`mmlu_shots`-shot from the `mmlu_fewshot` dev questions, in the policy's own
    dtype), then let the model go."""
    loaded = load_policy(source, base_spec, seed=seed)
    options = {"decoding": decoding, "cache_dir": cache_dir, "batch_size": batch_size}
    generator = for_generation_of(loaded, generation_dtype)
    responses = policy_responses(source, generator, prompt_sets, progress=progress, **options)
    if loaded is None:
        return PolicyOutputs(responses, None, None)
    instructions = None
    if instruction_prompts:
        sets = {"instructions": instruction_prompts}
        instructions = policy_responses(source, generator, sets, progress=progress, **options)
        instructions = instructions["instructions"]
    mmlu = None
    if mmlu_questions:
        mmlu = mmlu_predictions(
            loaded.model,
            loaded.tokenizer,
            mmlu_questions,
            batch_size=batch_size,
            shots=mmlu_shots,
            fewshot=mmlu_fewshot,
            progress=progress,
        )
    return PolicyOutputs(responses, instructions, mmlu)


def response_summary(
    responses: Mapping[str, Mapping[str, Sequence[ResponseRecord]]],
) -> pd.DataFrame:
    """Per policy x benchmark: responses, mean tokens, share that ended their turn (at EOS or, for a
    model without a chat template, the next turn marker; `finished_at_eos`), empty ones."""
    rows = []
    for run, per_benchmark in responses.items():
        for benchmark, records in per_benchmark.items():
            rows.append(
                {
                    "run": run,
                    "benchmark": benchmark,
                    "responses": len(records),
                    "mean_tokens": float(np.mean([r.num_tokens for r in records])),
                    "finished_at_eos": float(np.mean([r.finished for r in records])),
                    "empty": sum(r.empty for r in records),
                }
            )
    return pd.DataFrame(rows)


# Judging.


def judge_policy(
    judge, source: PolicySource, benchmark: str, prompts: Sequence[EvalPrompt], responses
) -> list[dict]:
    """Long-format rows, one per response: who answered, which judge, its verdict."""
    text_of = {p.prompt_id: p.prompt for p in prompts}
    records: list[JudgeRecord] = judge.judge(
        [text_of[r.prompt_id] for r in responses], [r.text for r in responses]
    )
    return [
        {
            "run": source.run,
            "policy": source.policy,
            "seed": -1 if source.seed is None else source.seed,
            "benchmark": benchmark,
            "judge": record.judge,
            "prompt_id": response.prompt_id,
            "sample_index": response.sample_index,
            "unsafe": record.unsafe,
            "categories": ",".join(record.categories),
            "categories_available": judge.categories_available,
            "raw": record.raw,
        }
        for response, record in zip(responses, records, strict=True)
    ]


def judge_all(
    judge,
    policies: Sequence[PolicySource],
    prompt_sets: Mapping[str, Sequence[EvalPrompt]],
    outputs: Mapping[str, PolicyOutputs],
    benchmarks: Sequence[str],
) -> list[dict]:
    """`judge_policy` over every policy and benchmark."""
    return [
        row
        for source in policies
        for benchmark in benchmarks
        for row in judge_policy(
            judge,
            source,
            benchmark,
            prompt_sets[benchmark],
            outputs[source.run].responses[benchmark],
        )
    ]


# Statistics.


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def _nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    # NaN = an unparsed verdict, left out; all-NaN gives NaN (without numpy's warning).
    present = ~np.isnan(values)
    counts = present.sum(axis=axis)
    sums = np.where(present, values, 0.0).sum(axis=axis)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def point_estimate(values: np.ndarray) -> np.ndarray:
    """Mean over prompts per seed, then over seeds: `[k, n, J] -> [J]`."""
    return _nan_mean(_nan_mean(values, axis=1), axis=0)


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
            _nan_mean(values[seed_draws[:, t][:, None], rng.integers(n, size=(resamples, n))], 1)
            for t in range(k)
        ]
        result[group] = _nan_mean(np.stack(per_slot), axis=0)
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
    cube = values.reshape(1, -1, 1) if values.ndim == 1 else values[:, :, None]
    draws = bootstrap_means({"values": cube}, resamples=resamples, seed=seed)["values"][:, 0]
    return percentile_interval(draws, point_estimate(cube)[0], confidence)


def cohens_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary labelings: (p_o - p_e) / (1 - p_e); NaN when p_e = 1."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or not len(a):
        raise ValueError("kappa needs two non-empty labelings of the same items")
    observed = float(np.mean(a == b))
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return np.nan if expected == 1 else (observed - expected) / (1 - expected)


# Table 1.


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
    rows = []
    judges = list(dict.fromkeys(judgments["judge"]))
    for policy in dict.fromkeys(judgments["policy"]):
        of_policy = judgments[judgments["policy"] == policy]
        benchmarks = list(dict.fromkeys(of_policy["benchmark"]))
        cubes = {
            b: _verdict_cube(of_policy[of_policy["benchmark"] == b], judges) for b in benchmarks
        }
        draws = bootstrap_means(
            {b: cube for b, (cube, _) in cubes.items()},
            resamples=resamples,
            seed=stable_seed(seed, policy),
        )
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
    return pd.DataFrame(rows)


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
            for benchmark, items in [*groups, ("all", pair)]:
                a, b = items["unsafe_a"].astype(bool), items["unsafe_b"].astype(bool)
                rows.append(
                    {
                        "judge_a": first,
                        "judge_b": second,
                        "benchmark": benchmark,
                        "items": len(items),
                        "agreement": float((a == b).mean()) if len(items) else np.nan,
                        "kappa": cohens_kappa(a, b) if len(items) else np.nan,
                    }
                )
    return pd.DataFrame(rows)


# Table 2: hazard categories among unsafe outputs.


def category_codes(judge: str) -> tuple[str, ...]:
    """The hazard codes a judge's Table 2 reports: MD-Judge's O1-O6, else Llama Guard 2's S1-S11
    (which a judge without categories reports as unavailable)."""
    return tuple(f"O{i}" for i in range(1, 7)) if judge == "md_judge" else LLAMA_GUARD_2_CODES


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


# Fig 4: XSTest.


def xstest_rows(
    source: PolicySource, prompts: Sequence[EvalPrompt], responses, records: Sequence[XSTestRecord]
) -> list[dict]:
    label_of = {p.prompt_id: p.label for p in prompts}
    return [
        {
            "run": source.run,
            "policy": source.policy,
            "prompt_id": response.prompt_id,
            "prompt_label": label_of[response.prompt_id],
            "classifier": record.classifier,
            "response_class": record.label,
        }
        for response, record in zip(responses, records, strict=True)
    ]


def xstest_all(
    policies: Sequence[PolicySource],
    prompts: Sequence[EvalPrompt],
    outputs: Mapping[str, PolicyOutputs],
    llm_judge=None,
) -> pd.DataFrame:
    """Every policy's XSTest responses classified (string match unless `llm_judge` is given)."""
    from repsafe_lib.judges import classify_xstest

    text_of = {p.prompt_id: p.prompt for p in prompts}
    rows = []
    for source in policies:
        responses = outputs[source.run].responses["xstest"]
        records = classify_xstest(
            [text_of[r.prompt_id] for r in responses], [r.text for r in responses], llm_judge
        )
        rows += xstest_rows(source, prompts, responses, records)
    return pd.DataFrame(rows)


def xstest_shares(rows: pd.DataFrame) -> pd.DataFrame:
    """Per policy x prompt label: share of each response class among non-empty responses."""
    out = []
    for (policy, label), group in rows.groupby(["policy", "prompt_label"], sort=False):
        classified = group["response_class"].dropna()
        row = {"policy": policy, "prompts": label, "classifier": group["classifier"].iloc[0]}
        row |= {"responses": len(group), "empty": int(group["response_class"].isna().sum())}
        for name in RESPONSE_CLASSES:
            row[name] = float((classified == name).mean()) if len(classified) else np.nan
        out.append(row)
    return pd.DataFrame(out)


XSTEST_COLOURS = {
    "full_compliance": "#4c9a2a",
    "partial_refusal": "#e0b300",
    "full_refusal": "#c0392b",
}
XSTEST_HATCHES = {
    "full_compliance": "",
    "partial_refusal": "...",
    "full_refusal": "///",
}  # grayscale


def plot_xstest(shares: pd.DataFrame) -> plt.Figure:
    """Fig 4: stacked bars of compliance / partial / full refusal, safe and unsafe prompts."""
    use_style()
    panels = [label for label in ("safe", "unsafe") if label in set(shares["prompts"])]
    policies = list(dict.fromkeys(shares["policy"]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(policies) + 1.4), squeeze=False
    )
    for ax, label in zip(axes[0], panels, strict=True):
        part = shares[shares["prompts"] == label].set_index("policy").reindex(policies)
        left = np.zeros(len(policies))
        for name in RESPONSE_CLASSES:
            widths = part[name].fillna(0).to_numpy()
            ax.barh(
                policies,
                widths,
                left=left,
                color=XSTEST_COLOURS[name],
                hatch=XSTEST_HATCHES[name],
                edgecolor="#333333",
                linewidth=0,
                label=name,
            )
            left += widths
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(f"XSTest {label} prompts")
        ax.set_xlabel(f"share of responses ({part['classifier'].iloc[0]})")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7)
    return fig


# Table 3: over-alignment.

MMLU_HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"


def mmlu_question_text(question: MmluQuestion) -> str:
    """One question as lm-evaluation-harness writes it: the question, its options, "Answer:"."""
    options = "".join(
        f"\n{letter}. {choice}"
        for letter, choice in zip(MMLU_LETTERS, question.choices, strict=True)
    )
    return f"{question.question.strip()}{options}\nAnswer:"


def mmlu_shots(
    questions: Sequence[MmluQuestion], dev: Sequence[MmluQuestion], shots: int
) -> list[tuple[MmluQuestion, ...]]:
    """Each question's examples: the first `shots` dev questions of its subject, in dev order."""
    by_subject: dict[str, list[MmluQuestion]] = {}
    for example in dev:
        by_subject.setdefault(example.subject, []).append(example)
    return [tuple(by_subject.get(q.subject, [])[:shots]) for q in questions]


def mmlu_prompt(question: MmluQuestion, shots: Sequence[MmluQuestion] = ()) -> str:
    """The MMLU prompt of Hendrycks et al. (2021) as lm-evaluation-harness builds it: the subject's
    description line, then each shot answered ("Answer: B") and followed by a blank line, then the
    question; the answer follows as " A".." D". Without shots this is the zero-shot prompt."""
    header = MMLU_HEADER.format(subject=question.subject.replace("_", " "))
    examples = "".join(f"{mmlu_question_text(s)} {MMLU_LETTERS[s.answer]}\n\n" for s in shots)
    return f"{header}{examples}{mmlu_question_text(question)}"


def joint_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of `context` (with the tokenizer's special tokens) and of `continuation` after it,
    split from one tokenization of the two together, as lm-evaluation-harness does: a SentencePiece
    tokenizer writes " A" alone as two pieces ("▁", "▁A") but after "Answer:" as one. Whitespace
    that ends the context moves to the continuation; the split is where the joint ids stop
    matching the context's own (its length, whenever the context's ids are a prefix)."""
    kept = context.rstrip()
    whole = tokenizer(kept + context[len(kept) :] + continuation)["input_ids"]
    alone = tokenizer(kept)["input_ids"]
    split = 0
    while split < min(len(alone), len(whole) - 1) and alone[split] == whole[split]:
        split += 1
    return whole[:split], whole[split:]


def _forward_last_logprobs(model, sequences: Sequence[Sequence[int]], pad_id: int, keep: int):
    """Log-probabilities at the last `keep` positions of left-padded `sequences`, `[B, keep, V]`."""
    device = next(model.parameters()).device
    ids, mask = pad_batch(sequences, pad_id, side="left")
    logits = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=position_ids_from_mask(mask).to(device),
        logits_to_keep=keep,
    ).logits.float()
    return torch.log_softmax(logits, dim=-1).cpu()


@torch.inference_mode()
def pair_logprobs(
    model,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = True,
) -> np.ndarray:
    """log p(continuation ids | context ids) summed over the continuation, per pair, `[n]`."""
    scores = np.zeros(len(pairs))
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc="log-likelihoods", disable=not progress):
        batch = pairs[start : start + batch_size]
        keep = max(len(x) for _, x in batch) + 1
        logprobs = _forward_last_logprobs(model, [[*c, *x] for c, x in batch], pad_id, keep)
        for row, (_, continuation) in enumerate(batch):
            steps = range(keep - len(continuation) - 1, keep - 1)
            scores[start + row] = sum(
                logprobs[row, s, t].item() for s, t in zip(steps, continuation, strict=True)
            )
    return scores


def continuation_logprobs(
    model,
    tokenizer,
    contexts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int,
    progress: bool = True,
) -> np.ndarray:
    """log p(continuation | context) summed over the continuation's tokens, `[n]`.

    Context and continuation are tokenized together and split (`joint_tokens`). Left padding with
    positions counted over real tokens; only the last logits are computed.
    """
    pairs = [joint_tokens(tokenizer, c, x) for c, x in zip(contexts, continuations, strict=True)]
    return pair_logprobs(
        model, pairs, pad_id=tokenizer.pad_token_id, batch_size=batch_size, progress=progress
    )


@torch.inference_mode()
def next_token_rows(
    model,
    contexts: Sequence[Sequence[int]],
    token_ids: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """log p(token | context) for each context's own candidate tokens, `[n, k]`: one forward per
    context."""
    scores = []
    starts = range(0, len(contexts), batch_size)
    for start in tqdm(starts, desc="next-token log-likelihoods", disable=not progress):
        logprobs = _forward_last_logprobs(model, contexts[start : start + batch_size], pad_id, 1)
        candidates = torch.as_tensor(token_ids[start : start + batch_size], dtype=torch.long)
        scores.append(logprobs[:, -1].gather(1, candidates).numpy())
    return np.concatenate(scores).astype(float)


def next_token_logprobs(
    model,
    tokenizer,
    contexts: Sequence[str],
    token_ids: Sequence[int],
    *,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """log p(token | context) for each context and each of `token_ids`, `[n, len(token_ids)]`:
    `continuation_logprobs` for one-token continuations, with one forward per context."""
    encoded = [tokenizer(c)["input_ids"] for c in contexts]
    return next_token_rows(
        model,
        encoded,
        [list(token_ids)] * len(encoded),
        pad_id=tokenizer.pad_token_id,
        batch_size=batch_size,
        progress=progress,
    )


def mmlu_predictions(
    model,
    tokenizer,
    questions: Sequence[MmluQuestion],
    *,
    batch_size: int,
    shots: int = 0,
    fewshot: Sequence[MmluQuestion] = (),
    progress: bool = True,
) -> pd.DataFrame:
    """Per question: the letter with the highest log-likelihood after the prompt, and the answer.

    `shots` > 0: each prompt starts with that many answered questions of its subject from
    `fewshot` (MMLU's dev split), the paper's 5-shot setting. Each letter " A".." D" is scored from
    the joint tokenization of prompt and letter; when each is one token after the same prompt ids
    (as in Llama and SmolLM2 tokenizers) one forward per question scores all four, otherwise each
    letter's tokens are scored in turn.
    """
    if shots and not fewshot:
        raise ValueError(f"{shots}-shot MMLU needs the few-shot (dev) questions")
    examples = mmlu_shots(questions, fewshot, shots)
    contexts = [mmlu_prompt(q, s) for q, s in zip(questions, examples, strict=True)]
    pairs = [[joint_tokens(tokenizer, c, f" {x}") for x in MMLU_LETTERS] for c in contexts]
    options = {"pad_id": tokenizer.pad_token_id, "batch_size": batch_size, "progress": progress}
    one_forward = all(
        all(ctx == row[0][0] and len(letter) == 1 for ctx, letter in row) for row in pairs
    )
    if one_forward:
        scores = next_token_rows(
            model,
            [row[0][0] for row in pairs],
            [[letter[0] for _, letter in row] for row in pairs],
            **options,
        )
    else:
        flat = [pair for row in pairs for pair in row]
        scores = pair_logprobs(model, flat, **options).reshape(len(questions), len(MMLU_LETTERS))
    predicted = scores.argmax(axis=1)
    return pd.DataFrame(
        {
            "question_id": [q.question_id for q in questions],
            "subject": [q.subject for q in questions],
            "answer": [MMLU_LETTERS[q.answer] for q in questions],
            "predicted": [MMLU_LETTERS[i] for i in predicted],
            "correct": [int(i) == q.answer for i, q in zip(predicted, questions, strict=True)],
            **{f"logp_{letter}": scores[:, i] for i, letter in enumerate(MMLU_LETTERS)},
        }
    )


@torch.inference_mode()
def reward_scores(
    model, tokenizer, prompts: Sequence[str], responses: Sequence[str], *, batch_size: int
) -> np.ndarray:
    """Scalar scores of a sequence-classification reward model (logit 0), `[n]`.

    With a chat template the pair is rendered as a user/assistant conversation; without one it is
    passed as a text pair (question, answer), the input of reward models such as
    OpenAssistant's deberta-v3-large-v2.
    """
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(prompts), batch_size):
        questions = list(prompts[start : start + batch_size])
        answers = list(responses[start : start + batch_size])
        if tokenizer.chat_template:
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                    tokenize=False,
                )
                for q, a in zip(questions, answers, strict=True)
            ]
            inputs = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        else:
            inputs = tokenizer(
                questions, answers, padding=True, truncation=True, return_tensors="pt"
            )
        scores.extend(_classifier_scores(model, inputs.to(device)))
    return np.asarray(scores)


@torch.inference_mode()
def _classifier_scores(model, inputs) -> list[float]:
    """Logit 0 of each text. A decoder classifier reads the last token that is not its pad id;
    where that id also ends a text (a pad token borrowed from EOS, with a chat template that ends
    the turn with EOS, as Llama-3's does), it would read the token before, so those texts are
    scored alone, unpadded, at their true last token."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    pad_token_id = model.config.pad_token_id
    last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)
    if pad_token_id is None or not (ids[torch.arange(len(ids)), last] == pad_token_id).any():
        return model(**inputs).logits.float()[:, 0].cpu().tolist()
    model.config.pad_token_id = None
    try:  # without a pad id, a classifier reads a lone text's last token
        return [
            float(model(input_ids=ids[i, mask[i].bool()][None]).logits.float()[0, 0])
            for i in range(len(ids))
        ]
    finally:
        model.config.pad_token_id = pad_token_id


def load_reward_model(spec):
    """A hub or local sequence-classification reward model and its tokenizer, in eval mode."""
    from transformers import AutoModelForSequenceClassification

    options = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    source = pretrained_source(spec)
    model = AutoModelForSequenceClassification.from_pretrained(
        source, dtype=DTYPES[spec.dtype], **options
    )
    tokenizer = AutoTokenizer.from_pretrained(spec.tokenizer_source or source, **options)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:  # a decoder classifier finds each row's last token by it
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(pick_device(spec.device)).eval(), tokenizer


def general_reward(
    spec,
    instruction_prompts: Sequence[EvalPrompt],
    outputs: Mapping[str, PolicyOutputs],
    *,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Reward-model scores of each policy's responses to the instruction prompts."""
    model, tokenizer = load_reward_model(spec)
    text_of = {p.prompt_id: p.prompt for p in instruction_prompts}
    scores = {}
    for run, produced in outputs.items():
        if produced.instruction_responses is None:
            continue
        records = produced.instruction_responses
        scores[run] = reward_scores(
            model,
            tokenizer,
            [text_of[r.prompt_id] for r in records],
            [r.text for r in records],
            batch_size=batch_size,
        )
    return scores


def table3(
    mmlu: Mapping[str, pd.DataFrame],
    general_rewards: Mapping[str, Mapping[str, np.ndarray]],
    *,
    resamples: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Per run: MMLU accuracy with its interval, the mean score of each general reward model
    (`general_rewards[model name][run]`; a column per model, as the paper's RM-deberta and FsfairX,
    "unavailable" where a run has no scores or no model is configured), and the paper's MMLU
    numbers beside."""
    rows = []
    for run, predictions in mmlu.items():
        correct = predictions["correct"].to_numpy(dtype=float)
        interval = bootstrap_ci(
            correct, resamples=resamples, confidence=confidence, seed=stable_seed(seed, run)
        )
        rewards = {
            f"general_reward · {model}": _mean_text(scores.get(run))
            for model, scores in general_rewards.items()
        }
        rows.append(
            {
                "policy": run,
                "mmlu_questions": len(predictions),
                "mmlu_accuracy": interval.estimate,
                "mmlu_ci_low": interval.low,
                "mmlu_ci_high": interval.high,
                **(rewards or {"general_reward": UNAVAILABLE}),
                "paper_mmlu_llama2_7b": PAPER_MMLU.get(_SEED_SUFFIX.sub(r"\g<name>", run), np.nan),
            }
        )
    return pd.DataFrame(rows)


def _mean_text(scores: np.ndarray | None) -> str:
    return UNAVAILABLE if scores is None else f"{np.mean(scores):.3f}"


# Fig 1: per-layer reward accuracy after alignment.

FIG1_ALIGNED_RUN = "cdpo"  # the paper's cDPO (notebook 04): one R_h, refreshed during training


def saved_hybrid_rewards(run_dir: str | Path) -> list[HybridReward]:
    """The hybrid rewards a cDPO run saved when it finished (`hybrid_reward-<k>`, one per
    confidence fold), in the order of k; empty when there are none."""
    stems = sorted(
        Path(run_dir).glob("hybrid_reward-*.json"), key=lambda p: int(p.stem.split("-")[-1])
    )
    return [load_hybrid_reward(p.with_suffix("")) for p in stems]


@torch.no_grad()
def layer_pairwise_accuracies(
    reward: HybridReward, chosen_states: torch.Tensor, rejected_states: torch.Tensor
) -> np.ndarray:
    """Each layer's scorer alone as a reward: share of pairs with s_l(h_c) > s_l(h_r), `[L]`;
    NaN for a degenerate (inactive) layer, which scores every response alike."""
    right = reward.layer_scores(chosen_states) > reward.layer_scores(rejected_states)
    accuracy = right.float().mean(dim=0).numpy().astype(float)
    return np.where(reward.active.numpy(), accuracy, np.nan)


@torch.no_grad()
def reward_accuracy_by_layer(
    rewards: Sequence[HybridReward],
    chosen_states: torch.Tensor,
    rejected_states: torch.Tensor,
    *,
    stage: str,
) -> pd.DataFrame:
    """Fig 1's reward series: pairwise accuracy of every layer's scorer and of the gated R_h on
    the given pairs' states `[n, L, d]`, one row each, averaged over `rewards` (several when a run
    cross-fitted one R_h per fold), with their min and max."""
    layers = list(rewards[0].config.layers)
    per_layer = np.stack(
        [layer_pairwise_accuracies(r, chosen_states, rejected_states) for r in rewards]
    )
    gated = np.array([pairwise_accuracy(r(chosen_states), r(rejected_states)) for r in rewards])
    rows = [("layer", layer, per_layer[:, i]) for i, layer in enumerate(layers)]
    rows.append(("hybrid reward", None, gated))
    return pd.DataFrame(
        [
            {
                "stage": stage,
                "scorer": scorer,
                "layer": layer,
                "pairwise_accuracy": _nan_mean(values, axis=0).item(),
                "min": np.nanmin(values) if np.isfinite(values).any() else np.nan,
                "max": np.nanmax(values) if np.isfinite(values).any() else np.nan,
                "rewards": len(rewards),
                "pairs": len(chosen_states),
            }
            for scorer, layer, values in rows
        ]
    ).astype({"layer": "Int64"})


def alignment_reward_accuracy(run, params, aligned_run: str = FIG1_ALIGNED_RUN) -> pd.DataFrame:
    """Fig 1's reward series before and after alignment on notebook 00's held-out pairs: notebook
    03's R_h on the base policy's states (notebook 01), and the refreshed R_h that notebook 04's
    `aligned_run` saved, on the states of that run's trained policy (extracted here, cached in
    `run.path("states")`). `run` is the calling notebook's `artifacts.Run`."""
    examples = read_records(
        run.upstream("01_representations", "examples.jsonl"),
        StateExample,
        producer="01_representations",
    )
    base_states, state_layers = load_states(
        run.upstream("01_representations", "states.json").parent
    )
    chosen_rows, rejected_rows = pair_rows(
        examples, np.flatnonzero([e.split == "test" for e in examples])
    )
    before = load_hybrid_reward(
        run.upstream("03_hybrid_reward", "hybrid_reward.json").with_suffix("")
    )
    if list(before.config.layers) != state_layers:
        raise ValueError("notebook 03's R_h reads other layers than notebook 01's states: rerun 03")
    policy_dir = run.upstream("04_training", f"{aligned_run}/policy/config.json").parent
    after = saved_hybrid_rewards(policy_dir.parent)
    if not after:
        raise FileNotFoundError(f"04_training/{aligned_run} saved no hybrid reward: rerun 04")
    aligned = load_saved_policy(policy_dir, params.model, name=aligned_run)
    texts = [
        format_conversation(aligned.tokenizer, examples[i].prompt, examples[i].response)
        for i in (*chosen_rows, *rejected_rows)
    ]
    aligned_states = cached_hidden_states(
        aligned.model,
        aligned.tokenizer,
        texts,
        model_fingerprint=aligned.fingerprint,
        cache_dir=run.path("states"),
        layers=list(after[0].config.layers),
        max_length=params.extraction.max_length,
        batch_size=params.extraction.batch_size,
    ).states
    n_pairs = len(chosen_rows)
    before_rows = reward_accuracy_by_layer(
        [before], base_states[chosen_rows], base_states[rejected_rows], stage="before alignment"
    )
    after_rows = reward_accuracy_by_layer(
        after, aligned_states[:n_pairs], aligned_states[n_pairs:], stage="after alignment"
    )
    return pd.concat([before_rows, after_rows], ignore_index=True)
