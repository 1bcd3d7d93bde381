"""Online DPO, the paper's upper bound (Table 1 "Online"): every few steps the current policy is
sampled and a conventional reward model re-labels the samples into fresh preference pairs.

Round r: `prompts_per_round` training prompts (a seeded choice per round), `num_samples` sampled
responses each from the *current* policy, scored by the reward model; per prompt the best sample
is paired against the worst (`reranking.rerank_pairs`, k = 1); then `steps_per_round` DPO steps on
those pairs against the frozen reference. The optimiser restarts each round (its pairs are new);
the policy carries over. This is the compute the method avoids: sampling and a same-size reward
model forward for every pair (`benchmarks/sampling.py` measures one round against one R_h pass).

Each round trains like every training run (`training.start_loop`): LoRA adapters where
`training.lora` is set, else float32 master weights (a half-precision policy is cast up; load it
with `training.training_spec` to skip that), autocast in `training.mixed_precision`, gradient
checkpointing where set. Pass the profile's reference (`models.load_reference`, NF4 where the
profile says so) as the reference model, not a second full-precision copy of the base.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import write_json
from repsafe_lib.loaders import subsample
from repsafe_lib.records import EvalPrompt, PreferencePair, write_records
from repsafe_lib.reranking import rerank_pairs
from repsafe_lib.sampling import DecodingConfig, for_generation, generate_responses
from repsafe_lib.scalar_reward_model import ScalarRewardModel, score_responses
from repsafe_lib.seeding import stable_seed
from repsafe_lib.training import (
    OnTheFlyReference,
    RunResult,
    encode_pairs,
    finish_run,
    prepare_policy,
    restart_log,
    run_steps,
    run_summary,
    save_policy,
    start_loop,
)
from repsafe_lib.training.metrics_log import write_metrics


@dataclasses.dataclass(frozen=True)
class ScoredSample:
    """A sampled response with the reward model's score (one row of a round's samples file)."""

    prompt_id: str
    sample_index: int
    text: str
    num_tokens: int
    empty: bool
    reward: float


@dataclasses.dataclass(frozen=True)
class Relabelling:
    """How a round turns prompts into fresh pairs: `decoding.num_samples` samples of the current
    policy per prompt (from a copy in `generation_dtype` where one is given), scored by
    `reward_model` on at most `reward_max_length` tokens, the best paired against the worst."""

    tokenizer: PreTrainedTokenizerBase
    reward_model: ScalarRewardModel
    decoding: DecodingConfig
    batch_size: int
    reward_max_length: int
    generation_dtype: str | None

    def pairs(
        self, model, prompts: Sequence[EvalPrompt], *, seed: int, out_dir: Path, progress: bool
    ) -> list[PreferencePair]:
        """The pairs of `prompts`; every scored sample goes to `out_dir/samples.jsonl`."""
        model.eval()
        samples = generate_responses(
            for_generation(model, self.generation_dtype),
            self.tokenizer,
            prompts,
            max_new_tokens=self.decoding.max_new_tokens,
            batch_size=self.batch_size,
            do_sample=True,
            temperature=self.decoding.temperature,
            top_p=self.decoding.top_p,
            seed=seed,
            num_samples=self.decoding.num_samples,
            progress=progress,
        )
        prompt_text = {p.prompt_id: p.prompt for p in prompts}
        rewards = score_responses(
            self.reward_model,
            self.tokenizer,
            [prompt_text[s.prompt_id] for s in samples],
            [s.text for s in samples],
            max_length=self.reward_max_length,
            batch_size=self.batch_size,
            progress=progress,
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        write_records(
            out_dir / "samples.jsonl",
            [
                ScoredSample(s.prompt_id, s.sample_index, s.text, s.num_tokens, s.empty, float(r))
                for s, r in zip(samples, rewards, strict=True)
            ],
        )
        return rerank_pairs(samples, rewards.tolist(), prompt_text, k=1)


def online_round(
    name: str,
    round_index: int,
    *,
    model: PreTrainedModel,
    prompts: Sequence[EvalPrompt],
    prompts_per_round: int,
    relabelling: Relabelling,
    reference: OnTheFlyReference,
    training,
    max_length: int,
    seed: int,
    out_dir: Path,
    progress: bool = True,
) -> list[dict]:
    """Round `round_index` of run `name` on `model`, in place: fresh pairs of a seeded choice of
    `prompts_per_round` prompts, then `training.max_steps` DPO steps on them (cut to `max_length`
    tokens) from a fresh optimiser, with no checkpoint and no saved policy. Writes
    `out_dir/round-XX/{samples,metrics}.jsonl` and `summary.json`; returns the round's metrics
    rows numbered across rounds, each with its round and number of pairs."""
    round_seed = stable_seed(seed, "online", round_index) % 2**31  # numpy takes 32 bits
    chosen = subsample(list(prompts), prompts_per_round, round_seed)
    round_dir = out_dir / f"round-{round_index:02d}"
    pairs = relabelling.pairs(model, chosen, seed=round_seed, out_dir=round_dir, progress=progress)
    if not pairs:
        raise ValueError(
            f"online round {round_index}: the reward model ranked no two distinct samples apart;"
            " raise sampling.num_samples or the temperature"
        )
    tokenizer = relabelling.tokenizer
    loop = start_loop(
        name,
        objective="dpo",
        model=model,
        tokenizer=tokenizer,
        pairs=encode_pairs(tokenizer, pairs, max_length=max_length, seed=seed, folds=1),
        training=training,
        seed=round_seed,
        out_dir=round_dir,
        reference=reference,
        checkpoints=False,
    )
    if loop.sharded:
        raise ValueError(
            "online DPO samples from the policy between rounds, which a policy sharded with FSDP"
            " cannot do: run it in one process (or with DDP)"
        )
    metrics = restart_log(loop)
    run_steps(loop, range(training.max_steps), metrics, progress=progress)
    finish_run(loop, metrics, policy_dir=None)
    offset = round_index * training.max_steps
    return [
        {**row, "step": offset + row["step"], "round": round_index, "pairs": len(pairs)}
        for row in metrics
    ]


def online_dpo(
    name: str,
    *,
    model: PreTrainedModel,
    reference_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[EvalPrompt],
    reward_model: ScalarRewardModel,
    training,
    online,
    decoding: DecodingConfig,
    generation_batch_size: int,
    reward_max_length: int,
    max_length: int,
    generation_dtype: str | None = None,
    seed: int,
    out_dir: Path,
    progress: bool = True,
) -> RunResult:
    """Train `model` (the base policy) by `online.rounds` rounds of sample -> re-label -> DPO
    (`online_round`); the DPO pairs keep `max_length` tokens (the profile's
    `extraction.max_length`, as every training run), the reward model reads `reward_max_length`.
    Writes every round's files (`out_dir/round-XX/`), then `out_dir/metrics.jsonl` (steps
    numbered across rounds, with their round), `summary.json` and the policy (`out_dir/policy/`).
    """
    model = prepare_policy(model, training)  # once: every round trains the same adapters
    out_dir = Path(out_dir)
    relabelling = Relabelling(
        tokenizer,
        reward_model,
        decoding,
        generation_batch_size,
        reward_max_length,
        generation_dtype,
    )
    reference = OnTheFlyReference(reference_model, tokenizer.pad_token_id)
    steps = online.steps_per_round
    round_training = dataclasses.replace(training, max_steps=steps, checkpoint_every=steps)
    metrics: list[dict] = []
    for round_index in range(online.rounds):
        metrics += online_round(
            name,
            round_index,
            model=model,
            prompts=prompts,
            prompts_per_round=online.prompts_per_round,
            relabelling=relabelling,
            reference=reference,
            training=round_training,
            max_length=max_length,
            seed=seed,
            out_dir=out_dir,
            progress=progress,
        )
    model.eval()
    save_policy(model, tokenizer, out_dir / "policy")
    write_metrics(out_dir / "metrics.jsonl", metrics)
    summary = run_summary(name, metrics, training)
    write_json(out_dir / "summary.json", {**summary, "rounds": online.rounds})
    return RunResult(name, metrics, out_dir, out_dir / "policy", 0)
