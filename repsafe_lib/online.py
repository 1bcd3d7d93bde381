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

In every process of an `accelerate launch` (DDP, or FSDP2), each process samples and scores its
share of a round's prompts and the scored samples are gathered, so every process builds the same
pairs; the reward model is frozen and whole in every process. Under FSDP the policy stays sharded
across rounds and samples in lockstep (`generate(..., synced_gpus=True)`); the saved policy is
gathered whole.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import write_json
from repsafe_lib.loaders import subsample
from repsafe_lib.records import EvalPrompt, PreferencePair, write_records
from repsafe_lib.reranking import rerank_pairs
from repsafe_lib.sampling import DecodingConfig, for_generation, generate_responses
from repsafe_lib.scalar_reward_model import ScalarRewardModel, score_responses
from repsafe_lib.seeding import seed_everything, stable_seed
from repsafe_lib.training import (
    Loop,
    OnTheFlyReference,
    RunResult,
    batch_schedule,
    encode_pairs,
    prepare_policy,
    restart_log,
    run_steps,
    run_summary,
    save_policy,
    start_loop,
)
from repsafe_lib.training.loop import gathered_policy_state
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
        self,
        model,
        prompts: Sequence[EvalPrompt],
        *,
        seed: int,
        out_dir: Path,
        progress: bool,
        sharded: bool = False,
    ) -> list[PreferencePair]:
        """The pairs of `prompts`; every scored sample goes to `out_dir/samples.jsonl`.

        Each process (one, or every process of an `accelerate launch`) samples and scores its
        share of the prompts; the scored samples are gathered, so every process builds the same
        pairs. A `sharded` (FSDP) policy samples in lockstep: every process runs as many batches
        (`process_share` pads the short shares) and each batch's forwards until all are done."""
        from accelerate import PartialState
        from accelerate.utils import gather_object

        state = PartialState()
        share, real = process_share(
            list(enumerate(prompts)), state.process_index, state.num_processes
        )
        progress = progress and state.is_main_process
        model.eval()
        samples = generate_responses(
            model if sharded else for_generation(model, self.generation_dtype),
            self.tokenizer,
            [prompt for _, prompt in share],
            max_new_tokens=self.decoding.max_new_tokens,
            batch_size=self.batch_size,
            do_sample=True,
            temperature=self.decoding.temperature,
            top_p=self.decoding.top_p,
            seed=seed,
            num_samples=self.decoding.num_samples,
            progress=progress,
            synced_gpus=sharded,
        )[: real * self.decoding.num_samples]
        prompt_text = {p.prompt_id: p.prompt for p in prompts}
        rewards = (
            score_responses(
                self.reward_model,
                self.tokenizer,
                [prompt_text[s.prompt_id] for s in samples],
                [s.text for s in samples],
                max_length=self.reward_max_length,
                batch_size=self.batch_size,
                progress=progress,
            )
            if samples
            else torch.empty(0)  # fewer prompts than processes: this one had none
        )
        positions = [
            position for position, _ in share[:real] for _ in range(self.decoding.num_samples)
        ]
        scored = gather_object(list(zip(positions, samples, rewards.tolist(), strict=True)))
        scored.sort(key=lambda row: (row[0], row[1].sample_index))  # prompt-major, as one process
        samples, rewards = [s for _, s, _ in scored], [r for _, _, r in scored]
        if state.is_main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_records(
                out_dir / "samples.jsonl",
                [
                    ScoredSample(s.prompt_id, s.sample_index, s.text, s.num_tokens, s.empty, r)
                    for s, r in zip(samples, rewards, strict=True)
                ],
            )
        return rerank_pairs(samples, rewards, prompt_text, k=1)


def process_share(items: Sequence, index: int, processes: int) -> tuple[list, int]:
    """Process `index`'s share of `items` (every `processes`-th, from its own index) and how many
    of it are real: a short share is padded with repeats of an item to the longest share's size,
    so every process samples as many batches."""
    share = list(items[index::processes])
    size = -(-len(items) // processes)
    padding = [items[index % len(items)]] * (size - len(share)) if items else []
    return share + padding, len(share)


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
    previous: Loop | None = None,
    progress: bool = True,
) -> tuple[list[dict], Loop]:
    """Round `round_index` of run `name` on `model`, in place: fresh pairs of a seeded choice of
    `prompts_per_round` prompts, then `training.max_steps` DPO steps on them (cut to `max_length`
    tokens) from a fresh optimiser, with no checkpoint and no saved policy. The first round
    prepares the policy for training (`training.start_loop`), later ones go on with the
    `previous` round's loop (a policy FSDP has sharded stays sharded). Writes
    `out_dir/round-XX/{samples,metrics}.jsonl` and `summary.json`; returns the round's metrics
    rows numbered across rounds, each with its round and number of pairs, and the loop."""
    round_seed = stable_seed(seed, "online", round_index) % 2**31  # numpy takes 32 bits
    chosen = subsample(list(prompts), prompts_per_round, round_seed)
    round_dir = out_dir / f"round-{round_index:02d}"
    sharded = previous is not None and previous.sharded
    with root_weights_gathered(previous):
        pairs = relabelling.pairs(
            model, chosen, seed=round_seed, out_dir=round_dir, progress=progress, sharded=sharded
        )
    if not pairs:
        raise ValueError(
            f"online round {round_index}: the reward model ranked no two distinct samples apart;"
            " raise sampling.num_samples or the temperature"
        )
    tokenizer = relabelling.tokenizer
    encoded = encode_pairs(tokenizer, pairs, max_length=max_length, seed=seed, folds=1)
    if previous is None:
        loop = start_loop(
            name,
            objective="dpo",
            model=model,
            tokenizer=tokenizer,
            pairs=encoded,
            training=training,
            seed=round_seed,
            out_dir=round_dir,
            reference=reference,
            checkpoints=False,
        )
        if loop.sharded and relabelling.generation_dtype is not None:
            raise ValueError(
                "sampling.generation_dtype samples from a copy of the policy, which a policy"
                " sharded with FSDP cannot make: unset it (the shards sample in float32)"
            )
    else:
        loop = next_round(previous, encoded, seed=round_seed, out_dir=round_dir)
    metrics = restart_log(loop)
    run_steps(loop, range(training.max_steps), metrics, progress=progress)
    end_round(loop, metrics)
    offset = round_index * training.max_steps
    rows = [
        {**row, "step": offset + row["step"], "round": round_index, "pairs": len(pairs)}
        for row in metrics
    ]
    return rows, loop


@contextlib.contextmanager
def root_weights_gathered(loop: Loop | None) -> Iterator[None]:
    """Under FSDP, the weights of the root shard unit (those of no decoder layer's unit: the
    embeddings, the final norm, the LM head) gathered while the policy samples: sampling calls the
    policy, not the root, so only the layers' units gather their own weights in each forward."""
    if loop is None or not loop.sharded:
        yield
        return
    loop.inputs.scorer.unshard()
    try:
        yield
    finally:
        loop.inputs.scorer.reshard()


def next_round(loop: Loop, pairs: list, *, seed: int, out_dir: Path) -> Loop:
    """The loop of the next round: the same prepared policy and optimiser (its state dropped by
    `end_round`: a fresh AdamW), new pairs and their seeded schedule, seeded as `start_loop`
    seeds a round."""
    seed_everything(seed)
    loop.model.train()
    out_dir.mkdir(parents=True, exist_ok=True)
    schedule = batch_schedule(len(pairs), loop.training.batch_size, loop.training.max_steps, seed)
    return dataclasses.replace(loop, pairs=pairs, schedule=schedule, out_dir=out_dir)


def end_round(loop: Loop, metrics: list[dict]) -> None:
    """The round's `summary.json`; AdamW's state dropped (the next round starts it afresh, and
    sampling runs without it in memory)."""
    if loop.accelerator.is_main_process:
        write_json(loop.out_dir / "summary.json", run_summary(loop.name, metrics, loop.training))
    loop.optimiser.state.clear()
    loop.accelerator.wait_for_everyone()


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
    run_key: dict | None = None,
    progress: bool = True,
) -> RunResult:
    """Train `model` (the base policy) by `online.rounds` rounds of sample -> re-label -> DPO
    (`online_round`); the DPO pairs keep `max_length` tokens (the profile's
    `extraction.max_length`, as every training run), the reward model reads `reward_max_length`.
    Writes every round's files (`out_dir/round-XX/`), then `out_dir/metrics.jsonl` (steps
    numbered across rounds, with their round), the policy (`out_dir/policy/`) and, last,
    `summary.json` (with `run_key`, where given: what a finished run is read back by).
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
    loop = None
    for round_index in range(online.rounds):
        rows, loop = online_round(
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
            previous=loop,
            progress=progress,
        )
        metrics += rows
    model.eval()
    save_online_policy(loop, out_dir / "policy")
    if loop.accelerator.is_main_process:
        write_metrics(out_dir / "metrics.jsonl", metrics)
        summary = run_summary(name, metrics, training)
        extra = {"rounds": online.rounds} | ({"key": run_key} if run_key is not None else {})
        write_json(out_dir / "summary.json", {**summary, **extra})
    loop.accelerator.wait_for_everyone()
    loop.accelerator.free_memory()  # its references to the policy and the optimiser
    return RunResult(name, metrics, out_dir, out_dir / "policy", 0)


def save_online_policy(loop: Loop, directory: Path) -> None:
    """The trained policy, saved whole by the main process (every process calls this: a sharded
    policy is gathered from every process's shards first)."""
    full_state = gathered_policy_state(loop) if loop.sharded else None
    if loop.accelerator.is_main_process:
        save_policy(loop.model, loop.tokenizer, directory, state_dict=full_state)
    loop.accelerator.wait_for_everyone()
