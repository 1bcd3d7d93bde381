"""One call seeds every source of randomness the suite uses."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python `random`, numpy, torch (all devices); sklearn takes `random_state=seed` explicitly."""
    os.environ["PYTHONHASHSEED"] = str(
        seed
    )  # inherited by subprocesses; this process is already hashed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from labels (a run seed, a prompt id, ...), the same in every process
    (blake2b, not Python's salted `hash`)."""
    blob = "\x00".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big") >> 1
