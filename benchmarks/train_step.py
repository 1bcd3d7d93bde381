"""Cost of one training step: vanilla DPO vs cDPO* in our loop, our DPO vs TRL's, and the reference.

    python benchmarks/train_step.py [--params params/smol.yaml] [--pairs 4] [--length 256]
        [--repeats 3] [--warmup 1] [--markdown FILE] [--json FILE]
    python benchmarks/train_step.py --gpu [--params params/smol.yaml]   # CUDA machines only

Every variant runs in its own fresh process on the same model (fp32, the profile's policy) and the
same batch: the profile's `--pairs` preference pairs with the longest conversations, cut to at most
`--length` tokens (prompt at most half) and right-padded to the batch's longest by each trainer's
collator, so both trainers get identical token ids and neither truncates anything (the header gives
the padded batch's shape; the demo data's conversations reach ~190 tokens). A row is the median of
`--repeats` timed steps after `--warmup` untimed ones (the first step also allocates the optimiser's
state).

  dpo        the training loop (`training.start_loop` and `run_steps`, as `train_run` and online
             DPO's rounds take them) as run "dpo": policy forward without recording states,
             DPO loss, backward, gradient clipping, AdamW step. The time is the loop's own per-step
             `seconds` metric (collating the batch included), so the production code path is
             what is measured.
  cdpo_star  the same loop as "cdpo_star": the forward also records every layer's last-token state
             (hooks), R_h scores them (one randomly initialised R_h per confidence fold, of the
             policy's shape: its cost does not depend on its weights), gamma, cDPO loss, backward,
             AdamW step, then the R_h refresh step. Target: cdpo_star / dpo <= 1.05.
  trl_dpo    TRL's `DPOTrainer` (sigmoid loss, same beta, learning rate, clipping, fp32, no gradient
             checkpointing, its default optimiser) on the same token ids, timed from
             `on_step_begin` to `on_step_end`: forward, backward, clipping, optimiser and scheduler
             step (its batch is collated before `on_step_begin`). Target: dpo / trl_dpo <= 1.0.
  reference  `OnTheFlyReference` on the batch: what a step would add without precomputed reference
             log-probs. Timed in the dpo process before training, on the policy's initial weights
             (which is what the reference is); its output is then dpo's precomputed reference.

No timed step pays for a reference: ours are precomputed before the run (`PrecomputedReference`),
TRL's with `precompute_ref_log_probs=True`. Memory: the process's peak RSS during the timed part
(Linux: the mark is reset once setup is done; weights included) and its rise over the RSS just
before (optimiser state, gradients, activations); on CUDA, `torch.cuda.max_memory_allocated` and its
rise over `memory_allocated` instead. The machine must be otherwise idle: on 2 cores, any other
process's load lands in the step times.

`--gpu` instead compares a frozen reference in 4-bit NF4 (bitsandbytes) with one in bf16, both through
`models.load_reference`, on a randomly initialised Llama of 1B shape (hidden 2048, 16 layers, 32
heads, 8 KV heads, MLP 8192, vocabulary 32000) saved once to a temporary directory: CUDA memory after
loading and at the forward's peak, and the forward's speed on `--pairs` x 2 sequences of `--length`
tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from repsafe_lib.hidden_states import format_prompt
from repsafe_lib.hybrid_reward import HybridReward, HybridRewardConfig
from repsafe_lib.loaders import load_configured
from repsafe_lib.models import load_model, load_reference, load_tokenizer
from repsafe_lib.params import ModelParams, load_params
from repsafe_lib.records import PreferencePair
from repsafe_lib.training import (
    FoldRewards,
    OnTheFlyReference,
    PrecomputedReference,
    ResponseScorer,
    SequenceBatch,
    collate_pairs,
    encode_conversation,
    encode_pairs,
    pair_logprobs,
    refreshed_rewards,
    restart_log,
    run_steps,
    start_loop,
)

CPU_VARIANTS = ("dpo", "cdpo_star", "trl_dpo")
GPU_VARIANTS = ("gpu_bf16", "gpu_nf4")
BASELINE = {"cpu": "dpo", "gpu": "gpu_bf16"}
LLAMA_1B = {
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 32000,
}


# The batch: the same demo pairs, cut to the benchmark's length.


def conversation_tokens(tokenizer, prompt: str, response: str) -> int:
    return len(encode_conversation(tokenizer, prompt, response, max_length=1 << 30)[0])


def longest_prefix(tokenizer, text: str, fits) -> str:
    """The longest token-prefix of `text` (decoded) that `fits` accepts."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    low, high = 0, len(ids)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(tokenizer.decode(ids[:middle])):
            low = middle
        else:
            high = middle - 1
    return tokenizer.decode(ids[:low])


def fit_to_length(tokenizer, prompt: str, response: str, length: int) -> str:
    """`response` as it is where the conversation fits in `length` tokens, else its longest
    token-prefix that does (a token or so short where decoding and re-encoding merge tokens)."""
    if conversation_tokens(tokenizer, prompt, response) <= length:
        return response
    return longest_prefix(
        tokenizer, response, lambda text: conversation_tokens(tokenizer, prompt, text) <= length
    )


def fit_prompt(tokenizer, prompt: str, budget: int) -> str:
    """`prompt`, cut where the conversation with an empty response would exceed `budget` tokens."""

    def fits(text: str) -> bool:
        return conversation_tokens(tokenizer, text, "") <= budget

    return prompt if fits(prompt) else longest_prefix(tokenizer, prompt, fits)


def benchmark_pairs(params, tokenizer, count: int, length: int) -> list[PreferencePair]:
    """The profile's `count` pairs with the longest conversations (the shorter side counts), prompts
    cut to at most half of `length` and responses to the rest; shorter ones are padded by each
    trainer's collator. Natural text only: a response repeated to fill the length is predicted so
    surely that fp32 probabilities can underflow to denormals, on which CPU matmuls run ~20x
    slower."""
    records = load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed).records
    if len(records) < count:
        raise SystemExit(f"--pairs {count}: the profile's data has only {len(records)} pairs")

    def shorter_side(record) -> int:
        return min(
            conversation_tokens(tokenizer, record.prompt, response)
            for response in (record.chosen, record.rejected)
        )

    longest = sorted(records, key=shorter_side, reverse=True)[:count]
    pairs = []
    for index, record in enumerate(longest):
        prompt = fit_prompt(tokenizer, record.prompt, length // 2)
        pairs.append(
            dataclasses.replace(
                record,
                pair_id=f"benchmark-{index}",
                prompt=prompt,
                chosen=fit_to_length(tokenizer, prompt, record.chosen, length),
                rejected=fit_to_length(tokenizer, prompt, record.rejected, length),
            )
        )
    too_long = max(
        conversation_tokens(tokenizer, p.prompt, response)
        for p in pairs
        for response in (p.chosen, p.rejected)
    )
    if too_long > length:
        raise SystemExit(f"--length {length} is too short: the chat template alone needs more")
    return pairs


def benchmark_params(args):
    """The profile, in fp32 on its device, without LoRA, mixed precision or checkpointing."""
    params = load_params(args.params)
    training = dataclasses.replace(
        params.training,
        batch_size=args.pairs,
        gradient_accumulation_steps=1,
        max_steps=args.warmup + args.repeats,
        warmup_steps=0,
        mixed_precision="no",
        gradient_checkpointing=False,
        lora=None,
        refresh_steps=1,
    )
    model = dataclasses.replace(params.model, dtype="float32")
    extraction = dataclasses.replace(params.extraction, max_length=args.length)
    return dataclasses.replace(params, model=model, training=training, extraction=extraction)


# Memory: peak RSS on CPU, the caching allocator's peak on CUDA.


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak memory from `start()` on, in MB, and its rise over the memory in use at `start()`."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.before = 0.0

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated() / 2**20
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pass  # the mark then covers the whole process: an upper bound
        self.before = status_mb("VmRSS:")

    def peak(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = status_mb("VmHWM:")
        return {"before_mb": self.before, "peak_mb": peak, "delta_mb": peak - self.before}


def step_row(variant: str, seconds: list[float], warmup: int, tokens: int, memory: dict) -> dict:
    timed = seconds[warmup:]
    median = statistics.median(timed)
    return {
        "variant": variant,
        "seconds": median,
        "all_seconds": [round(s, 4) for s in seconds],
        "tokens": tokens,
        "tokens_per_s": tokens / median,
        **memory,
    }


# The variants, one per process.


def prepared_batch(params, tokenizer, args):
    """The benchmark's pairs as text and as our encoded pairs."""
    pairs = benchmark_pairs(params, tokenizer, args.pairs, args.length)
    encoded = encode_pairs(
        tokenizer,
        pairs,
        max_length=args.length,
        seed=params.seed,
        folds=params.training.confidence_folds,
    )
    return pairs, encoded


def loaded_batch(args):
    params = benchmark_params(args)
    torch.manual_seed(params.seed)
    loaded = load_model(params.model, seed=params.seed)
    pairs, encoded = prepared_batch(params, loaded.tokenizer, args)
    return params, loaded, pairs, encoded


def batch_tokens(encoded) -> int:
    return sum(len(p.chosen) + len(p.rejected) for p in encoded)


def padded_shape(encoded, pad_id: int) -> list[int]:
    return list(collate_pairs(encoded, pad_id).input_ids.shape)


def random_fold_rewards(params, num_layers: int, hidden_size: int) -> FoldRewards:
    """One R_h per confidence fold, of the policy's shape, with small random weights."""
    generator = torch.Generator().manual_seed(params.seed)
    config = HybridRewardConfig(tuple(range(1, num_layers + 1)), hidden_size, params.reward.gate)
    rewards = []
    for _ in range(params.training.confidence_folds):
        reward = HybridReward(config)
        with torch.no_grad():
            for tensor in (reward.weight, reward.bias, reward.gate_weight, reward.gate_bias):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
        rewards.append(reward)
    return refreshed_rewards(rewards, params)


def measure_ours(run: str, args) -> list[dict]:
    """Our loop as `run`; for "dpo" also the on-the-fly reference forward, timed on the policy
    before training (the reference's weights), whose output is then the precomputed reference."""
    params, loaded, _, encoded = loaded_batch(args)
    pad_id = loaded.tokenizer.pad_token_id
    rows = []
    if run == "dpo":
        row, logprobs = measure_reference(loaded, encoded, args)
        rows.append(row)
    else:
        logprobs = pair_logprobs(loaded.model, encoded, pad_id=pad_id, batch_size=len(encoded))
    reference = PrecomputedReference([p.pair_id for p in encoded], logprobs)
    cdpo = run == "cdpo_star"
    memory = PeakMemory(loaded.device)
    with tempfile.TemporaryDirectory(prefix="train-step-") as out_dir:
        memory.start()
        loop = start_loop(
            run,
            model=loaded.model,
            tokenizer=loaded.tokenizer,
            pairs=encoded,
            training=params.training,
            seed=params.seed,
            out_dir=Path(out_dir),
            reference=reference,
            fold_rewards=(
                random_fold_rewards(params, loaded.num_layers, loaded.hidden_size) if cdpo else None
            ),
            checkpoints=False,
        )
        metrics = restart_log(loop)
        run_steps(loop, range(params.training.max_steps), metrics, progress=False)
        loop.accelerator.free_memory()
        peak = memory.peak()
    seconds = [m["seconds"] for m in metrics]
    row = step_row(run, seconds, args.warmup, batch_tokens(encoded), peak)
    row["step0_loss"] = metrics[0]["loss"]  # log 2 when the reference is the policy
    row["padded_shape"] = padded_shape(encoded, pad_id)
    return [row, *rows]


def measure_reference(loaded, encoded, args) -> tuple[dict, torch.Tensor]:
    """`OnTheFlyReference` on the batch, as a step pays it without precomputed log-probs; returns
    the row and the reference log-probs `[pairs, 2]`."""
    reference = OnTheFlyReference(loaded.model, loaded.tokenizer.pad_token_id)
    memory = PeakMemory(loaded.device)
    memory.start()
    seconds, outputs = [], []
    for _ in range(args.warmup + args.repeats):
        seconds.append(
            timed(lambda: outputs.append(reference(encoded, loaded.device)), loaded.device)
        )
    peak = memory.peak()
    logprobs = outputs[-1].cpu()
    loaded.model.requires_grad_(True)  # OnTheFlyReference froze it; the loop trains it next
    return step_row("reference", seconds, args.warmup, batch_tokens(encoded), peak), logprobs


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def trl_dataset(tokenizer, pairs):
    """Plain-text prompt/completion columns that tokenize to exactly our conversations: the chat
    template's prompt, then the response and EOS (TRL adds no EOS to text that already ends in
    one)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": format_prompt(tokenizer, p.prompt),
                "chosen": p.chosen + tokenizer.eos_token,
                "rejected": p.rejected + tokenizer.eos_token,
            }
            for p in pairs
        ]
    )


def same_token_ids(trainer, encoded) -> bool:
    """Whether TRL's collated batch holds our chosen and rejected sequences, with their response
    tokens marked alike."""
    examples = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    theirs = trainer.data_collator(examples)
    ours = collate_pairs(encoded, trainer.processing_class.pad_token_id)
    return (
        theirs["input_ids"].shape == ours.input_ids.shape
        and torch.equal(theirs["input_ids"], ours.input_ids)
        and torch.equal(theirs["completion_mask"], ours.response_mask)
    )


def trl_config(args, training, device: torch.device, out_dir: str, seed: int):
    """TRL's `DPOConfig` for the same step as ours: sigmoid loss, same beta, learning rate,
    clipping and batch, fp32, reference log-probs precomputed, no checkpoints or logging cost."""
    from trl import DPOConfig

    return DPOConfig(
        output_dir=out_dir,
        beta=training.beta,
        loss_type=["sigmoid"],
        learning_rate=training.learning_rate,
        lr_scheduler_type="constant",
        weight_decay=training.weight_decay,
        max_grad_norm=training.max_grad_norm or 0.0,
        per_device_train_batch_size=args.pairs,
        gradient_accumulation_steps=1,
        max_steps=args.warmup + args.repeats,
        max_length=args.length,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=args.pairs,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=device.type == "cpu",
        report_to=[],
        save_strategy="no",
        logging_steps=1,  # logs after `on_step_end`, outside the timed span
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
    )


def measure_trl(args) -> list[dict]:
    from transformers import TrainerCallback
    from trl import DPOTrainer

    params, loaded, pairs, encoded = loaded_batch(args)
    training = params.training
    device = loaded.device

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.seconds, self.began = [], 0.0

        def on_step_begin(self, *_, **__):
            synchronize(device)
            self.began = time.perf_counter()

        def on_step_end(self, *_, **__):
            synchronize(device)
            self.seconds.append(time.perf_counter() - self.began)

    timer = StepTimer()
    with tempfile.TemporaryDirectory(prefix="train-step-trl-") as out_dir:
        config = trl_config(args, training, device, out_dir, params.seed)
        trainer = DPOTrainer(
            model=loaded.model,
            args=config,
            train_dataset=trl_dataset(loaded.tokenizer, pairs),
            processing_class=loaded.tokenizer,
            callbacks=[timer],
        )
        same_tokens = same_token_ids(trainer, encoded)
        memory = PeakMemory(device)
        memory.start()
        trainer.train()
        peak = memory.peak()
    row = step_row("trl_dpo", timer.seconds, args.warmup, batch_tokens(encoded), peak)
    row.update(
        same_tokens=same_tokens,
        optimiser=getattr(config.optim, "value", str(config.optim)),
        step0_loss=next((log["loss"] for log in trainer.state.log_history if "loss" in log), None),
        padded_shape=padded_shape(encoded, loaded.tokenizer.pad_token_id),
    )
    return [row]


def gpu_reference_spec(weights_dir: str, dtype: str) -> ModelParams:
    return ModelParams(
        kind="hub", name="llama-1b-random", source=weights_dir, dtype=dtype, device="cuda"
    )


def random_sequences(args, vocab_size: int, seed: int) -> SequenceBatch:
    """`2 x pairs` sequences of `length` random tokens; the second half of each is the response."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (2 * args.pairs, args.length), generator=generator)
    mask = torch.ones_like(ids)
    response = mask.clone()
    response[:, : args.length // 2] = 0
    return SequenceBatch(ids, mask, response)


def measure_gpu_reference(variant: str, args) -> list[dict]:
    quantization = "nf4" if variant == "gpu_nf4" else "none"
    params = load_params(args.params)
    loaded = load_reference(
        gpu_reference_spec(args.weights_dir, "bfloat16"),
        seed=params.seed,
        quantization=quantization,
    )
    scorer = ResponseScorer(loaded.model)
    batch = random_sequences(args, LLAMA_1B["vocab_size"], params.seed).to(loaded.device)
    memory = PeakMemory(loaded.device)
    memory.start()
    with torch.no_grad():
        seconds = [
            timed(lambda: scorer(batch), loaded.device) for _ in range(args.warmup + args.repeats)
        ]
    row = step_row(variant, seconds, args.warmup, batch.num_tokens, memory.peak())
    row["weights_mb"] = row["before_mb"]  # allocated once loaded: the weights
    return [row]


def build_llama_1b(directory: Path, tokenizer) -> None:
    """A randomly initialised 1B-shaped Llama in bf16, saved with a tokenizer so that
    `load_reference` can load it like any local model."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**LLAMA_1B, max_position_embeddings=4096, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    del model
    torch.cuda.empty_cache()


MEASURES = {
    "dpo": lambda args: measure_ours("dpo", args),
    "cdpo_star": lambda args: measure_ours("cdpo_star", args),
    "trl_dpo": measure_trl,
    "gpu_bf16": lambda args: measure_gpu_reference("gpu_bf16", args),
    "gpu_nf4": lambda args: measure_gpu_reference("gpu_nf4", args),
}


# The parent: one process per variant, then the table.


def in_subprocess(variant: str, args) -> list[dict]:
    """The child's rows, each with the child's wall time (imports and setup included), or one
    row saying why it failed."""
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--params",
        args.params,
        "--pairs",
        str(args.pairs),
        "--length",
        str(args.length),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
    ]
    if args.weights_dir:
        command += ["--weights-dir", args.weights_dir]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    wall = round(time.perf_counter() - started, 1)
    if out.returncode != 0:
        error = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        return [{"variant": variant, "error": error, "process_wall_s": wall}]
    return [{**row, "process_wall_s": wall} for row in json.loads(out.stdout.splitlines()[-1])]


def run_variants(variants, args) -> list[dict]:
    return [row for variant in variants for row in in_subprocess(variant, args)]


def with_ratios(rows: list[dict], baseline: str) -> list[dict]:
    base = next((r for r in rows if r["variant"] == baseline and "error" not in r), None)
    for row in rows:
        if base is not None and "error" not in row:
            row["ratio"] = row["seconds"] / base["seconds"]
    return rows


def table(rows: list[dict], baseline: str) -> str:
    lines = [
        f"| variant | median step s | tokens/s | peak memory MB | Δ peak MB | ratio vs {baseline} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['variant']} | failed: {row['error']} | | | | |")
            continue
        ratio = f"{row['ratio']:.3f}" if "ratio" in row else "n/a"
        lines.append(
            f"| {row['variant']} | {row['seconds']:.3f} | {row['tokens_per_s']:.0f} |"
            f" {row['peak_mb']:.0f} | {row['delta_mb']:.0f} | {ratio} |"
        )
    return "\n".join(lines)


def verdict(name: str, value: float, target: float) -> str:
    return f"{name} = {value:.3f} (target <= {target}): {'met' if value <= target else 'NOT met'}"


def cpu_summary(rows: list[dict]) -> list[str]:
    by_name = {r["variant"]: r for r in rows if "error" not in r}
    lines = []
    if {"dpo", "cdpo_star"} <= by_name.keys():
        ratio = by_name["cdpo_star"]["seconds"] / by_name["dpo"]["seconds"]
        lines.append(verdict("cDPO* / DPO step time, our loop", ratio, 1.05))
    if {"dpo", "trl_dpo"} <= by_name.keys():
        trl = by_name["trl_dpo"]
        ratio = by_name["dpo"]["seconds"] / trl["seconds"]
        lines.append(verdict("our DPO / TRL DPOTrainer step time", ratio, 1.0))
        lines.append(
            f"TRL fed identical token ids: {'yes' if trl['same_tokens'] else 'NO'};"
            f" TRL optimiser: {trl['optimiser']}"
        )
    if "trl_dpo" in rows_failed(rows):
        lines.append(
            f"TRL DPOTrainer did not run ({rows_failed(rows)['trl_dpo']}); install it with"
            " `pip install -c constraints.txt trl` (needs trl >= 0.29)."
        )
    if "reference" in by_name:
        lines.append(
            f"on-the-fly reference forward: {by_name['reference']['seconds']:.3f} s per step"
            " (excluded from every step above: all use precomputed reference log-probs)"
        )
    return lines


def rows_failed(rows: list[dict]) -> dict[str, str]:
    return {r["variant"]: r["error"] for r in rows if "error" in r}


def uneven_steps(rows: list[dict], warmup: int, limit: float = 1.5) -> list[str]:
    """Warnings for rows whose timed steps differ more than `limit`-fold: a busy machine, or
    numerics that slow down as training goes (e.g. denormals), make their median meaningless."""
    warnings = []
    for row in rows:
        timed = row.get("all_seconds", [])[warmup:]
        if timed and max(timed) > limit * min(timed):
            warnings.append(
                f"WARNING: {row['variant']}'s timed steps range {min(timed):.2f}-{max(timed):.2f} s"
                " (other load, or steps slowing down as training goes): its median is unreliable"
            )
    return warnings


def gpu_summary(rows: list[dict]) -> list[str]:
    by_name = {r["variant"]: r for r in rows if "error" not in r}
    if not {"gpu_bf16", "gpu_nf4"} <= by_name.keys():
        return []
    bf16, nf4 = by_name["gpu_bf16"], by_name["gpu_nf4"]
    return [
        f"weights on the GPU: bf16 {bf16['weights_mb']:.0f} MB, NF4 {nf4['weights_mb']:.0f} MB"
        f" ({nf4['weights_mb'] / bf16['weights_mb']:.2f}x)",
        f"forward: NF4 / bf16 time = {nf4['seconds'] / bf16['seconds']:.2f}",
    ]


def header(args, rows: list[dict], load_before: float) -> str:
    device = torch.cuda.get_device_name() if args.gpu else "cpu"
    measured = next((r for r in rows if "padded_shape" in r), None)
    batch = (
        f"{measured['tokens']} tokens, padded to {measured['padded_shape']}"
        if measured
        else f"<= {args.length} tokens each"
    )
    precision = "bf16 weights (NF4: 4-bit weights, bf16 compute)" if args.gpu else "fp32"
    return (
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
        f" {torch.get_num_threads()} torch threads, torch {torch.__version__}, device {device};"
        f" load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after\n"
        f"{args.params}, {args.pairs} pairs x 2 sequences ({batch}), {precision},"
        f" median of {args.repeats} steps after {args.warmup} warm-up"
    )


def run_gpu(args) -> list[dict]:
    if not torch.cuda.is_available():
        raise SystemExit(
            "--gpu compares an NF4 and a bf16 reference on a CUDA GPU, and this machine has none"
            " (torch.cuda.is_available() is False). Run it on a machine with an NVIDIA GPU and"
            " bitsandbytes installed, or drop --gpu for the CPU benchmark."
        )
    with tempfile.TemporaryDirectory(prefix="llama-1b-") as weights_dir:
        build_llama_1b(Path(weights_dir), load_tokenizer(load_params(args.params).model))
        args.weights_dir = weights_dir
        return run_variants(GPU_VARIANTS, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smol.yaml")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=CPU_VARIANTS,
        default=list(CPU_VARIANTS),
        help="which to run (dpo also times the on-the-fly reference forward)",
    )
    parser.add_argument("--gpu", action="store_true", help="NF4 vs bf16 reference on CUDA")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", choices=list(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--weights-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pairs < 1 or args.repeats < 1 or args.warmup < 0 or args.length < 16:
        parser.error("need --pairs >= 1, --repeats >= 1, --warmup >= 0, --length >= 16")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(MEASURES[args.child](args)))
        return
    mode = "gpu" if args.gpu else "cpu"
    load_before = os.getloadavg()[0]  # other processes' load shows in every time below
    rows = run_gpu(args) if args.gpu else run_variants(args.variants, args)
    rows = with_ratios(rows, BASELINE[mode])
    summary = gpu_summary(rows) if args.gpu else cpu_summary(rows)
    summary += uneven_steps(rows, args.warmup)
    report = "\n".join(
        [header(args, rows, load_before), "", table(rows, BASELINE[mode]), "", *summary]
    )
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
