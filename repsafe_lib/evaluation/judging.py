"""Every policy's answers labelled by every configured judge (paper Sec 4.3, Table 1-2), and the
reference samples of Fig 6 (Sec 4.8) labelled by the same judges.

Judgments are a long table, one row per (policy run, benchmark, response, judge); each judge is
loaded once and let go before the next one loads (a 7-8B judge fills an accelerator). Verdicts
are cached per (judge, policy run, benchmark) under a key of the judge's name and version and
the texts judged, so a new classifier version or new answers are judged afresh, never mixed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from repsafe_lib import reranking
from repsafe_lib.caching import CacheFormat, cached, canonical_json, key_digest, text_digests
from repsafe_lib.evaluation.policies import PolicySource
from repsafe_lib.judges import JudgeRecord, build_judge
from repsafe_lib.records import EvalPrompt

if TYPE_CHECKING:
    from repsafe_lib.evaluation.responses import PolicyOutputs

XSTEST = "xstest"  # Fig 4's benchmark: its safe prompts make a toxic rate meaningless


def table1_benchmarks(prompt_sets: Mapping[str, Sequence[EvalPrompt]]) -> list[str]:
    """The benchmarks Table 1's judges label: every prompt set but XSTest (Fig 4's)."""
    return [name for name in prompt_sets if name != XSTEST]


def judgment_key(judge, prompts: Sequence[str], responses: Sequence[str]) -> str:
    """What a judge's verdicts depend on: its name, its version and the texts it judged."""
    identity = canonical_json({"judge": judge.name, "version": judge.version})
    return key_digest(identity, text_digests(prompts), text_digests(responses))


def _save_judgments(path: Path, records: list[JudgeRecord], key: str) -> list[JudgeRecord]:
    rows = [dataclasses.asdict(record) for record in records]
    path.write_text(json.dumps({"key": key, "records": rows}), encoding="utf-8")
    return _load_judgments(path)


def _load_judgments(path: Path) -> list[JudgeRecord]:
    rows = json.loads(path.read_text(encoding="utf-8"))["records"]
    return [JudgeRecord(**(row | {"categories": tuple(row["categories"])})) for row in rows]


JUDGMENTS_CACHE = CacheFormat(
    what="judgments",
    load=_load_judgments,
    save=_save_judgments,
    recorded_key=lambda path: json.loads(path.read_text(encoding="utf-8"))["key"],
    remedy="judging again",
)


def cached_judgments(
    judge, prompts: Sequence[str], responses: Sequence[str], path: Path | None
) -> list[JudgeRecord]:
    """`judge.judge(prompts, responses)`, cached at `path` (None: not cached) under
    `judgment_key`: verdicts of another judge version or of other texts are never read."""
    if path is None:
        return judge.judge(prompts, responses)
    key = judgment_key(judge, prompts, responses)
    return cached(path, key, JUDGMENTS_CACHE, lambda: judge.judge(prompts, responses))


def judgments_path(cache_dir: Path | None, judge_name: str, part: str) -> Path | None:
    if cache_dir is None:
        return None
    return Path(cache_dir) / judge_name / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', part)}.json"


def judge_policy(
    judge,
    source: PolicySource,
    benchmark: str,
    prompts: Sequence[EvalPrompt],
    responses,
    cache_dir: Path | None = None,
) -> list[dict]:
    """Long-format rows, one per response: who answered, which judge (and version), its verdict."""
    text_of = {p.prompt_id: p.prompt for p in prompts}
    records: list[JudgeRecord] = cached_judgments(
        judge,
        [text_of[r.prompt_id] for r in responses],
        [r.text for r in responses],
        judgments_path(cache_dir, judge.name, f"{source.run}--{benchmark}"),
    )
    return [
        {
            "run": source.run,
            "policy": source.policy,
            "seed": -1 if source.seed is None else source.seed,
            "benchmark": benchmark,
            "judge": record.judge,
            "judge_version": record.version,
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
    cache_dir: Path | None = None,
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
            cache_dir,
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
    cache_dir: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, list[JudgeRecord]]]:
    """The judgments of every judge of `settings` (`params.evaluation`) on every policy's answers
    to the Table 1 benchmarks, and each judge's verdicts on the Fig 6 samples (cached under
    `cache_dir` where given, see `cached_judgments`)."""
    benchmarks = table1_benchmarks(prompt_sets)
    rows, fig6_verdicts = [], {}
    for name in settings.judges:
        judge = build_judge(name, settings, seed=seed)
        rows += judge_all(judge, policies, prompt_sets, outputs, benchmarks, cache_dir)
        fig6_verdicts[name] = cached_judgments(
            judge,
            [s.prompt for s in fig6_samples],
            [s.text for s in fig6_samples],
            judgments_path(cache_dir, judge.name, "fig6_samples"),
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
