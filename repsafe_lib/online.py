"""Online DPO, the paper's upper bound (Table 1 "Online"): every few steps the current policy is
sampled and a conventional reward model re-labels the samples into fresh preference pairs.

Round r: `prompts_per_round` training prompts (a seeded choice per round), `num_samples` sampled
responses each from the *current* policy, scored by the reward model; per prompt the best sample
is paired against the worst (`reranking.rerank_pairs`, k = 1); then `steps_per_round` DPO steps on
those pairs against the frozen reference. The optimiser restarts each round (its pairs are new);
the policy carries over. This is the compute the method avoids: sampling and a same-size reward
model forward for every pair (`benchmarks/sampling.py` measures one round against one R_h pass).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import atomic_path, write_json
from repsafe_lib.datasets import EvalPrompt, subsample
from repsafe_lib.records import write_records
from repsafe_lib.reranking import rerank_pairs
from repsafe_lib.reward_model import ScalarRewardModel, score_responses
from repsafe_lib.sampling import DecodingConfig, for_generation, generate_responses
from repsafe_lib.seeding import stable_seed
from repsafe_lib.training import (
    OnTheFlyReference,
    RunResult,
    _save_policy,
    encode_pairs,
    prepare_policy,
    run_summary,
    train_run,
)


@dataclasses.dataclass(frozen=True)
class ScoredSample:
    """A sampled response with the reward model's score (one row of a round's samples file)."""

    prompt_id: str
    sample_index: int
    text: str
    num_tokens: int
    empty: bool
    reward: float


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
    """Train `model` (the base policy) by `online.rounds` rounds of sample -> re-label -> DPO.

    Like every training run: LoRA adapters where `training.lora` is set, else float32 master
    weights (a half-precision `model` is cast up; load it with `training.training_spec` to skip
    that), autocast in `training.mixed_precision`, gradient checkpointing where set. Pass the
    profile's reference (`models.load_reference`, NF4 where the profile says so) as
    `reference_model`, not a second full-precision copy of the base.

    Samples come from a copy of the policy in `generation_dtype` where one is given. The DPO
    pairs keep `max_length` tokens (the profile's `extraction.max_length`, as every training
    run), the reward model reads `reward_max_length`.
    Writes `out_dir/round-XX/{samples.jsonl,metrics.jsonl}`, then `out_dir/metrics.jsonl` (steps
    numbered across rounds, with their round), `summary.json` and the policy (`out_dir/policy/`).
    """
    model = prepare_policy(model, training)  # once: every round trains the same adapters
    out_dir = Path(out_dir)
    by_id = {p.prompt_id: p.prompt for p in prompts}
    reference = OnTheFlyReference(reference_model, tokenizer.pad_token_id)
    round_training = dataclasses.replace(
        training, max_steps=online.steps_per_round, checkpoint_every=online.steps_per_round
    )
    metrics: list[dict] = []
    for round_index in range(online.rounds):
        round_seed = stable_seed(seed, "online", round_index) % 2**31  # numpy takes 32 bits
        chosen_prompts = subsample(list(prompts), online.prompts_per_round, round_seed)
        model.eval()
        samples = generate_responses(
            for_generation(model, generation_dtype),
            tokenizer,
            chosen_prompts,
            max_new_tokens=decoding.max_new_tokens,
            batch_size=generation_batch_size,
            do_sample=True,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            seed=round_seed,
            num_samples=decoding.num_samples,
            progress=progress,
        )
        rewards = score_responses(
            reward_model,
            tokenizer,
            [by_id[s.prompt_id] for s in samples],
            [s.text for s in samples],
            max_length=reward_max_length,
            batch_size=generation_batch_size,
            progress=progress,
        )
        round_dir = out_dir / f"round-{round_index:02d}"
        round_dir.mkdir(parents=True, exist_ok=True)
        write_records(
            round_dir / "samples.jsonl",
            [
                ScoredSample(s.prompt_id, s.sample_index, s.text, s.num_tokens, s.empty, float(r))
                for s, r in zip(samples, rewards, strict=True)
            ],
        )
        pairs = rerank_pairs(samples, rewards.tolist(), by_id, k=1)
        if not pairs:
            raise ValueError(
                f"online round {round_index}: the reward model ranked no two distinct samples"
                " apart; raise sampling.num_samples or the temperature"
            )
        encoded = encode_pairs(tokenizer, pairs, max_length=max_length, seed=seed, folds=1)
        result = train_run(
            name,
            objective="dpo",
            model=model,
            pad_id=tokenizer.pad_token_id,
            pairs=encoded,
            training=round_training,
            seed=round_seed,
            out_dir=round_dir,
            reference=reference,
            tokenizer=tokenizer,
            resume=False,
            progress=progress,
            write_checkpoints=False,
            save_policy=False,
        )
        offset = round_index * online.steps_per_round
        for row in result.metrics:
            metrics.append(
                {**row, "step": offset + row["step"], "round": round_index, "pairs": len(pairs)}
            )
    model.eval()
    _save_policy(model, tokenizer, out_dir / "policy")
    with atomic_path(out_dir / "metrics.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(m) + "\n" for m in metrics), encoding="utf-8")
    summary = run_summary(name, metrics, training)
    write_json(out_dir / "summary.json", {**summary, "rounds": online.rounds})
    return RunResult(name, metrics, out_dir, out_dir / "policy", 0)
