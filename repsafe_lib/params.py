"""Run parameters: one YAML file per profile, loaded into frozen dataclasses.

Every value a notebook uses lives in `params/<profile>.yaml`. Loading validates the whole file at
once: an unknown key, a value of the wrong type, a missing required key, an out-of-range or
non-finite value, a key set twice is a `ParamsError` that names the file (with `extends:`, the one
that sets the key) and the dotted key. YAML is read with the safe loader only; a float field also
takes YAML 1.2's `1e-1`. A params file is at most 1 MiB and holds at most a million values once its
aliases are expanded; an error message quotes at most a short prefix of any value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from repsafe_lib.datasets import LOADERS, OnBadRows
from repsafe_lib.paths import repo_root

DEFAULT_PARAMS_FILE = "params/smol.yaml"
PARAMS_ENV_VAR = "REPSAFE_PARAMS"

ModelKind = Literal["hub", "gguf", "tiny-random"]
DtypeName = Literal["float32", "bfloat16", "float16"]
DeviceName = Literal["auto", "cpu", "cuda", "mps"]


MAX_KEY_CHARS = 120
MAX_PROBLEM_CHARS = 300
MAX_VALUE_CHARS = 80


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ParamsError(ValueError):
    """A params file that cannot be used; the message names the file and the key.

    Key and problem are cut to a few hundred characters, so that a huge value in a file (quoted by
    a check) never makes a huge message."""

    def __init__(self, path: str | Path, key: str, problem: str):
        key, problem = _shortened(key, MAX_KEY_CHARS), _shortened(problem, MAX_PROBLEM_CHARS)
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: key '{key}': {problem}" if key else f"{path}: {problem}")


def _limited_repr() -> reprlib.Repr:
    limited = reprlib.Repr()
    limited.maxlevel, limited.maxlist, limited.maxdict = 3, 6, 4
    limited.maxstring = limited.maxother = MAX_VALUE_CHARS
    return limited


_LIMITED_REPR = _limited_repr()


def shown(value: Any) -> str:
    """`repr(value)` cut to `MAX_VALUE_CHARS`, built without the repr of a whole huge value."""
    return _shortened(_LIMITED_REPR.repr(value), MAX_VALUE_CHARS)


class FieldError(ValueError):
    """A dataclass check about one field: the `ParamsError` names that field's dotted key, not
    its section's."""

    def __init__(self, field_name: str, problem: str):
        self.field_name = field_name
        super().__init__(problem)


def _positive(value: float, name: str) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def _fraction(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")


TinyArchitecture = Literal["llama", "mistral", "deberta-v2"]


@dataclass(frozen=True)
class TinyModelParams:
    """A randomly initialised model of a few layers: a Llama policy (the tiny profile), or, for the
    rehearsal of the paper profile, models of the paper's architectures (a Llama or a Mistral
    causal LM; with `scalar_head`, a reward model: a sequence classifier with one output, always so
    for DeBERTa-v2). `chat_template: false` drops the borrowed tokenizer's chat template, as for a
    base model such as Llama-2-7b. `verdicts: [safe, unsafe]` makes a judge-shaped model whose
    first generated token is always one of the two (which one depends on the input), so that a
    guard judge's verdict parser, rates and agreement statistics get real input."""

    num_layers: int = 3
    hidden_size: int = 64
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048
    architecture: TinyArchitecture = "llama"
    chat_template: bool = True
    scalar_head: bool = False
    verdicts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.verdicts and (len(self.verdicts) != 2 or self.scalar_head):
            raise ValueError("verdicts: a causal LM's two possible answers, e.g. [safe, unsafe]")
        if self.architecture == "deberta-v2" and not self.scalar_head:
            raise ValueError("a tiny deberta-v2 is a reward model: set scalar_head: true")
        sizes = ("num_layers", "hidden_size", "intermediate_size", "num_attention_heads")
        for name in (*sizes, "num_key_value_heads", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                raise FieldError(name, f"must be > 0, got {getattr(self, name)}")
        # Each attention head takes hidden_size / heads dimensions; grouped-query attention shares
        # each key/value head among heads / kv_heads query heads.
        if self.hidden_size % self.num_attention_heads:
            raise FieldError(
                "num_attention_heads",
                f"{self.num_attention_heads} must divide hidden_size {self.hidden_size}",
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise FieldError(
                "num_key_value_heads",
                f"{self.num_key_value_heads} must divide num_attention_heads"
                f" {self.num_attention_heads}",
            )


@dataclass(frozen=True)
class ModelParams:
    """Which policy model to load and how.

    kind: `hub` (hub id or local directory, `source`), `gguf` (a GGUF file at `source`, or the one
    shipped inside the installed distribution `gguf_package`), `tiny-random` (built from `tiny`).
    """

    kind: ModelKind
    name: str
    source: str | None = None
    gguf_package: str | None = None
    tokenizer_source: str | None = None
    revision: str | None = None
    dtype: DtypeName = "float32"
    device: DeviceName = "auto"
    trust_remote_code: bool = False
    tiny: TinyModelParams | None = None

    def __post_init__(self) -> None:
        if self.kind == "hub" and not self.source:
            raise ValueError("kind 'hub' needs 'source' (a hub id or a local directory)")
        if self.kind == "gguf" and not (self.source or self.gguf_package):
            raise ValueError("kind 'gguf' needs 'source' (a .gguf file) or 'gguf_package'")
        if self.kind == "tiny-random" and self.tiny is None:
            raise ValueError("kind 'tiny-random' needs a 'tiny' architecture block")


@dataclass(frozen=True)
class DatasetParams:
    """One dataset: a loader name from `repsafe_lib.datasets.LOADERS` and where to read it.

    source: a hub id, a path (relative paths resolve from the repository root), or
    `demo:<file>` for a file bundled in `repsafe_lib/data/`.
    """

    loader: str
    source: str
    split: str = "train"
    revision: str | None = None
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            problem = f"unknown loader {shown(self.loader)} (known: {', '.join(LOADERS)})"
            raise FieldError("loader", problem)
        if self.max_rows is not None:
            _positive(self.max_rows, "max_rows")


@dataclass(frozen=True)
class DataParams:
    pairs: DatasetParams
    test_fraction: float = 0.2
    on_bad_rows: OnBadRows = "raise"
    red_team: DatasetParams | None = None
    xstest: DatasetParams | None = None
    do_not_answer: DatasetParams | None = None
    salad_base: DatasetParams | None = None

    def __post_init__(self) -> None:
        _fraction(self.test_fraction, "test_fraction")


@dataclass(frozen=True)
class ExtractionParams:
    """Hidden-state extraction (paper Sec 3.2): which decoder layers (1-based, or "all") and batching.

    States are computed in the model's dtype (`model.dtype`) and cached as float16.
    max_length: the one token budget of every conversation whose last-token states R_h reads —
    the states it is fit on (notebook 01), the policy's training sequences whose states give gamma
    and feed the refresh (notebooks 04-05, online DPO too), and the samples it ranks (notebook 05).
    Longer conversations lose tokens from the start, so the last token stays the real one; with
    two budgets a long pair would be scored on a state from a shorter context than R_h was fit
    on. It also bounds training memory (sequences of up to this many tokens); the scalar reward
    model keeps its own `sampling.reward_model.max_length`, as it reads no states of the policy.
    """

    layers: Literal["all"] | tuple[int, ...]
    max_length: int = 512
    batch_size: int = 8

    def __post_init__(self) -> None:
        _positive(self.max_length, "max_length")
        _positive(self.batch_size, "batch_size")
        if isinstance(self.layers, tuple) and (not self.layers or min(self.layers) < 1):
            raise ValueError(f"layers are 1-based decoder layer numbers, got {list(self.layers)}")


@dataclass(frozen=True)
class PcaParams:
    """Fig 2/8: PCA + KDE of safe vs unsafe states on a few layers spread shallow to deep."""

    layers: Literal["auto"] | tuple[int, ...] = "auto"
    num_panels: int = 4
    samples_per_class: int = 300

    def __post_init__(self) -> None:
        _positive(self.num_panels, "num_panels")
        _positive(self.samples_per_class, "samples_per_class")


@dataclass(frozen=True)
class ProbeParams:
    """Fig 1: per-layer linear SVM probes, refit on `num_splits` prompt-grouped splits.

    Split 0 is the canonical split of notebook 00; the others re-split all pairs by prompt with
    seeds `seed + 1, seed + 2, ...`. The SVM's C is picked per layer from `c_grid` by an inner
    cross-validation (`inner_folds` folds, grouped by prompt) on the training side only.
    """

    num_splits: int = 3
    c_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    inner_folds: int = 3
    max_iter: int = 10000

    def __post_init__(self) -> None:
        _positive(self.num_splits, "num_splits")
        _positive(self.max_iter, "max_iter")
        if self.inner_folds < 2:
            raise ValueError(f"inner_folds must be >= 2, got {self.inner_folds}")
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"c_grid must be non-empty and > 0, got {list(self.c_grid)}")


@dataclass(frozen=True)
class RewardParams:
    """Hybrid reward and preference confidence (Eq 7-8).

    gate: `input` (softmax over a linear map of the layer scores, the method) or `static`
    (a learned softmax over layers that ignores the input, the ablation). Training: full-batch
    AdamW on the training pairs for `epochs` steps, on the probes' out-of-fold layer scores
    (`gate_fit: out_of_fold`: each pair scored by probes that never saw it) or on their in-sample
    scores (`in_sample`, where every layer looks perfect on separable training data); the SVM
    scorers stay as the probes fit them (training's per-batch refresh moves them:
    `training.refresh`).
    """

    mu: float = 1.0
    alpha: float = 7.5
    gate: Literal["input", "static"] = "input"
    gate_fit: Literal["out_of_fold", "in_sample"] = "out_of_fold"
    epochs: int = 300
    learning_rate: float = 1e-2
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _positive(self.alpha, "alpha")
        _positive(self.epochs, "epochs")
        _positive(self.learning_rate, "learning_rate")
        if self.mu < 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class LoraParams:
    """Low-rank adapters (peft) instead of full fine-tuning; dropout stays off."""

    r: int = 16
    alpha: float = 32.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def __post_init__(self) -> None:
        _positive(self.r, "r")
        _positive(self.alpha, "alpha")


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
            _positive(getattr(self, name), name)
        for name in ("max_steps", "checkpoint_every"):
            _positive(getattr(self, name), name)
        if self.confidence_folds < 2:
            raise ValueError(
                f"confidence_folds must be >= 2 (the cross-fitted run's folds; the paper's single"
                f" R_h is the cdpo run), got {self.confidence_folds}"
            )
        _positive(self.refresh_learning_rate, "refresh_learning_rate")
        for name in ("warmup_steps", "weight_decay", "refresh_steps", "drift_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_grad_norm is not None:
            _positive(self.max_grad_norm, "max_grad_norm")
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

    judges: any of `refusal` (offline pattern proxy: "toxic" = answered without refusal),
    `llama_guard_2` and `md_judge` (each needs its model block, loaded like `model`).
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
            _positive(getattr(self, name), name)
        for name in ("num_samples", "bootstrap_resamples", "temperature"):
            _positive(getattr(self, name), name)
        if self.prompts_per_benchmark is not None:
            _positive(self.prompts_per_benchmark, "prompts_per_benchmark")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        _fraction(self.confidence, "confidence")
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
            _positive(getattr(self, name), name)


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
            _positive(getattr(self, name), name)


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
            _positive(getattr(self, name), name)
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_steps is not None:
            _positive(self.max_steps, "max_steps")
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
            _positive(getattr(self, name), name)
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


# A profile names the folder outputs/<profile>/: one plain path component.
PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit


@dataclass(frozen=True)
class Params:
    profile: str
    seed: int
    model: ModelParams
    data: DataParams
    extraction: ExtractionParams
    training: TrainingParams
    pca: PcaParams = field(default_factory=PcaParams)
    probes: ProbeParams = field(default_factory=ProbeParams)
    reward: RewardParams = field(default_factory=RewardParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    compute: ComputeParams = field(default_factory=ComputeParams)
    source_file: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not PROFILE_NAME.fullmatch(self.profile) or ".." in self.profile:
            raise FieldError(
                "profile",
                "must be a plain name of at most 64 letters, digits, '.', '_' or '-', starting"
                f" with a letter or digit, without '..' (it names outputs/<profile>/),"
                f" got {shown(self.profile)}",
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise FieldError("seed", f"must lie in 0..{MAX_SEED} (2**32 - 1), got {self.seed}")

    def fingerprint(self) -> str:
        """Short hash of every value, for manifests and cache keys."""
        values = dataclasses.asdict(self)
        values.pop("source_file")
        blob = json.dumps(values, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(v) for v in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


# YAML 1.1 reads a float without a dot (`1e-1`, `2E+3`) as a string; where a float is expected it
# is read as the number it is in YAML 1.2. A string field such as a revision keeps its text.
SCIENTIFIC_NOTATION = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


def _convert(value: Any, tp: Any, key: str, path: Path) -> Any:
    """Check `value` against the annotation `tp` and build nested dataclasses."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # `T | None`: T's own error says most
            return _convert(value, options[0], key, path)
        errors = []
        for option in options:
            try:
                return _convert(value, option, key, path)
            except ParamsError as error:
                errors.append(_type_name(option))
                if dataclasses.is_dataclass(option):
                    raise error
        raise ParamsError(path, key, f"expected {' or '.join(errors)}, got {shown(value)}")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(map(repr, args))
        raise ParamsError(path, key, f"must be one of {choices}, got {shown(value)}")
    if origin is tuple:
        if not isinstance(value, list):
            raise ParamsError(path, key, f"expected a list, got {shown(value)}")
        return tuple(_convert(v, args[0], f"{key}[{i}]", path) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, path)
    if tp is float and isinstance(value, str) and SCIENTIFIC_NOTATION.fullmatch(value):
        value = float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            value = float(value)
        except OverflowError:
            value = math.inf if value > 0 else -math.inf
    if tp in (int, float) and isinstance(value, bool) or not isinstance(value, tp):
        raise ParamsError(path, key, f"expected {_type_name(tp)}, got {shown(value)}")
    if tp is float and not math.isfinite(value):
        raise ParamsError(path, key, f"expected a finite number, got {shown(value)}")
    return value


# Keys older files may still carry, and what replaced them.
REPLACED_KEYS = {
    "training.max_length": (
        "removed: training reads the states R_h is fit on, so it uses extraction.max_length"
        " (one token budget for extraction, training and sampling's R_h scores)"
    ),
    "reward.train_scorers": (
        "removed: what the per-batch refresh updates is training.refresh (full | gate)"
    ),
}


def _build(cls: type, raw: Any, prefix: str, path: Path) -> Any:
    if not isinstance(raw, dict):
        raise ParamsError(path, prefix, f"expected a mapping, got {shown(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source_file"}
    dotted = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    for name in raw:
        if dotted(name) in REPLACED_KEYS:
            raise ParamsError(path, dotted(name), REPLACED_KEYS[dotted(name)])
        if name not in fields:
            raise ParamsError(path, dotted(name), f"unknown key (allowed: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        required = (
            spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        )
        if name not in raw:
            if required:
                raise ParamsError(path, dotted(name), "missing required key")
            continue
        values[name] = _convert(raw[name], hints[name], dotted(name), path)
    try:
        return cls(**values)
    except FieldError as error:
        raise ParamsError(path, dotted(error.field_name), str(error)) from None
    except ValueError as error:
        raise ParamsError(path, prefix or "(top level)", str(error)) from None


EXTENDS_KEY = "extends"
MAX_PARAMS_BYTES = 2**20
MAX_NESTING = 16  # levels of mappings and lists; the profiles use five
# Values once aliases are expanded; a file of MAX_PARAMS_BYTES without aliases has fewer.
MAX_VALUES = 1_000_000
MERGE_TAG = "tag:yaml.org,2002:merge"

# libyaml's safe loader where PyYAML was built with it (several times faster), else PyYAML's own.
SafeYamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_nodes(
    node: yaml.Node, key: str, path: Path, shapes: dict[int, tuple[int, int] | None], depth: int = 0
) -> tuple[int, int]:
    """The number of values in `node` once its aliases are expanded, and how deep it nests; a key
    set twice, a value that contains itself, too many values or too deep a nesting is an error
    naming the dotted key.

    It reads the composed node tree, before any value is built. An alias is the anchored node met
    again, so its size is known from the first meeting: an alias bomb is refused without being
    expanded.
    """
    line = node.start_mark.line + 1
    if id(node) in shapes:  # an alias
        shape = shapes[id(node)]
        if shape is None:
            raise ParamsError(path, key, f"an alias inside the value it names (line {line})")
        if depth + shape[1] > MAX_NESTING:
            raise ParamsError(path, key, f"line {line}: nested deeper than {MAX_NESTING} levels")
        return shape
    if depth > MAX_NESTING:
        raise ParamsError(path, key, f"line {line}: nested deeper than {MAX_NESTING} levels")
    shapes[id(node)] = None
    children: list[tuple[yaml.Node, str]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [(item, f"{key}[{index}]") for index, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        first_lines: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            dotted = f"{key}.{name}" if key else name
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != MERGE_TAG:
                identity, key_line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
                if identity in first_lines:
                    problem = f"set twice, at lines {first_lines[identity]} and {key_line}"
                    raise ParamsError(path, dotted, problem + ": keep one")
                first_lines[identity] = key_line
            children += [(key_node, dotted), (value_node, dotted)]
    size, height = 1, 0
    for child, child_key in children:
        child_size, child_height = _check_nodes(child, child_key, path, shapes, depth + 1)
        size, height = size + child_size, max(height, child_height + 1)
        if size > MAX_VALUES:
            problem = f"more than {MAX_VALUES} values once its YAML aliases are expanded"
            raise ParamsError(path, key, f"line {line}: {problem}")
    shapes[id(node)] = (size, height)
    return size, height


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    """A YAML error on one line: where and what, without the parser's quote of the text."""
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = ", ".join(part for part in (error.context, error.problem) if part)
    return f"not valid YAML{where}: {' '.join(what.split())}"


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ParamsError(path, "", "params file not found")
    with path.open("rb") as stream:
        data = stream.read(MAX_PARAMS_BYTES + 1)
    if len(data) > MAX_PARAMS_BYTES:
        problem = f"larger than {MAX_PARAMS_BYTES} bytes (1 MiB), the most a params file may be"
        raise ParamsError(path, "", problem)
    loader = None
    try:
        loader = SafeYamlLoader(data.decode("utf-8"))
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, "", path, {})
        return loader.construct_document(node)
    except ParamsError:
        raise
    except yaml.MarkedYAMLError as error:
        raise ParamsError(path, "", _yaml_problem(error)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ParamsError(path, "", f"not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ParamsError(path, "", f"nested deeper than {MAX_NESTING} levels") from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise ParamsError(path, "", f"a value YAML cannot read: {error}") from None
    finally:
        if loader is not None:
            loader.dispose()


def merge_overlay(base: dict, overlay: dict) -> dict:
    """`base` with `overlay` laid over it: mappings merge key by key, anything else (a list, a
    number, null) replaces the base's value."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def _extends_chain(path: Path, _seen: tuple[Path, ...] = ()) -> list[tuple[Path, Any]]:
    """Each file's YAML (without its `extends:`) from `path` to the root of its `extends:` chain;
    the named file is relative to the folder of the file that names it."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or EXTENDS_KEY not in raw:
        return [(path, raw)]
    raw = dict(raw)
    parent_name = raw.pop(EXTENDS_KEY)
    if not isinstance(parent_name, str) or not parent_name:
        problem = f"expected a params file name, got {shown(parent_name)}"
        raise ParamsError(path, EXTENDS_KEY, problem)
    parent = (path.parent / parent_name).resolve()
    if parent in (*_seen, path.resolve()):
        raise ParamsError(path, EXTENDS_KEY, f"{parent_name} extends this file again (a cycle)")
    if not parent.is_file():
        raise ParamsError(path, EXTENDS_KEY, f"no params file {parent}")
    chain = _extends_chain(parent, (*_seen, path.resolve()))
    if not isinstance(chain[0][1], dict):
        raise ParamsError(parent, "", f"expected a mapping, got {shown(chain[0][1])}")
    return [(path, raw), *chain]


def _resolved(chain: list[tuple[Path, Any]]) -> Any:
    merged = chain[-1][1]
    for _, raw in reversed(chain[:-1]):
        merged = merge_overlay(merged, raw)
    return merged


def raw_params(path: Path) -> Any:
    """The YAML mapping of `path` with its `extends:` chain resolved (the named file, relative to
    this one's folder, is read first and this file's keys laid over it)."""
    return _resolved(_extends_chain(path))


def _sets(raw: dict, key: str) -> bool:
    """Whether the mapping `raw` sets the dotted `key` (`a.b`, `a.b[0]`) or replaces a value above
    it (a list or a scalar where the key's section would be)."""
    for name, value in raw.items():
        name = str(name)
        if key == name:
            return True
        if not key.startswith(name) or key[len(name)] not in ".[":
            continue
        below = key[len(name) + 1 :]
        if key[len(name)] == "[" or not isinstance(value, dict) or _sets(value, below):
            return True
    return False


def _file_setting(key: str, chain: list[tuple[Path, Any]]) -> Path:
    """The file of an `extends:` chain whose value of `key` the merged params hold (the first
    file, the one loaded, for a key no file sets)."""
    setting = (path for path, raw in chain if isinstance(raw, dict) and _sets(raw, key))
    return next(setting, chain[0][0])


def load_params(path: str | Path) -> Params:
    """Read and validate a params YAML file (relative paths resolve from the repository root).

    A file may start from another with `extends: other.yaml` and set only what differs; an error
    names the file of the chain that sets the key."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = repo_root() / path
    chain = _extends_chain(path)
    try:
        params = _build(Params, _resolved(chain), "", path)
    except ParamsError as error:
        owner = _file_setting(error.key, chain)
        if owner == path:
            raise
        raise ParamsError(owner, error.key, error.problem) from None
    return dataclasses.replace(params, source_file=str(path))


def default_params_file() -> str:
    """The params file a notebook uses when none is injected: $REPSAFE_PARAMS, else smol."""
    return os.environ.get(PARAMS_ENV_VAR, DEFAULT_PARAMS_FILE)


def resolve_layers(
    layers: Literal["all"] | tuple[int, ...], num_layers: int, *, key: str, params_file: str
) -> list[int]:
    """1-based decoder layer numbers; one beyond the model's depth is an error naming the key."""
    if layers == "all":
        return list(range(1, num_layers + 1))
    bad = [layer for layer in layers if not 1 <= layer <= num_layers]
    if bad:
        problem = f"layers {bad} out of range: the model has decoder layers 1..{num_layers}"
        raise ParamsError(params_file, key, problem)
    return list(layers)
