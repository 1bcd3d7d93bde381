"""A cDPO run on the tiny model in a child process that `test_reliability` kills with SIGKILL.

`python tests/training_worker.py OUT_DIR STAGE` trains and, at STAGE, prints `READY` and waits to be
killed, so the kill lands at a known point:

- `training`: in the middle of step 3 (after the checkpoint of step 2), before its update;
- `checkpointing`: half-way through writing the checkpoint of step 4;
- `complete`: no kill point; runs to the end (resuming where OUT_DIR has a checkpoint) and prints
  `RESUMED_FROM <step>`.

Every run under comparison is a fresh process on one thread: results then do not depend on what an
earlier test did to the process or on how a multi-threaded BLAS splits its sums under load.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch

from repsafe_lib import training
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.models import load_model
from repsafe_lib.params import load_params
from repsafe_lib.records import PreferencePair
from repsafe_lib.training import checkpoints

STAGES = ("training", "checkpointing")
COMPLETE = "complete"
PAIRS = [
    PreferencePair(
        f"w{i}", f"Question {i}: how do I do thing {i}?", "I can't help.", f"Do {i}.", ()
    )
    for i in range(6)
]


def worker_run(
    out_dir: str | Path, reference_hook=None, stop_after: int | None = None, **changes
) -> training.RunResult:
    """The run under test (also used by `test_reliability` to build the uninterrupted result, and
    by `multiprocess_worker` over several processes); `changes`: to its training settings."""
    params = load_params("params/tiny.yaml")
    settings = dataclasses.replace(
        params.training, batch_size=2, max_steps=6, checkpoint_every=2, learning_rate=1e-3
    )
    settings = dataclasses.replace(settings, **changes)
    model = load_model(params.model, seed=params.seed)
    reference_model = load_model(params.model, seed=params.seed).model
    pairs = training.encode_pairs(model.tokenizer, PAIRS, max_length=128, seed=0, folds=2)
    reference = training.OnTheFlyReference(reference_model, model.tokenizer.pad_token_id)
    layers = tuple(range(1, model.num_layers + 1))
    generator = torch.Generator().manual_seed(0)
    rewards = []
    for _ in range(2):
        reward = HybridReward(HybridRewardConfig(layers, model.hidden_size))
        with torch.no_grad():
            reward.weight.copy_(torch.randn(reward.weight.shape, generator=generator))
        rewards.append(reward)
    fold_rewards = training.FoldRewards(
        rewards, alpha=7.5, mu=1.0, train_scorers=True, learning_rate=1e-2
    )
    return training.train_run(
        "cdpo",
        model=model.model,
        tokenizer=model.tokenizer,
        pairs=pairs,
        training=settings,
        seed=params.seed,
        out_dir=out_dir,
        reference=reference_hook(reference) if reference_hook else reference,
        fold_rewards=fold_rewards,
        progress=False,
        _stop_after=stop_after,
    )


def wait_to_be_killed() -> None:
    print("READY", flush=True)
    while True:
        time.sleep(60)


def stop_in_step(step: int):
    def hook(reference):
        calls = []

        def scored(pairs, device):
            calls.append(1)
            if len(calls) == step + 1:
                wait_to_be_killed()
            return reference(pairs, device)

        return scored

    return hook


def stop_half_way_through_checkpoint(step: int) -> None:
    real_save = checkpoints.save_file

    def half_written(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        if f"step-{step:06d}" in str(filename) and Path(filename).name == "optimiser.safetensors":
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
            wait_to_be_killed()

    checkpoints.save_file = half_written


def main(out_dir: str, stage: str) -> None:
    torch.set_num_threads(1)
    if stage == "training":
        worker_run(out_dir, reference_hook=stop_in_step(3))
    elif stage == "checkpointing":
        stop_half_way_through_checkpoint(4)
        worker_run(out_dir)
    else:
        result = worker_run(out_dir)
        print(f"RESUMED_FROM {result.resumed_from}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in (*STAGES, COMPLETE):
        raise SystemExit(f"usage: {sys.argv[0]} OUT_DIR {{{','.join((*STAGES, COMPLETE))}}}")
    main(*sys.argv[1:])
