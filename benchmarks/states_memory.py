"""Peak host memory (RSS) of notebooks 01-03's work on the hidden-state cache, against the file's size.

    python benchmarks/states_memory.py --quick      # n = 8,000, L = 8, d = 1,024 (131 MB file)
    python benchmarks/states_memory.py              # paper shapes: n = 50,000, L = 32, d = 4,096
                                                    # (13.1 GB file: ~17 GB of RAM, 14 GB of disk)
    python benchmarks/states_memory.py --quick --baseline   # also the float32 loader it replaced

Each stage runs in a fresh process, which reports its own peak resident set (`ru_maxrss`: anonymous
memory and the pages of mapped files alike), so one stage's memory never counts towards another's.
States are synthetic: unit noise plus a planted safe-vs-unsafe direction per layer; pairs share a
prompt; the test fraction, C grid, folds and reward settings are the paper profile's.

- `01 write`: what `hidden_states.cached_hidden_states` does after the forward passes: the float16
  `[n, L, d]` states filled a batch at a time, written to the cache (streamed, then mapped), then
  notebook 01's finiteness check and its PCA of 600 states per class on every layer.
- `02 probes`: notebook 02's per-layer work (`probes.fit_layer_splits` with the torch solver: the
  layer's preconditioner from the rows any split trains on, then each split's training rows
  upcast and solved; each split's test margins) on `--fit-layers` layers and the paper profile's
  splits; every layer costs the same memory, so more layers add time only.
- `03 reward`: notebook 03's scoring: the gate variants of `hybrid_reward.fit_split_rewards`,
  Fig 6's `strategy_accuracies`, the mean gate weights and gamma of the training and held-out pairs,
  all from the mapped float16 states (probes drawn at random: only memory is measured here).
- `baseline` (`--baseline`): the loader before the cache was memory-mapped (the whole file read,
  then upcast to float32 and checked for NaN at once).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from repsafe_lib import caching, hidden_states, hybrid_reward, probes, projection, states_file
from repsafe_lib.params import load_params

PAPER = Path(__file__).resolve().parents[1] / "params" / "paper.yaml"
KEY = "benchmark"
STAGES = ("write", "probes", "reward", "baseline")


def synthetic_block(rows: range, layers: int, d: int, directions: torch.Tensor) -> torch.Tensor:
    """States `[len(rows), L, d]` of the given rows: noise plus +-1 along each layer's direction
    (rows 2k are safe, 2k+1 unsafe)."""
    generator = torch.Generator().manual_seed(rows.start)
    block = torch.randn(len(rows), layers, d, generator=generator)
    sign = torch.tensor([1.0 if r % 2 == 0 else -1.0 for r in rows])
    return block + sign[:, None, None] * directions


def examples_of(n: int, test_fraction: float) -> list[hidden_states.StateExample]:
    """Pairs (rows 2k, 2k+1) with one prompt each; a prompt-grouped share of them held out."""
    held_out = set(np.random.default_rng(0).permutation(n // 2)[: round(test_fraction * n / 2)])
    return [
        hidden_states.StateExample(
            f"p{row // 2}:{'chosen' if row % 2 == 0 else 'rejected'}",
            f"prompt {row // 2}",
            "",
            row % 2 == 0,
            "test" if row // 2 in held_out else "train",
        )
        for row in range(n)
    ]


def stage_write(path: Path, shape: tuple[int, int, int], params) -> None:
    n, layers, d = shape
    directions = torch.nn.functional.normalize(
        torch.randn(layers, d, generator=torch.Generator().manual_seed(1)), dim=-1
    )

    def extract() -> torch.Tensor:
        states = torch.empty(shape, dtype=torch.float16)
        step = states_file.rows_per_block(shape[1:])
        for start in range(0, n, step):
            rows = range(start, min(start + step, n))
            states[start : rows.stop] = synthetic_block(rows, layers, d, directions).half()
        return states

    states = caching.cached(path, KEY, hidden_states.states_cache(shape), extract)
    assert states_file.all_finite(states)
    is_safe = np.arange(n) % 2 == 0
    sample = projection.balanced_sample(is_safe, params.pca.samples_per_class, params.seed)
    projection.project_layers(states[sample].numpy(), is_safe[sample], range(1, layers + 1))


def stage_probes(path: Path, shape: tuple[int, int, int], params, fit_layers: int) -> None:
    states = hidden_states.read_cached_states(path, KEY, shape).numpy()
    examples = examples_of(shape[0], params.data.test_fraction)
    is_safe = np.array([e.is_safe for e in examples])
    groups = np.array([e.prompt for e in examples], dtype=object)
    splits = probes.probe_splits(
        examples,
        num_splits=params.probes.num_splits,
        test_fraction=params.data.test_fraction,
        seed=params.seed,
    )
    for layer in range(fit_layers):
        fitted = probes.fit_layer_splits(
            states,
            layer,
            is_safe,
            groups,
            splits,
            c_grid=params.probes.c_grid,
            folds=params.probes.inner_folds,
            max_iter=params.probes.max_iter,
            seed=params.seed,
            solver="torch",
            device="cpu",
        )
        for split, (probe, _) in zip(splits, fitted, strict=True):
            test = split.test_rows
            probes.classification_metrics(
                is_safe[test], probe.margin(states_file.layer_rows(states, layer, test))
            )


def random_probe_set(shape, train: np.ndarray, test: np.ndarray) -> probes.ProbeSet:
    _, layers, d = shape
    rng = np.random.default_rng(0)
    layer_probes = [
        probes.LayerProbe(np.zeros(d), np.ones(d), rng.standard_normal(d) / np.sqrt(d), 0.0, 1.0)
        for _ in range(layers)
    ]
    split = probes.ProbeSplit(0, None, train, test)
    return probes.ProbeSet(split, layer_probes, rng.standard_normal((len(train), layers)))


def stage_reward(path: Path, shape: tuple[int, int, int], params) -> None:
    states = hidden_states.read_cached_states(path, KEY, shape)
    examples = examples_of(shape[0], params.data.test_fraction)
    train = np.flatnonzero([e.split == "train" for e in examples])
    test = np.flatnonzero([e.split == "test" for e in examples])
    probe_set = random_probe_set(shape, train, test)
    layers = list(range(1, shape[1] + 1))
    fitted = hybrid_reward.fit_split_rewards(states, examples, probe_set, layers, params.reward)
    hybrid_reward.strategy_accuracies(states, examples, probe_set.split, fitted)
    reward = fitted.rewards[params.reward.gate]
    hybrid_reward.mean_gate_weights(reward, states, test)
    with torch.no_grad():
        for rows in (train, test):
            chosen, rejected = probes.pair_rows(examples, rows)
            reward(states, chosen) - reward(states, rejected)


def stage_baseline(path: Path, shape: tuple[int, int, int]) -> None:
    from safetensors.torch import load_file

    states = load_file(path)["states"].float()
    assert tuple(states.shape) == shape and bool(torch.isfinite(states).all())


def run_stage(args) -> None:
    params = load_params(PAPER)
    shape = tuple(args.shape)
    start = time.perf_counter()
    if args.stage == "write":
        stage_write(args.file, shape, params)
    elif args.stage == "probes":
        stage_probes(args.file, shape, params, args.fit_layers)
    elif args.stage == "reward":
        stage_reward(args.file, shape, params)
    else:
        stage_baseline(args.file, shape)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"peak_rss": peak, "seconds": time.perf_counter() - start}))


def measure(stage: str, path: Path, shape, fit_layers: int) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--file", str(path)]
    command += ["--shape", *map(str, shape), "--fit-layers", str(fit_layers)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def idle_rss() -> int:
    """Peak RSS of a process that imports what the stages import and does nothing else."""
    code = "import resource, repsafe_lib.hybrid_reward, repsafe_lib.hidden_states, sklearn.svm\n"
    code += "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
    return int(
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.PIPE).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 8,000, L = 8, d = 1,024")
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--fit-layers", type=int, default=2, help="layers notebook 02's stage fits")
    parser.add_argument("--dir", type=Path, default=None, help="where the states file is written")
    parser.add_argument("--baseline", action="store_true", help="also the float32 loader")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=STAGES[1:3], help="stages not run (after write)"
    )
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shape", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args)
        return
    shape = (8_000, 8, 1_024) if args.quick else (args.examples, args.layers, args.dim)
    stages = ["write", "probes", "reward"] + (["baseline"] if args.baseline else [])
    stages = [stage for stage in stages if stage not in args.skip]
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "states.safetensors"
        imports = idle_rss()
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}; states [n, L, d] = {list(shape)}; the imports alone: "
            f"{imports / 2**30:.2f} GiB",
            flush=True,
        )
        results = {}
        for stage in stages:
            results[stage] = measure(stage, path, shape, args.fit_layers)
            print(f"  {stage}: {results[stage]}", flush=True)
        size = path.stat().st_size
    if args.json is not None:
        record = {"shape": list(shape), "file_bytes": size, "imports_rss": imports}
        args.json.write_text(json.dumps({**record, "stages": results}, indent=1), encoding="utf-8")
    print(f"\nstates file: {size / 2**30:.2f} GiB (float16)\n")
    print("| stage | peak RSS (GiB) | / file | above the imports / file | seconds |")
    print("|---|---:|---:|---:|---:|")
    labels = {"write": "01 write", "probes": f"02 probes ({args.fit_layers} layers)"}
    labels["reward"] = "03 reward"
    for stage, result in results.items():
        peak = result["peak_rss"]
        print(
            f"| {labels.get(stage, stage)} | {peak / 2**30:.2f} | {peak / size:.2f} |"
            f" {(peak - imports) / size:.2f} | {result['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
