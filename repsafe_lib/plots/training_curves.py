"""Fig 5: rewards during training (notebook 04), drawn from each run's `metrics.jsonl`.

The table is the runs' logged rows stacked, with a `run` column naming each
(`results.read_tables(outputs, "04_training/*/metrics.jsonl", key="run")`).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repsafe_lib.plots.style import use_style

CROSS = "#e67e22"  # Fig 5's colour of the cross-fitted cDPO run
RUN_MARKERS = {"dpo": "s", "cdpo_crossfit": "^"}
# Per panel: its y label and its lines, (run, metric, label, colour, line style) each.
FIG5_PANELS = {
    (0, 0): (
        "batch preference accuracy",
        [
            ("cdpo", "reward_accuracy", "cDPO implicit reward", "#c0392b", "solid"),
            ("cdpo_crossfit", "reward_accuracy", "cDPO cross-fit implicit reward", CROSS, "solid"),
            ("dpo", "reward_accuracy", "vanilla DPO implicit reward", "#1f5fa8", "solid"),
            ("cdpo", "hybrid_accuracy", "R_h, refreshed (cDPO)", "#c0392b", "dashed"),
            ("cdpo_crossfit", "hybrid_accuracy", "cross-fitted R_h, refreshed", CROSS, "dashed"),
            ("dpo", "hybrid_accuracy", "R_h, frozen (DPO run)", "#1f5fa8", "dashed"),
        ],
    ),
    (0, 1): (
        "implicit reward margin z",
        [
            ("cdpo", "reward_margin", "cDPO", "#c0392b", "solid"),
            ("cdpo_crossfit", "reward_margin", "cDPO, cross-fitted gamma", CROSS, "solid"),
            ("dpo", "reward_margin", "vanilla DPO", "#1f5fa8", "solid"),
        ],
    ),
    (1, 0): (
        "gamma",
        [
            ("cdpo", "gamma_mean", "mean gamma, refreshed R_h (cDPO)", "#c0392b", "solid"),
            ("cdpo_crossfit", "gamma_mean", "mean gamma, cross-fitted R_h", CROSS, "solid"),
            ("dpo", "gamma_mean", "mean gamma, frozen R_h (DPO run)", "#1f5fa8", "dashed"),
            ("cdpo", "gamma_below_half", "share gamma < 0.5 (cDPO)", "#7f7f7f", "dotted"),
            ("cdpo_crossfit", "gamma_below_half", "share < 0.5 (cross-fit)", CROSS, "dotted"),
        ],
    ),
    (1, 1): ("loss", [("sft", "loss", "SFT (token NLL)", "#2e8b57", "solid")]),
}


def _smoothed(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over `window` steps (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def _run_line(ax, rows: pd.DataFrame, line: tuple, window: int) -> None:
    """One run's metric: the raw steps thin, their trailing mean thick."""
    run, key, label, color, style = line
    if key not in rows:
        return
    rows = rows[rows[key].notna()]
    if rows.empty:
        return
    steps, values = rows["step"].tolist(), rows[key].tolist()
    # markers (DPO squares, cross-fitted cDPO triangles) keep runs apart in grayscale
    marker = {"marker": RUN_MARKERS.get(run), "markevery": max(1, len(steps) // 8)}
    ax.plot(steps, values, color=color, linestyle=style, linewidth=0.6, alpha=0.35)
    ax.plot(
        steps,
        _smoothed(values, window),
        color=color,
        linestyle=style,
        label=label,
        markersize=3,
        **(marker if run in RUN_MARKERS else {}),
    )


def plot_training_curves(metrics: pd.DataFrame, window: int = 5) -> plt.Figure:
    """Fig 5 from the logged per-step metrics (one row per run and step, `run` naming the run):
    preference accuracy of the implicit DPO reward (Eq 3) and of R_h on each training batch, the
    implicit reward margin z, gamma (Eq 8: the paper's "hybrid reward" curve), and the SFT loss;
    cDPO with the paper's single R_h and with cross-fitted ones (`cdpo_crossfit`) side by side.
    Thin lines are the raw steps, thick ones a trailing mean over `window` steps."""
    use_style()
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.6))
    runs = dict(iter(metrics.groupby("run", sort=False)))
    for position, (ylabel, lines) in FIG5_PANELS.items():
        ax = axes[position]
        for line in lines:
            if line[0] in runs:
                _run_line(ax, runs[line[0]], line, window)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0, 0].set_ylim(-0.05, 1.05)
    axes[0, 1].axhline(0, color="#999999", linewidth=0.6)
    fig.tight_layout()
    return fig
