"""The sections of a params file that notebooks 04-07 read: training (with LoRA), the safety
evaluation, the sampling-based variants and the compute comparison (paper Sec 3.4, 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repsafe_lib.params.errors import require_fraction, require_positive
from repsafe_lib.params.representation_sections import DatasetParams, DtypeName, ModelParams


@dataclass(frozen=True)
class LoraParams:
    """Low-rank adapters (peft) instead of full fine-tuning; dropout stays off."""

    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        require_positive(self.r, "r")
        require_positive(self.alpha, "alpha")


# cdpo: gamma from the paper's single R_h (notebook 03, fit on every training pair);
# cdpo_crossfit: gamma from R_h's cross-fitted on `confidence_folds` folds of the prompts.
TrainingRun = Literal["sft", "dpo", "cdpo", "cdpo_crossfit"]
RefreshKind = Literal["full", "gate"]


@dataclass(frozen=True)
class TrainingParams:
    """SFT, DPO and cDPO training (Eq 3-5, 9; notebooks 04 and 05).

    batch_size counts preference pairs per optimiser step, over every process and accumulation
    step (it must divide by both). Every run takes `max_steps` steps from the base policy, over
    the training pairs reshuffled each epoch. reference: log-probs `precomputed` once before
    training (cached) or computed `on_the_fly` each step; reference_quantization: `nf4` (4-bit,
    bitsandbytes), `none` (the policy's dtype), or `auto` (nf4 where bitsandbytes runs). The 4-bit
    reference's drift from a full-precision one is measured on `drift_pairs` training pairs.
    Runs: `cdpo` takes gamma from the single R_h of notebook 03, fit on every training pair and
    refreshed on every batch, as the paper does (Sec 3.4, 4.1; on its own training pairs that
    gamma saturates near 1); `cdpo_crossfit` is the suite's variant, shown beside it: the pairs
    are split by prompt into `confidence_folds` (>= 2) folds, each scored by an R_h fit (probes
    and gate) on the other folds and refreshed only on them, so a pair's gamma never comes from a
    reward that saw it. `confidence_folds` configures that run only; `dpo` watches the single
    R_h (frozen) as a monitor.
    After each cDPO step, R_h takes `refresh_steps` AdamW steps (`refresh_learning_rate`) of the
    margin-BT loss on the batch's states: `refresh: full` updates the whole R_h (per-layer
    scorers and gate, Sec 3.4), `gate` the gate only (an ablation). The sequences' token budget is
    `extraction.max_length`, so training reads states from the truncation R_h was fit on.
    """

    beta: float
    learning_rate: float = 1e-5
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    lora: LoraParams | None = None
    reference: Literal["precomputed", "on_the_fly"] = "precomputed"
    reference_quantization: Literal["auto", "nf4", "none"] = "auto"
    drift_pairs: int = 32
    confidence_folds: int = 2
    refresh: RefreshKind = "full"
    refresh_steps: int = 1
    refresh_learning_rate: float = 1e-3
    checkpoint_every: int = 10
    runs: tuple[TrainingRun, ...] = ("sft", "dpo", "cdpo", "cdpo_crossfit")

    def __post_init__(self) -> None:
        for name in ("beta", "learning_rate", "batch_size", "gradient_accumulation_steps"):
            require_positive(getattr(self, name), name)
        for name in ("max_steps", "checkpoint_every"):
            require_positive(getattr(self, name), name)
        if self.confidence_folds < 2:
            raise ValueError(
                f"confidence_folds must be >= 2 (the cross-fitted run's folds; the paper's single"
                f" R_h is the cdpo run), got {self.confidence_folds}"
            )
        require_positive(self.refresh_learning_rate, "refresh_learning_rate")
        for name in ("warmup_steps", "weight_decay", "refresh_steps", "drift_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_grad_norm is not None:
            require_positive(self.max_grad_norm, "max_grad_norm")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                f"batch_size {self.batch_size} must divide by gradient_accumulation_steps"
                f" {self.gradient_accumulation_steps}"
            )
        if len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs must not repeat: {list(self.runs)}")


@dataclass(frozen=True)
class EvaluationParams:
    """Safety evaluation (Table 1-3, Fig 4): judges, generation, bootstrap, MMLU.

    judges: any of `refusal` (the offline refusal classifier as proxy: "toxic" = answered
    without refusal), `llama_guard_2` and `md_judge` (each needs its model block, loaded like
    `model`). xstest_judge: a chat model (a `model` block) that classifies Fig 4's XSTest
    responses with XSTest's instruction (`xstest_judge.XSTestLLMJudge`); null: the offline
    refusal classifier does.
    prompts_per_benchmark caps each benchmark's prompts (a seeded choice, stratified by XSTest's
    safe/unsafe label). Decoding is greedy unless `do_sample`; `generation_dtype` decodes from a
    copy of each policy in that dtype (null: the policy's; MMLU is always scored in the policy's
    dtype). `reward_models` (sequence classifiers; `reward_model` is the one-model spelling) each
    score the responses to `instruction_prompts` for a column of Table 3; without any, that column
    reads "unavailable". MMLU is scored `mmlu_shots`-shot (0: zero-shot; the paper's 5-shot needs
    `mmlu_fewshot`, the dev split each subject's examples are taken from, in order).
    """

    judges: tuple[Literal["refusal", "llama_guard_2", "md_judge"], ...] = ("refusal",)
    llama_guard_2: ModelParams | None = None
    md_judge: ModelParams | None = None
    xstest_judge: ModelParams | None = None
    judge_batch_size: int = 8
    judge_max_new_tokens: int = 24
    prompts_per_benchmark: int | None = None
    max_new_tokens: int = 128
    batch_size: int = 8
    generation_dtype: DtypeName | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    mmlu: DatasetParams | None = None
    mmlu_shots: int = 0
    mmlu_fewshot: DatasetParams | None = None
    reward_model: ModelParams | None = None
    reward_models: tuple[ModelParams, ...] = ()
    instruction_prompts: DatasetParams | None = None

    def __post_init__(self) -> None:
        for name in ("judge_batch_size", "judge_max_new_tokens", "max_new_tokens", "batch_size"):
            require_positive(getattr(self, name), name)
        for name in ("num_samples", "bootstrap_resamples", "temperature"):
            require_positive(getattr(self, name), name)
        if self.prompts_per_benchmark is not None:
            require_positive(self.prompts_per_benchmark, "prompts_per_benchmark")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        require_fraction(self.confidence, "confidence")
        if not self.judges or len(set(self.judges)) != len(self.judges):
            raise ValueError(f"judges must be a non-empty list without repeats: {self.judges}")
        for judge in ("llama_guard_2", "md_judge"):
            if judge in self.judges and getattr(self, judge) is None:
                raise ValueError(f"judge '{judge}' is listed but has no '{judge}' model block")
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("num_samples > 1 needs do_sample: true (greedy repeats itself)")
        if self.reward_model is not None and self.reward_models:
            raise ValueError("set reward_model (one model) or reward_models (a list), not both")
        if self.mmlu_shots < 0:
            raise ValueError(f"mmlu_shots must be >= 0, got {self.mmlu_shots}")
        if self.mmlu_shots and self.mmlu is not None and self.mmlu_fewshot is None:
            raise ValueError(f"mmlu_shots {self.mmlu_shots} needs mmlu_fewshot (the dev split)")
        names = [m.name for m in self.general_reward_models]
        if len(set(names)) != len(names):
            raise ValueError(f"reward model names must not repeat: {names}")

    @property
    def general_reward_models(self) -> tuple[ModelParams, ...]:
        """Table 3's general reward models, one column each."""
        return (self.reward_model,) if self.reward_model is not None else self.reward_models


SamplingRun = Literal["rs_star", "dpo_star", "cdpo_star", "online"]


@dataclass(frozen=True)
class RewardModelParams:
    """The conventional reward model of the online baseline and of Table 2's "rm" rows: the
    policy's architecture with a scalar head on the last token, trained with the Bradley-Terry
    loss on the training pairs for `steps` AdamW steps of `batch_size` pairs."""

    steps: int = 100
    batch_size: int = 8
    learning_rate: float = 1e-5
    max_length: int = 512

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "learning_rate", "max_length"):
            require_positive(getattr(self, name), name)


@dataclass(frozen=True)
class OnlineParams:
    """Online DPO (the paper's upper bound): `rounds` times, sample `num_samples` responses to
    `prompts_per_round` training prompts from the current policy, pair the reward model's best
    and worst, and take `steps_per_round` DPO steps on them (the paper re-samples every 100)."""

    rounds: int = 10
    steps_per_round: int = 100
    prompts_per_round: int = 400

    def __post_init__(self) -> None:
        for name in ("rounds", "steps_per_round", "prompts_per_round"):
            require_positive(getattr(self, name), name)


@dataclass(frozen=True)
class SamplingParams:
    """Sampling-based variants (Sec 3.4, 4.2; Table 1 RS*/DPO*/cDPO*/Online, Table 2).

    `num_samples` responses per prompt (N; the paper: 8), decoded with temperature/top-p up to
    `max_new_tokens` (the evaluation's, so RS* answers like the other policies). RS* answers each
    evaluation prompt with its top-R_h sample. DPO* and cDPO* train (with `training`) on pairs
    built from the reference policy's samples to `train_prompts` training prompts: per prompt
    the k-th best against the k-th worst by R_h, k = 1..`pair_top_k`, for `max_steps` steps
    (default: `training.max_steps`). Table 2 compares the
    top-k samples by R_h and by the reward model, for each k in `table2_top_k`, before and (with
    `table2_after`) after alignment (the cDPO* policy); Fig 6 compares the toxic rate of the
    top-`fig6_top_k` samples picked by each reward strategy (Sec 4.8: top-4 of 8), on the
    held-out pairs' prompts and hh red-team prompts. `generation_dtype` samples from a copy of
    each policy in that dtype (bfloat16 decodes ~1.8x faster on a CPU with AMX); null: the policy's.
    """

    num_samples: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 16
    generation_dtype: DtypeName | None = None
    train_prompts: int = 1000
    pair_top_k: int = 1
    max_steps: int | None = None
    table2_top_k: tuple[int, ...] = (1, 2, 4)
    table2_after: bool = True
    fig6_top_k: int = 4
    runs: tuple[SamplingRun, ...] = ("rs_star", "dpo_star", "cdpo_star", "online")
    reward_model: RewardModelParams = field(default_factory=RewardModelParams)
    online: OnlineParams = field(default_factory=OnlineParams)

    def __post_init__(self) -> None:
        for name in ("num_samples", "temperature", "batch_size", "train_prompts", "pair_top_k"):
            require_positive(getattr(self, name), name)
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_steps is not None:
            require_positive(self.max_steps, "max_steps")
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 to rank samples, got {self.num_samples}")
        if 2 * self.pair_top_k > self.num_samples:
            raise ValueError(
                f"pair_top_k {self.pair_top_k} needs 2k <= num_samples ({self.num_samples}):"
                " a sample is never paired with itself"
            )
        bad = [k for k in self.table2_top_k if not 1 <= k <= self.num_samples]
        if bad:
            raise ValueError(f"table2_top_k {bad} must lie in 1..num_samples ({self.num_samples})")
        if not 1 <= self.fig6_top_k <= self.num_samples:
            raise ValueError(
                f"fig6_top_k {self.fig6_top_k} must lie in 1..num_samples ({self.num_samples})"
            )
        if len(set(self.runs)) != len(self.runs):
            raise ValueError(f"runs must not repeat: {list(self.runs)}")


@dataclass(frozen=True)
class ComputeParams:
    """Fig 7: the extra cost per training sample of R_h (score + training's refresh, on states the
    training forward already made) vs online sampling (generate `samples` responses of each
    length in `new_tokens`, then score them with a reward model the policy's size), measured on
    this machine as the median of `repeats` runs after a warm-up; and the analytic FLOP ratio for
    Llama-2-7B over `analytic_new_tokens`."""

    samples: int = 8
    new_tokens: tuple[int, ...] = (32, 64, 128)
    repeats: int = 3
    reward_repeats: int = 200
    analytic_new_tokens: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)

    def __post_init__(self) -> None:
        for name in ("samples", "repeats", "reward_repeats"):
            require_positive(getattr(self, name), name)
        if self.samples < 2:
            raise ValueError(
                f"samples must be >= 2 (a refresh step needs a pair), got {self.samples}"
            )
        for name in ("new_tokens", "analytic_new_tokens"):
            values = getattr(self, name)
            if not values or any(v < 1 for v in values) or list(values) != sorted(set(values)):
                raise ValueError(
                    f"{name} must be increasing positive token counts, got {list(values)}"
                )
