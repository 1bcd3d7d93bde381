"""Notebook 02's probe fitting at paper shapes: sklearn's LinearSVC one fit at a time (the
`probes.solver: sklearn` path) against the batched torch solver (`probes.solver: torch`).

    python benchmarks/probes.py --quick                  # both paths in full, a few minutes on a CPU
    python benchmarks/probes.py [--device cuda]          # paper shapes: n = 50,000, L = 32, d = 4,096

States are synthetic, one layer at a time (`layer_states`): a few loud directions over quiet
noise, two dimensions on a scale a hundred times the others (as transformers' massive
activations), and a planted safe-vs-unsafe direction (two unit-variance classes one standard
deviation either side of zero along it).
Pairs share a prompt, as in the suite. The C grid, inner folds, number of splits and test
fraction are the paper profile's (`params/paper.yaml`).

Per layer and split both paths do what `probes.probe_with_margins` does: choose C over the
inner folds, refit on all training rows, and fit one out-of-fold probe per fold.
- torch: timed on `--torch-layers` layers (all by default) and scaled to L x splits.
- sklearn: at `--quick` sizes timed in full on the same layers. At paper shapes a single fit runs
  for up to hours, so each C is timed once on the first inner fold's rows, in a subprocess
  stopped after `--fit-limit` seconds; a layer then costs at least folds x (the sum over C),
  the choice of C alone, so the speed-up printed is a lower bound (a stopped fit counts as its
  limit).
On the layers both paths fit in full, their agreement: the same C, held-out predictions, margins.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from repsafe_lib import probes
from repsafe_lib.params import load_params

PAPER = Path(__file__).resolve().parents[1] / "params" / "paper.yaml"


def layer_states(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`[n, d]` float32 states of one layer and their `is_safe` labels (pairs: rows 2k, 2k+1)."""
    rng = np.random.default_rng(seed)
    is_safe = np.arange(n) % 2 == 0
    rank = 32
    loud = rng.standard_normal((rank, d), dtype=np.float32)
    loud *= (4.0 / np.sqrt(np.arange(1, rank + 1, dtype=np.float32)))[:, None]
    direction = rng.standard_normal(d, dtype=np.float32)
    direction /= np.linalg.norm(direction)
    states = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 4096):
        rows = slice(start, min(start + 4096, n))
        m = rows.stop - rows.start
        chunk = rng.standard_normal((m, rank), dtype=np.float32) @ loud
        chunk += 0.5 * rng.standard_normal((m, d), dtype=np.float32)
        signal = np.where(is_safe[rows], 1.0, -1.0) + rng.standard_normal(m, dtype=np.float32)
        chunk += signal[:, None].astype(np.float32) * direction
        states[rows] = chunk
    states[:, :2] *= 100
    return states, is_safe


def split_rows(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompt-grouped train/test rows (both responses of a prompt on one side)."""
    prompts = np.random.default_rng(seed).permutation(n // 2)
    test_prompts = np.sort(prompts[: int(round(test_fraction * len(prompts)))])
    is_test = np.isin(np.arange(n) // 2, test_prompts)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _timed_fit(z, y, c, max_iter, queue):
    from sklearn.svm import LinearSVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        LinearSVC(C=c, max_iter=max_iter, random_state=0).fit(z, y)
        queue.put(time.perf_counter() - start)


def sklearn_fit_seconds(z, y, c: float, max_iter: int, limit: float) -> tuple[float, bool]:
    """Seconds of one LinearSVC fit, and whether it finished within `limit` (else `limit`)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_timed_fit, args=(z, y, c, max_iter, queue))
    process.start()
    process.join(limit)
    if process.is_alive():
        process.kill()
        process.join()
        return limit, False
    return queue.get(), True


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 6,000, L = 2, d = 1,024")
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--torch-layers", type=int, default=None, help="layers timed (all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fit-limit", type=float, default=600.0)
    args = parser.parse_args()
    if args.quick:
        args.examples, args.layers, args.dim = 6000, 2, 1024
    settings = load_params(PAPER)
    grid, folds = settings.probes.c_grid, settings.probes.inner_folds
    splits, max_iter = settings.probes.num_splits, settings.probes.max_iter
    n, d, layers = args.examples, args.dim, args.layers
    timed_layers = min(args.torch_layers or layers, layers)
    device = probes.solver_device(args.device)
    split_list = [
        probes.ProbeSplit(k, seed, *split_rows(n, settings.data.test_fraction, seed))
        for k, seed in enumerate(range(settings.seed, settings.seed + splits))
    ]
    train = split_list[0].train_rows
    groups = np.arange(n) // 2
    cpu = f"{platform.machine()}, {torch.get_num_threads()} threads"
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(
        f"machine: {cpu}, GPU {gpu}; n = {n:,} ({len(train):,} training rows), L = {layers}, "
        f"d = {d:,}; C grid {list(grid)}, {folds} inner folds, {splits} splits"
    )
    fit = {"c_grid": grid, "folds": folds, "max_iter": max_iter, "seed": 0}

    torch_seconds, sklearn_seconds, agreement = [], [], []
    sklearn_fits: dict[str, tuple[float, bool]] = {}
    for layer in range(timed_layers):
        states, is_safe = layer_states(n, d, seed=layer)
        one_layer = states[:, None]  # [n, 1, d], as notebook 02 sees a layer of the states file
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        ours = probes.fit_layer_splits(
            one_layer, 0, is_safe, groups, split_list, **fit, solver="torch", device=str(device)
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        torch_seconds.append(time.perf_counter() - start)
        if args.quick:
            start = time.perf_counter()
            theirs = probes.fit_layer_splits(one_layer, 0, is_safe, groups, split_list, **fit)
            sklearn_seconds.append(time.perf_counter() - start)
            for split, (probe, margins), (their_probe, their_margins) in zip(
                split_list, ours, theirs, strict=True
            ):
                a = probe.margin(states[split.test_rows])
                b = their_probe.margin(states[split.test_rows])
                agreement.append(
                    (
                        probe.c == their_probe.c,
                        float(np.mean((a > 0) == (b > 0))),
                        float(np.corrcoef(a, b)[0, 1]),
                        float(np.corrcoef(margins, their_margins)[0, 1]),
                        float(np.mean((b > 0) == is_safe[split.test_rows])),
                    )
                )
        elif layer == 0:
            x, safe = states[train], is_safe[train]
            fit_rows = probes.inner_folds(groups[train], folds)[0][0]
            mean, scale = probes.standardiser(x)
            z = (x - mean) / scale
            y = np.where(safe, 1, -1)
            for c in grid:
                sklearn_fits[f"C={c:g}"] = sklearn_fit_seconds(
                    z[fit_rows], y[fit_rows], c, max_iter, args.fit_limit
                )
            chosen = ours[0][0].c
            sklearn_fits[f"refit at C={chosen:g}"] = sklearn_fit_seconds(
                z, y, chosen, max_iter, args.fit_limit
            )
        print(f"  layer {layer}: torch {torch_seconds[-1]:.1f} s", flush=True)

    per_split = np.asarray(torch_seconds) / splits
    torch_total = float(np.mean(torch_seconds)) * layers
    print(f"\n| path | per layer and split (s) | notebook 02 at L = {layers}, {splits} splits |")
    print("|---|---:|---:|")
    if args.quick:
        sklearn_per_split = float(np.mean(sklearn_seconds)) / splits
        sklearn_total = sklearn_per_split * layers * splits
        print(f"| sklearn (measured) | {sklearn_per_split:.1f} | {duration(sklearn_total)} |")
        bound = ""
    else:
        # A layer-split: every C on every inner fold, the refit at the chosen C, and one
        # out-of-fold probe per fold at the chosen C (timed as the same C on the first fold).
        chosen_fit = sklearn_fits[f"C={chosen:g}"][0]
        seconds = [seconds for seconds, _ in sklearn_fits.values()]
        per_layer = folds * sum(seconds[: len(grid)]) + seconds[-1] + folds * chosen_fit
        sklearn_total = per_layer * layers * splits
        fits = ", ".join(
            f"{name}: {s:.0f} s{'' if done else ' (stopped)'}"
            for name, (s, done) in sklearn_fits.items()
        )
        stopped = not all(done for _, done in sklearn_fits.values())
        bound = "≥ " if stopped else "≈ "  # a stopped fit counts as its limit
        print(
            f"| sklearn ({bound}from one fit per C and the refit: {fits}) | {bound}{per_layer:.0f} "
            f"| {bound}{sklearn_total / 3600:.1f} h |"
        )
    label = f"torch on {device.type} ({timed_layers} layers × {splits} splits timed)"
    print(f"| {label} | {np.mean(per_split):.1f} | {duration(torch_total)} |")
    print(f"\nspeed-up: {bound}{sklearn_total / torch_total:.0f}x")
    if agreement:
        same_c, predictions, margins, out_of_fold, accuracy = (
            list(v) for v in zip(*agreement, strict=True)
        )
        print(
            f"agreement over {timed_layers} layers × {splits} splits: same C "
            f"{sum(same_c)}/{len(same_c)}; held-out predictions equal {min(predictions):.4f} "
            f"(worst layer-split); margin correlation ≥ {min(margins):.6f} held-out, "
            f"≥ {min(out_of_fold):.6f} out-of-fold; sklearn held-out accuracy "
            f"{np.mean(accuracy):.3f}"
        )


if __name__ == "__main__":
    main()
