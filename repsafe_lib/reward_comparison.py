"""Table 2 (paper Sec 4.5): which samples R_h and a trained reward model pick, before and after
alignment.

Every sample of the Table 1 benchmarks carries both scores (`ScoredResponse`): R_h of the policy
that answered (the base policy "before", the cDPO* policy with its refreshed R_h "after") and the
conventional reward model's (`reward_model`). Table 2 compares the toxic rate of each prompt's
top-k samples by either reward with that of all N samples, as a judge labels them; with the refusal
proxy the toxic rate is the share answered without refusal and hazard categories are unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from repsafe_lib.reranking import top_k
from repsafe_lib.sampling import ResponseRecord


@dataclass(frozen=True)
class ScoredResponse:
    """One sample of Table 2's data: who answered which prompt, and both rewards' scores."""

    stage: str  # "before" (the base policy) or "after" (the aligned policy)
    benchmark: str
    prompt_id: str
    sample_index: int
    text: str
    num_tokens: int
    empty: bool
    hybrid_reward: float
    reward_model: float


def scored_responses(
    stage: str,
    samples_by_set: Mapping[str, Sequence[ResponseRecord]],
    hybrid_scores: Mapping[str, Sequence[float]],
    reward_model_scores: Mapping[str, Sequence[float]],
) -> list[ScoredResponse]:
    """Table 2's rows for one stage: every sample of each benchmark with its two scores."""
    return [
        ScoredResponse(
            stage,
            name,
            s.prompt_id,
            s.sample_index,
            s.text,
            s.num_tokens,
            s.empty,
            float(h),
            float(r),
        )
        for name, samples in samples_by_set.items()
        for s, h, r in zip(samples, hybrid_scores[name], reward_model_scores[name], strict=True)
    ]


def table2_selections(
    samples: Sequence[ScoredResponse], ks: Sequence[int], num_samples: int
) -> dict[str, list[int]]:
    """Which samples each Table 2 row judges: `top-k-ours` (by R_h), `top-k-rm` (by the reward
    model) per k, and `sample-N` (all of them), each within one stage."""
    hybrid = [s.hybrid_reward for s in samples]
    trained = [s.reward_model for s in samples]
    rows = {}
    for k in ks:
        rows[f"top-{k}-ours"] = top_k(samples, hybrid, k)
        rows[f"top-{k}-rm"] = top_k(samples, trained, k)
    rows[f"sample-{num_samples}"] = list(range(len(samples)))
    return rows


def table2(
    samples: Sequence[ScoredResponse],
    verdicts: Sequence,
    *,
    judge: str,
    categories_available: bool,
    codes: Sequence[str],
    ks: Sequence[int],
    num_samples: int,
) -> pd.DataFrame:
    """Toxic rate and hazard-category shares among unsafe answers for every selection of every
    stage; `verdicts[i]` is the judge's `JudgeRecord` of `samples[i]`."""
    from repsafe_lib.evaluation import category_shares

    rows = []
    for stage in dict.fromkeys(s.stage for s in samples):
        in_stage = [i for i, s in enumerate(samples) if s.stage == stage]
        stage_samples = [samples[i] for i in in_stage]
        for label, chosen in table2_selections(stage_samples, ks, num_samples).items():
            for local in chosen:
                record = verdicts[in_stage[local]]
                rows.append(
                    {
                        "policy": f"{stage}: {label}",
                        "judge": judge,
                        "unsafe": record.unsafe,
                        "categories": ",".join(record.categories),
                        "categories_available": categories_available,
                    }
                )
    judgments = pd.DataFrame(rows)
    shares = category_shares(judgments, judge, codes)
    counts = judgments.groupby("policy", sort=False).size()
    return shares.assign(samples=shares["policy"].map(counts)).rename(
        columns={"policy": "selection"}
    )


def judge_table2(
    samples: Sequence[ScoredResponse],
    prompts: Mapping[str, str],
    evaluation,
    *,
    ks: Sequence[int],
    num_samples: int,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """Table 2 by every judge of `evaluation.judges` (a `params.EvaluationParams`), each judge
    loaded in turn; `prompts` maps a prompt id to its text."""
    from repsafe_lib.judges import build_judge, category_codes

    tables = {}
    for name in evaluation.judges:
        judge = build_judge(name, evaluation, seed=seed)
        verdicts = judge.judge([prompts[s.prompt_id] for s in samples], [s.text for s in samples])
        tables[name] = table2(
            samples,
            verdicts,
            judge=name,
            categories_available=judge.categories_available,
            codes=category_codes(name),
            ks=ks,
            num_samples=num_samples,
        )
        del judge  # an LLM judge leaves memory before the next one loads
    return tables


def reward_agreement(samples: Sequence[ScoredResponse], num_samples: int) -> pd.DataFrame:
    """Per stage: how often R_h and the reward model pick the same best sample of a prompt, and
    the Spearman correlation of their scores over all samples."""
    rows = []
    for stage in dict.fromkeys(s.stage for s in samples):
        in_stage = [s for s in samples if s.stage == stage]
        hybrid = [s.hybrid_reward for s in in_stage]
        trained = [s.reward_model for s in in_stage]
        picks = zip(top_k(in_stage, hybrid, 1), top_k(in_stage, trained, 1), strict=True)
        prompts = len(in_stage) // num_samples
        rows.append(
            {
                "stage": stage,
                "prompts": prompts,
                "same top-1": sum(a == b for a, b in picks) / max(1, prompts),
                "rank correlation": pd.Series(hybrid).corr(pd.Series(trained), method="spearman"),
            }
        )
    return pd.DataFrame(rows)
