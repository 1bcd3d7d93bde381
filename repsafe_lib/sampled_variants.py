"""The sampling-based variants (paper Sec 3.4, 4.2, 4.5; Table 1 RS*, DPO*, cDPO*, Online; Table 2).

N responses per prompt are sampled once from a policy (`PolicySampler`: cached under the notebook's
`samples/`, keyed by the weights, the dtype they are sampled in and the decoding) and scored by R_h
through that same policy. From the reference policy's samples: RS* keeps each evaluation prompt's
best, DPO* and cDPO* train on re-ranked pairs of the training prompts' samples
(`train_on_reranked_pairs`). Online DPO, the upper bound, samples the current policy every round and
lets a conventional reward model label the samples (`train_online`). Table 2 scores the same
evaluation samples with both rewards, before alignment and after (`aligned_scored_samples`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel

from repsafe_lib import reranking, training
from repsafe_lib.caching import CacheFormat
from repsafe_lib.hybrid_reward import HybridReward
from repsafe_lib.models import LoadedModel
from repsafe_lib.records import EvalPrompt, PreferencePair
from repsafe_lib.reward_comparison import ScoredResponse, scored_responses
from repsafe_lib.sampling import DecodingConfig, ResponseRecord, cached_responses, for_generation
from repsafe_lib.scalar_reward_model import ScalarRewardModel, score_samples


@dataclass(frozen=True)
class SamplingPrompts:
    """The prompts notebook 05 samples, and the text of each by prompt id."""

    train: list[EvalPrompt]  # distinct prompts of the training pairs: DPO* and cDPO*'s samples
    evaluation: dict[str, list[EvalPrompt]]  # notebook 00's prompt sets: RS*, Table 2
    fig6: list[EvalPrompt]  # distinct prompts of the held-out pairs (Fig 6)
    text: dict[str, str]

    @property
    def table1_sets(self) -> list[str]:
        """The evaluation sets a toxic rate is measured on (Table 1 and 2): all but XSTest."""
        from repsafe_lib.evaluation import table1_benchmarks

        return table1_benchmarks(self.evaluation)


def sampling_prompts(
    run, params, train_pairs: Sequence[PreferencePair], test_pairs: Sequence[PreferencePair]
) -> SamplingPrompts:
    """`sampling.train_prompts` of the training pairs' prompts, the evaluation sets, and as many
    of the held-out pairs' prompts as an evaluation set has (seeded choices)."""
    from repsafe_lib.evaluation.inputs import read_prompt_sets

    limit = params.evaluation.prompts_per_benchmark
    evaluation = read_prompt_sets(run, params.data, limit, params.seed)
    train = reranking.train_prompts(train_pairs, params.sampling.train_prompts, params.seed)
    fig6 = reranking.train_prompts(test_pairs, limit, params.seed, benchmark="pku_test")
    every = [*train, *(p for prompts in evaluation.values() for p in prompts), *fig6]
    return SamplingPrompts(train, evaluation, fig6, {p.prompt_id: p.prompt for p in every})


def sample_decoding(params) -> DecodingConfig:
    """N samples per prompt with the sampling temperature and top-p, up to the evaluation's
    `max_new_tokens` (RS* answers like every other policy)."""
    settings = params.sampling
    return DecodingConfig(
        max_new_tokens=params.evaluation.max_new_tokens,
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        seed=params.seed,
        num_samples=settings.num_samples,
    )


@dataclass(frozen=True)
class PolicySampler:
    """A policy's cached samples and their R_h scores: sampled from `generator` (the policy, or
    its copy in `sampling.generation_dtype`), scored by one forward of prompt + response through
    the policy itself, the last token's states of every layer R_h reads (as in notebook 01)."""

    policy: LoadedModel
    generator: PreTrainedModel
    model_key: str  # the weights and the dtype they are sampled in: part of the cache key
    cache_dir: Path
    decoding: DecodingConfig
    batch_size: int
    max_length: int  # tokens of prompt + response R_h reads
    score_batch_size: int

    @classmethod
    def of(cls, policy: LoadedModel, params, cache_dir: str | Path) -> PolicySampler:
        """The sampler of `policy` under `params`' sampling, decoding and extraction settings."""
        settings = params.sampling
        dtype = settings.generation_dtype or params.model.dtype
        return cls(
            policy,
            for_generation(policy.model, settings.generation_dtype),
            f"{policy.fingerprint}:{dtype}",
            Path(cache_dir),
            sample_decoding(params),
            settings.batch_size,
            params.extraction.max_length,
            params.extraction.batch_size,
        )

    def samples(self, prompts: Sequence[EvalPrompt]) -> list[ResponseRecord]:
        """N samples per prompt, prompt-major; only those not cached yet are generated."""
        return cached_responses(
            self.generator,
            self.policy.tokenizer,
            prompts,
            model_key=self.model_key,
            cache_dir=self.cache_dir,
            decoding=self.decoding,
            batch_size=self.batch_size,
        )

    def hybrid_scores(
        self,
        samples_by_set: Mapping[str, Sequence[ResponseRecord]],
        reward: HybridReward,
        prompts: Mapping[str, str],
    ) -> dict[str, torch.Tensor]:
        """R_h of every sample of each named set `[n]`; `prompts` maps a prompt id to its text."""
        return {
            name: reranking.hybrid_reward_scores(
                self.policy.model, self.policy.tokenizer, prompts, samples, reward, **self._options
            )
            for name, samples in samples_by_set.items()
        }

    def layer_scored(
        self,
        samples_by_set: Mapping[str, Sequence[ResponseRecord]],
        reward: HybridReward,
        prompts: Mapping[str, str],
    ) -> list[reranking.LayerScoredResponse]:
        """Fig 6's rows: every sample with R_h and each active layer scorer's own score."""
        scores = {
            name: reranking.hybrid_layer_scores(
                self.policy.model, self.policy.tokenizer, prompts, samples, reward, **self._options
            )
            for name, samples in samples_by_set.items()
        }
        return reranking.layer_scored_responses(samples_by_set, scores, reward, prompts)

    @property
    def _options(self) -> dict:
        return {"max_length": self.max_length, "batch_size": self.score_batch_size}


RERANKED_RUNS = ("dpo_star", "cdpo_star")  # their objectives: the training registry's DPO, cDPO


@dataclass(frozen=True)
class RerankedRuns:
    """DPO* and cDPO* (those of `sampling.runs`), and what they share."""

    results: dict[str, training.RunResult]
    steps: int
    reference_quantization: str  # what `training.reference_quantization` resolved to


def train_on_reranked_pairs(
    params,
    tokenizer,
    pairs: Sequence[PreferencePair],
    reward: HybridReward,
    directory: Path,
    runs: Sequence[str],
) -> RerankedRuns:
    """DPO* and cDPO* of `runs` (`<directory>/<run>/`): notebook 04's loop and settings from the
    base policy on the re-ranked `pairs`, for `sampling.max_steps` steps (default:
    `training.max_steps`), against the profile's reference. cDPO*'s gamma comes from `reward` on
    the policy's own states before it is refreshed on them; under DPO* it only watches."""
    encoded = training.encode_pairs(
        tokenizer, pairs, max_length=params.extraction.max_length, seed=params.seed, folds=1
    )
    steps = params.sampling.max_steps or params.training.max_steps
    run_params = dataclasses.replace(
        params, training=dataclasses.replace(params.training, max_steps=steps)
    )
    reference, quantization = training.reference_for(run_params, encoded, directory, tokenizer)
    setup = training.TrainingSetup(
        params=run_params,
        tokenizer=tokenizer,
        pairs=encoded,
        layers=list(reward.config.layers),
        reward=reward,
        reference=reference,
        reference_quantization=quantization,
        directory=directory,
    )
    results = {name: training.run_training(name, setup) for name in RERANKED_RUNS if name in runs}
    return RerankedRuns(results, steps, quantization)


def train_online(
    params,
    tokenizer,
    train_pairs: Sequence[PreferencePair],
    reward_model: ScalarRewardModel,
    *,
    reference_quantization: str,
    out_dir: Path,
) -> training.RunResult:
    """Online DPO (`online.online_dpo`) from the base policy on every training prompt, labelled
    by `reward_model`, against the profile's reference in `reference_quantization`; a finished
    run in `out_dir` of the same `online_run_key` (e.g. trained by `python -m
    repsafe_lib.training --online` on several GPUs) is read back instead."""
    from repsafe_lib.caching import load_cached
    from repsafe_lib.models import load_model, load_reference
    from repsafe_lib.online import online_dpo

    key = online_run_key(params, train_pairs, reward_model, reference_quantization)
    finished = load_cached(out_dir, key, FINISHED_ONLINE_RUN)
    if finished is not None:
        return finished
    settings = params.sampling
    prompts = reranking.train_prompts(train_pairs, None, params.seed)
    reference = load_reference(params.model, seed=params.seed, quantization=reference_quantization)
    policy = load_model(training.training_spec(params.model, params.training), seed=params.seed)
    return online_dpo(
        "online",
        model=policy.model,
        reference_model=reference.model,
        tokenizer=tokenizer,
        prompts=prompts,
        reward_model=reward_model,
        training=params.training,
        online=settings.online,
        decoding=sample_decoding(params),
        generation_batch_size=settings.batch_size,
        reward_max_length=settings.reward_model.max_length,
        max_length=params.extraction.max_length,
        generation_dtype=settings.generation_dtype,
        seed=params.seed,
        out_dir=out_dir,
        run_key=key,
    )


def online_run_key(
    params,
    train_pairs: Sequence[PreferencePair],
    reward_model: ScalarRewardModel,
    quantization: str,
) -> dict:
    """What a finished online run must match to be read back: the profile's model, training,
    sampling and extraction settings, the seed, the training pairs, the reward model (its head's
    weights, which every fit moves) and the reference's quantization."""
    from repsafe_lib.caching import key_digest

    head = reward_model.head.weight.detach().float().cpu().contiguous().numpy().tobytes()
    return {
        "settings": [repr(params.model), repr(params.training), repr(params.sampling)],
        "max_length": params.extraction.max_length,
        "seed": params.seed,
        "pairs": [p.pair_id for p in train_pairs],
        "reward_model": key_digest(head, length=16),
        "reference": quantization,
    }


def _finished_online_run(directory: Path) -> training.RunResult:
    import json

    if not (directory / "policy" / "config.json").is_file():
        raise FileNotFoundError("no saved policy")
    lines = (directory / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    metrics = [json.loads(line) for line in lines]
    return training.RunResult("online", metrics, directory, directory / "policy", 0)


def _recorded_online_key(directory: Path):
    import json

    return json.loads((directory / "summary.json").read_text(encoding="utf-8"))["key"]


FINISHED_ONLINE_RUN = CacheFormat(
    what="online DPO run",
    load=_finished_online_run,
    recorded_key=_recorded_online_key,
    remedy="training it again",
    directory=True,
)


def scored_samples(
    stage: str,
    samples_by_set: Mapping[str, Sequence[ResponseRecord]],
    hybrid_scores: Mapping[str, torch.Tensor],
    reward_model: ScalarRewardModel,
    tokenizer,
    prompts: Mapping[str, str],
    *,
    max_length: int,
    batch_size: int,
) -> list[ScoredResponse]:
    """Table 2's rows of one stage: every sample with its R_h (`hybrid_scores`) and its score by
    `reward_model` (reading `max_length` tokens of prompt + response)."""
    reward_model_scores = score_samples(
        reward_model,
        tokenizer,
        prompts,
        samples_by_set,
        max_length=max_length,
        batch_size=batch_size,
    )
    return scored_responses(stage, samples_by_set, hybrid_scores, reward_model_scores)


def aligned_scored_samples(
    result: training.RunResult,
    params,
    prompt_sets: Mapping[str, Sequence[EvalPrompt]],
    prompts: Mapping[str, str],
    reward_model: ScalarRewardModel,
    cache_dir: Path,
) -> list[ScoredResponse]:
    """Table 2's "after" rows: N samples of the aligned policy `result` (cDPO*) per prompt of
    each set, scored by its own refreshed R_h and by `reward_model`."""
    from repsafe_lib.hybrid_reward import load_hybrid_reward
    from repsafe_lib.models import load_saved_policy

    aligned = load_saved_policy(result.policy_dir, params.model, name=result.name)
    reward = load_hybrid_reward(result.directory / "hybrid_reward-0")
    sampler = PolicySampler.of(aligned, params, cache_dir)
    samples = {name: sampler.samples(p) for name, p in prompt_sets.items()}
    hybrid = sampler.hybrid_scores(samples, reward, prompts)
    options = {
        "max_length": params.sampling.reward_model.max_length,
        "batch_size": params.extraction.batch_size,
    }
    return scored_samples(
        "after", samples, hybrid, reward_model, aligned.tokenizer, prompts, **options
    )
