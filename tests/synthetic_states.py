"""Synthetic examples and states for the probe and reward tests (no model needed)."""

from __future__ import annotations

import numpy as np

from repsafe_lib.hidden_states import StateExample

FIT = {"c_grid": (1e-2, 1.0), "folds": 3, "max_iter": 10000, "seed": 0}


def synthetic_examples(n_pairs: int, *, seed: int = 0, test_every: int = 4) -> list[StateExample]:
    """Pairs of (safe, unsafe) responses, one prompt per pair, every `test_every`-th pair in test."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n_pairs):
        split = "test" if i % test_every == 0 else "train"
        prompt = f"prompt {i}"
        words = int(rng.integers(5, 30))
        examples.append(StateExample(f"p{i}:chosen", prompt, "fine " * words, True, split))
        examples.append(StateExample(f"p{i}:rejected", prompt, "sure " * words, False, split))
    return examples


def separable_states(is_safe: np.ndarray, layers: int = 3, d: int = 16, seed: int = 0):
    """Gaussian noise plus a class offset along one direction, per layer."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(len(is_safe), layers, d))
    states[:, :, 0] += np.where(is_safe, 4.0, -4.0)[:, None]
    return states
