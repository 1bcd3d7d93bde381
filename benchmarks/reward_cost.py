"""What a reward for N sampled responses costs: R_h on their states vs producing them (Fig 7).

    python benchmarks/reward_cost.py [--profile smol] [--new-tokens 32 64 128] [--samples 8]

The same measurements as notebook 07 (`repsafe_lib.compute_cost`), printed as tables, with the
profile's policy on this machine:
  ours     R_h scores the last-token states of N responses (`[N, L, d]`; during cDPO they come from
           the forward pass the training step runs anyway) and takes training's refresh
           (`training.refresh_steps` margin-BT AdamW steps of `training.refresh`) on N/2 pairs;
  online   N responses of exactly T new tokens to one prompt, batched, with the KV cache, then
           scored by a reward model of the policy's size.
Analytic, for Llama-2-7B: FLOPs per sample of the same two (the paper's Fig 7 claims 5-6 orders).
"""

from __future__ import annotations

import argparse
import platform

import torch

from repsafe_lib import compute_cost
from repsafe_lib.hidden_states import format_prompt
from repsafe_lib.loaders import load_configured
from repsafe_lib.models import load_model
from repsafe_lib.params import load_params
from repsafe_lib.training import refreshed_rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smol")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_params(f"params/{args.profile}.yaml")
    loaded = load_model(params.model, seed=params.seed)
    prompt = load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed)
    prompt = prompt.records[0].prompt
    prompt_tokens = len(loaded.tokenizer(format_prompt(loaded.tokenizer, prompt)).input_ids)
    reward = compute_cost.random_hybrid_reward(loaded.num_layers, loaded.hidden_size, params.seed)
    hybrid = compute_cost.time_hybrid_reward(
        refreshed_rewards([reward], params),
        samples=args.samples,
        refresh_steps=params.training.refresh_steps,
        repeats=200,
        seed=params.seed,
    )
    online = {
        t: compute_cost.time_online_sampling(
            loaded.model,
            loaded.tokenizer,
            prompt,
            samples=args.samples,
            new_tokens=t,
            repeats=args.repeats,
            seed=params.seed,
        )
        for t in args.new_tokens
    }
    measured = compute_cost.measured_costs(hybrid, online, args.samples)
    analytic = compute_cost.analytic_costs(
        compute_cost.LLAMA2_7B, prompt_tokens, [64, 128, 256, 512, 1024, 2048]
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads,"
        f" torch {torch.__version__}; policy {loaded.name}: {loaded.num_layers} layers,"
        f" d = {loaded.hidden_size}; prompt {prompt_tokens} tokens; N = {args.samples}\n"
    )
    print(
        f"R_h: score {args.samples} responses {hybrid['score_s'] * 1e6:.1f} us,"
        f" refresh {hybrid['refresh_s'] * 1e6:.1f} us\n"
    )
    print(measured.to_markdown(index=False, floatfmt=".3g"), "\n")
    print(f"Analytic, Llama-2-7B, prompt {prompt_tokens} tokens, per sample:\n")
    print(analytic.to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
