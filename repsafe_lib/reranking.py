"""Re-ranking sampled responses by a reward (paper Sec 3.4, 4.2; Table 1 RS*, DPO*, cDPO*; Table 2).

Samples are `ResponseRecord`s, several per prompt; a reward scores each one. From the scores:

- best-of-N (RS*): each prompt's top-scoring sample;
- top-k: each prompt's k best samples (Table 2 compares the toxic rate of those chosen by R_h and
  by a trained reward model);
- re-ranked preference pairs (DPO*, cDPO*): per prompt, the i-th best sample against the i-th
  worst, i = 1..k, so no sample is paired with itself and 2k samples are needed.

Empty generations are never ranked (a blank answer is neither safe nor an answer); pairs of equal
score or identical text carry no preference and are skipped. Ties in score go to the lower sample
index, so every selection is deterministic. Table 2's comparison of the two rewards is in
`reward_comparison`; Fig 6's strategies are below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.hidden_states import extract_hidden_states, format_conversation
from repsafe_lib.hybrid_reward import HybridReward
from repsafe_lib.loaders import subsample
from repsafe_lib.records import EvalPrompt, PreferencePair
from repsafe_lib.sampling import ResponseRecord


def _ranked_by_prompt(
    records: Sequence[ResponseRecord], scores: Sequence[float]
) -> dict[str, list[int]]:
    """Indices into `records` per prompt (in order of first appearance), best first; empty
    generations left out."""
    if len(records) != len(scores):
        raise ValueError(f"{len(records)} samples but {len(scores)} scores")
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.prompt_id, [])
        if not record.empty:
            groups[record.prompt_id].append(index)
    return {
        prompt_id: sorted(indices, key=lambda i: (-float(scores[i]), records[i].sample_index))
        for prompt_id, indices in groups.items()
    }


def top_k(records: Sequence[ResponseRecord], scores: Sequence[float], k: int) -> list[int]:
    """Indices of each prompt's `k` best non-empty samples, prompts in order of first appearance."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = _ranked_by_prompt(records, scores)
    return [i for indices in ranked.values() for i in indices[:k]]


def best_of_n(records: Sequence[ResponseRecord], scores: Sequence[float]) -> list[int]:
    """Index of each prompt's top-scoring non-empty sample (RS*); a prompt whose samples are all
    empty keeps its first sample, so every prompt is answered."""
    ranked = _ranked_by_prompt(records, scores)
    first = {}
    for index, record in enumerate(records):
        first.setdefault(record.prompt_id, index)
    return [indices[0] if indices else first[p] for p, indices in ranked.items()]


def rerank_indices(
    records: Sequence[ResponseRecord], scores: Sequence[float], *, k: int
) -> list[tuple[int, int]]:
    """Per prompt, (i-th best, i-th worst) indices into `records` for i = 1..k among its non-empty
    samples, while the two are distinct samples with a strictly higher score for the first and
    different texts."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    found = []
    for ranked in _ranked_by_prompt(records, scores).values():
        for i in range(min(k, len(ranked) // 2)):
            best, worst = ranked[i], ranked[-1 - i]
            if (
                float(scores[best]) > float(scores[worst])
                and records[best].text != records[worst].text
            ):
                found.append((best, worst))
    return found


def rerank_pairs(
    records: Sequence[ResponseRecord],
    scores: Sequence[float],
    prompts: Mapping[str, str],
    *,
    k: int,
) -> list[PreferencePair]:
    """The pairs of `rerank_indices` as preference pairs (chosen = the better-scored sample);
    `prompts` maps a prompt id to its text."""
    pairs = []
    for best, worst in rerank_indices(records, scores, k=k):
        chosen, rejected = records[best], records[worst]
        pair_id = f"{chosen.prompt_id}:s{chosen.sample_index}>s{rejected.sample_index}"
        pairs.append(
            PreferencePair(pair_id, prompts[chosen.prompt_id], chosen.text, rejected.text, ())
        )
    return pairs


def pair_score_gaps(
    records: Sequence[ResponseRecord], scores: torch.Tensor, *, k: int
) -> torch.Tensor:
    """Score of the chosen minus the rejected sample of each `rerank_pairs` pair `[pairs]`, the
    difference taken in the scores' own dtype."""
    paired = rerank_indices(records, scores, k=k)
    return torch.tensor([float(scores[best] - scores[worst]) for best, worst in paired])


def best_of_n_responses(
    samples_by_set: Mapping[str, Sequence[ResponseRecord]],
    scores_by_set: Mapping[str, torch.Tensor],
) -> list[ResponseRecord]:
    """RS*'s answers: the `best_of_n` sample of every prompt of each named set, set by set."""
    chosen = []
    for name, samples in samples_by_set.items():
        chosen += [samples[i] for i in best_of_n(samples, scores_by_set[name].tolist())]
    return chosen


def hybrid_reward_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Mapping[str, str],
    records: Sequence[ResponseRecord],
    reward: HybridReward,
    *,
    max_length: int,
    batch_size: int,
    progress: bool = True,
) -> torch.Tensor:
    """`R_h` of every sample `[n]`: one forward of prompt + response through `model` (the policy
    that the reward's states come from), the last token's state of the reward's layers."""
    states = _sample_states(
        model, tokenizer, prompts, records, reward, max_length, batch_size, progress
    )
    with torch.no_grad():
        return reward(states).cpu()


def hybrid_layer_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Mapping[str, str],
    records: Sequence[ResponseRecord],
    reward: HybridReward,
    *,
    max_length: int,
    batch_size: int,
    progress: bool = True,
) -> torch.Tensor:
    """Every layer scorer's own score s_l of every sample `[n, L]`, from the same forward as
    `hybrid_reward_scores` (`reward.mix` of these is R_h)."""
    states = _sample_states(
        model, tokenizer, prompts, records, reward, max_length, batch_size, progress
    )
    with torch.no_grad():
        return reward.layer_scores(states).cpu()


def _sample_states(model, tokenizer, prompts, records, reward, max_length, batch_size, progress):
    texts = [format_conversation(tokenizer, prompts[r.prompt_id], r.text) for r in records]
    return extract_hidden_states(
        model,
        tokenizer,
        texts,
        layers=list(reward.config.layers),
        max_length=max_length,
        batch_size=batch_size,
        progress=progress,
    )


def train_prompts(
    pairs: Sequence[PreferencePair], limit: int | None, seed: int, *, benchmark: str = "train"
) -> list[EvalPrompt]:
    """The distinct prompts of preference pairs as `EvalPrompt`s (id: the first pair's id) of
    `benchmark`, at most `limit` of them (a seeded choice in file order)."""
    seen: dict[str, EvalPrompt] = {}
    for pair in pairs:
        seen.setdefault(pair.prompt, EvalPrompt(pair.pair_id, pair.prompt, benchmark, None, None))
    return subsample(list(seen.values()), limit, seed)


# Fig 6 in the paper's form (Sec 4.8): toxic rate of the top-k samples each reward strategy picks.

FIG6_RANDOM_DRAWS = 100  # the random layer's rate is a mean over this many seeded draws
FIG6_STRATEGIES = {
    "best_layer": "best layer (oracle)",
    "worst_layer": "worst layer (oracle)",
    "last_layer": "last layer",
    "random_layer": "random layer",
    "ours": "ours (gated R_h)",
}


@dataclass(frozen=True)
class LayerScoredResponse:
    """One sample of Fig 6's data: the gated R_h and each active layer scorer's own score."""

    benchmark: str
    prompt_id: str
    sample_index: int
    prompt: str
    text: str
    empty: bool
    hybrid_reward: float
    layers: tuple[int, ...]  # the R_h's active layers, shallow to deep
    layer_scores: tuple[float, ...]  # s_l of each of `layers`


def layer_scored_responses(
    samples_by_set: Mapping[str, Sequence[ResponseRecord]],
    layer_scores: Mapping[str, torch.Tensor],
    reward: HybridReward,
    prompts: Mapping[str, str],
) -> list[LayerScoredResponse]:
    """Fig 6's rows: every sample with its prompt's text (`prompts[prompt_id]`), R_h and its active
    layers' scores (`layer_scores[name]` is `hybrid_layer_scores` of `samples_by_set[name]`,
    `[n, L]`)."""
    active = reward.active.cpu()
    layers = tuple(
        int(x) for x, on in zip(reward.config.layers, active.tolist(), strict=True) if on
    )
    rows = []
    for name, samples in samples_by_set.items():
        scores = layer_scores[name]
        with torch.no_grad():
            hybrid = reward.mix(scores.to(reward.bias.device)).cpu()
        for sample, row, r_h in zip(samples, scores[:, active], hybrid, strict=True):
            rows.append(
                LayerScoredResponse(
                    name,
                    sample.prompt_id,
                    sample.sample_index,
                    prompts[sample.prompt_id],
                    sample.text,
                    sample.empty,
                    float(r_h),
                    layers,
                    tuple(float(v) for v in row),
                )
            )
    return rows


def strategy_scores(
    layer_scores: np.ndarray, hybrid: np.ndarray, unsafe: np.ndarray, random_layers: np.ndarray
) -> dict[str, np.ndarray]:
    """Each Fig 6 strategy's score of every sample `[n]` from the layer scores `[n, L]`.

    best: per sample, the layer that agrees most with the judge (the highest layer score for a
    response judged safe, the lowest for one judged unsafe): the oracle upper bound; worst: the
    layer that disagrees most (the lower bound); last: the deepest layer; random: the layer
    `random_layers[i]` (drawn uniformly per sample); ours: the gated R_h. `unsafe` holds 1, 0 or
    NaN (unparsed: the oracles then use the mean over layers, as no layer is known to be right).
    """
    high, low, mean = layer_scores.max(axis=1), layer_scores.min(axis=1), layer_scores.mean(axis=1)
    parsed = ~np.isnan(unsafe)
    is_unsafe = parsed & (np.nan_to_num(unsafe) > 0.5)
    best = np.where(parsed, np.where(is_unsafe, low, high), mean)
    worst = np.where(parsed, np.where(is_unsafe, high, low), mean)
    return {
        "best_layer": best,
        "worst_layer": worst,
        "last_layer": layer_scores[:, -1],
        "random_layer": layer_scores[np.arange(len(layer_scores)), random_layers],
        "ours": hybrid,
    }


def _toxic_rate(unsafe: np.ndarray, chosen: Sequence[int]) -> tuple[float, int]:
    picked = unsafe[list(chosen)]
    parsed = picked[~np.isnan(picked)]
    return (float(parsed.mean()) if len(parsed) else np.nan), int(len(picked) - len(parsed))


def fig6_toxic_rates(
    samples: Sequence[LayerScoredResponse],
    unsafe: Sequence[bool | None],
    *,
    k: int,
    judge: str,
    random_draws: int,
    seed: int,
) -> pd.DataFrame:
    """Toxic rate of each prompt's top-`k` samples by every strategy of `strategy_scores`, and of
    all samples; `unsafe[i]` is the judge's verdict on `samples[i]` (None: unparsed, left out of
    the rate). The random layer is drawn `random_draws` times (seeded): its row is the mean rate,
    with the min and max over draws."""
    if random_draws < 1:
        raise ValueError(f"random_draws must be >= 1, got {random_draws}")
    verdicts = np.array([np.nan if u is None else float(u) for u in unsafe])
    scores = np.array([s.layer_scores for s in samples], dtype=float)
    hybrid = np.array([s.hybrid_reward for s in samples])
    rng = np.random.default_rng(seed)
    draws = rng.integers(scores.shape[1], size=(random_draws, len(samples)))
    rates: dict[str, list[float]] = {key: [] for key in FIG6_STRATEGIES}
    unparsed: dict[str, int] = {}
    for drawn in draws:
        for key, score in strategy_scores(scores, hybrid, verdicts, drawn).items():
            if key != "random_layer" and rates[key]:
                continue  # only the random layer changes between draws
            rate, unparsed[key] = _toxic_rate(verdicts, _top_k_per_benchmark(samples, score, k))
            rates[key].append(rate)
    everything, unparsed_all = _toxic_rate(verdicts, range(len(samples)))
    rows = [
        _fig6_row(FIG6_STRATEGIES[key], np.array(values), unparsed[key], k, judge)
        for key, values in rates.items()
    ]
    rows.append(_fig6_row("all samples", np.array([everything]), unparsed_all, None, judge))
    prompts = len({(s.benchmark, s.prompt_id) for s in samples})
    benchmarks = "+".join(dict.fromkeys(s.benchmark for s in samples))
    return pd.DataFrame(rows).assign(prompts=prompts, benchmarks=benchmarks)


def _top_k_per_benchmark(
    samples: Sequence[LayerScoredResponse], scores: np.ndarray, k: int
) -> list[int]:
    """`top_k` within each benchmark, so prompts of two sets never share a ranking."""
    chosen = []
    for benchmark in dict.fromkeys(s.benchmark for s in samples):
        rows = [i for i, s in enumerate(samples) if s.benchmark == benchmark]
        picked = top_k([samples[i] for i in rows], scores[rows].tolist(), k)
        chosen += [rows[i] for i in picked]
    return chosen


def _fig6_row(strategy: str, rates: np.ndarray, unparsed: int, k: int | None, judge: str) -> dict:
    return {
        "strategy": strategy,
        "judge": judge,
        "top_k": k,
        "toxic_rate": float(np.mean(rates)),
        "min": float(np.min(rates)),
        "max": float(np.max(rates)),
        "draws": len(rates),
        "unparsed": unparsed,
    }
