"""Every policy's answers labelled by every configured judge (paper Sec 4.3, Table 1-2), and the
reference samples of Fig 6 (Sec 4.8) labelled by the same judges.

Judgments are a long table, one row per (policy run, benchmark, response, judge); each judge is
loaded once and let go before the next one loads (a 7-8B judge fills an accelerator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from repsafe_lib import reranking
from repsafe_lib.evaluation.policies import PolicySource
from repsafe_lib.judges import JudgeRecord, build_judge
from repsafe_lib.records import EvalPrompt

if TYPE_CHECKING:
    from repsafe_lib.evaluation.responses import PolicyOutputs

XSTEST = "xstest"  # Fig 4's benchmark: its safe prompts make a toxic rate meaningless


def table1_benchmarks(prompt_sets: Mapping[str, Sequence[EvalPrompt]]) -> list[str]:
    """The benchmarks Table 1's judges label: every prompt set but XSTest (Fig 4's)."""
    return [name for name in prompt_sets if name != XSTEST]


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


def judge_outputs(
    settings,
    policies: Sequence[PolicySource],
    prompt_sets: Mapping[str, Sequence[EvalPrompt]],
    outputs: Mapping[str, PolicyOutputs],
    fig6_samples: Sequence[reranking.LayerScoredResponse],
    *,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, list[JudgeRecord]]]:
    """The judgments of every judge of `settings` (`params.evaluation`) on every policy's answers
    to the Table 1 benchmarks, and each judge's verdicts on the Fig 6 samples."""
    benchmarks = table1_benchmarks(prompt_sets)
    rows, fig6_verdicts = [], {}
    for name in settings.judges:
        judge = build_judge(name, settings, seed=seed)
        rows += judge_all(judge, policies, prompt_sets, outputs, benchmarks)
        fig6_verdicts[name] = judge.judge(
            [s.prompt for s in fig6_samples], [s.text for s in fig6_samples]
        )
        del judge  # a 7-8B judge leaves memory before the next one loads
    return pd.DataFrame(rows), fig6_verdicts


def fig6_top_k(
    samples: Sequence[reranking.LayerScoredResponse],
    verdicts: Mapping[str, Sequence[JudgeRecord]],
    *,
    k: int,
    seed: int,
) -> pd.DataFrame:
    """Fig 6's table for every judge: the toxic rate of the top-k samples each reward strategy
    keeps (`reranking.fig6_toxic_rates`), judges in the order of `verdicts`."""
    return pd.concat(
        [
            reranking.fig6_toxic_rates(
                samples,
                [v.unsafe for v in records],
                k=k,
                judge=name,
                random_draws=reranking.FIG6_RANDOM_DRAWS,
                seed=seed,
            )
            for name, records in verdicts.items()
        ],
        ignore_index=True,
    )
