"""Checkpoints of a training run: the policy's trainable weights and optimiser state, every R_h
with its optimiser, the RNG states and the step.

Two layouts. Whole weights (one process, or DDP, where every process holds the whole policy):
safetensors + JSON only (no pickles), written by the main process. Sharded (FSDP): every process
writes its shards of the policy and its optimiser with `accelerate`'s own `save_state` into
`accelerate/`: torch.distributed.checkpoint `.distcp` shards and a `.metadata` file, and one
`random_states_<rank>.pkl` per process. Those are accelerate's and torch's pickle-based formats:
shards and RNG states are read back with `torch.load(weights_only=True)`, the `.metadata` with plain
`pickle.load` (torch.distributed.checkpoint's reader). The R_h's, which every process holds whole,
stay in safetensors.

Each is written to a temporary directory and renamed into place, so a checkpoint is complete or
absent; only the newest is kept. A run resumes from one only when its `run_key` (the run, its
settings and seed, the pairs, the policy's architecture, the rewards it starts from, the layout)
matches, and then ends where an uninterrupted run would.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from repsafe_lib.artifacts import atomic_directory, write_json
from repsafe_lib.caching import CacheFormat, canonical_json, key_digest, load_cached
from repsafe_lib.hybrid_reward import load_hybrid_reward, save_hybrid_reward
from repsafe_lib.training.batches import EncodedPair
from repsafe_lib.training.fold_rewards import FoldRewards


def _optimizer_tensors(optimiser: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    state = optimiser.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _load_optimizer(optimiser, tensors: dict, meta: dict, prefix: str) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimiser.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name, each storage once (tied embeddings are one tensor)."""
    seen, out = set(), {}
    for name, param in model.named_parameters():
        if param.requires_grad and param.data_ptr() not in seen:
            seen.add(param.data_ptr())
            out[name] = param.detach().cpu().contiguous()
    return out


def _rng_state() -> tuple[dict, dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    np_state = np.random.get_state()
    meta = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def _set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(t for t in tensors if t.startswith("cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))


ACCELERATE_STATE = "accelerate"  # a sharded checkpoint's `accelerator.save_state` directory


def save_checkpoint(
    directory: Path,
    *,
    step: int,
    model: nn.Module,
    optimiser,
    fold_rewards: FoldRewards | None,
    run_key: str = "",
    run_state: dict | None = None,
) -> Path:
    """`directory/step-XXXXXX/`, complete or absent: written beside and renamed into place; only
    the newest is kept. `run_state`: what else the run needs to go on (JSON, kept in
    `state.json`; `checkpoint_run_state` reads it back)."""
    target = directory / f"step-{step:06d}"
    with atomic_directory(target) as staging:
        _write_checkpoint(staging, step, model, optimiser, fold_rewards, run_key, run_state)
    _drop_older(directory)
    return target


def save_sharded_checkpoint(
    directory: Path,
    *,
    step: int,
    accelerator,
    fold_rewards: FoldRewards | None,
    run_key: str,
    run_state: dict | None = None,
) -> Path:
    """Like `save_checkpoint`, with the policy and its optimiser sharded (FSDP): every process
    calls it; each writes its shards with `accelerator.save_state`, then the main process adds
    the R_h's and `state.json` and renames the staging directory into place."""
    target = directory / f"step-{step:06d}"
    staging = target.with_name(f".{target.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging / ACCELERATE_STATE), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tensors, state = _reward_state(staging, fold_rewards)
        state.update(step=step, run_key=run_key, sharded=True)
        if run_state is not None:
            state["run_state"] = run_state
        save_file(tensors, staging / "optimiser.safetensors")
        write_json(staging / "state.json", state)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        _drop_older(directory)
    accelerator.wait_for_everyone()
    return target


def _drop_older(directory: Path) -> None:
    for old in sorted(directory.glob("step-*"))[:-1]:
        shutil.rmtree(old, ignore_errors=True)


def _reward_state(staging: Path, fold_rewards: FoldRewards | None) -> tuple[dict, dict]:
    """Write every R_h into `staging`; returns their optimisers' tensors and the JSON rest."""
    tensors, metas = {}, []
    if fold_rewards is not None:
        for f, (reward, opt) in enumerate(
            zip(fold_rewards.rewards, fold_rewards.optimisers, strict=True)
        ):
            save_hybrid_reward(reward, staging / f"reward-{f}")
            reward_tensors, reward_meta = _optimizer_tensors(opt, f"reward{f}")
            tensors.update(reward_tensors)
            metas.append(reward_meta)
    return tensors, {"reward_optimisers": metas}


def _write_checkpoint(
    staging: Path, step: int, model, optimiser, fold_rewards, run_key, run_state
) -> None:
    save_file(trainable_state(model), staging / "trainable.safetensors")
    tensors, meta = _optimizer_tensors(optimiser, "policy")
    rng_tensors, rng_meta = _rng_state()
    reward_tensors, state = _reward_state(staging, fold_rewards)
    tensors.update(reward_tensors)
    state.update(step=step, run_key=run_key, optimiser=meta, rng=rng_meta)
    if run_state is not None:
        state["run_state"] = run_state
    save_file(tensors, staging / "optimiser.safetensors")
    save_file({f"rng.{k}": v for k, v in rng_tensors.items()}, staging / "rng.safetensors")
    write_json(staging / "state.json", state)


def run_key(
    name: str,
    training,
    seed: int,
    pairs: Sequence[EncodedPair],
    model: nn.Module,
    fold_rewards: FoldRewards | None,
) -> str:
    """What a checkpoint must match to be resumed: the run, its settings and seed, the pairs, the
    policy's architecture and the rewards it starts from."""
    config = getattr(model, "config", None)
    architecture = config.to_json_string(use_diff=False) if config is not None else ""
    rewards = fold_rewards.rewards if fold_rewards is not None else ()
    return key_digest(
        canonical_json([name, repr(training), seed, architecture]),
        (canonical_json([p.pair_id, p.fold, p.chosen, p.rejected]) for p in pairs),
        (
            tensor.detach().cpu().contiguous().numpy().tobytes()
            for reward in rewards
            for tensor in reward.state_dict().values()
        ),
        length=16,
    )


def checkpoint_key(path: Path) -> str | None:
    return json.loads((path / "state.json").read_text(encoding="utf-8")).get("run_key")


def checkpoint_run_state(path: Path) -> dict:
    """The `run_state` a checkpoint was saved with (empty where none was)."""
    return json.loads((path / "state.json").read_text(encoding="utf-8")).get("run_state", {})


def latest_checkpoint(directory: Path) -> Path | None:
    complete = [d for d in sorted(directory.glob("step-*")) if (d / "state.json").is_file()]
    return complete[-1] if complete else None


# A checkpoint is a resume state, written by the loop as it goes: only its key is looked up here.
CHECKPOINT = CacheFormat(
    what="checkpoint", load=lambda path: path, recorded_key=checkpoint_key, remedy="starting afresh"
)


def resumable_checkpoint(directory: Path, key: str) -> Path | None:
    """The newest complete checkpoint in `directory` if it was written under `key` (this run's
    `run_key`); None where there is none, or it is from other settings or pairs, or unreadable."""
    found = latest_checkpoint(directory)
    return None if found is None else load_cached(found, key, CHECKPOINT)


def load_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimiser,
    fold_rewards: FoldRewards | None,
    accelerator=None,
) -> int:
    """Restore what `save_checkpoint` or (every process calling it, with the `accelerator` that
    prepared the policy) `save_sharded_checkpoint` wrote; returns the step to continue from."""
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    tensors = load_file(path / "optimiser.safetensors")
    _load_rewards(path, state, tensors, fold_rewards)  # first: building an R_h draws random numbers
    if state.get("sharded"):
        if accelerator is None:
            raise ValueError(f"{path}: a sharded checkpoint needs the accelerator to restore it")
        accelerator.load_state(str(path / ACCELERATE_STATE))  # policy, optimiser, RNG
    else:
        _load_whole_policy(path, state, tensors, model, optimiser)
    return int(state["step"])


def _load_whole_policy(path: Path, state: dict, tensors: dict, model, optimiser) -> None:
    weights = load_file(path / "trainable.safetensors")
    expected = trainable_state(model)
    if set(weights) != set(expected):
        raise ValueError(f"{path}: checkpoint weights do not match the model being trained")
    model.load_state_dict(weights, strict=False)
    _load_optimizer(optimiser, tensors, state["optimiser"], "policy")
    rng = {k.removeprefix("rng."): v for k, v in load_file(path / "rng.safetensors").items()}
    _set_rng_state(rng, state["rng"])


def _load_rewards(path: Path, state: dict, tensors: dict, fold_rewards) -> None:
    if fold_rewards is not None:
        for f in range(len(fold_rewards.rewards)):
            loaded = load_hybrid_reward(path / f"reward-{f}")
            fold_rewards.rewards[f].load_state_dict(loaded.state_dict())
            _load_optimizer(
                fold_rewards.optimisers[f], tensors, state["reward_optimisers"][f], f"reward{f}"
            )


def write_run_checkpoint(
    directory: Path,
    *,
    step: int,
    sharded: bool,
    accelerator,
    model: nn.Module,
    optimiser,
    fold_rewards: FoldRewards | None,
    run_key: str,
    run_state: dict | None = None,
) -> None:
    """The checkpoint after `step` steps, every process calling it: sharded, every process
    writing its part (FSDP), or whole, written by the main process (`model`: unwrapped)."""
    if sharded:
        save_sharded_checkpoint(
            directory,
            step=step,
            accelerator=accelerator,
            fold_rewards=fold_rewards,
            run_key=run_key,
            run_state=run_state,
        )
    elif accelerator.is_main_process:
        save_checkpoint(
            directory,
            step=step,
            model=model,
            optimiser=optimiser,
            fold_rewards=fold_rewards,
            run_key=run_key,
            run_state=run_state,
        )


def resume_or_start_afresh(
    directory: Path,
    key: str,
    *,
    resume: bool,
    accelerator,
    model: nn.Module,
    optimiser,
    fold_rewards: FoldRewards | None,
) -> tuple[int, Path | None]:
    """Every process calling it: with `resume`, restore the newest checkpoint in `directory`
    written under `key`, if any; returns the step to continue from and the checkpoint. Any other
    checkpoint is deleted."""
    found = resumable_checkpoint(directory, key) if resume else None
    accelerator.wait_for_everyone()  # every process has looked before any deletes
    if found is None:
        if accelerator.is_main_process:
            shutil.rmtree(directory, ignore_errors=True)
        accelerator.wait_for_everyone()
        return 0, None
    start = load_checkpoint(
        found, model=model, optimiser=optimiser, fold_rewards=fold_rewards, accelerator=accelerator
    )
    return start, found
