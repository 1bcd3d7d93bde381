"""A conventional reward model: the policy's architecture with a scalar head (the online-DPO
baseline's labeller and Table 2's "rm" rows; paper Sec 4.2, 4.5).

The decoder body (no LM head) reads prompt + response in the policy's chat format; a linear head
maps the last token's final (normed) state to one reward. It is trained with the Bradley-Terry
loss `-log sigmoid(r(chosen) - r(rejected))` on the safety pairs, dropout off, like the policy:
float32 master weights under autocast, or LoRA adapters on the body (merged after training), with
gradient checkpointing where the profile sets it. It scores with its body in the policy's dtype.
Saved as the body's `save_pretrained` (safetensors) plus the head as safetensors and a JSON file,
never as a pickle, and reloaded straight onto the device it scores on. `fit_or_load` trains it
once per `cache_key` (base weights, settings, recipe, pairs, seed) and reloads it after that.
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
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from repsafe_lib.artifacts import atomic_directory
from repsafe_lib.caching import CacheFormat, cached
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


def _rewards(model: ScalarRewardModel, token_ids: Sequence[Sequence[int]], pad_id: int):
    ids, mask = pad_batch(token_ids, pad_id, "right")
    device = _device(model)
    return model(ids.to(device), mask.to(device))


@dataclass(frozen=True)
class RewardModelCurve:
    """Bradley-Terry loss and batch accuracy per training step."""

    loss: list[float]
    accuracy: list[float]


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
    into the body afterwards); the model is left in eval mode."""
    from repsafe_lib.training import batch_schedule

    if not pairs:
        raise ValueError("no preference pairs to train the reward model on")
    seed_everything(seed)
    trainable = prepare_for_training(
        model, lora=lora, gradient_checkpointing=gradient_checkpointing
    )
    model.train()
    prompts = [p.prompt for p in pairs]
    chosen = _encode(tokenizer, prompts, [p.chosen for p in pairs], max_length)
    rejected = _encode(tokenizer, prompts, [p.rejected for p in pairs], max_length)
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=0.0)
    device_type = _device(model).type
    autocast_dtype = AUTOCAST_DTYPES.get(mixed_precision)
    scaler = torch.amp.GradScaler(device_type, enabled=mixed_precision == "fp16")
    curve = RewardModelCurve([], [])
    schedule = batch_schedule(len(pairs), batch_size, steps, seed)
    for batch in tqdm(schedule, desc="reward model", unit="step", disable=not progress):
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            rewards = _rewards(
                model,
                [chosen[i] for i in batch] + [rejected[i] for i in batch],
                tokenizer.pad_token_id,
            )
        r_chosen, r_rejected = rewards.float().chunk(2)
        loss = margin_bt_loss(r_chosen, r_rejected, mu=0.0)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"reward model loss is {loss.item()} at step {len(curve.loss)}"
            )
        _step(loss, optimiser, scaler, trainable, max_grad_norm)
        curve.loss.append(float(loss.detach()))
        curve.accuracy.append(float((r_chosen > r_rejected).float().mean()))
    if lora is not None:
        model.body = model.body.merge_and_unload()
    model.eval()
    return curve


def _step(loss, optimiser, scaler, trainable, max_grad_norm: float) -> None:
    """Backward through the (fp16-scaled) loss, clip the gradient norm, step, zero the grads."""
    scaler.scale(loss).backward()
    scaler.unscale_(optimiser)
    torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
    scaler.step(optimiser)
    scaler.update()
    optimiser.zero_grad(set_to_none=True)


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


def save_reward_model(model: ScalarRewardModel, directory: str | Path, metadata: dict) -> Path:
    """`directory/body/` (save_pretrained), `head.safetensors`, `reward_model.json` (with
    `metadata`), written into a staging directory renamed into place."""
    with atomic_directory(directory) as staging:
        _write_reward_model(model, staging, metadata)
    return Path(directory)


def _write_reward_model(model: ScalarRewardModel, staging: Path, metadata: dict) -> None:
    model.body.save_pretrained(staging / "body", safe_serialization=True)
    head = {k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, staging / "head.safetensors")
    (staging / "reward_model.json").write_text(
        json.dumps({"format": FORMAT, **metadata}, indent=2, sort_keys=True), encoding="utf-8"
    )


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


def _save_fitted(staging: Path, fitted: tuple, key: dict) -> tuple:
    model, curve = fitted
    _write_reward_model(model, staging, {"key": key, "curve": dataclasses.asdict(curve)})
    return fitted


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
        save=_save_fitted,
        recorded_key=lambda directory: _saved_metadata(directory)["key"],
        directory=True,
    )


def fit_or_load(
    directory: str | Path,
    *,
    base,
    model_params,
    training,
    settings,
    pairs: Sequence[PreferencePair],
    seed: int,
) -> tuple[ScalarRewardModel, RewardModelCurve]:
    """The reward model of `settings` on `pairs`, ready to score (body in the policy's dtype):
    reloaded from `directory` where its `cache_key` matches, else trained from the base policy
    (`base`, a `models.LoadedModel`, gives the fingerprint and tokenizer; `model_params` and
    `training` say how to load it and train like the policy) and saved there with its curve."""
    from repsafe_lib.models import DTYPES, load_model
    from repsafe_lib.training import training_spec

    def fit() -> tuple[ScalarRewardModel, RewardModelCurve]:
        body = load_model(training_spec(model_params, training), seed=seed).model
        model = ScalarRewardModel.from_causal_lm(body)
        curve = train_reward_model(
            model,
            base.tokenizer,
            pairs,
            steps=settings.steps,
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            max_length=settings.max_length,
            seed=seed,
            mixed_precision=training.mixed_precision,
            gradient_checkpointing=training.gradient_checkpointing,
            lora=training.lora,
        )
        return for_scoring(model, DTYPES[model_params.dtype]), curve

    key = cache_key(base.fingerprint, settings, training, pairs, seed)
    return cached(directory, key, reward_model_cache(model_params), fit)
