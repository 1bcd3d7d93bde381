"""Extraction throughput and peak memory vs a bare forward pass over the same batches.

    python benchmarks/extract.py --profile tiny smol [--examples 96] [--repeats 3]

For each profile (one subprocess each), three ways over identical length-sorted batches:
  bare     the model body's forward, nothing kept (the floor extraction is measured against);
  extract  `extract_hidden_states`: hooks keep the last real token of every layer;
  naive    the full causal LM with `output_hidden_states=True`, pooled afterwards (what it replaces).
Targets: extract/bare throughput >= 0.9 and peak RSS <= 1.2x bare. Peak RSS is the
process's high-water mark during the timed passes (reset after loading, Linux only), so it includes
the model's weights but not the transient cost of loading them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from repsafe_lib import hidden_states as hs
from repsafe_lib.loaders import load_configured, to_labeled_responses
from repsafe_lib.models import load_model
from repsafe_lib.params import load_params


def benchmark_texts(params, tokenizer, examples: int) -> list[str]:
    pairs = load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed).records
    responses = to_labeled_responses(pairs)[:examples]
    return [hs.format_conversation(tokenizer, r.prompt, r.response) for r in responses]


def batches(tokenizer, texts, max_length, batch_size, device="cpu"):
    ids = hs.tokenize_conversations(tokenizer, texts, max_length)
    for batch in hs.length_sorted_batches([len(x) for x in ids], batch_size):
        input_ids, mask = hs.pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
        yield input_ids.to(device), mask.to(device)


@torch.inference_mode()
def run_bare(loaded, texts, params):
    body, _, _ = hs.decoder_parts(loaded.model)
    device = next(body.parameters()).device  # as `extract_hidden_states` moves each batch
    for input_ids, mask in batches(
        loaded.tokenizer, texts, params.extraction.max_length, params.extraction.batch_size, device
    ):
        body(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=hs.position_ids_from_mask(mask),
            use_cache=False,
        )


@torch.inference_mode()
def run_naive(loaded, texts, params):
    for input_ids, mask in batches(
        loaded.tokenizer, texts, params.extraction.max_length, params.extraction.batch_size
    ):
        out = loaded.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=hs.position_ids_from_mask(mask),
            output_hidden_states=True,
            use_cache=False,
        )
        rows = torch.arange(len(mask))
        torch.stack([h[rows, hs.last_token_index(mask)] for h in out.hidden_states[1:]], dim=1)


def run_extract(loaded, texts, params):
    layers = list(range(1, loaded.num_layers + 1))
    hs.extract_hidden_states(
        loaded.model,
        loaded.tokenizer,
        texts,
        layers=layers,
        max_length=params.extraction.max_length,
        batch_size=params.extraction.batch_size,
        progress=False,
    )


MODES = {"bare": run_bare, "extract": run_extract, "naive": run_naive}


def measure(profile: str, examples: int, repeats: int) -> list[dict]:
    """Runs in a subprocess per profile: load once, warm up, then time `bare` and `extract` in
    alternation (so drifting machine load hits both alike), and `naive` last (its large peak would
    otherwise leave the allocator holding memory that inflates the others' RSS)."""
    params = load_params(f"params/{profile}.yaml")
    torch.manual_seed(params.seed)
    loaded = load_model(params.model, seed=params.seed)
    texts = benchmark_texts(params, loaded.tokenizer, examples)
    ids = hs.tokenize_conversations(loaded.tokenizer, texts, params.extraction.max_length)
    for mode in ("bare", "extract"):
        MODES[mode](loaded, texts, params)  # warm-up: pages in the weights, grows the allocator
    seconds = {mode: [] for mode in MODES}
    peaks = {mode: [] for mode in MODES}
    loaded_mb = status_mb("VmRSS:")
    for mode in ["bare", "extract"] * repeats + ["naive"] * repeats:
        reset_peak_rss()
        started = time.perf_counter()
        MODES[mode](loaded, texts, params)
        seconds[mode].append(time.perf_counter() - started)
        peaks[mode].append(status_mb("VmHWM:"))
    tokens = sum(map(len, ids))
    return [
        {
            "profile": profile,
            "mode": mode,
            "examples": len(texts),
            "tokens": tokens,
            "seconds": statistics.median(seconds[mode]),
            "tokens_per_s": tokens / statistics.median(seconds[mode]),
            "loaded_rss_mb": loaded_mb,
            "peak_rss_mb": max(peaks[mode]),
        }
        for mode in MODES
    ]


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (Linux), so each pass's high-water mark is its own."""
    Path("/proc/self/clear_refs").write_text("5")


def in_subprocess(profile: str, examples: int, repeats: int) -> list[dict]:
    command = [sys.executable, __file__, "--child", profile, str(examples), str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows: list[dict]) -> str:
    lines = [
        "| profile | mode | examples | tokens | tokens/s | vs bare | RSS after load MB"
        " | peak RSS MB | vs bare |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        bare = next(r for r in rows if r["profile"] == row["profile"] and r["mode"] == "bare")
        lines.append(
            f"| {row['profile']} | {row['mode']} | {row['examples']} | {row['tokens']} | "
            f"{row['tokens_per_s']:.0f} | {row['tokens_per_s'] / bare['tokens_per_s']:.2f} | "
            f"{row['loaded_rss_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
            f"{row['peak_rss_mb'] / bare['peak_rss_mb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        profile, examples, repeats = sys.argv[2:5]
        print(json.dumps(measure(profile, int(examples), int(repeats))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="+", default=["tiny", "smol"])
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )
    rows = [row for p in args.profile for row in in_subprocess(p, args.examples, args.repeats)]
    print(report(rows))


if __name__ == "__main__":
    main()
