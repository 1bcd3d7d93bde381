"""Trained policies on held-out pairs (notebook 04): each preference policy's implicit DPO reward
accuracy against the full-precision reference (Eq 3: z > 0), and how far a 4-bit NF4 reference
would move the log-ratios and margins the DPO losses compare (Sec 4.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from repsafe_lib.training.batches import EncodedPair, encode_pairs
from repsafe_lib.training.logprobs import pair_logprobs
from repsafe_lib.training.references import implicit_reward_accuracy, reference_drift


@dataclass(frozen=True)
class HeldOutLogprobs:
    """Log-probs `[n, 2]` (chosen, rejected) of held-out pairs under the full-precision reference
    and under each trained policy (by run)."""

    pairs: list[EncodedPair]
    pad_id: int
    reference: torch.Tensor
    policies: dict[str, torch.Tensor]

    def implicit_reward_accuracy(self, beta: float) -> dict[str, dict]:
        """Per run: accuracy (`z > 0`) and mean of the implicit DPO margin against the
        reference."""
        return {
            name: implicit_reward_accuracy(logprobs, self.reference, beta)
            for name, logprobs in self.policies.items()
        }


def held_out_logprobs(
    params,
    tokenizer: PreTrainedTokenizerBase,
    test_pairs: Sequence,
    policy_dirs: Mapping[str, Path],
) -> HeldOutLogprobs:
    """The first `training.drift_pairs` of `test_pairs`, cut like training's, scored by the
    full-precision reference and by every saved policy of `policy_dirs` (run -> `policy/`)."""
    from repsafe_lib.models import load_reference, load_saved_policy

    pairs = encode_pairs(
        tokenizer,
        test_pairs[: params.training.drift_pairs],
        max_length=params.extraction.max_length,
        seed=params.seed,
        folds=1,
    )
    score = {"pad_id": tokenizer.pad_token_id, "batch_size": params.extraction.batch_size}
    reference = load_reference(params.model, seed=params.seed, quantization="none")
    reference_logprobs = pair_logprobs(reference.model, pairs, **score)
    policies = {}
    for name, directory in policy_dirs.items():
        policy = load_saved_policy(directory, params.model, name=name)
        policies[name] = pair_logprobs(policy.model, pairs, **score)
    return HeldOutLogprobs(pairs, tokenizer.pad_token_id, reference_logprobs, policies)


def nf4_reference_drift(params, held_out: HeldOutLogprobs) -> dict[str, float] | None:
    """`reference_drift` of an NF4 reference from the full-precision one on the held-out pairs,
    margins taken against the last policy scored; None where bitsandbytes cannot run 4-bit here
    or no policy was scored."""
    from repsafe_lib.models import load_reference, nf4_supported

    if not (nf4_supported() and held_out.policies):
        return None
    reference = load_reference(params.model, seed=params.seed, quantization="nf4")
    logprobs = pair_logprobs(
        reference.model,
        held_out.pairs,
        pad_id=held_out.pad_id,
        batch_size=params.extraction.batch_size,
    )
    policy = list(held_out.policies.values())[-1]
    return reference_drift(held_out.reference, logprobs, policy, params.training.beta)
