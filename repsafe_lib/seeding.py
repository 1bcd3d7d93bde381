"""One call seeds every source of randomness the suite uses."""

from __future__ import annotations

import hashlib
import os

from accelerate.utils import set_seed


def seed_everything(seed: int) -> None:
    """Seed python `random`, numpy and torch (every device), with `accelerate`'s `set_seed`;
    sklearn takes `random_state=seed` explicitly."""
    # transformers' `set_seed` does the same, but importing it loads peft and bitsandbytes.
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by subprocesses; this one is hashed
    set_seed(seed)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed derived from labels (a run seed, a prompt id, ...), the same in every process
    (blake2b, not Python's salted `hash`)."""
    blob = "\x00".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big") >> 1
