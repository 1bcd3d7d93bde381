"""One call seeds every source of randomness the suite uses."""

from __future__ import annotations

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
