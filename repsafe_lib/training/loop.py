"""The training loop (paper Sec 3.3-3.4): accumulate, clip, step, refresh R_h, log a row per step,
checkpoint.

One step on a batch of pairs: every micro-batch's forward gives the objective's terms (for cDPO:
the policy's log-probs and, from the same forward, the states R_h scores into gamma) and its loss
is backpropagated; the gradient is clipped and AdamW steps; then the step's terms are gathered from
every micro-batch and process into its metrics row, and R_h, where the objective refreshes it,
takes `training.refresh_steps` margin-BT steps on the step's detached states.

The loop is built on `accelerate`: in a notebook it runs in one process (CPU or one GPU); the same
code runs on many GPUs with `accelerate launch --config_file configs/accelerate/<layout>.yaml -m
repsafe_lib.training`, each process holding the whole policy (DDP) or a shard of it (FSDP2: the
checkpoints are then `accelerate`'s sharded state, the saved policy is gathered whole).
`train_run` is a whole run with checkpoints, resume and the saved policy; its pieces
(`start_loop`, `run_steps`, `finish_run`) also serve short in-memory runs such as an online-DPO
round, and the step benchmark.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import write_json
from repsafe_lib.hybrid_reward import save_hybrid_reward
from repsafe_lib.seeding import seed_everything
from repsafe_lib.training.batches import EncodedPair, batch_schedule, micro_batches
from repsafe_lib.training.checkpoints import (
    latest_checkpoint,
    resume_or_start_afresh,
    run_key,
    write_run_checkpoint,
)
from repsafe_lib.training.fold_rewards import FoldRewards
from repsafe_lib.training.logprobs import ResponseScorer
from repsafe_lib.training.metrics_log import (
    append_line,
    read_logged_metrics,
    run_summary,
    write_metrics,
)
from repsafe_lib.training.objectives import RUN_LABELS, Objective, StepInputs, objective_of
from repsafe_lib.training.policy import prepare_policy, save_policy

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    name: str
    metrics: list[dict]
    directory: Path
    policy_dir: Path | None  # None when the run was stopped before its last step
    resumed_from: int  # step a checkpoint restored (0: a fresh start)


@dataclass
class Loop:
    """A run being trained: the prepared policy, its optimiser and scorer (both as `accelerate`
    prepared them), the pairs and their seeded schedule, and where its log and checkpoints go
    (`checkpoints` None: none are written)."""

    name: str
    objective: Objective
    training: object
    pairs: Sequence[EncodedPair]
    schedule: list[list[int]]
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    trainable: list[torch.nn.Parameter]
    optimiser: torch.optim.Optimizer
    accelerator: object
    inputs: StepInputs
    out_dir: Path
    checkpoints: Path | None
    run_key: str

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    @property
    def fold_rewards(self) -> FoldRewards | None:
        return self.inputs.fold_rewards

    @property
    def sharded(self) -> bool:
        return is_sharded(self.accelerator)


def learning_rate_at(step: int, base: float, warmup_steps: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant: `base * min(1, (step + 1) / W)`.

    This is transformers' `get_constant_schedule_with_warmup` one step ahead (its factor is
    step / W, 0 at the first step), as a function of the step, so a resumed run needs no
    scheduler state."""
    return base * min(1.0, (step + 1) / warmup_steps) if warmup_steps else base


def new_accelerator(training, device: torch.device):
    """An `Accelerator` for `training`'s precision on `device`'s kind, over whose processes the
    batch must split evenly (each process then accumulates over its share)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if not AcceleratorState._shared_state or AcceleratorState().mixed_precision != (
        training.mixed_precision
    ):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    accelerator = Accelerator(mixed_precision=training.mixed_precision, cpu=device.type == "cpu")
    world, accumulation = accelerator.num_processes, training.gradient_accumulation_steps
    if training.batch_size % (world * accumulation):
        raise ValueError(
            f"training.batch_size {training.batch_size} must divide by processes x accumulation"
            f" steps ({world} x {accumulation})"
        )
    if is_sharded(accelerator):
        configure_sharding(accelerator.state.fsdp_plugin, training)
    elif os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        log.warning(
            "FSDP was asked for, but accelerate runs %s (it shards on accelerator devices only):"
            " every process holds the whole policy",
            accelerator.distributed_type,
        )
    return accelerator


def is_sharded(accelerator) -> bool:
    """Whether `accelerator` shards the policy over its processes (FSDP)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def configure_sharding(plugin, training) -> None:
    """Refuse what the loop does not support under FSDP (`check_sharding`); then keep FSDP in
    float32 throughout (weights gathered, gradients reduced, outputs returned): the profile's
    mixed precision is autocast around the forward (`autocast_forward`), as in one process or DDP.
    accelerate's own FSDP policy for bf16 would gather bf16 weights (no float32 norms or
    softmax), reduce gradients in bf16 and cast the forward's outputs, the log-probs DPO subtracts,
    to bf16."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    check_sharding(plugin, training)
    plugin.mixed_precision_policy = MixedPrecisionPolicy()  # no casts


def autocast_forward(accelerator, scorer: torch.nn.Module) -> None:
    """What `accelerator.prepare` does for one process or DDP and not for FSDP2: the forward under
    the profile's autocast, its outputs back in float32."""
    from accelerate.utils import convert_outputs_to_fp32, get_mixed_precision_context_manager

    if accelerator.native_amp:
        autocast = get_mixed_precision_context_manager(True, accelerator.autocast_handler)
        scorer.forward = convert_outputs_to_fp32(autocast(scorer.forward))


def check_sharding(plugin, training) -> None:
    """What the loop supports under FSDP: FSDP2, full fine-tuning, and activation checkpointing
    set in one place only (the profile's `training.gradient_checkpointing`)."""
    if plugin.fsdp_version != 2:
        raise ValueError(
            f"FSDP version {plugin.fsdp_version} is not supported: set fsdp_version: 2 in the"
            " accelerate config (configs/accelerate/fsdp.yaml)"
        )
    if training.lora is not None:
        raise ValueError(
            "LoRA under FSDP is not supported (the saved policy merges the adapters, which needs"
            " whole weights): train LoRA with DDP (configs/accelerate/ddp.yaml); every process"
            " holds the base, the adapters are small"
        )
    if plugin.activation_checkpointing and training.gradient_checkpointing:
        raise ValueError(
            "activation checkpointing is set twice: in the accelerate config"
            " (fsdp_activation_checkpointing) and in training.gradient_checkpointing; keep the"
            " profile's and set fsdp_activation_checkpointing: false"
        )


def check_run_inputs(
    name: str, objective: Objective, reference, fold_rewards: FoldRewards | None
) -> None:
    if objective.needs_reference and reference is None:
        raise ValueError(f"run {name!r} needs a reference")
    if objective.uses_gamma and fold_rewards is None:
        raise ValueError(
            f"run {name!r} ({objective.title}) needs the hybrid rewards (fold_rewards)"
        )


def start_loop(
    name: str,
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[EncodedPair],
    training,
    seed: int,
    out_dir: Path,
    reference: Callable | None = None,
    fold_rewards: FoldRewards | None = None,
    objective: str | Objective | None = None,
    checkpoints: bool = True,
) -> Loop:
    """Seed, then make `model` (the base policy, loaded fresh) trainable as run `name`
    (`prepare_policy`), with a fresh AdamW and a scorer that records the layers R_h reads where
    the objective reads states; `checkpoints`: whether `out_dir/checkpoints/` is written."""
    objective = objective_of(name, objective)
    check_run_inputs(name, objective, reference, fold_rewards)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    accelerator = new_accelerator(training, next(model.parameters()).device)
    model = prepare_policy(model, training)
    key = run_key(
        f"{name}:{objective.name}" + (":fsdp" if is_sharded(accelerator) else ""),
        training,
        seed,
        pairs,
        model,
        fold_rewards,
    )
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=training.learning_rate,
        weight_decay=training.weight_decay,
    )
    reads_states = objective.reads_states and fold_rewards is not None
    scorer = ResponseScorer(model, fold_rewards.layers if reads_states else ())
    scorer, optimiser = accelerator.prepare(scorer, optimiser)
    # After `prepare`: FSDP replaces the parameters by sharded ones (and the optimiser's with them).
    trainable = [p for p in scorer.parameters() if p.requires_grad]
    if is_sharded(accelerator):
        autocast_forward(accelerator, scorer)
    for reward in fold_rewards.rewards if fold_rewards is not None else ():
        reward.to(accelerator.device)
    inputs = StepInputs(
        scorer, tokenizer.pad_token_id, accelerator.device, training.beta, reference, fold_rewards
    )
    schedule = batch_schedule(len(pairs), training.batch_size, training.max_steps, seed)
    directory = out_dir / "checkpoints" if checkpoints else None
    return Loop(
        name,
        objective,
        training,
        pairs,
        schedule,
        model,
        tokenizer,
        trainable,
        optimiser,
        accelerator,
        inputs,
        out_dir,
        directory,
        key,
    )


def resume_from_checkpoint(loop: Loop, resume: bool) -> tuple[int, Path | None]:
    """With `resume`, restore the newest checkpoint of this run's settings and pairs, if any;
    returns the step to continue from and the checkpoint. Any other checkpoint is deleted."""
    start, found = resume_or_start_afresh(
        loop.checkpoints,
        loop.run_key,
        resume=resume,
        accelerator=loop.accelerator,
        model=loop.model,
        optimiser=loop.optimiser,
        fold_rewards=loop.fold_rewards,
    )
    if found is not None:
        log.info("%s: resumed from %s", loop.name, found)
    return start, found


def restart_log(loop: Loop, start: int = 0, checkpoint: Path | None = None) -> list[dict]:
    """The rows of steps 0 .. start - 1 (which `checkpoint` took), rewritten as the whole log."""
    metrics = read_logged_metrics(loop.metrics_path, start, checkpoint)
    if loop.accelerator.is_main_process:
        write_metrics(loop.metrics_path, metrics)
    return metrics


def training_step(loop: Loop, step: int) -> dict:
    """One optimiser step on the schedule's batch `step`; returns its metrics row."""
    began = time.perf_counter()
    training, accelerator = loop.training, loop.accelerator
    batch = [loop.pairs[i] for i in loop.schedule[step]]
    local = batch[accelerator.process_index :: accelerator.num_processes]
    lr = learning_rate_at(step, training.learning_rate, training.warmup_steps)
    for group in loop.optimiser.param_groups:
        group["lr"] = lr
    parts, tokens = accumulate_gradients(loop, local, step)
    grad_norm = (
        accelerator.clip_grad_norm_(loop.trainable, training.max_grad_norm)
        if training.max_grad_norm is not None
        else None
    )
    loop.optimiser.step()
    loop.optimiser.zero_grad(set_to_none=True)
    row = finish_step(loop, parts)
    elapsed = time.perf_counter() - began
    total_tokens = int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device), "sum"))
    row.update(
        step=step,
        learning_rate=lr,
        grad_norm=None if grad_norm is None else float(full_value(grad_norm)),
        seconds=round(elapsed, 4),
        tokens_per_s=round(total_tokens / elapsed, 1),
    )
    return row


def full_value(tensor: torch.Tensor) -> torch.Tensor:
    """A distributed tensor's whole value (FSDP2's gradient norm is a replicated DTensor)."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def accumulate_gradients(loop: Loop, local: list[EncodedPair], step: int) -> tuple[list, int]:
    """Backward of every micro-batch of this process's pairs, each loss weighed by its share of
    them; returns every micro-batch's detached terms and the tokens read."""
    accelerator, objective = loop.accelerator, loop.objective
    micro = micro_batches(local, loop.training.gradient_accumulation_steps)
    parts, tokens = [], 0
    for index, pairs in enumerate(micro):
        last = index == len(micro) - 1
        with accelerator.no_sync(loop.inputs.scorer) if not last else contextlib.nullcontext():
            terms, num_tokens = objective.terms(pairs, loop.inputs)
            loss = objective.loss(terms)
            if not torch.isfinite(loss):
                newest = latest_checkpoint(loop.checkpoints) if loop.checkpoints else None
                raise FloatingPointError(
                    f"{loop.name}: loss is {loss.item()} at step {step}; nothing was updated"
                    f" (last good checkpoint: {newest})"
                )
            accelerator.backward(loss * len(pairs) / len(local))
        parts.append({key: value.detach() for key, value in terms.items()})
        tokens += num_tokens
    return parts, tokens


def finish_step(loop: Loop, parts: list[dict]) -> dict:
    """The step's metrics from every micro-batch of every process; then, where the objective
    refreshes R_h, the refresh on the gathered states (every process refreshes identically)."""
    merged = {
        key: loop.accelerator.gather(torch.cat([torch.atleast_1d(p[key]) for p in parts]))
        for key in parts[0]
    }
    row = loop.objective.metrics(merged)
    refresh_steps = loop.training.refresh_steps
    if loop.objective.refreshes_reward and "gamma" in merged and refresh_steps:
        row["refresh_loss"] = loop.fold_rewards.refresh(
            merged["h_chosen"], merged["h_rejected"], merged["folds"], refresh_steps
        )
    return row


def checkpoint_due(loop: Loop, step: int) -> bool:
    if loop.checkpoints is None:
        return False
    every, steps = loop.training.checkpoint_every, loop.training.max_steps
    return (step + 1) % every == 0 or step + 1 == steps


def write_checkpoint(loop: Loop, step: int) -> None:
    """The checkpoint after `step` steps: sharded, every process writing its part (FSDP), or
    whole, written by the main process."""
    write_run_checkpoint(
        loop.checkpoints,
        step=step,
        sharded=loop.sharded,
        accelerator=loop.accelerator,
        model=loop.model,
        optimiser=loop.optimiser,
        fold_rewards=loop.fold_rewards,
        run_key=loop.run_key,
    )


def run_steps(loop: Loop, steps: range, metrics: list[dict], *, progress: bool = True) -> None:
    """Take `steps`, appending each row to `metrics` and to the log, checkpointing when due."""
    bar = tqdm(
        steps,
        desc=RUN_LABELS.get(loop.name, loop.name),
        unit="step",
        disable=not progress,
        initial=steps.start,
        total=loop.training.max_steps,
    )
    for step in bar:
        row = training_step(loop, step)
        metrics.append(row)
        if loop.accelerator.is_main_process:
            append_line(loop.metrics_path, json.dumps(row))
        if checkpoint_due(loop, step):
            write_checkpoint(loop, step + 1)
        loop.accelerator.wait_for_everyone()
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    bar.close()


def finish_run(loop: Loop, metrics: list[dict], *, policy_dir: Path | None) -> None:
    """Save the trained policy (where `policy_dir` is given), the refreshed R_h's and
    `summary.json`; then release what `accelerate` holds of the run. A sharded policy is gathered
    whole first (every process takes part), so the saved policy is always a full model."""
    full_state = gathered_policy_state(loop) if loop.sharded and policy_dir is not None else None
    if loop.accelerator.is_main_process:
        if policy_dir is not None:
            scorer = loop.accelerator.unwrap_model(loop.inputs.scorer)
            save_policy(scorer.model, loop.tokenizer, policy_dir, state_dict=full_state)
        if loop.objective.refreshes_reward:
            for f, reward in enumerate(loop.fold_rewards.rewards):
                save_hybrid_reward(reward.cpu(), loop.out_dir / f"hybrid_reward-{f}")
        write_json(loop.out_dir / "summary.json", run_summary(loop.name, metrics, loop.training))
    loop.accelerator.wait_for_everyone()
    loop.accelerator.free_memory()  # its references to this run's model and optimiser


def gathered_policy_state(loop: Loop) -> dict[str, torch.Tensor]:
    """The policy's full state dict, gathered from every process's shards (on the main process;
    every process must call this). A tied weight appears once, under its first name, as in the
    policy's own `save_pretrained`."""
    state = loop.accelerator.get_state_dict(loop.inputs.scorer)
    prefix = "model."  # the scorer holds the policy as `model`
    names = {n for n, _ in loop.model.named_parameters()} | {
        n for n, _ in loop.model.named_buffers()
    }
    state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if k in names}


def train_run(
    name: str,
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[EncodedPair],
    training,
    seed: int,
    out_dir: Path,
    reference: Callable | None = None,
    fold_rewards: FoldRewards | None = None,
    objective: str | Objective | None = None,
    resume: bool = True,
    progress: bool = True,
    _stop_after: int | None = None,
) -> RunResult:
    """Train `model` (the base policy, loaded fresh) as run `name` with `objective` (default: the
    run's, `objectives.RUNS`) for `training.max_steps` steps; write `out_dir/metrics.jsonl`,
    checkpoints and, after the last step, the policy (`out_dir/policy/`, merged if LoRA, saved
    with `tokenizer`) and `summary.json`. With `resume`, continue from the newest checkpoint of
    the same settings and pairs.

    `reference(pairs, device) -> [b, 2]` gives reference log-probs (preference runs).
    `fold_rewards` score the states of the layers they read (a monitor for DPO, gamma and refresh
    for cDPO; None: no states are recorded). `_stop_after` stops after that many steps as if
    killed (resume tests).
    """
    loop = start_loop(
        name,
        model=model,
        tokenizer=tokenizer,
        pairs=pairs,
        training=training,
        seed=seed,
        out_dir=out_dir,
        reference=reference,
        fold_rewards=fold_rewards,
        objective=objective,
    )
    start, found = resume_from_checkpoint(loop, resume)
    metrics = restart_log(loop, start, found)
    steps = training.max_steps
    end = steps if _stop_after is None else min(_stop_after, steps)
    run_steps(loop, range(start, end), metrics, progress=progress)
    if end < steps:
        loop.accelerator.free_memory()
        return RunResult(name, metrics, loop.out_dir, None, start)
    policy_dir = loop.out_dir / "policy"
    finish_run(loop, metrics, policy_dir=policy_dir)
    return RunResult(name, metrics, loop.out_dir, policy_dir, start)
