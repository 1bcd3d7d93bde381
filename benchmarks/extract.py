"""Extraction throughput and peak memory vs a bare forward pass over the same batches.

    python benchmarks/extract.py --profile tiny smol [--examples 96] [--repeats 3]

For each profile, three ways over identical length-sorted batches, each in a fresh subprocess so
peak RSS is its own:
  bare     the model body's forward, nothing kept (the floor extraction is measured against);
  extract  `extract_hidden_states`: hooks keep the last real token of every layer;
  naive    the full causal LM with `output_hidden_states=True`, pooled afterwards (what it replaces).
Targets (issue 2): extract/bare throughput >= 0.9 and peak RSS <= 1.2x bare.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from repsafe_lib import hidden_states as hs
from repsafe_lib.datasets import load_configured, to_labeled_responses
from repsafe_lib.models import load_model
from repsafe_lib.params import load_params


def benchmark_texts(params, tokenizer, examples: int) -> list[str]:
    pairs = load_configured(params.data.pairs, on_bad_rows="raise", seed=params.seed).records
    responses = to_labeled_responses(pairs)[:examples]
    return [hs.format_conversation(tokenizer, r.prompt, r.response) for r in responses]


def batches(tokenizer, texts, max_length, batch_size):
    ids = hs.tokenize_conversations(tokenizer, texts, max_length)
    for batch in hs.length_sorted_batches([len(x) for x in ids], batch_size):
        input_ids, mask = hs.pad_batch([ids[i] for i in batch], tokenizer.pad_token_id)
        yield input_ids, mask


@torch.inference_mode()
def run_bare(loaded, texts, params):
    body, _, _ = hs.decoder_parts(loaded.model)
    for input_ids, mask in batches(loaded.tokenizer, texts, params.extraction.max_length, params.extraction.batch_size):
        body(input_ids=input_ids, attention_mask=mask, position_ids=hs.position_ids_from_mask(mask), use_cache=False)


@torch.inference_mode()
def run_naive(loaded, texts, params):
    for input_ids, mask in batches(loaded.tokenizer, texts, params.extraction.max_length, params.extraction.batch_size):
        out = loaded.model(input_ids=input_ids, attention_mask=mask, position_ids=hs.position_ids_from_mask(mask),
                           output_hidden_states=True, use_cache=False)
        rows = torch.arange(len(mask))
        torch.stack([h[rows, hs.last_token_index(mask)] for h in out.hidden_states[1:]], dim=1)


def run_extract(loaded, texts, params):
    layers = list(range(1, loaded.num_layers + 1))
    hs.extract_hidden_states(loaded.model, loaded.tokenizer, texts, layers=layers,
                             max_length=params.extraction.max_length,
                             batch_size=params.extraction.batch_size, progress=False)


MODES = {"bare": run_bare, "extract": run_extract, "naive": run_naive}


def measure(profile: str, mode: str, examples: int, repeats: int) -> dict:
    """Runs inside the subprocess: load, warm up once, time `repeats` passes, report peak RSS."""
    params = load_params(f"params/{profile}.yaml")
    torch.manual_seed(params.seed)
    loaded = load_model(params.model, seed=params.seed)
    texts = benchmark_texts(params, loaded.tokenizer, examples)
    tokens = sum(map(len, hs.tokenize_conversations(loaded.tokenizer, texts, params.extraction.max_length)))
    MODES[mode](loaded, texts[: params.extraction.batch_size], params)  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        MODES[mode](loaded, texts, params)
        seconds.append(time.perf_counter() - started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"profile": profile, "mode": mode, "examples": len(texts), "tokens": tokens,
            "seconds": statistics.median(seconds), "tokens_per_s": tokens / statistics.median(seconds),
            "peak_rss_mb": peak_mb}


def in_subprocess(profile: str, mode: str, examples: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", profile, mode, str(examples), str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows: list[dict]) -> str:
    lines = ["| profile | mode | examples | tokens | tokens/s | vs bare | peak RSS MB | vs bare |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        bare = next(r for r in rows if r["profile"] == row["profile"] and r["mode"] == "bare")
        lines.append(
            f"| {row['profile']} | {row['mode']} | {row['examples']} | {row['tokens']} | "
            f"{row['tokens_per_s']:.0f} | {row['tokens_per_s'] / bare['tokens_per_s']:.2f} | "
            f"{row['peak_rss_mb']:.0f} | {row['peak_rss_mb'] / bare['peak_rss_mb']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        profile, mode, examples, repeats = sys.argv[2:6]
        print(json.dumps(measure(profile, mode, int(examples), int(repeats))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="+", default=["tiny", "smol"])
    parser.add_argument("--examples", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")
    rows = [in_subprocess(p, m, args.examples, args.repeats) for p in args.profile for m in MODES]
    print(report(rows))


if __name__ == "__main__":
    main()
