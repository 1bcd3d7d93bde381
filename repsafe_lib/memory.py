"""Accelerator memory of a training run, estimated from the model's shape and the profile.

One process trains the policy (notebook 04's runs, DPO*/cDPO* and online DPO in notebook 05) with:

- weights: float32 master weights for full fine-tuning (`training.training_dtype`); with LoRA the
  frozen base in the policy's dtype plus float32 adapters;
- gradients (float32) and AdamW's two moments (float32) of every trainable parameter;
- autocast's 16-bit copies of the float32 linear weights, which autograd keeps until the
  backward pass: all of them without gradient checkpointing, one layer's (and the LM head's) with;
- activations saved for the backward pass, per token of the micro-batch (chosen and rejected
  sequences of `training.batch_size / gradient_accumulation_steps` pairs, `extraction.max_length`
  tokens each, the worst case): per decoder layer 46 d + 8 f bytes under 16-bit autocast (the
  residual stream and RMSNorms stay float32 in Llama) or 40 d + 16 f bytes in float32, counted on
  the tiny model (`tests/test_memory.py`); with gradient checkpointing only each layer's float32
  input (4 d) stays, and one layer's activations are recomputed at a time. The LM head keeps the
  float32 logits of the response tokens (4 V bytes each) and, in the backward, makes their
  probabilities and a 16-bit gradient (6 V more);
- the reference: log-probs precomputed before training hold nothing during it; scored on the fly,
  a 4-bit NF4 copy (0.5 byte per linear weight plus a float32 scale per 64 weights; embeddings,
  norms and LM head in the policy's dtype) or a full copy in the policy's dtype.

Online DPO (notebook 05) also holds the reference on the fly and the reward model in the policy's
dtype while the policy trains. Several processes with DDP each hold all of the above plus DDP's
gradient buckets (another 4 bytes per trainable parameter): DDP adds speed, not room. Allocator
fragmentation, the CUDA context (~0.5 GiB) and generation's KV cache are not counted.

`python -m repsafe_lib.memory --params params/paper.yaml` prints the estimate of a profile.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

GIB = 2**30
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES_PER_WEIGHT = 0.5 + 4 / 64  # 4-bit codes plus one float32 absmax per block of 64
ACTIVATION_BYTES = {  # per token per decoder layer: (bytes per unit of d, bytes per unit of f)
    "16-bit": (46, 8),
    "float32": (40, 16),
}
LOGIT_BYTES_SAVED, LOGIT_BYTES_BACKWARD = 4, 6  # per response token per vocabulary entry


@dataclass(frozen=True)
class ModelShape:
    """A Llama-style decoder: hidden size d, MLP size f, L layers, vocabulary V."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool

    @property
    def kv_size(self) -> int:
        return self.hidden_size * self.num_key_value_heads // self.num_attention_heads

    def layer_linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        d, f, kv = self.hidden_size, self.intermediate_size, self.kv_size
        return {
            "q_proj": (d, d),
            "k_proj": (d, kv),
            "v_proj": (d, kv),
            "o_proj": (d, d),
            "gate_proj": (d, f),
            "up_proj": (d, f),
            "down_proj": (f, d),
        }

    @property
    def layer_linear_params(self) -> int:
        return sum(i * o for i, o in self.layer_linear_shapes().values())

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """The LM head's own weights (0 when tied to the embeddings)."""
        return 0 if self.tie_word_embeddings else self.embedding_params

    @property
    def norm_params(self) -> int:
        return (2 * self.num_layers + 1) * self.hidden_size

    @property
    def total_params(self) -> int:
        layers = self.num_layers * self.layer_linear_params
        return layers + self.embedding_params + self.lm_head_params + self.norm_params

    def lora_params(self, r: int, target_modules: Sequence[str]) -> int:
        shapes = self.layer_linear_shapes()
        per_layer = sum(r * sum(shapes[name]) for name in target_modules if name in shapes)
        return self.num_layers * per_layer


@dataclass(frozen=True)
class TrainingMemory:
    """What one training process holds, by component (bytes)."""

    weights: int
    gradients: int
    optimiser: int
    autocast_weight_copies: int
    activations: int
    reference: int
    reward_model: int = 0
    ddp_buckets: int = 0

    @property
    def total(self) -> int:
        return sum(vars(self).values())


def trainable_params(shape: ModelShape, lora) -> int:
    """Parameters AdamW steps: every one, or the LoRA adapters (`lora`: a `LoraParams`)."""
    return shape.total_params if lora is None else shape.lora_params(lora.r, lora.target_modules)


def weight_bytes(shape: ModelShape, policy_dtype: str, lora) -> int:
    """float32 master weights; with LoRA the frozen base in the policy's dtype + float32 adapters."""
    if lora is None:
        return 4 * shape.total_params
    return DTYPE_BYTES[policy_dtype] * shape.total_params + 4 * trainable_params(shape, lora)


def autocast_copy_bytes(
    shape: ModelShape, *, float32_base: bool, mixed_precision: str, checkpointing: bool
) -> int:
    """16-bit copies of float32 linear weights that autocast makes and autograd keeps."""
    if mixed_precision == "no" or not float32_base:
        return 0
    head = shape.lm_head_params or shape.embedding_params  # a tied head is cast like a linear
    layers = 1 if checkpointing else shape.num_layers
    return 2 * (layers * shape.layer_linear_params + head)


def layer_activation_bytes(shape: ModelShape, tokens: int, mixed_precision: str) -> int:
    """Bytes one decoder layer saves for the backward pass over `tokens` tokens."""
    per_d, per_f = ACTIVATION_BYTES["float32" if mixed_precision == "no" else "16-bit"]
    return tokens * (per_d * shape.hidden_size + per_f * shape.intermediate_size)


def saved_activation_bytes(
    shape: ModelShape,
    *,
    tokens: int,
    response_tokens: int,
    mixed_precision: str,
    checkpointing: bool,
) -> int:
    """Bytes autograd keeps from the forward pass of `tokens` tokens (`response_tokens` of them
    scored by the LM head) until the backward (without autocast's weight copies)."""
    if checkpointing:  # each layer keeps only its float32 input
        layers = shape.num_layers * tokens * 4 * shape.hidden_size
    else:
        layers = shape.num_layers * layer_activation_bytes(shape, tokens, mixed_precision)
    return layers + response_tokens * shape.vocab_size * LOGIT_BYTES_SAVED


def activation_bytes(
    shape: ModelShape,
    *,
    tokens: int,
    response_tokens: int,
    mixed_precision: str,
    checkpointing: bool,
) -> int:
    """Peak activation memory of one forward + backward: what is saved, one layer recomputed at
    a time under checkpointing, and the LM head's backward arrays."""
    saved = saved_activation_bytes(
        shape,
        tokens=tokens,
        response_tokens=response_tokens,
        mixed_precision=mixed_precision,
        checkpointing=checkpointing,
    )
    recomputed = layer_activation_bytes(shape, tokens, mixed_precision) if checkpointing else 0
    return saved + recomputed + response_tokens * shape.vocab_size * LOGIT_BYTES_BACKWARD


def reference_bytes(shape: ModelShape, quantization: str, policy_dtype: str) -> int:
    """A reference scored on the fly: NF4 linear layers, or a full copy in the policy's dtype."""
    dtype_bytes = DTYPE_BYTES[policy_dtype]
    if quantization == "none":
        return dtype_bytes * shape.total_params
    unquantised = shape.embedding_params + shape.lm_head_params + shape.norm_params
    quantised = shape.num_layers * shape.layer_linear_params
    return round(NF4_BYTES_PER_WEIGHT * quantised) + dtype_bytes * unquantised


def training_memory(
    shape: ModelShape,
    *,
    policy_dtype: str,
    training,
    max_length: int,
    processes: int = 1,
    reference_on_the_fly: bool | None = None,
    with_reward_model: bool = False,
) -> TrainingMemory:
    """One process's memory for a run with `training` (a `TrainingParams`) on sequences of
    `max_length` tokens; `reference_on_the_fly` defaults to `training.reference`."""
    lora = training.lora
    trainable = trainable_params(shape, lora)
    pairs = training.batch_size // (processes * training.gradient_accumulation_steps)
    tokens = 2 * pairs * max_length
    on_the_fly = (
        training.reference == "on_the_fly" if reference_on_the_fly is None else reference_on_the_fly
    )
    quantization = "nf4" if training.reference_quantization == "auto" else None
    quantization = quantization or training.reference_quantization
    float32_base = lora is None or policy_dtype == "float32"
    return TrainingMemory(
        weights=weight_bytes(shape, policy_dtype, lora),
        gradients=4 * trainable,
        optimiser=8 * trainable,
        autocast_weight_copies=autocast_copy_bytes(
            shape,
            float32_base=float32_base,
            mixed_precision=training.mixed_precision,
            checkpointing=training.gradient_checkpointing,
        ),
        activations=activation_bytes(
            shape,
            tokens=tokens,
            response_tokens=tokens,
            mixed_precision=training.mixed_precision,
            checkpointing=training.gradient_checkpointing,
        ),
        reference=reference_bytes(shape, quantization, policy_dtype) if on_the_fly else 0,
        reward_model=(
            DTYPE_BYTES[policy_dtype] * (shape.total_params - shape.lm_head_params)
            if with_reward_model
            else 0
        ),
        ddp_buckets=4 * trainable if processes > 1 else 0,
    )


# Llama-2-7b-hf's config.json, so the paper profile's estimate needs no hub access.
KNOWN_SHAPES = {
    "meta-llama/Llama-2-7b-hf": ModelShape(4096, 11008, 32, 32, 32, 32000, False),
}


def shape_from_config(config) -> ModelShape:
    return ModelShape(
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=getattr(config, "num_key_value_heads", config.num_attention_heads),
        vocab_size=config.vocab_size,
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
    )


def model_shape(spec, *, seed: int = 0) -> ModelShape:
    """The policy's shape: a known hub model's, else read from its config (tiny: built)."""
    if spec.kind == "hub" and spec.source in KNOWN_SHAPES:
        return KNOWN_SHAPES[spec.source]
    from repsafe_lib.models import load_model

    if spec.kind == "hub":
        from transformers import AutoConfig

        options = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
        return shape_from_config(AutoConfig.from_pretrained(spec.source, **options))
    return shape_from_config(load_model(spec, seed=seed).model.config)


def memory_table(params, shape: ModelShape, processes: Sequence[int] = (1, 2)) -> list[dict]:
    """GiB per component for notebook 04's runs (and DPO*/cDPO*) and online DPO, on one process
    and per process under DDP."""
    columns = {}
    for n in processes:
        suffix = "" if n == 1 else f", DDP x{n} (each)"
        options = dict(
            policy_dtype=params.model.dtype,
            training=params.training,
            max_length=params.extraction.max_length,
            processes=n,
        )
        columns[f"training run{suffix}"] = training_memory(shape, **options)
        if n == 1:
            columns["online DPO"] = training_memory(
                shape, reference_on_the_fly=True, with_reward_model=True, **options
            )
    names = [*vars(next(iter(columns.values()))), "total"]
    return [
        {"component": name, **{c: getattr(m, name) / GIB for c, m in columns.items()}}
        for name in names
    ]


def format_table(rows: list[dict]) -> str:
    """A Markdown table of `memory_table`'s rows, GiB with one decimal."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["component"].replace("_", " ")] + [f"{row[c]:.1f}" for c in header[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from repsafe_lib.params import default_params_file, load_params

    parser = argparse.ArgumentParser(prog="python -m repsafe_lib.memory", description=__doc__)
    parser.add_argument("--params", default=default_params_file(), help="params YAML file")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    shape = model_shape(params.model, seed=params.seed)
    print(
        f"{params.model.name}: {shape.total_params:,} parameters;"
        f" {params.training.batch_size} pairs x {params.extraction.max_length} tokens per step;"
        f" GiB per process"
    )
    print(format_table(memory_table(params, shape)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
