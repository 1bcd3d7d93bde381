"""What notebook 06 reads (paper Sec 4.1-4.3): the evaluation prompt sets notebook 00 saved (a
seeded, label-stratified choice of each), the instruction prompts and MMLU questions its params
name, and the reference samples notebook 05 scored layer by layer for Fig 6.
"""

from __future__ import annotations

from dataclasses import dataclass

from repsafe_lib import loaders
from repsafe_lib.evaluation.responses import select_prompts
from repsafe_lib.records import EvalPrompt, MmluQuestion, read_records
from repsafe_lib.reranking import LayerScoredResponse


@dataclass(frozen=True)
class EvaluationInputs:
    """The prompts every policy answers, the questions it is scored on, and Fig 6's samples."""

    prompt_sets: dict[str, list[EvalPrompt]]
    instruction_prompts: list[EvalPrompt]  # empty without a general reward model
    mmlu_questions: tuple[MmluQuestion, ...]
    mmlu_fewshot: tuple[MmluQuestion, ...]  # MMLU's dev split, for k-shot prompts
    fig6_samples: list[LayerScoredResponse]
    revisions: dict[str, str]  # what each dataset loaded here resolved to (`loaders.hub`)

    def sizes(self) -> dict[str, int]:
        """How many prompts of each set, MMLU questions and Fig 6 samples."""
        return {
            **{name: len(prompts) for name, prompts in self.prompt_sets.items()},
            "instructions": len(self.instruction_prompts),
            "mmlu": len(self.mmlu_questions),
            "fig6_samples": len(self.fig6_samples),
        }


def read_prompt_sets(run, data_params, limit: int | None, seed: int) -> dict[str, list[EvalPrompt]]:
    """Notebook 00's prompt sets that `data_params` names, at most `limit` prompts each."""
    return {
        name: select_prompts(
            read_records(
                run.upstream("00_data", f"prompts_{name}.jsonl"), EvalPrompt, producer="00_data"
            ),
            limit,
            seed,
        )
        for name in loaders.configured_prompt_sets(data_params)
    }


def read_instruction_prompts(
    settings, *, on_bad_rows: str, seed: int, hub_copies: str | None = None
) -> list[EvalPrompt]:
    """Table 3's instruction prompts (capped like the benchmarks); none when no general reward
    model would score the answers."""
    if not (settings.instruction_prompts and settings.general_reward_models):
        return []
    loaded = loaders.load_configured(
        settings.instruction_prompts, on_bad_rows=on_bad_rows, seed=seed, hub_copies=hub_copies
    )
    return select_prompts(loaded.records, settings.prompts_per_benchmark, seed)


def read_mmlu(
    settings, *, on_bad_rows: str, seed: int, hub_copies: str | None = None
) -> tuple[tuple[MmluQuestion, ...], tuple[MmluQuestion, ...]]:
    """MMLU's test questions and, for k-shot prompts, its dev questions (empty when unused)."""
    load = {"on_bad_rows": on_bad_rows, "seed": seed, "hub_copies": hub_copies}
    if not settings.mmlu:
        return (), ()
    questions = loaders.load_configured(settings.mmlu, **load).records
    if not settings.mmlu_shots:
        return questions, ()
    return questions, loaders.load_configured(settings.mmlu_fewshot, **load).records


def load_inputs(run, params) -> EvaluationInputs:
    """Notebook 06's inputs; `run` is its `artifacts.Run`, `params` the profile's params."""
    settings, seed = params.evaluation, params.seed
    load = {
        "on_bad_rows": params.data.on_bad_rows,
        "seed": seed,
        "hub_copies": params.data.hub_copies,
    }
    prompt_sets = read_prompt_sets(run, params.data, settings.prompts_per_benchmark, seed)
    instruction_prompts = read_instruction_prompts(settings, **load)
    mmlu_questions, mmlu_fewshot = read_mmlu(settings, **load)
    fig6_samples = read_records(
        run.upstream("05_sampling", "fig6_samples.jsonl"),
        LayerScoredResponse,
        producer="05_sampling",
    )
    loaded_here = (settings.mmlu, settings.mmlu_fewshot if settings.mmlu_shots else None)
    if instruction_prompts:
        loaded_here += (settings.instruction_prompts,)
    revisions = {
        spec.source: loaders.configured_revision(spec, params.data.hub_copies)
        for spec in loaded_here
        if spec is not None
    }
    return EvaluationInputs(
        prompt_sets, instruction_prompts, mmlu_questions, mmlu_fewshot, fig6_samples, revisions
    )
