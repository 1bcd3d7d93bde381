"""What a reward for N sampled responses costs: R_h on their states vs producing them (Fig 7).

    python benchmarks/reward_cost.py [--profile smol] [--new-tokens 32 64 128] [--samples 8]

Measured on this machine, with the profile's policy:
  score    R_h on the last-token states of N responses (`[N, L, d]`, given: during cDPO they come
           from the forward pass the policy's training step runs anyway);
  refresh  one margin-BT step of R_h (forward, backward, AdamW) on N/2 pairs of such states;
  generate N responses of exactly T new tokens to one prompt, batched, with the KV cache (what
           online sampling must pay before any reward model even runs).
Analytic, for Llama-2-7B (32 layers, d = 4096, 6.74e9 parameters): forward FLOPs of generating N
responses of T tokens plus scoring them with a same-size reward model, over R_h's FLOPs for
scoring N responses and one refresh step, as T grows (the paper's Fig 7 claims 5-6 orders).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import torch

from repsafe_lib import hidden_states as hs
from repsafe_lib.datasets import load_configured
from repsafe_lib.losses import margin_bt_loss
from repsafe_lib.models import load_model
from repsafe_lib.params import load_params
from repsafe_lib.reward import HybridReward, HybridRewardConfig

LLAMA2_7B = {"parameters": 6.74e9, "layers": 32, "hidden": 4096}


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_reward(num_layers: int, hidden: int, seed: int) -> HybridReward:
    """An R_h of the policy's shape; the cost does not depend on the values of its weights."""
    generator = torch.Generator().manual_seed(seed)
    reward = HybridReward(HybridRewardConfig(tuple(range(1, num_layers + 1)), hidden, "input"))
    with torch.no_grad():
        for tensor in (reward.weight, reward.bias, reward.gate_weight):
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    return reward


def time_scoring(reward: HybridReward, samples: int, repeats: int) -> tuple[float, float]:
    num_layers, hidden = reward.mean.shape
    states = torch.randn(samples, num_layers, hidden)
    optimiser = torch.optim.AdamW(reward.trainable(train_scorers=True), lr=1e-3)

    @torch.no_grad()
    def score():
        reward(states)

    def refresh():
        half = samples // 2
        loss = margin_bt_loss(reward(states[:half]), reward(states[half:]), mu=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return median_seconds(score, repeats), median_seconds(refresh, repeats)


@torch.inference_mode()
def time_generation(loaded, prompt: str, samples: int, new_tokens: int, repeats: int) -> float:
    text = hs.format_prompt(loaded.tokenizer, prompt)
    ids = loaded.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    batch = ids.repeat(samples, 1)

    def generate():
        torch.manual_seed(0)
        loaded.model.generate(
            input_ids=batch,
            attention_mask=torch.ones_like(batch),
            do_sample=True,
            top_p=0.9,
            temperature=1.0,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )

    return median_seconds(generate, repeats)


def forward_flops_per_token(params: float, layers: int, hidden: int, context: float) -> float:
    """2N for the weights plus 2 * layers * context * hidden for attention scores and mixing."""
    return 2 * params + 2 * layers * context * hidden


def analytic_rows(prompt_tokens: int, samples: int, lengths: list[int]) -> list[dict]:
    p, n_layers, d = LLAMA2_7B["parameters"], LLAMA2_7B["layers"], LLAMA2_7B["hidden"]
    # R_h per response: standardise (2 L d), dot products (2 L d), gate matmul (2 L^2), mixing;
    # the refresh step costs about 3x a forward (forward + backward) on N/2 pairs = N responses.
    r_h = 4 * n_layers * d + 2 * n_layers**2 + 4 * n_layers
    ours = samples * r_h * (1 + 3)
    rows = []
    for t in lengths:
        generate = samples * sum(
            forward_flops_per_token(p, n_layers, d, prompt_tokens + i) for i in range(t)
        )
        prefill = (
            samples * prompt_tokens * forward_flops_per_token(p, n_layers, d, prompt_tokens / 2)
        )
        score = (
            samples
            * (prompt_tokens + t)
            * forward_flops_per_token(p, n_layers, d, (prompt_tokens + t) / 2)
        )
        online = generate + prefill + score
        rows.append({"T": t, "online": online, "ours": ours, "ratio": online / ours})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smol")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    params = load_params(f"params/{args.profile}.yaml")
    loaded = load_model(params.model, seed=params.seed)
    loaded.model.eval()
    prompt = (
        load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed).records[0].prompt
    )
    prompt_tokens = len(loaded.tokenizer(hs.format_prompt(loaded.tokenizer, prompt)).input_ids)
    reward = random_reward(loaded.num_layers, loaded.hidden_size, params.seed)
    score_s, refresh_s = time_scoring(reward, args.samples, repeats=200)

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads,"
        f" torch {torch.__version__}"
    )
    print(
        f"policy {loaded.name}: {loaded.num_layers} layers, d = {loaded.hidden_size};"
        f" prompt {prompt_tokens} tokens; N = {args.samples}\n"
    )
    print(
        f"R_h score {args.samples} responses: {score_s * 1e6:.1f} us;"
        f" refresh step: {refresh_s * 1e6:.1f} us\n"
    )
    print("| new tokens T | generate N (s) | generate / score | generate / (score + refresh) |")
    print("|---:|---:|---:|---:|")
    for t in args.new_tokens:
        generate_s = time_generation(loaded, prompt, args.samples, t, args.repeats)
        print(
            f"| {t} | {generate_s:.2f} | {generate_s / score_s:.2e} |"
            f" {generate_s / (score_s + refresh_s):.2e} |"
        )

    print(
        f"\nAnalytic, Llama-2-7B, N = {args.samples}, prompt {prompt_tokens} tokens"
        " (online = generate N + score N with a same-size reward model):\n"
    )
    print("| T | online FLOPs | ours FLOPs (score + refresh) | ratio | orders of magnitude |")
    print("|---:|---:|---:|---:|---:|")
    for row in analytic_rows(prompt_tokens, args.samples, [64, 128, 256, 512, 1024, 2048]):
        print(
            f"| {row['T']} | {row['online']:.2e} | {row['ours']:.2e} | {row['ratio']:.2e} |"
            f" {math.log10(row['ratio']):.1f} |"
        )


if __name__ == "__main__":
    main()
