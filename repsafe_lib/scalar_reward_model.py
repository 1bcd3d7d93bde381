"""A conventional reward model: the policy's architecture with a scalar head (the online-DPO
baseline's labeller and Table 2's "rm" rows; paper Sec 4.2, 4.5).

The decoder body (no LM head) reads prompt + response in the policy's chat format; a linear head
maps the last token's final (normed) state to one reward. It is trained with the Bradley-Terry
loss `-log sigmoid(r(chosen) - r(rejected))` on the safety pairs, dropout off, like the policy:
float32 master weights under autocast, or LoRA adapters on the body (merged after training), with
gradient checkpointing where the profile sets it, under `accelerate` as the policy's runs are (one
process, or every process of an `accelerate launch`: DDP, or FSDP2 with the same rules), with
checkpoints every `training.checkpoint_every` steps that a killed fit resumes from. It scores with
its body in the policy's dtype. Saved whole (gathered from the shards under FSDP) as the body's
`save_pretrained` (safetensors) plus the head as safetensors and a JSON file, never as a pickle,
and reloaded straight onto the device it scores on. `fit_or_load` trains it once per `cache_key`
(base weights, settings, recipe, pairs, seed) and reloads it after that; `fit_and_save` is the
training half, which `python -m repsafe_lib.training --reward-model` runs on several GPUs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import atomic_directory
from repsafe_lib.caching import CacheFormat, canonical_json, key_digest, load_cached
from repsafe_lib.hidden_states import (
    decoder_parts,
    format_conversation,
    last_token_index,
    length_sorted_batches,
    pad_batch,
    position_ids_from_mask,
    tokenize_conversations,
)
from repsafe_lib.losses import margin_bt_loss
from repsafe_lib.records import PreferencePair
from repsafe_lib.seeding import seed_everything

FORMAT = "repsafe-scalar-reward-model/v1"


class ScalarRewardModel(nn.Module):
    """`(input_ids, attention_mask) [B, T] -> rewards [B]` (float32), read at the last real token
    of each row, whichever side was padded."""

    def __init__(self, body: PreTrainedModel):
        super().__init__()
        self.body = body
        device = next(body.parameters()).device
        self.head = nn.Linear(body.config.hidden_size, 1, dtype=torch.float32, device=device)
        nn.init.zeros_(self.head.weight)  # every response starts at reward 0: the loss at log 2
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_causal_lm(cls, model: PreTrainedModel) -> ScalarRewardModel:
        """The causal LM's decoder body (its LM head is dropped) under a fresh scalar head."""
        body, _, _ = decoder_parts(model)
        return cls(body)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.body(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            use_cache=False,
        )
        rows = torch.arange(len(input_ids), device=input_ids.device)
        last = output.last_hidden_state[rows, last_token_index(attention_mask)]
        return self.head(last.float()).squeeze(-1)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _encode(tokenizer, prompts: Sequence[str], responses: Sequence[str], max_length: int):
    texts = [format_conversation(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    return tokenize_conversations(tokenizer, texts, max_length)


def _rewards(model: nn.Module, token_ids: Sequence[Sequence[int]], pad_id: int, device=None):
    ids, mask = pad_batch(token_ids, pad_id, "right")
    device = _device(model) if device is None else device
    return model(ids.to(device), mask.to(device))


@dataclass(frozen=True)
class RewardModelCurve:
    """Bradley-Terry loss and batch accuracy per training step."""

    loss: list[float]
    accuracy: list[float]


def prepare_for_training(
    model: ScalarRewardModel, *, lora=None, gradient_checkpointing: bool = False
) -> list[nn.Parameter]:
    """Like the policy's runs: LoRA adapters on the body (a `LoraParams`; the head is trained
    whole) or float32 master weights for every parameter (bfloat16 weights stepped by AdamW at
    lr 1e-5 mostly do not move); gradient checkpointing where asked; dropout off. Returns the
    trainable parameters."""
    from repsafe_lib.training import disable_dropout, lora_config

    if lora is not None:
        from peft import get_peft_model

        model.body = get_peft_model(model.body, lora_config(lora, "FEATURE_EXTRACTION"))
    else:
        model.float()
    if gradient_checkpointing:
        model.body.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    disable_dropout(model)
    return [p for p in model.parameters() if p.requires_grad]


@dataclass(frozen=True)
class RewardModelRecipe:
    """How the reward model trains, in the terms the policy's runs use (`training.loop` builds the
    `Accelerator` and checks FSDP from them): pairs per optimiser step over every process (each
    process takes its share in one forward), the profile's precision, activation checkpointing and
    LoRA."""

    batch_size: int
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    lora: object = None
    gradient_accumulation_steps: int = 1  # one forward per process and step


@dataclass
class RewardModelFit:
    """A finished or stopped fit: the curve so far, the model trained in place (LoRA merged, eval
    mode, its forward unwrapped; under FSDP each process holds only its shards of it), the step
    a checkpoint restored (0: a fresh start), and what `accelerate` prepared it with."""

    curve: RewardModelCurve
    model: ScalarRewardModel
    resumed_from: int
    finished: bool
    accelerator: object
    prepared: nn.Module

    @property
    def sharded(self) -> bool:
        from repsafe_lib.training import loop

        return loop.is_sharded(self.accelerator)

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """Every process calls it: under FSDP the whole state dict gathered on the main process
        (None on the others); None where every process holds the whole model already."""
        if not self.sharded:
            return None
        state = self.accelerator.get_state_dict(self.prepared)
        return state if self.accelerator.is_main_process else None


def train_reward_model(
    model: ScalarRewardModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    max_grad_norm: float = 1.0,
    mixed_precision: str = "no",
    gradient_checkpointing: bool = False,
    lora=None,
    progress: bool = True,
) -> RewardModelCurve:
    """`steps` AdamW steps of the BT loss on batches of `batch_size` pairs (a seeded permutation
    per epoch), dropout off, under autocast in `mixed_precision` ("no", "bf16", "fp16" with a
    gradient scaler) with the master weights `prepare_for_training` sets up (adapters merged
    into the body afterwards); the model is left in eval mode. No checkpoints (`fit_reward_model`
    writes them); one process, or every process of a DDP launch."""
    recipe = RewardModelRecipe(batch_size, mixed_precision, gradient_checkpointing, lora)
    fit = fit_reward_model(
        model,
        tokenizer,
        pairs,
        recipe,
        steps=steps,
        learning_rate=learning_rate,
        max_length=max_length,
        seed=seed,
        max_grad_norm=max_grad_norm,
        progress=progress,
    )
    fit.accelerator.free_memory()  # its references to the optimiser and the prepared model
    if fit.sharded:
        raise ValueError(
            "train_reward_model leaves each process a shard of the model under FSDP: use"
            " fit_and_save, which saves it whole"
        )
    return fit.curve


def pair_losses(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Each pair's BT loss `[b]`; their mean is `margin_bt_loss(..., mu=0)`."""
    return -F.logsigmoid(r_chosen.float() - r_rejected.float())


def reward_model_run_key(
    model: ScalarRewardModel, recipe: RewardModelRecipe, settings: list, sharded: bool, token_ids
) -> str:
    """What a reward model's checkpoint must match to be resumed: the body's architecture, the
    recipe and `settings` (steps, learning rate, ..., seed, the caller's key), the layout and
    every encoded pair."""
    architecture = model.body.config.to_json_string(use_diff=False)
    return key_digest(
        canonical_json([architecture, repr(recipe), settings, "fsdp" if sharded else "whole"]),
        (canonical_json(list(ids)) for ids in token_ids),
        length=16,
    )


def fit_reward_model(
    model: ScalarRewardModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    recipe: RewardModelRecipe,
    *,
    steps: int,
    learning_rate: float,
    max_length: int,
    seed: int,
    max_grad_norm: float = 1.0,
    checkpoints: Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    key: object = None,
    progress: bool = True,
    _stop_after: int | None = None,
) -> RewardModelFit:
    """`train_reward_model` under `accelerate`, as the policy's runs train: in one process, or in
    every process of an `accelerate launch` (DDP: each holds the whole model; FSDP2: each holds
    its shards, float32 with the recipe's autocast around the forward, refusing what the policy's
    runs refuse). Each process takes its share of every batch; the curve is of the whole batch.

    With `checkpoints` (a directory), a checkpoint every `checkpoint_every` steps and after the
    last, whole (safetensors + JSON) or `accelerate`'s sharded state under FSDP, holding the curve
    so far; with `resume`, a fit continues from the newest one written under the same settings,
    pairs and `key` (the caller's cache key) and ends as an uninterrupted fit would.
    `_stop_after` stops after that many steps as if killed (resume tests)."""
    from accelerate import PartialState

    from repsafe_lib.training import batch_schedule
    from repsafe_lib.training import loop as training_loop
    from repsafe_lib.training.checkpoints import (
        checkpoint_run_state,
        resume_or_start_afresh,
        write_run_checkpoint,
    )

    if not pairs:
        raise ValueError("no preference pairs to train the reward model on")
    processes = PartialState().num_processes
    if recipe.batch_size % processes:
        raise ValueError(
            f"sampling.reward_model.batch_size {recipe.batch_size} must divide by the number of"
            f" processes ({processes}): each takes its share of every batch"
        )
    seed_everything(seed)
    accelerator = training_loop.new_accelerator(recipe, _device(model))
    sharded = training_loop.is_sharded(accelerator)
    settings = [steps, learning_rate, max_length, max_grad_norm, seed, key]
    prompts = [p.prompt for p in pairs]
    chosen = _encode(tokenizer, prompts, [p.chosen for p in pairs], max_length)
    rejected = _encode(tokenizer, prompts, [p.rejected for p in pairs], max_length)
    run_key = reward_model_run_key(model, recipe, settings, sharded, chosen + rejected)
    trainable = prepare_for_training(
        model, lora=recipe.lora, gradient_checkpointing=recipe.gradient_checkpointing
    )
    model.train()
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    prepared, optimiser = accelerator.prepare(model, optimiser)
    if sharded:
        training_loop.autocast_forward(accelerator, prepared)
    # After `prepare`: FSDP replaces the parameters by sharded ones (and the optimiser's with them).
    trainable = [p for p in prepared.parameters() if p.requires_grad]
    unwrapped = accelerator.unwrap_model(prepared)
    start, curve = 0, RewardModelCurve([], [])
    if checkpoints is not None:
        start, found = resume_or_start_afresh(
            checkpoints,
            run_key,
            resume=resume,
            accelerator=accelerator,
            model=unwrapped,
            optimiser=optimiser,
            fold_rewards=None,
        )
        if found is not None:
            curve = _restore_run_state(checkpoint_run_state(found), accelerator, sharded)
    schedule = batch_schedule(len(pairs), recipe.batch_size, steps, seed)
    end = steps if _stop_after is None else min(_stop_after, steps)
    bar = tqdm(
        range(start, end),
        desc="reward model",
        unit="step",
        disable=not progress or not accelerator.is_main_process,
        initial=start,
        total=steps,
    )
    for step in bar:
        local = schedule[step][accelerator.process_index :: accelerator.num_processes]
        loss, accuracy = _training_step(
            prepared,
            optimiser,
            accelerator,
            trainable,
            [chosen[i] for i in local],
            [rejected[i] for i in local],
            tokenizer.pad_token_id,
            max_grad_norm,
            step,
        )
        curve.loss.append(loss)
        curve.accuracy.append(accuracy)
        due = checkpoint_every and ((step + 1) % checkpoint_every == 0 or step + 1 == steps)
        if checkpoints is not None and due:
            write_run_checkpoint(
                checkpoints,
                step=step + 1,
                sharded=sharded,
                accelerator=accelerator,
                model=unwrapped,
                optimiser=optimiser,
                fold_rewards=None,
                run_key=run_key,
                run_state=_run_state(curve, accelerator, sharded),
            )
        accelerator.wait_for_everyone()
    bar.close()
    finished = end == steps
    # Without the mixed-precision wrapper `prepare` put around the forward: scoring runs as asked.
    model = accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)
    if finished and recipe.lora is not None:
        model.body = model.body.merge_and_unload()
    model.eval()
    return RewardModelFit(curve, model, start, finished, accelerator, prepared)


def _training_step(
    prepared, optimiser, accelerator, trainable, chosen, rejected, pad_id, max_grad_norm, step
) -> tuple[float, float]:
    """One AdamW step on this process's share of the batch (`chosen[i]`, `rejected[i]`: a pair);
    returns the whole batch's BT loss and accuracy, gathered from every process."""
    rewards = _rewards(prepared, list(chosen) + list(rejected), pad_id, accelerator.device)
    r_chosen, r_rejected = rewards.float().chunk(2)
    losses = accelerator.gather(pair_losses(r_chosen, r_rejected).detach())
    correct = accelerator.gather((r_chosen > r_rejected).float())
    if not torch.isfinite(losses).all():
        raise FloatingPointError(f"reward model loss is {losses.mean().item()} at step {step}")
    accelerator.backward(margin_bt_loss(r_chosen, r_rejected, mu=0.0))
    accelerator.clip_grad_norm_(trainable, max_grad_norm)
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return float(losses.mean()), float(correct.mean())


def _run_state(curve: RewardModelCurve, accelerator, sharded: bool) -> dict:
    """What a checkpoint keeps beside the weights: the curve so far and, for fp16 in a whole
    checkpoint, the gradient scaler (`accelerate`'s sharded state holds its own)."""
    state = {"curve": dataclasses.asdict(curve)}
    if accelerator.scaler is not None and not sharded:
        state["scaler"] = accelerator.scaler.state_dict()
    return state


def _restore_run_state(state: dict, accelerator, sharded: bool) -> RewardModelCurve:
    if "scaler" in state and accelerator.scaler is not None and not sharded:
        accelerator.scaler.load_state_dict(state["scaler"])
    return RewardModelCurve(**state["curve"])


def for_scoring(model: ScalarRewardModel, dtype: torch.dtype) -> ScalarRewardModel:
    """The trained model with its body in `dtype` (the policy's, as `load_reward_model` reloads
    it) and the head in float32, gradient checkpointing off, in eval mode."""
    if getattr(model.body, "is_gradient_checkpointing", False):
        model.body.gradient_checkpointing_disable()
    model.body.to(dtype)
    model.head.float()
    return model.eval()


@torch.no_grad()
def score_responses(
    model: ScalarRewardModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    max_length: int,
    batch_size: int,
    progress: bool = True,
) -> torch.Tensor:
    """Reward of every (prompt, response) `[n]` (float32, CPU), length-sorted batches."""
    model.eval()
    token_ids = _encode(tokenizer, prompts, responses, max_length)
    scores = torch.empty(len(token_ids))
    batches = length_sorted_batches([len(ids) for ids in token_ids], batch_size)
    for batch in tqdm(batches, desc="reward model scores", disable=not progress):
        scores[batch] = _rewards(model, [token_ids[i] for i in batch], tokenizer.pad_token_id).cpu()
    return scores


def score_samples(
    model: ScalarRewardModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_text: Mapping[str, str],
    samples_by_set: Mapping[str, Sequence],
    *,
    max_length: int,
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """Reward of every sample (anything with `prompt_id` and `text`) of each named set."""
    return {
        name: score_responses(
            model,
            tokenizer,
            [prompt_text[s.prompt_id] for s in samples],
            [s.text for s in samples],
            max_length=max_length,
            batch_size=batch_size,
        )
        for name, samples in samples_by_set.items()
    }


def pair_accuracy(
    model: ScalarRewardModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int,
    batch_size: int,
) -> float:
    """Share of pairs whose chosen response gets the higher reward."""
    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score_responses(
        model,
        tokenizer,
        prompts,
        responses,
        max_length=max_length,
        batch_size=batch_size,
        progress=False,
    )
    return float((scores[: len(pairs)] > scores[len(pairs) :]).float().mean())


def save_reward_model(
    model: ScalarRewardModel,
    directory: str | Path,
    metadata: dict,
    *,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """`directory/body/` (save_pretrained), `head.safetensors`, `reward_model.json` (with
    `metadata`), written into a staging directory renamed into place. `state_dict`: the whole
    model's weights (`body.*`, `head.*`) to write in place of the model's own (a sharded model's,
    gathered: `RewardModelFit.full_state`)."""
    with atomic_directory(directory) as staging:
        _write_reward_model(model, staging, metadata, state_dict)
    return Path(directory)


def _part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _write_reward_model(
    model: ScalarRewardModel,
    staging: Path,
    metadata: dict,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    body = None if state_dict is None else _part(state_dict, "body.")
    head = model.head.state_dict() if state_dict is None else _part(state_dict, "head.")
    written = None if body is None else {v.dtype for v in body.values() if v.is_floating_point()}
    model.body.save_pretrained(staging / "body", safe_serialization=True, state_dict=body)
    if written is not None and len(written) == 1:  # (save_pretrained may empty `body`)
        _record_dtype(staging / "body" / "config.json", written.pop())
    head = {k: v.detach().cpu().contiguous() for k, v in head.items()}
    save_file(head, staging / "head.safetensors")
    (staging / "reward_model.json").write_text(
        json.dumps({"format": FORMAT, **metadata}, indent=2, sort_keys=True), encoding="utf-8"
    )


def _record_dtype(config_path: Path, dtype: torch.dtype) -> None:
    """The dtype of the weights written, in the saved config: `save_pretrained` records that of
    the module's own parameters (float32 shards under FSDP, whatever was written)."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["dtype"] = str(dtype).removeprefix("torch.")
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_reward_model_metadata(directory: str | Path) -> dict | None:
    """The JSON saved beside a reward model, or None where there is none (or not ours)."""
    path = Path(directory) / "reward_model.json"
    if not path.is_file():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return metadata if metadata.get("format") == FORMAT else None


def load_reward_model(
    directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: str = "auto",
    trust_remote_code: bool = False,
) -> ScalarRewardModel:
    """A reward model saved by `save_reward_model`, in eval mode, its body in `dtype` (None: as
    saved) and loaded straight onto the device it will score on: `device` as `model.device` of
    a profile names it ("auto": cuda > mps > cpu). Its body runs custom code only where
    `trust_remote_code` (the policy's params setting) allows it."""
    from repsafe_lib.models import pick_device, refuse_custom_code

    directory = Path(directory)
    if read_reward_model_metadata(directory) is None:
        raise FileNotFoundError(f"{directory}: no reward model saved by repsafe here")
    target = pick_device(device)
    refuse_custom_code(directory / "body", trust_remote_code, "model.trust_remote_code")
    body = AutoModel.from_pretrained(
        directory / "body",
        dtype=dtype,
        device_map={"": str(target)},
        trust_remote_code=trust_remote_code,
    )
    model = ScalarRewardModel(body)
    head = load_file(directory / "head.safetensors")
    model.head.load_state_dict(head)
    return model.eval()


def cache_key(
    base_fingerprint: str, settings, training, pairs: Sequence[PreferencePair], seed: int
) -> dict:
    """What a saved reward model must match to be reused: the base weights, its settings (a
    `params.RewardModelParams`), the training recipe (precision, LoRA) and pairs, and the seed."""
    return {
        "base": base_fingerprint,
        "settings": repr(settings),
        "recipe": [training.mixed_precision, repr(training.lora), "fp32-master"],
        "pairs": [p.pair_id for p in pairs],
        "seed": seed,
    }


def _saved_metadata(directory: Path) -> dict:
    metadata = read_reward_model_metadata(directory)
    if metadata is None:
        raise ValueError("no reward_model.json of this format")
    return metadata


def reward_model_cache(model_params) -> CacheFormat[tuple[ScalarRewardModel, RewardModelCurve]]:
    """A directory saved by `save_reward_model`, its `cache_key` and curve in `reward_model.json`;
    reloaded in the policy's dtype onto the device of `model_params` (a `params.ModelParams`)."""
    from repsafe_lib.models import DTYPES

    def load(directory: Path) -> tuple[ScalarRewardModel, RewardModelCurve]:
        model = load_reward_model(
            directory,
            dtype=DTYPES[model_params.dtype],
            device=model_params.device,
            trust_remote_code=model_params.trust_remote_code,
        )
        return model, RewardModelCurve(**_saved_metadata(directory)["curve"])

    return CacheFormat(
        what="reward model",
        load=load,
        remedy="training it again",
        recorded_key=lambda directory: _saved_metadata(directory)["key"],
        directory=True,
    )


# The same entry, its key looked up without loading the model.
SAVED_REWARD_MODEL = CacheFormat(
    what="reward model",
    load=lambda directory: directory,
    remedy="training it again",
    recorded_key=lambda directory: _saved_metadata(directory)["key"],
    directory=True,
)


@dataclass(frozen=True)
class BaseWeights:
    """What the reward model's cache needs of the base policy: the fingerprint of its weights and
    its tokenizer (a `models.LoadedModel` has both; `models.base_fingerprint` gives the first
    without loading the weights)."""

    fingerprint: str
    tokenizer: PreTrainedTokenizerBase


def checkpoints_directory(directory: str | Path) -> Path:
    """Where the fit of the reward model saved at `directory` keeps its checkpoints (beside it:
    the saved model replaces `directory` whole). The newest stays after the fit, as a policy run's
    does; delete it to free the space."""
    directory = Path(directory)
    return directory.with_name(f"{directory.name}-checkpoints")


def fit_or_load(
    directory: str | Path,
    *,
    base,
    model_params,
    training,
    settings,
    pairs: Sequence[PreferencePair],
    seed: int,
    progress: bool = True,
) -> tuple[ScalarRewardModel, RewardModelCurve]:
    """The reward model of `settings` on `pairs`, ready to score (body in the policy's dtype):
    reloaded from `directory` where its `cache_key` matches, else trained from the base policy
    (`base`, a `models.LoadedModel` or `BaseWeights`, gives the fingerprint and tokenizer;
    `model_params` and `training` say how to load it and train like the policy) and saved there
    with its curve (`fit_and_save`). Under FSDP it is reloaded from what was saved."""
    key = cache_key(base.fingerprint, settings, training, pairs, seed)
    cache = reward_model_cache(model_params)
    found = load_cached(directory, key, cache)
    if found is not None:
        return found
    fit = _train_and_save(
        directory,
        key,
        base=base,
        model_params=model_params,
        training=training,
        settings=settings,
        pairs=pairs,
        seed=seed,
        progress=progress,
    )
    return cache.load(Path(directory)) if fit.sharded else (fit.model, fit.curve)


def fit_and_save(
    directory: str | Path,
    *,
    base,
    model_params,
    training,
    settings,
    pairs: Sequence[PreferencePair],
    seed: int,
    resume: bool = True,
    progress: bool = True,
    _stop_after: int | None = None,
) -> RewardModelFit | None:
    """What `fit_or_load` trains and saves, in every process of an `accelerate launch` (or in
    one): None where `directory` holds this reward model already (same `cache_key`); else the fit,
    resumed from the newest checkpoint of the same key in `checkpoints_directory(directory)`
    (with `resume`), checkpointed every `training.checkpoint_every` steps, and the model saved
    whole into `directory` by the main process (gathered from the shards under FSDP)."""
    key = cache_key(base.fingerprint, settings, training, pairs, seed)
    if load_cached(directory, key, SAVED_REWARD_MODEL) is not None:
        return None
    return _train_and_save(
        directory,
        key,
        base=base,
        model_params=model_params,
        training=training,
        settings=settings,
        pairs=pairs,
        seed=seed,
        resume=resume,
        progress=progress,
        _stop_after=_stop_after,
    )


def _train_and_save(
    directory: str | Path,
    key: dict,
    *,
    base,
    model_params,
    training,
    settings,
    pairs: Sequence[PreferencePair],
    seed: int,
    resume: bool = True,
    progress: bool = True,
    _stop_after: int | None = None,
) -> RewardModelFit:
    from repsafe_lib.models import DTYPES, load_model
    from repsafe_lib.training import training_spec

    body = load_model(training_spec(model_params, training), seed=seed).model
    recipe = RewardModelRecipe(
        settings.batch_size,
        training.mixed_precision,
        training.gradient_checkpointing,
        training.lora,
    )
    fit = fit_reward_model(
        ScalarRewardModel.from_causal_lm(body),
        base.tokenizer,
        pairs,
        recipe,
        steps=settings.steps,
        learning_rate=settings.learning_rate,
        max_length=settings.max_length,
        seed=seed,
        checkpoints=checkpoints_directory(directory),
        checkpoint_every=training.checkpoint_every,
        resume=resume,
        key=key,
        progress=progress,
        _stop_after=_stop_after,
    )
    if fit.finished:
        save_fit(
            fit,
            directory,
            {"key": key, "curve": dataclasses.asdict(fit.curve)},
            DTYPES[model_params.dtype],
        )
    fit.accelerator.free_memory()  # its references to the optimiser and the prepared model
    return fit


def save_fit(
    fit: RewardModelFit, directory: str | Path, metadata: dict, dtype: torch.dtype
) -> None:
    """Every process calls it: the fitted model ready to score (`for_scoring`: body in `dtype`,
    head float32) saved whole into `directory` by the main process; under FSDP from the state
    gathered from every process's shards."""
    state = fit.full_state()
    if not fit.sharded:
        for_scoring(fit.model, dtype)
    if fit.accelerator.is_main_process:
        whole = None if state is None else scoring_state(state, dtype)
        save_reward_model(fit.model, directory, metadata, state_dict=whole)
    fit.accelerator.wait_for_everyone()


def scoring_state(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict:
    """A whole state dict as `for_scoring` leaves the model: body in `dtype`, head float32."""
    return {
        k: v.to(dtype) if k.startswith("body.") and v.is_floating_point() else v.float()
        for k, v in state.items()
    }
