"""The policy as training holds it: the dtype a trained copy is loaded in, optional LoRA adapters,
dropout off, and saving the result as a plain model (paper Sec 4.1; every run starts from the base
policy).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from torch import nn
from transformers import PreTrainedModel


def disable_dropout(model: nn.Module) -> None:
    """Dropout off everywhere (DPO compares log-probs of the same weights; noise only hurts)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    config = getattr(model, "config", None)
    for key in list(vars(config)) if config is not None else []:
        if key.endswith("dropout") and isinstance(getattr(config, key), float):
            setattr(config, key, 0.0)


def training_dtype(policy_dtype: str, training) -> str:
    """The dtype a trained copy of the policy is loaded in. Full fine-tuning: float32 master
    weights, always. AdamW steps of lr 1e-5 are below bfloat16's resolution for most weights
    (spacing 2^-8 relative), so bfloat16 weights stepped directly mostly do not move; autocast
    (`training.mixed_precision`) still computes in bfloat16. LoRA: the frozen base keeps the
    policy's dtype (peft keeps the adapters in float32)."""
    return policy_dtype if training.lora is not None else "float32"


def training_spec(spec, training):
    """`spec` (a `ModelParams`) with the dtype a trained copy is loaded in (`training_dtype`)."""
    return dataclasses.replace(spec, dtype=training_dtype(spec.dtype, training))


def lora_config(lora, task_type: str):
    """peft's config for `lora` (a `LoraParams`), dropout off."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=0.0,
        target_modules=list(lora.target_modules),
        bias="none",
        task_type=task_type,
    )


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def prepare_policy(model: PreTrainedModel, training) -> PreTrainedModel:
    """LoRA adapters (optional; a model that has them already keeps them), float32 master weights
    for full fine-tuning (`training_dtype`), gradient checkpointing (optional), dropout off,
    train mode."""
    if training.lora is None and not _is_peft(model):
        model.float()  # a no-op for a model loaded with `training_spec`
    if training.lora is not None and not _is_peft(model):
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(training.lora, "CAUSAL_LM"))
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    disable_dropout(model)
    return model.train()


def save_policy(model, tokenizer, directory: Path, *, state_dict: dict | None = None) -> None:
    """`save_pretrained` (safetensors) into a staging directory renamed into place; LoRA adapters
    are merged first so the result loads as a plain model. `state_dict`: the weights to write in
    place of the model's own (a sharded model's, gathered whole)."""
    if hasattr(model, "merge_and_unload"):
        if state_dict is not None:
            raise ValueError("a LoRA policy is saved from its own (whole) weights, merged")
        model = model.merge_and_unload()
    staging = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True, state_dict=state_dict)
    if tokenizer is not None:
        tokenizer.save_pretrained(staging)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
