"""Batched sampling vs one prompt at a time, and an online re-labelling round vs an R_h round (Fig 7).

    python benchmarks/sampling.py [--params params/smol.yaml] [--quick] [--prompts 8] [--samples 4]
        [--new-tokens 48] [--batch-sizes 1 8 32] [--single-samples 1] [--repeats 3]
    python benchmarks/sampling.py --quick   # params/tiny.yaml, a smaller workload, ~1 min

Measured on this machine, with the profile's policy (fp32, `torch` threads left at their default):

  generation  `repsafe_lib.sampling.generate_responses` on the first `--prompts` distinct prompts of
              `outputs/<profile>/00_data/pairs_train.jsonl` (the profile's configured pairs when
              notebook 00 has not written it), at most `--new-tokens` new tokens per response:
              sampled (temperature 1.0, top-p 0.9, per-row seeds, `--samples` per prompt; at batch
              size 1 only `--single-samples` per prompt, reported per sample) and greedy (one per
              prompt), at each batch size. Samples/s counts responses, tokens/s the generated
              tokens before the end-of-sequence token (`ResponseRecord.num_tokens`): what a batch
              keeps decoding for rows that already stopped is not counted.
  online      one online re-labelling round for a training batch of `--online-prompts` (B)
              prompts: sample `--online-samples` (N) responses per prompt from the policy (one
              batch, `--online-new-tokens` new tokens at most), then score all B x N with a
              conventional reward model of the policy's size (`ScalarRewardModel` on a second copy
              of the policy's body; its head's values do not change the cost).
  R_h         one R_h round for the same batch: R_h (input gate, random weights of the policy's
              shape) scores the 2B last-token states `[2B, L, d]` (chosen + rejected; cDPO gets them
              from the policy forward its training step runs anyway, so they are given here), plus
              one refresh step (margin-BT loss, backward, AdamW on `trainable(train_scorers=False)`),
              as `training.FoldRewards` does with `training.refresh: gate` (the default, `full`,
              also steps the per-layer scorers: notebook 07 times that one).

Every time is a median of `--repeats` timed runs (R_h: `--rh-repeats`) after an untimed warm-up
(generation: one call with 4 new tokens at the same batch size; online: one round with 4 new
tokens; R_h: 10 calls).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

from repsafe_lib.compute_cost import random_hybrid_reward
from repsafe_lib.hidden_states import format_prompt
from repsafe_lib.loaders import load_configured
from repsafe_lib.losses import margin_bt_loss
from repsafe_lib.models import LoadedModel, load_model
from repsafe_lib.params import load_params
from repsafe_lib.records import EvalPrompt
from repsafe_lib.sampling import ResponseRecord, generate_responses
from repsafe_lib.scalar_reward_model import ScalarRewardModel, score_responses

TEMPERATURE, TOP_P, SEED = 1.0, 0.9, 0
WARMUP_TOKENS = 4
# --quick: the tiny profile on a smaller workload. Its random model's next-token distribution is
# nearly flat, so top-p sampling sorts the whole vocabulary for every row and step: slow per token.
QUICK = {
    "prompts": 4,
    "samples": 2,
    "new_tokens": 8,
    "batch_sizes": [1, 4, 8],
    "greedy_batch_sizes": [1, 4],
    "online_prompts": 2,
    "online_samples": 2,
    "online_new_tokens": 8,
    "online_batch": 4,
    "rm_max_length": 128,
    "repeats": 1,
    "rh_repeats": 50,
}


# Machine and inputs.


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(load_before: float) -> str:
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads,"
        f" torch {torch.__version__}, transformers {transformers.__version__}, device cpu;"
        f" load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


def benchmark_prompts(params, count: int) -> tuple[list[EvalPrompt], str]:
    """The first `count` distinct prompts of notebook 00's training pairs, else of the profile's
    configured pairs; and where they came from."""
    path = Path("outputs") / params.profile / "00_data" / "pairs_train.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as handle:
            texts = [json.loads(line)["prompt"] for line in handle if line.strip()]
        source = str(path)
    else:
        records = load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed).records
        texts = [record.prompt for record in records]
        source = f"{params.data.pairs.source} (no {path})"
    distinct = list(dict.fromkeys(texts))[:count]
    if len(distinct) < count:
        raise SystemExit(f"need {count} distinct prompts, {source} has {len(distinct)}")
    prompts = [
        EvalPrompt(f"bench-{i}", text, "benchmark", None, None) for i, text in enumerate(distinct)
    ]
    return prompts, source


def prompt_tokens(tokenizer, prompts: list[EvalPrompt]) -> list[int]:
    """Input lengths as `sampling` encodes them (a chat template writes its own BOS)."""
    special = not tokenizer.chat_template
    return [
        len(tokenizer(format_prompt(tokenizer, p.prompt), add_special_tokens=special).input_ids)
        for p in prompts
    ]


# Timing.


def median_seconds(
    fn: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None
):
    """Median wall time of `repeats` calls of `fn` after one untimed call of `warmup` (default
    `fn`), and the last call's result."""
    (warmup or fn)()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def sample(
    loaded: LoadedModel,
    prompts: list[EvalPrompt],
    *,
    num_samples: int,
    do_sample: bool,
    max_new_tokens: int,
    batch_size: int,
) -> list[ResponseRecord]:
    return generate_responses(
        loaded.model,
        loaded.tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        do_sample=do_sample,
        temperature=TEMPERATURE,
        top_p=TOP_P,
        seed=SEED,
        num_samples=num_samples,
        progress=False,
    )


def generation_row(loaded, prompts, args, *, do_sample: bool, batch_size: int) -> dict:
    num_samples = (args.single_samples if batch_size == 1 else args.samples) if do_sample else 1
    rows = len(prompts) * num_samples
    options = {"num_samples": num_samples, "do_sample": do_sample, "batch_size": batch_size}
    warmup_prompts = prompts[: max(1, math.ceil(min(batch_size, rows) / num_samples))]
    seconds, records = median_seconds(
        lambda: sample(loaded, prompts, max_new_tokens=args.new_tokens, **options),
        args.repeats,
        warmup=lambda: sample(loaded, warmup_prompts, max_new_tokens=WARMUP_TOKENS, **options),
    )
    tokens = sum(r.num_tokens for r in records)
    return {
        "decoding": "sampled" if do_sample else "greedy",
        "batch_size": batch_size,
        "shape": f"{len(prompts)} x {num_samples}",
        "rows": rows,
        "tokens": tokens,
        "stopped": sum(r.finished for r in records),
        "seconds": seconds,
        "samples_per_s": rows / seconds,
        "tokens_per_s": tokens / seconds,
    }


def online_round(loaded, reward_model, prompts, args, max_new_tokens: int) -> dict:
    """Sample N per prompt, then score every (prompt, response) with the reward model."""
    start = time.perf_counter()
    records = sample(
        loaded,
        prompts,
        num_samples=args.online_samples,
        do_sample=True,
        max_new_tokens=max_new_tokens,
        batch_size=args.online_batch,
    )
    generated = time.perf_counter()
    text_of = {p.prompt_id: p.prompt for p in prompts}
    score_responses(
        reward_model,
        loaded.tokenizer,
        [text_of[r.prompt_id] for r in records],
        [r.text for r in records],
        max_length=args.rm_max_length,
        batch_size=args.online_batch,
        progress=False,
    )
    scored = time.perf_counter()
    return {
        "generate": generated - start,
        "score": scored - generated,
        "total": scored - start,
        "responses": len(records),
        "tokens": sum(r.num_tokens for r in records),
    }


def time_online(loaded, reward_model, prompts, args) -> dict:
    online_round(loaded, reward_model, prompts, args, WARMUP_TOKENS)  # warm-up
    rounds = [
        online_round(loaded, reward_model, prompts, args, args.online_new_tokens)
        for _ in range(args.repeats)
    ]
    out = {key: statistics.median(r[key] for r in rounds) for key in ("generate", "score", "total")}
    return {**out, "responses": rounds[-1]["responses"], "tokens": rounds[-1]["tokens"]}


def time_rh_round(num_layers: int, hidden: int, pairs: int, args, seed: int) -> dict:
    """R_h on the 2B states of a batch (no grad), one refresh step on its B pairs, and both."""
    reward = random_hybrid_reward(num_layers, hidden, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    states = torch.randn(2 * pairs, num_layers, hidden, generator=generator)
    optimiser = torch.optim.AdamW(
        reward.trainable(train_scorers=False), lr=args.refresh_lr, weight_decay=0.0
    )

    def score():
        with torch.no_grad():
            return reward(states)

    def refresh():
        loss = margin_bt_loss(reward(states[:pairs]), reward(states[pairs:]), mu=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def both():
        score()
        refresh()

    out = {}
    for name, fn in (("score", score), ("refresh", refresh), ("round", both)):
        for _ in range(10):  # warm-up: the optimiser's state is allocated on the first step
            fn()
        out[name] = median_seconds(fn, args.rh_repeats)[0]
    return out


# Report.


GENERATION_HEADER = [
    "| decoding | batch size | prompts x samples | generated tokens | stopped at EOS |"
    " median s | samples/s | tokens/s | tokens/s vs batch 1 |",
    "|---|---:|---|---:|---:|---:|---:|---:|---:|",
]


def generation_line(row: dict, measured: list[dict]) -> str:
    """One table row; the speed-up is over the same decoding's batch-1 row, if measured."""
    base = next(
        (r for r in measured if r["decoding"] == row["decoding"] and r["batch_size"] == 1), None
    )
    speedup = f"{row['tokens_per_s'] / base['tokens_per_s']:.2f}" if base else "-"
    return (
        f"| {row['decoding']} | {row['batch_size']} | {row['shape']} | {row['tokens']} |"
        f" {row['stopped']}/{row['rows']} | {row['seconds']:.2f} |"
        f" {row['samples_per_s']:.2f} | {row['tokens_per_s']:.1f} | {speedup} |"
    )


def cost_table(online: dict, rh: dict, args) -> list[str]:
    b, n = args.online_prompts, args.online_samples
    ratio = online["total"] / rh["round"]
    return [
        f"| round (B = {b} prompts) | part | median time |",
        "|---|---|---:|",
        f"| online | generate {b} x {n} = {online['responses']} responses"
        f" (<= {args.online_new_tokens} new tokens, {online['tokens']} generated, batch"
        f" {args.online_batch}) | {online['generate']:.2f} s |",
        f"| online | score {online['responses']} with a same-size reward model"
        f" (max length {args.rm_max_length}, batch {args.online_batch}) | {online['score']:.2f} s |",
        f"| online | total | **{online['total']:.2f} s** |",
        f"| R_h | score {2 * b} states [{2 * b}, L, d] | {rh['score'] * 1e6:.0f} µs |",
        f"| R_h | one refresh step on {b} pairs | {rh['refresh'] * 1e6:.0f} µs |",
        f"| R_h | total (score + refresh) | **{rh['round'] * 1e6:.0f} µs** |",
        "",
        f"online / R_h = {ratio:.2e} ({math.log10(ratio):.1f} orders of magnitude);"
        f" generation alone / R_h = {online['generate'] / rh['round']:.2e}"
        f" ({math.log10(online['generate'] / rh['round']):.1f});"
        f" reward-model scoring alone / R_h = {online['score'] / rh['round']:.2e}"
        f" ({math.log10(online['score'] / rh['round']):.1f})",
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smol.yaml")
    parser.add_argument("--quick", action="store_true", help="params/tiny.yaml, smaller workload")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt, batch > 1")
    parser.add_argument("--single-samples", type=int, default=1, help="samples per prompt, batch 1")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--greedy-batch-sizes", type=int, nargs="*", default=[1, 8])
    parser.add_argument("--online-prompts", type=int, default=4, help="B")
    parser.add_argument("--online-samples", type=int, default=4, help="N per prompt")
    parser.add_argument("--online-new-tokens", type=int, default=64)
    parser.add_argument("--online-batch", type=int, default=16)
    parser.add_argument("--rm-max-length", type=int, default=256)
    parser.add_argument("--refresh-lr", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rh-repeats", type=int, default=500)
    if parser.parse_known_args()[0].quick:  # explicit flags still win
        parser.set_defaults(params="params/tiny.yaml", **QUICK)
    args = parser.parse_args()
    sizes = args.batch_sizes + args.greedy_batch_sizes
    counts = (args.prompts, args.samples, args.single_samples, args.new_tokens, args.repeats)
    if min(counts + (args.online_prompts, args.online_samples, args.rh_repeats)) < 1 or (
        sizes and min(sizes) < 1
    ):
        parser.error("counts, token budgets, batch sizes and repeats must be >= 1")
    if args.online_prompts > args.prompts:
        parser.error("--online-prompts must be <= --prompts (the round uses the first ones)")
    return args


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()[0]  # other processes' load shows in every time below
    torch.manual_seed(0)
    params = load_params(args.params)
    loaded = load_model(params.model, seed=params.seed)
    loaded.model.eval()
    prompts, source = benchmark_prompts(params, args.prompts)
    lengths = prompt_tokens(loaded.tokenizer, prompts)
    print(
        f"{args.params}: policy {loaded.name} ({loaded.num_layers} layers, d = {loaded.hidden_size},"
        f" fp32); {len(prompts)} prompts from {source},"
        f" {min(lengths)}-{max(lengths)} tokens with the chat template"
        f" (online round: the first {args.online_prompts});"
        f" sampled: temperature {TEMPERATURE}, top-p {TOP_P}; median of {args.repeats}"
        f" (R_h: {args.rh_repeats}) after a warm-up\n"
    )

    # Rows print as they are measured: a run cut short still leaves its finished rows.
    print(f"Generation, <= {args.new_tokens} new tokens per response:\n")
    print("\n".join(GENERATION_HEADER), flush=True)
    measured: list[dict] = []
    runs = [(True, b) for b in args.batch_sizes] + [(False, b) for b in args.greedy_batch_sizes]
    for do_sample, batch_size in runs:
        row = generation_row(loaded, prompts, args, do_sample=do_sample, batch_size=batch_size)
        measured.append(row)
        print(generation_line(row, measured), flush=True)

    reward_model = ScalarRewardModel.from_causal_lm(
        load_model(params.model, seed=params.seed).model
    )
    reward_model.eval()
    online = time_online(loaded, reward_model, prompts[: args.online_prompts], args)
    rh = time_rh_round(
        loaded.num_layers, loaded.hidden_size, args.online_prompts, args, params.seed
    )
    print(
        f"\nOne re-labelling round for B = {args.online_prompts} prompts"
        f" (L = {loaded.num_layers}, d = {loaded.hidden_size}):\n"
    )
    print("\n".join(cost_table(online, rh, args)))
    print(f"\n{machine_line(load_before)}")


if __name__ == "__main__":
    main()
