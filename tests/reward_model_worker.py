"""Notebook 05's reward model on the tiny model, fit by `scalar_reward_model.fit_and_save` (what
`python -m repsafe_lib.training --reward-model` runs) in every process `accelerate launch` starts
with one of the project's config files, or in this one process when run as a plain script.

`accelerate launch ... tests/reward_model_worker.py OUT_DIR STOP_AFTER [KEY=VALUE ...]` trains
into `OUT_DIR/reward_model` (resuming from `OUT_DIR/reward_model-checkpoints`; KEY=VALUE: training
settings to change, e.g. `mixed_precision=bf16`) and stops after STOP_AFTER steps as if killed
(`all`: runs to the end); the main process prints `RESULT <json>`: the step it resumed from, the
curve, whether it finished, the process count and whether the model was sharded. On CPU the FSDP
config's processes are switched to FSDP as `multiprocess_worker` does it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import yaml
from accelerate.state import PartialState
from multiprocess_worker import fsdp_on_cpu

from repsafe_lib import scalar_reward_model
from repsafe_lib.models import base_fingerprint, load_tokenizer
from repsafe_lib.params import LoraParams, RewardModelParams, load_params
from repsafe_lib.records import PreferencePair
from repsafe_lib.training import loop

PAIRS = [
    PreferencePair(
        f"r{i}", f"Question {i}: how do I do thing {i}?", "I can't help with that.", f"Do {i}.", ()
    )
    for i in range(8)
]
SETTINGS = RewardModelParams(steps=6, batch_size=4, learning_rate=1e-3, max_length=64)


def fit_options(**changes) -> dict:
    """`fit_and_save`'s (and `fit_or_load`'s) arguments of the fit under test; `changes`: to the
    profile's training settings."""
    params = load_params("params/tiny.yaml")
    if isinstance(changes.get("lora"), dict):
        changes["lora"] = LoraParams(**changes["lora"])
    training = dataclasses.replace(params.training, checkpoint_every=2, **changes)
    base = scalar_reward_model.BaseWeights(
        base_fingerprint(params.model, seed=params.seed), load_tokenizer(params.model)
    )
    return {
        "base": base,
        "model_params": params.model,
        "training": training,
        "settings": SETTINGS,
        "pairs": PAIRS,
        "seed": params.seed,
    }


def main(out_dir: str, stop_after: str, *settings: str) -> None:
    torch.set_num_threads(1)
    loop.new_accelerator = fsdp_on_cpu(loop.new_accelerator)
    changes = {}
    for setting in settings:  # KEY=VALUE, the value read as YAML
        key, value = setting.split("=", 1)
        changes[key] = yaml.safe_load(value)
    fit = scalar_reward_model.fit_and_save(
        Path(out_dir) / "reward_model",
        **fit_options(**changes),
        progress=False,
        _stop_after=None if stop_after == "all" else int(stop_after),
    )
    if PartialState().is_main_process:
        summary = {
            "resumed_from": fit.resumed_from,
            "curve": dataclasses.asdict(fit.curve),
            "finished": fit.finished,
            "sharded": fit.sharded,
            "processes": PartialState().num_processes,
        }
        print("RESULT " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR {{STOP_AFTER,all}} [KEY=VALUE ...]")
    main(*sys.argv[1:])
