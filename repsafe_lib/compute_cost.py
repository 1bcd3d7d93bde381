"""Fig 7 (Sec 4.8): the extra compute a training sample costs, beyond the policy update.

Ours: R_h scores the last-token states that the training forward already produced, then takes the
refresh training takes on them (`training.FoldRewards.refresh`: the same trainable set, steps and
optimiser), so its cost does not depend on the sequence length. Online sampling: the
policy generates N responses of T new tokens per prompt and a reward model of the policy's size
scores them, every round. Both are measured on this machine with the profile's policy, and the
same comparison is counted in FLOPs for Llama-2-7B (the paper's model), whose ratio the paper puts
at 5-6 orders of magnitude.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch

from repsafe_lib.hidden_states import format_prompt
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.scalar_reward_model import ScalarRewardModel

if TYPE_CHECKING:
    from repsafe_lib.training import FoldRewards


@dataclass(frozen=True)
class ModelShape:
    parameters: float
    layers: int
    hidden: int


LLAMA2_7B = ModelShape(parameters=6.74e9, layers=32, hidden=4096)
PAPER_ORDERS_OF_MAGNITUDE = (5, 6)  # Sec 4.8: "5-6 orders of magnitude lower than online"


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def random_hybrid_reward(num_layers: int, hidden: int, seed: int) -> HybridReward:
    """An input-gated R_h of the policy's shape; its cost does not depend on its weights."""
    generator = torch.Generator().manual_seed(seed)
    reward = HybridReward(HybridRewardConfig(tuple(range(1, num_layers + 1)), hidden, "input"))
    with torch.no_grad():
        for tensor in (reward.weight, reward.bias, reward.gate_weight):
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
    return reward


def time_hybrid_reward(
    rewards: FoldRewards, *, samples: int, refresh_steps: int, repeats: int, seed: int
) -> dict[str, float]:
    """Seconds to score `samples` responses' states `[N, L, d]` with `rewards` (as a cDPO step
    scores its batch), and for the refresh that follows it in training, `rewards.refresh` with
    `refresh_steps` steps on N/2 pairs of them. Build `rewards` with
    `training.refreshed_rewards`, so it updates what training's refresh updates; it is trained
    in place."""
    config = rewards.rewards[0].config
    shape = (samples, len(config.layers), config.hidden_size)
    states = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    half = samples // 2
    folds = torch.zeros(half, dtype=torch.long)

    def score():
        rewards.score(states, torch.zeros(samples, dtype=torch.long))

    def refresh():
        rewards.refresh(states[:half], states[half : 2 * half], folds, refresh_steps)

    return {
        "score_s": median_seconds(score, repeats),
        "refresh_s": median_seconds(refresh, repeats),
    }


def prompt_ids(tokenizer, prompt: str, samples: int, device) -> torch.Tensor:
    text = format_prompt(tokenizer, prompt)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    return ids.repeat(samples, 1).to(device)


@torch.inference_mode()
def time_online_sampling(
    model, tokenizer, prompt: str, *, samples: int, new_tokens: int, repeats: int, seed: int
) -> dict[str, float]:
    """Seconds to sample `samples` responses of exactly `new_tokens` tokens to one prompt
    (batched, KV cache, top-p 0.9) and to score them with a reward model of the policy's size
    (its decoder body under a scalar head)."""
    device = next(model.parameters()).device
    batch = prompt_ids(tokenizer, prompt, samples, device)
    reward_model = ScalarRewardModel.from_causal_lm(model).to(device).eval()
    generated = {}

    def generate():
        torch.manual_seed(seed)
        generated["ids"] = model.generate(
            input_ids=batch,
            attention_mask=torch.ones_like(batch),
            do_sample=True,
            top_p=0.9,
            temperature=1.0,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )

    def score():
        ids = generated["ids"]
        reward_model(ids, torch.ones_like(ids))

    generate_s = median_seconds(generate, repeats)
    return {"generate_s": generate_s, "score_s": median_seconds(score, repeats)}


def measured_costs(hybrid: dict[str, float], online: dict[int, dict[str, float]], samples: int):
    """Per training sample, in seconds: ours (R_h score + refresh, amortised over the N samples
    a step sees) vs online (generate + score) at each new-token count; the ratio in orders."""
    ours = (hybrid["score_s"] + hybrid["refresh_s"]) / samples
    rows = []
    for new_tokens, times in sorted(online.items()):
        online_s = (times["generate_s"] + times["score_s"]) / samples
        rows.append(
            {
                "new_tokens": new_tokens,
                "online_generate_s": times["generate_s"] / samples,
                "online_score_s": times["score_s"] / samples,
                "online_s": online_s,
                "ours_s": ours,
                "ratio": online_s / ours,
                "orders_of_magnitude": math.log10(online_s / ours),
            }
        )
    return pd.DataFrame(rows)


def forward_flops_per_token(shape: ModelShape, context: float) -> float:
    """2 FLOPs per weight, plus attention scores and mixing over `context` earlier tokens."""
    return 2 * shape.parameters + 2 * shape.layers * context * shape.hidden


def hybrid_reward_flops(shape: ModelShape) -> float:
    """R_h on one response: standardise and dot each layer's state (4 L d), the input gate's
    L x L matmul (2 L^2) and the mixing (4 L); the refresh step's forward + backward ~ 3x that."""
    layers, hidden = shape.layers, shape.hidden
    forward = 4 * layers * hidden + 2 * layers**2 + 4 * layers
    return forward * (1 + 3)


def online_flops(shape: ModelShape, prompt_tokens: int, new_tokens: int) -> float:
    """One online sample: prefill the prompt, decode `new_tokens` with the KV cache, then one
    forward of a same-size reward model over prompt + response."""
    prefill = prompt_tokens * forward_flops_per_token(shape, prompt_tokens / 2)
    decode = sum(forward_flops_per_token(shape, prompt_tokens + i) for i in range(new_tokens))
    total = prompt_tokens + new_tokens
    return prefill + decode + total * forward_flops_per_token(shape, total / 2)


def analytic_costs(shape: ModelShape, prompt_tokens: int, lengths: Sequence[int]) -> pd.DataFrame:
    """FLOPs per training sample for `shape`: online vs ours, and the ratio in orders."""
    ours = hybrid_reward_flops(shape)
    rows = []
    for new_tokens in lengths:
        online = online_flops(shape, prompt_tokens, new_tokens)
        rows.append(
            {
                "new_tokens": new_tokens,
                "online_flops": online,
                "ours_flops": ours,
                "ratio": online / ours,
                "orders_of_magnitude": math.log10(online / ours),
            }
        )
    return pd.DataFrame(rows)
