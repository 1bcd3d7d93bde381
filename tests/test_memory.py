"""The memory formula (`repsafe_lib.memory`) against what a real step on the tiny model holds."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from repsafe_lib import memory
from repsafe_lib.hidden_states import decoder_parts
from repsafe_lib.models import load_model
from repsafe_lib.params import LoraParams, load_params
from repsafe_lib.training import ResponseScorer, collate, prepare_policy

# The activation coefficients were counted on layers of 64-256 wide; on this model constant
# per-token terms (rotary tables, attention log-sum-exp, masks) they leave out are up to ~8 % of a
# layer, and autocast's float32/bfloat16 choices differ a little between kernels: 15 %.
ACTIVATION_TOLERANCE = 0.15


def _storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (tied weights count once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def _batch(pairs: int, length: int, response: int):
    rows = torch.randint(5, 1000, (2 * pairs, length), generator=torch.Generator().manual_seed(0))
    return collate(rows.tolist(), [length - response] * (2 * pairs), pad_id=0)


def _one_step(model, training, batch):
    model = prepare_policy(model, training)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=1e-3)
    dtype = torch.bfloat16 if training.mixed_precision == "bf16" else None
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        logprobs, _ = ResponseScorer(model)(batch)
    logprobs.sum().backward()
    optimiser.step()
    return model, trainable, optimiser


@pytest.mark.parametrize(
    ("policy_dtype", "lora"),
    [("float32", None), ("bfloat16", None), ("bfloat16", LoraParams(r=4, alpha=8.0))],
)
def test_weights_gradients_and_optimiser_state_are_counted_exactly(tiny_params, policy_dtype, lora):
    training = dataclasses.replace(tiny_params.training, lora=lora, mixed_precision="bf16")
    spec = dataclasses.replace(tiny_params.model, dtype=policy_dtype)
    shape = memory.model_shape(spec)
    model, trainable, optimiser = _one_step(
        load_model(spec).model, training, _batch(pairs=1, length=24, response=8)
    )
    state = [t for s in optimiser.state.values() for t in s.values() if t.dim() > 0]
    estimate = memory.training_memory(
        shape, policy_dtype=policy_dtype, training=training, max_length=24
    )
    assert _storage_bytes(model.parameters()) == estimate.weights
    assert _storage_bytes(p.grad for p in trainable) == estimate.gradients
    assert _storage_bytes(state) == estimate.optimiser
    if lora is None:
        assert shape.total_params == sum(p.numel() for p in model.parameters())
    else:
        assert estimate.gradients == 4 * shape.lora_params(lora.r, lora.target_modules)


def _saved_for_backward(model, batch, mixed_precision: str, checkpointing: bool) -> int:
    """Bytes of the distinct non-parameter tensors kept for the backward pass (the LM head and
    every layer; with checkpointing, each layer's input, which the checkpoint keeps itself)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    _, blocks, _ = decoder_parts(model)
    hooks = []
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

        def keep_input(module, args, kwargs) -> None:
            keep(args[0] if args else kwargs["hidden_states"])

        hooks = [b.register_forward_pre_hook(keep_input, with_kwargs=True) for b in blocks]
    model.train()
    dtype = torch.bfloat16 if mixed_precision == "bf16" else None
    try:
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                ResponseScorer(model)(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(saved.values())


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])
def test_saved_activations_match_the_formula(tiny_params, mixed_precision, checkpointing):
    # 2 pairs x 64 tokens, 8 of them response: the layers and the LM head's logits weigh alike
    tiny = dataclasses.replace(tiny_params.model.tiny, hidden_size=128, intermediate_size=352)
    spec = dataclasses.replace(tiny_params.model, tiny=tiny)
    model = load_model(spec).model
    shape = memory.model_shape(spec)
    batch = _batch(pairs=2, length=64, response=8)
    measured = _saved_for_backward(model, batch, mixed_precision, checkpointing)
    estimate = memory.saved_activation_bytes(
        shape,
        tokens=batch.input_ids.numel(),
        response_tokens=int(batch.response_mask[:, 1:].sum()),
        mixed_precision=mixed_precision,
        checkpointing=checkpointing,
    ) + memory.autocast_copy_bytes(
        shape, float32_base=True, mixed_precision=mixed_precision, checkpointing=checkpointing
    )
    assert estimate == pytest.approx(measured, rel=ACTIVATION_TOLERANCE)


def test_paper_profiles_fit_their_gpus():
    """The numbers of docs/running-on-gpus.md: full fine-tuning of Llama-2-7B fits one 141 GB
    H200, not an 80 GB H100; paper-80gb.yaml (LoRA) fits 80 GB, online DPO included."""
    shape = memory.KNOWN_SHAPES["meta-llama/Llama-2-7b-hf"]
    assert shape.total_params == 6_738_415_616  # Llama-2-7b-hf's parameter count
    totals = {}
    for name in ("paper", "paper-80gb"):
        params = load_params(f"params/{name}.yaml")
        rows = {r["component"]: r for r in memory.memory_table(params, shape)}
        totals[name] = {
            column: value for column, value in rows["total"].items() if column != "component"
        }
    h200, h100 = 140, 80 * 10**9 / memory.GIB * 0.95  # GiB, with room for the CUDA context
    assert 80 < totals["paper"]["training run"] < h200 and totals["paper"]["online DPO"] < h200
    assert max(totals["paper-80gb"].values()) < h100


def test_paper_80gb_is_the_paper_profile_with_lora():
    paper, lora = load_params("params/paper.yaml"), load_params("params/paper-80gb.yaml")
    assert lora.training.lora is not None and paper.training.lora is None
    same = dataclasses.replace(
        lora, profile=paper.profile, training=dataclasses.replace(lora.training, lora=None)
    )
    assert same == paper


def test_readme_memory_table_is_what_the_formula_prints(capsys):
    from repsafe_lib.paths import repo_root

    readme = (repo_root() / "docs" / "running-on-gpus.md").read_text(encoding="utf-8")
    for name in ("paper", "paper-80gb"):
        assert memory.main(["--params", f"params/{name}.yaml"]) == 0
        total = capsys.readouterr().out.splitlines()[-1]  # "| total | run | online | DDP |"
        numbers = " | ".join(total.strip("| ").split(" | ")[1:])
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}.yaml`"))
        assert row.endswith(f"| {numbers} |"), (row, numbers)
