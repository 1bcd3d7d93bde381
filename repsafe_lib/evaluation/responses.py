"""Each policy's outputs on the evaluation prompts: responses (generated once per model and decoding
config, cached), responses to instruction prompts and MMLU predictions (paper Sec 4.2, Table 1-3).

A responses-only policy (e.g. RS*'s best-of-N picks) is read from its file; every selected prompt
must be answered there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from repsafe_lib.evaluation.mmlu import mmlu_predictions
from repsafe_lib.evaluation.policies import PolicySource, load_policy
from repsafe_lib.loaders import subsample
from repsafe_lib.models import LoadedModel
from repsafe_lib.records import EvalPrompt, MmluQuestion, read_records
from repsafe_lib.sampling import DecodingConfig, ResponseRecord, cached_responses, for_generation

if TYPE_CHECKING:
    from repsafe_lib.evaluation.inputs import EvaluationInputs


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


def evaluation_decoding(settings, seed: int) -> DecodingConfig:
    """How the policies answer, from `params.evaluation` (greedy unless it says otherwise)."""
    return DecodingConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=seed,
        num_samples=settings.num_samples,
    )


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


def collect_all_outputs(
    policies: Sequence[PolicySource],
    inputs: EvaluationInputs,
    settings,
    *,
    base_spec,
    decoding: DecodingConfig,
    cache_dir: Path,
    seed: int,
) -> dict[str, PolicyOutputs]:
    """`collect_outputs` for every policy, one model in memory at a time, with the batch size,
    MMLU shots and generation dtype of `settings` (`params.evaluation`)."""
    return {
        source.run: collect_outputs(
            source,
            base_spec,
            inputs.prompt_sets,
            instruction_prompts=inputs.instruction_prompts,
            mmlu_questions=inputs.mmlu_questions,
            mmlu_shots=settings.mmlu_shots,
            mmlu_fewshot=inputs.mmlu_fewshot,
            decoding=decoding,
            cache_dir=cache_dir,
            batch_size=settings.batch_size,
            seed=seed,
            generation_dtype=settings.generation_dtype,
        )
        for source in policies
    }
