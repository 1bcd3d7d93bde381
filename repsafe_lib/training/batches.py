"""Training data as token ids: preference pairs encoded with their response span marked, collated
into right-padded batches, and the seeded schedule of which pairs each step takes (paper Sec 3.3).

Conversations are encoded exactly as `hidden_states` extracts them, so the last token the policy's
training forward sees is the one whose states R_h was fit on (Sec 3.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from repsafe_lib.hidden_states import format_conversation, format_prompt, pad_batch
from repsafe_lib.seeding import stable_seed


@dataclass(frozen=True)
class EncodedPair:
    """A preference pair as token ids; `*_start` is the index of the first response token."""

    pair_id: str
    fold: int
    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    chosen_start: int
    rejected_start: int


def encode_conversation(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int
) -> tuple[list[int], int]:
    """Token ids of the formatted conversation (exactly as `hidden_states` extracts them, so the
    last token is the one whose states R_h reads) and the index of the first response token.

    Too-long conversations lose tokens from the start, like extraction does.
    """
    add_special = not tokenizer.chat_template
    text = format_conversation(tokenizer, prompt, response)
    response_char = len(text) - len(response) - len(tokenizer.eos_token)
    if tokenizer.is_fast:
        encoded = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        ids = encoded["input_ids"]
        ends = [end for _, end in encoded["offset_mapping"]]
        start = next((i for i, end in enumerate(ends) if end > response_char), len(ids))
    else:
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        prompt_text = format_prompt(tokenizer, prompt)
        start = len(tokenizer(prompt_text, add_special_tokens=add_special)["input_ids"])
    dropped = max(len(ids) - max_length, 0)
    return ids[dropped:], max(start - dropped, 0)


def prompt_fold(prompt: str, seed: int, folds: int) -> int:
    """Fold of a prompt: a seeded hash, so both sides of a pair and every repeat of a prompt land
    in the same fold."""
    return stable_seed(seed, "confidence-fold", prompt.strip()) % folds


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence, *, max_length: int, seed: int, folds: int
) -> list[EncodedPair]:
    """`pairs` (anything with `pair_id`, `prompt`, `chosen`, `rejected`) as token ids, each with
    its prompt's fold."""
    encoded = []
    for pair in pairs:
        chosen, chosen_start = encode_conversation(tokenizer, pair.prompt, pair.chosen, max_length)
        rejected, rejected_start = encode_conversation(
            tokenizer, pair.prompt, pair.rejected, max_length
        )
        fold = prompt_fold(pair.prompt, seed, folds)
        encoded.append(
            EncodedPair(
                pair.pair_id, fold, tuple(chosen), tuple(rejected), chosen_start, rejected_start
            )
        )
    return encoded


@dataclass(frozen=True)
class SequenceBatch:
    """Right-padded sequences `[B, T]` with a mask of the response tokens."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor

    def to(self, device) -> SequenceBatch:
        return SequenceBatch(
            *(t.to(device) for t in (self.input_ids, self.attention_mask, self.response_mask))
        )

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(
    sequences: Sequence[Sequence[int]], starts: Sequence[int], pad_id: int
) -> SequenceBatch:
    ids, mask = pad_batch(sequences, pad_id, "right")
    response = mask.clone()
    for row, start in enumerate(starts):
        response[row, :start] = 0
    return SequenceBatch(ids, mask, response)


def pair_sequences(pairs: Sequence[EncodedPair]) -> tuple[list, list[int]]:
    """Every pair's chosen sequence, then every rejected one, with their response starts: rows `i`
    and `len(pairs) + i` are one pair."""
    sequences = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    starts = [p.chosen_start for p in pairs] + [p.rejected_start for p in pairs]
    return sequences, starts


def collate_pairs(pairs: Sequence[EncodedPair], pad_id: int) -> SequenceBatch:
    """Chosen sequences first, then rejected: rows `i` and `len(pairs) + i` are one pair."""
    return collate(*pair_sequences(pairs), pad_id)


def collate_chosen(pairs: Sequence[EncodedPair], pad_id: int) -> SequenceBatch:
    """The chosen sequences alone (what SFT trains on)."""
    return collate([p.chosen for p in pairs], [p.chosen_start for p in pairs], pad_id)


def batch_schedule(num_pairs: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Pair indices of every step: a fresh seeded permutation per epoch, read as one stream, so
    the schedule of step k is known without replaying steps 0..k-1 (resume needs that)."""
    needed, stream, epoch = steps * batch_size, [], 0
    while len(stream) < needed:
        rng = np.random.default_rng(stable_seed(seed, "epoch", epoch))
        stream.extend(rng.permutation(num_pairs).tolist())
        epoch += 1
    return [stream[k * batch_size : (k + 1) * batch_size] for k in range(steps)]


def visited_pairs(schedule: Sequence[Sequence[int]], pairs: Sequence[EncodedPair]) -> list:
    """The pairs a schedule touches, in first-visit order (only they need reference log-probs)."""
    seen = dict.fromkeys(i for batch in schedule for i in batch)
    return [pairs[i] for i in seen]


def micro_batches(items: list, parts: int) -> list[list]:
    """`items` cut into at most `parts` consecutive pieces of equal size (the last may be short),
    one per gradient-accumulation step."""
    size = math.ceil(len(items) / parts)
    return [items[i : i + size] for i in range(0, len(items), size)]
