"""Training the policy: SFT, vanilla DPO and confidence DPO with the hybrid reward (paper Sec
3.3-3.4, Eq 3-5, 9).

One cDPO step, on a batch of preference pairs:

1. one policy forward over the chosen and the rejected sequences yields the response log-probs
   and, through forward hooks, every layer's last-token state (no second forward);
2. gamma = sigmoid(alpha * (R_h(h_c) - R_h(h_r))), before any refresh. The `cdpo` run takes it
   from the paper's single R_h (notebook 03, fit on every training pair; Sec 3.4, 4.1); the
   `cdpo_crossfit` run from R_h's cross-fitted on folds of the prompts, each pair scored by the
   R_h fit on the other folds (`training.confidence_folds`), so no reward scores a pair it saw;
3. the cDPO loss with that per-pair gamma, backward, one optimiser step;
4. the refresh: `refresh_steps` AdamW steps of the margin-BT loss for every R_h on the batch's
   detached states (the single R_h on every pair, a cross-fitted one only on the other folds'
   pairs), updating scorers and gate (`training.refresh: full`) or the gate alone (`gate`), so
   the rewards track the moving representations.

Vanilla DPO is the same loop with gamma = 1; the single R_h still scores its states (a monitor)
but is not refreshed. SFT minimises the mean token NLL of the chosen responses. Every run starts
from the base policy, is seeded, has dropout off, and writes per-step metrics to `metrics.jsonl`.

Where each part lives:

- `batches`: pairs as token ids with the response marked, collation, the seeded schedule;
- `logprobs`: the policy's forward (`ResponseScorer`: log-probs and last-token states at once);
- `references`: the frozen reference's log-probs, on the fly or precomputed and cached;
- `fold_rewards`: the R_h's a run scores with, and their refresh;
- `objectives`: what each run optimises (a registry: `sft`, `dpo`, `cdpo`, and the run names);
- `loop`: the step and the run (`train_run`), and the pieces short runs reuse;
- `checkpoints`, `metrics_log`: what a killed run resumes from;
- `policy`: the trained copy's dtype, LoRA, dropout off, saving it;
- `runs`: what notebooks 04 and 05 share (`TrainingSetup`, `run_training`);
- `held_out`: the trained policies on held-out pairs (notebook 04);
- `cli`: notebook 04's runs (and notebook 05's reward model and online DPO run, `--reward-model`,
  `--online`) from the command line, also on several GPUs, DDP or FSDP2
  (`accelerate launch --config_file configs/accelerate/fsdp.yaml --num_processes 4 -m
  repsafe_lib.training --params params/paper.yaml --run cdpo`; see docs/running-on-gpus.md).

Ctrl-C (or interrupting the kernel) during `run_training` keeps the newest checkpoint and prints
one line saying how to resume from it.
"""

from repsafe_lib.training.batches import (
    EncodedPair,
    SequenceBatch,
    batch_schedule,
    collate,
    collate_chosen,
    collate_pairs,
    encode_conversation,
    encode_pairs,
    micro_batches,
    pair_sequences,
    prompt_fold,
    visited_pairs,
)
from repsafe_lib.training.checkpoints import (
    checkpoint_key,
    latest_checkpoint,
    load_checkpoint,
    run_key,
    save_checkpoint,
    trainable_state,
)
from repsafe_lib.training.cli import main
from repsafe_lib.training.fold_rewards import FoldRewards, refreshed_rewards
from repsafe_lib.training.held_out import (
    HeldOutLogprobs,
    held_out_logprobs,
    nf4_reference_drift,
)
from repsafe_lib.training.logprobs import (
    NEGLIGIBLE_PROBABILITY,
    SUBNORMAL_GUARD,
    FlushNegligibleGradient,
    ResponseScorer,
    TokenLogprobs,
    pair_logprobs,
    sequence_logprobs_of,
)
from repsafe_lib.training.loop import (
    Loop,
    RunResult,
    finish_run,
    learning_rate_at,
    restart_log,
    run_steps,
    start_loop,
    train_run,
    training_step,
)
from repsafe_lib.training.metrics_log import TIMING_METRICS, run_summary
from repsafe_lib.training.objectives import (
    CROSS_FITTED_RUNS,
    OBJECTIVES,
    RUN_LABELS,
    RUNS,
    Objective,
    RunKind,
    objective_of,
)
from repsafe_lib.training.policy import (
    disable_dropout,
    lora_config,
    prepare_policy,
    save_policy,
    training_dtype,
    training_spec,
)
from repsafe_lib.training.references import (
    OnTheFlyReference,
    PrecomputedReference,
    implicit_reward_accuracy,
    precompute_reference,
    reference_cache_key,
    reference_drift,
    reference_for,
)
from repsafe_lib.training.runs import (
    TrainingInputs,
    TrainingSetup,
    fold_rewards_for_run,
    gamma_at_start,
    interrupted_message,
    prepare_training,
    row_folds,
    run_training,
    training_inputs,
)

__all__ = [
    "CROSS_FITTED_RUNS",
    "NEGLIGIBLE_PROBABILITY",
    "OBJECTIVES",
    "RUNS",
    "RUN_LABELS",
    "SUBNORMAL_GUARD",
    "TIMING_METRICS",
    "EncodedPair",
    "FlushNegligibleGradient",
    "FoldRewards",
    "HeldOutLogprobs",
    "Loop",
    "Objective",
    "OnTheFlyReference",
    "PrecomputedReference",
    "ResponseScorer",
    "RunKind",
    "RunResult",
    "SequenceBatch",
    "TokenLogprobs",
    "TrainingInputs",
    "TrainingSetup",
    "batch_schedule",
    "checkpoint_key",
    "collate",
    "collate_chosen",
    "collate_pairs",
    "disable_dropout",
    "encode_conversation",
    "encode_pairs",
    "finish_run",
    "fold_rewards_for_run",
    "gamma_at_start",
    "held_out_logprobs",
    "implicit_reward_accuracy",
    "interrupted_message",
    "latest_checkpoint",
    "learning_rate_at",
    "load_checkpoint",
    "lora_config",
    "main",
    "micro_batches",
    "nf4_reference_drift",
    "objective_of",
    "pair_logprobs",
    "pair_sequences",
    "precompute_reference",
    "prepare_policy",
    "prepare_training",
    "prompt_fold",
    "reference_cache_key",
    "reference_drift",
    "reference_for",
    "refreshed_rewards",
    "restart_log",
    "row_folds",
    "run_key",
    "run_steps",
    "run_summary",
    "run_training",
    "save_checkpoint",
    "save_policy",
    "sequence_logprobs_of",
    "start_loop",
    "train_run",
    "trainable_state",
    "training_dtype",
    "training_inputs",
    "training_spec",
    "training_step",
    "visited_pairs",
]
