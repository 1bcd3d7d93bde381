"""Views of loaded records: both sides of each pair as labelled responses, the split by prompt
(no prompt on both sides; docs/method.md, Data) and a seeded size cap."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from repsafe_lib.records import LabeledResponse, PreferencePair

T = TypeVar("T")


def to_labeled_responses(pairs: Sequence[PreferencePair]) -> list[LabeledResponse]:
    """Both sides of each pair, chosen (safe) then rejected (unsafe), for hidden-state probes."""
    labeled: list[LabeledResponse] = []
    for pair in pairs:
        labeled.append(LabeledResponse(f"{pair.pair_id}:chosen", pair.prompt, pair.chosen, True))
        labeled.append(
            LabeledResponse(f"{pair.pair_id}:rejected", pair.prompt, pair.rejected, False)
        )
    return labeled


class _HasPrompt(Protocol):
    @property
    def prompt(self) -> str: ...


P = TypeVar("P", bound=_HasPrompt)


def normalise_prompt(prompt: str) -> str:
    """Casefolded, whitespace-collapsed prompt: the key that decides a prompt's side."""
    return " ".join(prompt.split()).casefold()


def _prompt_rank(prompt: str, seed: int) -> bytes:
    # blake2b, not hash(): builtin str hashes are salted per process (PYTHONHASHSEED).
    return hashlib.blake2b(f"{seed}\x00{prompt}".encode(), digest_size=16).digest()


def _n_test_prompts(n_prompts: int, test_fraction: float) -> int:
    n_test = round(test_fraction * n_prompts)
    if 0 < test_fraction < 1 and n_prompts >= 2:
        n_test = min(max(n_test, 1), n_prompts - 1)  # both sides non-empty when possible
    return n_test


def split_by_prompt(
    records: Sequence[P], *, test_fraction: float, seed: int
) -> tuple[list[P], list[P]]:
    """Split records (anything with ``.prompt``) into (train, test), never sharing a prompt.

    Distinct normalised prompts are ranked by a seeded blake2b hash and the first
    ``round(test_fraction * n_prompts)`` go to test (at least one on each side when there are two
    or more prompts and 0 < test_fraction < 1). So the fraction is exact over prompts, only
    approximate over records; deterministic across Python runs; input order is kept.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    keys = [normalise_prompt(record.prompt) for record in records]
    prompts = sorted(set(keys), key=lambda key: _prompt_rank(key, seed))
    test_prompts = set(prompts[: _n_test_prompts(len(prompts), test_fraction)])
    train = [r for r, key in zip(records, keys, strict=True) if key not in test_prompts]
    test = [r for r, key in zip(records, keys, strict=True) if key in test_prompts]
    return train, test


def subsample(records: Sequence[T], max_rows: int | None, seed: int) -> list[T]:
    """At most `max_rows` records, a seeded choice kept in file order (all of them if None)."""
    if max_rows is None or len(records) <= max_rows:
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), max_rows))
    return [records[i] for i in keep]
