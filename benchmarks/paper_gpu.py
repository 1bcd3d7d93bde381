"""The paper profile's GPU costs, measured on a randomly initialised Llama-2-7B-shaped model.

    PYTHONPATH=. python benchmarks/paper_gpu.py --shape 7b --json paper_gpu.json   # a CUDA GPU
    PYTHONPATH=. python benchmarks/paper_gpu.py --shape tiny                         # CPU smoke run

No hub, no weights, no tokenizer download: the model is built from a `LlamaConfig` (`--shape 7b`:
hidden 4096, 32 layers, 32 heads, MLP 11008, vocabulary 32000; `tiny`: 4 layers, hidden 64) in
bf16 on the device, and the text is random words of a word-level tokenizer built in memory, one
token per word, so every conversation has exactly the stated length.

1. Extraction: a bare bf16 forward of the model body vs the suite's `extract_hidden_states` over the
   same length-sorted batches (`benchmarks/extract.py`'s `run_bare` and `run_extract`), at the paper
   profile's `extraction.batch_size` x `extraction.max_length`; tokens/s, their ratio (target >= 0.9)
   and the peak of `torch.cuda.max_memory_allocated` (on CPU: peak RSS).
2. Training step: SFT, DPO and cDPO through the suite's loop (`start_loop` + `run_steps`) with the
   paper profile's training settings (full fine-tuning, float32 master weights, bf16 autocast,
   gradient checkpointing, batch `training.batch_size` pairs of `--length`-token conversations), in a
   process `accelerate launch` starts per layout: one process (`configs/accelerate/one-gpu.yaml`,
   what DDP is with one GPU) and FSDP2 with one process (`fsdp.yaml --num_processes 1`). Seconds per
   step (median after a warm-up step) and peak memory. The reference is what the profile asks for,
   log-probs precomputed by a 4-bit NF4 copy (`models.load_reference`) where bitsandbytes runs, else
   by the bf16 policy before training (the output says which); its pass is timed too. On CPU, FSDP
   is skipped: accelerate shards on accelerator devices only.
3. GPU-hours: the paper profile's workload at the measured rates, for the notebooks whose cost
   these measurements determine (01's extraction, 04's training runs); every assumption is printed.

Each part prints its rows as they come (flushed), and `--json` is rewritten after each part, so a
run stopped by a time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import torch
from extract import run_bare, run_extract
from train_step import PeakMemory, random_fold_rewards, timed

from repsafe_lib.models import LoadedModel, load_reference, nf4_supported
from repsafe_lib.params import ModelParams, load_params
from repsafe_lib.training import (
    EncodedPair,
    PrecomputedReference,
    pair_logprobs,
    restart_log,
    run_steps,
    start_loop,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params"
PAPER_PARAMS = PARAMS / "paper.yaml"
CONFIGS = ROOT / "configs" / "accelerate"
SHAPES = {
    "7b": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "intermediate_size": 11008,
        "vocab_size": 32000,
    },
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 1000,
    },
}
# Sizes per shape: conversations extracted, the length of extracted and trained conversations, and
# extraction's batch. 7b takes the paper profile's (length 1024, batch 16) for both parts.
SIZES = {
    "7b": {"texts": 64, "length": None, "extraction_batch": None},
    "tiny": {"texts": 16, "length": 64, "extraction_batch": 4},
}
RUNS = ("sft", "dpo", "cdpo")
# Layout: its accelerate config and the profile whose training settings it runs. One process is
# what DDP is on one GPU; the LoRA rows are the 80 GB profile (params/paper-80gb.yaml).
LAYOUTS = {
    "one process": ("one-gpu.yaml", "paper.yaml"),
    "FSDP-1": ("fsdp.yaml", "paper.yaml"),
    "LoRA, one process": ("one-gpu.yaml", "paper-80gb.yaml"),
}
# The paper-size extraction of notebook 01 (docs/method.md: "50,000 responses x 32 layers x 4,096").
PAPER_RESPONSES = 50_000


def log(message: str) -> None:
    print(message, flush=True)


def device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# The model and its text: random, built in memory.


def build_model(shape: str, on: torch.device):
    """A randomly initialised Llama of `shape` in bf16 on `on` (seeded: every process builds the
    same weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False, use_cache=False
    )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with on:
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def word_tokenizer(vocab_size: int):
    """A real fast tokenizer with one token per word `w<i>` (ids 4 .. vocab_size - 1), no chat
    template (the base model's plain dialogue format), built without any download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i for i in range(len(specials), vocab_size)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )


def random_words(generator: random.Random, count: int, vocab_size: int) -> str:
    return " ".join(f"w{generator.randrange(4, vocab_size)}" for _ in range(count))


def conversation_texts(tokenizer, count: int, length: int, vocab_size: int) -> list[str]:
    """`count` conversations of at least `length` tokens (extraction keeps the last `length`)."""
    from repsafe_lib.hidden_states import format_conversation

    generator = random.Random(0)
    return [
        format_conversation(
            tokenizer,
            random_words(generator, length // 2, vocab_size),
            random_words(generator, length, vocab_size),
        )
        for _ in range(count)
    ]


def random_pairs(count: int, length: int, vocab_size: int, folds: int) -> list[EncodedPair]:
    """`count` pairs of random `length`-token sequences whose second half is the response."""
    generator = torch.Generator().manual_seed(0)

    def sequence() -> tuple[int, ...]:
        return tuple(torch.randint(4, vocab_size, (length,), generator=generator).tolist())

    start = length // 2
    return [
        EncodedPair(f"pair-{i}", i % folds, sequence(), sequence(), start, start)
        for i in range(count)
    ]


def paper_settings(args):
    """The layout's profile (the paper's, or its 80 GB LoRA variant) with the benchmark's
    lengths: extraction at `args.length` x `args.extraction_batch`, training `warmup + steps`
    steps of its batch."""
    profile = LAYOUTS[args.layout][1] if args.layout else PAPER_PARAMS.name
    params = load_params(PARAMS / profile)
    extraction = dataclasses.replace(
        params.extraction, max_length=args.length, batch_size=args.extraction_batch
    )
    training = dataclasses.replace(
        params.training, max_steps=args.warmup + args.steps, warmup_steps=0
    )
    return dataclasses.replace(params, extraction=extraction, training=training)


def memory_row(peak: dict) -> dict:
    return {"peak_mb": round(peak["peak_mb"], 1), "before_mb": round(peak["before_mb"], 1)}


# Part 1: extraction vs a bare forward (a child process).


def measure_extraction(args) -> None:
    params = paper_settings(args)
    on = device()
    model = build_model(args.shape, on)
    tokenizer = word_tokenizer(model.config.vocab_size)
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=f"random Llama ({args.shape})",
        fingerprint="random",
        num_layers=model.config.num_hidden_layers,
        hidden_size=model.config.hidden_size,
    )
    texts = conversation_texts(tokenizer, args.texts, args.length, model.config.vocab_size)
    modes = {"bare": run_bare, "extract": run_extract}
    with torch.inference_mode():
        for mode in modes.values():
            timed(lambda run=mode: run(loaded, texts, params), on)  # warm-up
    seconds = {mode: [] for mode in modes}
    peaks = {mode: [] for mode in modes}
    for mode in list(modes) * args.repeats:  # alternating, so drifting clocks hit both alike
        memory = PeakMemory(on)
        memory.start()
        with torch.inference_mode():
            seconds[mode].append(timed(lambda run=modes[mode]: run(loaded, texts, params), on))
        peaks[mode].append(memory.peak()["peak_mb"])
    tokens = len(texts) * args.length
    for mode in modes:
        median = statistics.median(seconds[mode])
        emit(
            {
                "part": "extraction",
                "mode": mode,
                "texts": len(texts),
                "batch": f"{args.extraction_batch} x {args.length}",
                "tokens": tokens,
                "seconds": round(median, 4),
                "all_seconds": [round(s, 4) for s in seconds[mode]],
                "tokens_per_s": round(tokens / median, 1),
                "peak_mb": round(max(peaks[mode]), 1),
            }
        )
    if args.weights_dir:  # the NF4 reference of part 2 loads these weights
        model.save_pretrained(args.weights_dir)
        tokenizer.save_pretrained(args.weights_dir)


def emit(row: dict) -> None:
    from accelerate.state import PartialState

    if PartialState().is_main_process:
        print("ROW " + json.dumps(row), flush=True)


# Part 2: training steps (a child process per layout, started by `accelerate launch`).


def reference_logprobs(args, model, pairs, pad_id: int) -> tuple[torch.Tensor, dict]:
    """The pairs' reference log-probs, from an NF4 copy of the weights where `args.weights_dir`
    holds them, else from `model` (the bf16 policy before training); and the pass's row."""
    on = device()
    if args.weights_dir:
        spec = ModelParams(
            kind="hub",
            name=f"random Llama ({args.shape})",
            source=args.weights_dir,
            dtype="bfloat16",
            device=str(on),
        )
        reference = load_reference(spec, seed=0, quantization="nf4").model
        kind = "NF4 (bitsandbytes), bf16 compute"
    else:
        reference = model
        kind = "bf16 policy before training (no NF4: bitsandbytes or CUDA missing)"
    memory = PeakMemory(on)
    memory.start()
    outputs = []
    with torch.no_grad():
        for _ in range(2):  # the first pass warms up the kernels; the second is timed
            seconds = timed(
                lambda: outputs.append(
                    pair_logprobs(reference, pairs, pad_id=pad_id, batch_size=len(pairs))
                ),
                on,
            )
    tokens = sum(len(p.chosen) + len(p.rejected) for p in pairs)
    row = {
        "part": "reference",
        "layout": args.layout,
        "reference": kind,
        "tokens": tokens,
        "seconds": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 1),
        **memory_row(memory.peak()),
    }
    if reference is not model:
        del reference
        free_memory()
    return outputs[-1].cpu(), row


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure_training(args) -> None:
    params = paper_settings(args)
    settings = params.training
    on = device()
    tokenizer = word_tokenizer(SHAPES[args.shape]["vocab_size"])
    pad_id = tokenizer.pad_token_id
    pairs = random_pairs(
        settings.batch_size,
        args.length,
        SHAPES[args.shape]["vocab_size"],
        settings.confidence_folds,
    )
    logprobs = None
    for run in RUNS:
        model = build_model(args.shape, on)
        if run != "sft" and logprobs is None:
            logprobs, row = reference_logprobs(args, model, pairs, pad_id)
            emit(row)
        reference = (
            None if run == "sft" else PrecomputedReference([p.pair_id for p in pairs], logprobs)
        )
        fold_rewards = (
            random_fold_rewards(params, model.config.num_hidden_layers, model.config.hidden_size)
            if run == "cdpo"
            else None
        )
        memory = PeakMemory(on)
        memory.start()
        with tempfile.TemporaryDirectory(prefix="paper-gpu-") as out_dir:
            loop = start_loop(
                run,
                model=model,
                tokenizer=tokenizer,
                pairs=pairs,
                training=settings,
                seed=params.seed,
                out_dir=Path(out_dir),
                reference=reference,
                fold_rewards=fold_rewards,
                checkpoints=False,
            )
            metrics = restart_log(loop)
            run_steps(loop, range(settings.max_steps), metrics, progress=False)
            synchronize()
            peak = memory.peak()
            sharded = loop.sharded
            loop.accelerator.free_memory()
        seconds = [m["seconds"] for m in metrics]
        median = statistics.median(seconds[args.warmup :])
        tokens = sum(len(p.chosen) + (0 if run == "sft" else len(p.rejected)) for p in loop.pairs)
        emit(
            {
                "part": "training",
                "layout": args.layout,
                "run": run,
                "sharded": sharded,
                "lora": settings.lora is not None,
                "batch": f"{settings.batch_size} pairs x {args.length} tokens",
                "tokens": tokens,
                "seconds": round(median, 4),
                "all_seconds": [round(s, 4) for s in seconds],
                "tokens_per_s": round(tokens / median, 1),
                "loss": metrics[-1]["loss"],
                **memory_row(peak),
            }
        )
        released = weakref.ref(model)
        del loop, model, reference, fold_rewards, metrics
        free_memory()
        if released() is not None:  # the next run would then hold two policies
            log(f"WARNING: {run}'s policy is still referenced after its run; memory not freed")


# The parent: children, tables, GPU-hours.


def child_command(args, part: str, layout: str | None = None) -> list[str]:
    command = [
        __file__,
        "--child",
        part,
        "--shape",
        args.shape,
        "--texts",
        str(args.texts),
        "--length",
        str(args.length),
        "--extraction-batch",
        str(args.extraction_batch),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
    ]
    if args.weights_dir:
        command += ["--weights-dir", args.weights_dir]
    if layout is not None:
        command += ["--layout", layout]
        config = CONFIGS / LAYOUTS[layout][0]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
        return [*launcher, str(config), "--num_processes", "1", *command]
    return [sys.executable, *command]


def run_child(command: list[str], label: str, timeout: float) -> tuple[list[dict], str | None]:
    """The child's rows as it prints them (its other output is echoed, indented), and why it
    failed, if it did."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "benchmarks"), env.get("PYTHONPATH", "")]
    )
    rows, tail = [], []
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
    )
    watchdog = threading.Timer(timeout, process.kill)  # also when the child prints nothing
    watchdog.start()
    for line in process.stdout:
        if line.startswith("ROW "):
            rows.append(json.loads(line[4:]))
            log(f"  {label}: {line[4:].strip()}")
        else:
            tail = [*tail[-19:], line.rstrip()]
            if line.startswith("WARNING"):
                log(f"  {label}: {line.rstrip()}")
    code = process.wait()
    watchdog.cancel()
    if time.perf_counter() - started >= timeout:
        tail.append(f"stopped after {timeout:.0f} s (--time-limit)")
    wall = round(time.perf_counter() - started, 1)
    log(f"  {label}: done in {wall} s (exit {code})")
    if code != 0:
        for line in tail:
            log(f"    | {line}")
        failure = next((x for x in reversed(tail) if x.strip()), f"exit {code}")
        return rows, f"{failure} (exit {code})"
    return rows, None


def machine() -> dict:
    import accelerate
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "gpu_memory_gb": (
            round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1) if cuda else None
        ),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "bitsandbytes_nf4": nf4_supported(),
    }


def extraction_table(rows: list[dict]) -> list[str]:
    lines = [
        "| mode | batch | tokens | median s | tokens/s | vs bare | peak memory MB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    bare = next((r for r in rows if r["mode"] == "bare"), None)
    for row in rows:
        ratio = f"{row['tokens_per_s'] / bare['tokens_per_s']:.3f}" if bare else "n/a"
        lines.append(
            f"| {row['mode']} | {row['batch']} | {row['tokens']} | {row['seconds']:.3f} |"
            f" {row['tokens_per_s']:.0f} | {ratio} | {row['peak_mb']:.0f} |"
        )
    return lines


def extraction_verdict(rows: list[dict]) -> list[str]:
    by_mode = {r["mode"]: r for r in rows}
    if {"bare", "extract"} > by_mode.keys():
        return []
    ratio = by_mode["extract"]["tokens_per_s"] / by_mode["bare"]["tokens_per_s"]
    met = "met" if ratio >= 0.9 else "NOT met"
    return [f"extract / bare tokens/s = {ratio:.3f} (target >= 0.9): {met}"]


def training_table(rows: list[dict], skipped: dict[str, str]) -> list[str]:
    lines = [
        "| layout | run | sharded | batch | tokens | median step s | tokens/s | peak memory MB |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["part"] == "reference":
            continue
        lines.append(
            f"| {row['layout']} | {row['run']} | {'yes' if row['sharded'] else 'no'} |"
            f" {row['batch']} | {row['tokens']} | {row['seconds']:.3f} |"
            f" {row['tokens_per_s']:.0f} | {row['peak_mb']:.0f} |"
        )
    for layout, why in skipped.items():
        lines.append(f"| {layout} | all | | | | skipped: {why} | | |")
    for row in rows:
        if row["part"] == "reference":
            lines.append(
                f"\nreference log-probs ({row['layout']}): {row['reference']};"
                f" {row['tokens']} tokens in {row['seconds']:.3f} s"
                f" ({row['tokens_per_s']:.0f} tokens/s), peak {row['peak_mb']:.0f} MB"
            )
    return lines


def gpu_hours(extraction: list[dict], training: list[dict], args) -> tuple[list[str], list[dict]]:
    """GPU-hours of the paper profile's notebooks at the measured rates, and the rows."""
    params = load_params(PAPER_PARAMS)
    steps, batch = params.training.max_steps, params.training.batch_size
    length = params.extraction.max_length
    rows = []
    extract = next((r for r in extraction if r["mode"] == "extract"), None)
    if extract:
        tokens = PAPER_RESPONSES * length
        rows.append(
            {
                "notebook": "01_representations",
                "work": f"extract {PAPER_RESPONSES} responses x {length} tokens",
                "rate": f"{extract['tokens_per_s']:.0f} tokens/s (extract, part 1)",
                "gpu_hours": tokens / extract["tokens_per_s"] / 3600,
                "peak_mb": extract["peak_mb"],
            }
        )
    runs_04 = params.training.runs
    for layout, setting in (
        ("one process", "one GPU, full fine-tuning"),
        ("LoRA, one process", "80 GB GPU, LoRA (paper-80gb)"),
    ):
        measured_runs = {
            r["run"]: r for r in training if r["part"] == "training" and r["layout"] == layout
        }
        for run in runs_04:
            measured = measured_runs.get("cdpo" if run == "cdpo_crossfit" else run)
            if measured is None:
                continue
            rows.append(
                {
                    "notebook": f"04_training: {run}, {setting}",
                    "work": f"{steps} steps of {batch} pairs",
                    "rate": f"{measured['seconds']:.3f} s/step ({layout}, {measured['run']})",
                    "gpu_hours": steps * measured["seconds"] / 3600,
                    "peak_mb": measured["peak_mb"],
                }
            )
    reference = next((r for r in training if r["part"] == "reference"), None)
    if reference and any(r["notebook"].startswith("04") for r in rows):
        preference_runs = [r for r in runs_04 if r != "sft"]
        pairs = steps * batch
        rows.append(
            {
                "notebook": "04_training: reference log-probs",
                "work": f"{len(preference_runs)} runs x {pairs} pairs x 2 x {length} tokens",
                "rate": f"{reference['tokens_per_s']:.0f} tokens/s ({reference['reference']})",
                "gpu_hours": len(preference_runs)
                * pairs
                * 2
                * length
                / reference["tokens_per_s"]
                / 3600,
                "peak_mb": reference["peak_mb"],
            }
        )
    measured_here = args.length == length
    lines = [
        "| notebook | work | measured rate | GPU-hours | peak memory MB |",
        "|---|---|---|---:|---:|",
        *(
            f"| {r['notebook']} | {r['work']} | {r['rate']} | {r['gpu_hours']:.2f} |"
            f" {r['peak_mb']:.0f} |"
            for r in rows
        ),
        "| 00, 02, 03, 05, 06, 07, 08 | | not measured by this script | | |",
        "| 04 with FSDP over 2-8 GPUs | | not measured by this script (one GPU here) | | |",
        "",
        "Assumptions: the paper profile (params/paper.yaml); notebook 01 extracts"
        f" {PAPER_RESPONSES} responses (the paper size in docs/method.md; the transfer set is not"
        f" counted), every conversation at the full extraction.max_length {length} tokens (an upper"
        f" bound: shorter ones cost less); 04 trains {', '.join(runs_04)} for training.max_steps"
        f" {steps} steps of training.batch_size {batch} pairs each, cdpo_crossfit at cdpo's measured"
        " step time (same objective); reference log-probs once per preference run for every pair"
        f" the schedule visits ({steps} x {batch}, an upper bound on distinct pairs); one GPU, no"
        " checkpointing or evaluation time. Peak memory is the allocator's peak"
        " (torch.cuda.max_memory_allocated; on CPU the process's peak RSS): the CUDA context and"
        " the allocator's cache come on top.",
    ]
    if not measured_here:
        lines.append(
            f"The rates were measured at {args.length} tokens per conversation, not the profile's"
            f" {length}, on shape {args.shape}: these hours describe this run's machine and shape,"
            " not the paper's cost."
        )
    return lines, rows


def write_json(path: Path | None, result: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="7b")
    parser.add_argument("--texts", type=int, help="conversations extracted (7b: 64, tiny: 16)")
    parser.add_argument("--length", type=int, help="tokens per conversation (7b: the profile's)")
    parser.add_argument("--extraction-batch", type=int, help="7b: the profile's")
    parser.add_argument("--repeats", type=int, default=3, help="timed extraction passes")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps")
    parser.add_argument("--steps", type=int, default=2, help="timed training steps")
    parser.add_argument(
        "--parts", nargs="+", choices=("extraction", "training"), default=["extraction", "training"]
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=540.0,
        help="seconds for the whole run; a part still running then is stopped, its rows kept",
    )
    parser.add_argument("--json", type=Path, help="also write the rows and tables here")
    parser.add_argument("--child", choices=("extraction", "training"), help=argparse.SUPPRESS)
    parser.add_argument("--layout", choices=list(LAYOUTS), help=argparse.SUPPRESS)
    parser.add_argument("--weights-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    paper = load_params(PAPER_PARAMS)
    sizes = SIZES[args.shape]
    args.texts = args.texts or sizes["texts"]
    args.length = args.length or sizes["length"] or paper.extraction.max_length
    args.extraction_batch = (
        args.extraction_batch or sizes["extraction_batch"] or paper.extraction.batch_size
    )
    if min(args.texts, args.repeats, args.steps) < 1 or args.warmup < 0 or args.length < 8:
        parser.error("need --texts, --repeats, --steps >= 1, --warmup >= 0, --length >= 8")
    return args


def main() -> None:
    args = parse_args()
    if args.child == "extraction":
        measure_extraction(args)
        return
    if args.child == "training":
        measure_training(args)
        return
    about = machine()
    log(
        f"machine: {about['device']}, torch {about['torch']}, transformers"
        f" {about['transformers']}, accelerate {about['accelerate']},"
        f" NF4 {'available' if about['bitsandbytes_nf4'] else 'unavailable'}"
    )
    log(f"shape {args.shape}: {SHAPES[args.shape]}")
    result = {"machine": about, "shape": args.shape, "args": vars(args) | {"json": None}}
    extraction, training, skipped, failures = [], [], {}, {}
    deadline = time.perf_counter() + args.time_limit - 15  # leaves time for the tables

    def time_left() -> float:
        return max(deadline - time.perf_counter(), 1.0)

    with tempfile.TemporaryDirectory(prefix="paper-gpu-weights-") as weights_dir:
        wants_nf4 = about["bitsandbytes_nf4"] and torch.cuda.is_available()
        args.weights_dir = weights_dir if wants_nf4 and "training" in args.parts else None
        if "extraction" in args.parts:
            log("part 1: extraction vs a bare forward")
            extraction, failure = run_child(
                child_command(args, "extraction"), "extraction", time_left()
            )
            if failure:
                failures["extraction"] = failure
                args.weights_dir = None
            result.update(extraction=extraction)
            write_json(args.json, result | {"failures": failures})
        if "training" in args.parts:
            for layout in LAYOUTS:
                if layout.startswith("FSDP") and not torch.cuda.is_available():
                    skipped[layout] = (
                        "no CUDA device (accelerate 1.15 shards on accelerator devices only;"
                        " on CPU the FSDP config runs unsharded)"
                    )
                    continue
                log(f"part 2: training steps, {layout}")
                rows, failure = run_child(
                    child_command(args, "training", layout), layout, time_left()
                )
                training += rows
                if failure:
                    failures[layout] = failure
                result.update(training=training, skipped=skipped)
                write_json(args.json, result | {"failures": failures})
    hours_lines, hours = gpu_hours(extraction, training, args)
    sections = [
        "## Extraction vs a bare bf16 forward",
        *extraction_table(extraction),
        *extraction_verdict(extraction),
        "",
        "## One training step (paper settings: bf16 autocast, gradient checkpointing)",
        *training_table(training, skipped),
        "",
        "## GPU-hours of the paper profile on this GPU",
        *hours_lines,
    ]
    sections += [f"FAILED: {part}: {why}" for part, why in failures.items()]
    report = "\n".join(sections)
    log(report)
    write_json(args.json, result | {"gpu_hours": hours, "failures": failures, "report": report})


if __name__ == "__main__":
    main()
