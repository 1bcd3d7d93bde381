"""Figures: data in, matplotlib Figure out. The style is set once here; saving lives in `artifacts`.

Safe is drawn red with solid contours and unsafe blue with dashed ones, as in the paper's Fig 2,
so the figures stay readable in grayscale.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import gaussian_kde

from repsafe_lib.projection import PcaPanel

CLASS_STYLE = {
    True: {
        "label": "safe",
        "color": "#c0392b",
        "linestyles": "solid",
        "cmap": "Reds",
        "marker": "o",
    },
    False: {
        "label": "unsafe",
        "color": "#1f5fa8",
        "linestyles": "dashed",
        "cmap": "Blues",
        "marker": "^",
    },
}
STYLE = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "svg.hashsalt": "repsafe",
}


def use_style() -> None:
    plt.rcParams.update(STYLE)


def _kde_contours(ax, points: np.ndarray, grid: tuple[np.ndarray, np.ndarray], style: dict) -> None:
    xx, yy = grid
    density = gaussian_kde(points.T)(np.vstack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    levels = np.linspace(density.max() * 0.1, density.max(), 6)
    ax.contourf(xx, yy, density, levels=levels, cmap=style["cmap"], alpha=0.35)
    ax.contour(
        xx,
        yy,
        density,
        levels=levels,
        colors=style["color"],
        linestyles=style["linestyles"],
        linewidths=0.8,
    )


def _grid(coords: np.ndarray, steps: int = 120) -> tuple[np.ndarray, np.ndarray]:
    low, high = coords.min(axis=0), coords.max(axis=0)
    pad = (high - low) * 0.1 + 1e-9
    axes = [np.linspace(lo - p, hi + p, steps) for lo, hi, p in zip(low, high, pad, strict=True)]
    return np.meshgrid(*axes)


def plot_pca_kde(panels: Sequence[PcaPanel], model_name: str) -> plt.Figure:
    """Fig 2/8: KDE contours of safe vs unsafe states on the top-2 principal directions per layer."""
    use_style()
    cols = min(2, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        grid = _grid(panel.coords)
        for label in (False, True):
            style, points = CLASS_STYLE[label], panel.coords[panel.is_safe == label]
            ax.scatter(
                *points.T,
                s=4,
                alpha=0.35,
                color=style["color"],
                marker=style["marker"],
                label=f"{style['label']} (n={len(points)})",
                linewidths=0,
            )
            if len(points) > 2:
                _kde_contours(ax, points, grid, style)
        ax.set_title(f"layer {panel.layer}   d' = {panel.separation:.2f}")
        ax.set_xlabel(f"PC1 ({panel.explained[0]:.1%} of variance)")
        ax.set_ylabel(f"PC2 ({panel.explained[1]:.1%})")
        ax.legend(loc="best", fontsize=7, markerscale=3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"{model_name}: last-token states of safe vs unsafe responses")
    fig.tight_layout()
    return fig


def plot_length_by_class(words_safe: np.ndarray, words_unsafe: np.ndarray) -> plt.Figure:
    """Response length (words) of safe vs unsafe responses: a probe must beat what this separates."""
    use_style()
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.histogram_bin_edges(np.concatenate([words_safe, words_unsafe]), bins=25)
    for label, words in ((True, words_safe), (False, words_unsafe)):
        style = CLASS_STYLE[label]
        ax.hist(
            words,
            bins=bins,
            histtype="step",
            linewidth=1.5,
            color=style["color"],
            linestyle=style["linestyles"],
            label=f"{style['label']} (mean {np.mean(words):.0f})",
        )
    ax.set_xlabel("response length (words)")
    ax.set_ylabel("responses")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_separation_by_layer(
    layers: Sequence[int], separation: Sequence[float], highlighted: Sequence[int] = ()
) -> plt.Figure:
    """d' between safe and unsafe in the top-2 PCA plane, for every layer."""
    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    ax.plot(layers, separation, marker="o", markersize=3, color="#333333")
    marks = [i for i, layer in enumerate(layers) if layer in set(highlighted)]
    ax.scatter(
        [layers[i] for i in marks],
        [separation[i] for i in marks],
        s=40,
        facecolors="none",
        edgecolors="#c0392b",
        label="panels of the PCA figure",
        zorder=3,
    )
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("d' (top-2 PCs)")
    if marks:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_category_counts(categories: Sequence[str], counts: Sequence[int]) -> plt.Figure:
    """Horizontal bars: preference pairs per harm category."""
    use_style()
    fig, ax = plt.subplots(figsize=(5, 0.28 * len(categories) + 1))
    ax.barh(list(categories)[::-1], list(counts)[::-1], color="#555555")
    ax.set_xlabel("preference pairs")
    fig.tight_layout()
    return fig


REFERENCE_LINE_STYLE = {
    "hybrid reward": {"color": "#c0392b", "linestyle": "solid", "linewidth": 1.6},
    "TF-IDF words (control)": {"color": "#333333", "linestyle": "dashed", "linewidth": 1.2},
    "length only (control)": {"color": "#777777", "linestyle": "dotted", "linewidth": 1.4},
}
PROBE_PANELS = (
    ("precision_unsafe", "precision (unsafe = positive)"),
    ("accuracy", "accuracy"),
)


def plot_probe_layers(
    layer_summary, reference_lines: dict[str, dict[str, float]], model_name: str
) -> plt.Figure:
    """Fig 1: per-layer probe precision and accuracy on held-out prompts (bars: mean over splits,
    whiskers: min-max), with reference lines (e.g. the hybrid reward and the text-only controls)
    given as `{name: {metric: value}}`."""
    use_style()
    layers = layer_summary["layer"].to_numpy()
    fig, axes = plt.subplots(len(PROBE_PANELS), 1, figsize=(9.5, 5.2), sharex=True)
    for ax, (metric, label) in zip(axes, PROBE_PANELS, strict=True):
        mean = layer_summary[f"{metric}_mean"].to_numpy()
        spread = [mean - layer_summary[f"{metric}_min"], layer_summary[f"{metric}_max"] - mean]
        ax.bar(layers, mean, width=0.75, color="#7fa7d3", edgecolor="#1f5fa8", linewidth=0.5)
        ax.errorbar(layers, mean, yerr=spread, fmt="none", ecolor="#1f3f68", lw=0.8, capsize=1.5)
        for name, values in reference_lines.items():
            style = REFERENCE_LINE_STYLE.get(name, {"color": "black", "linestyle": "dashdot"})
            ax.axhline(values[metric], label=f"{name}: {values[metric]:.3f}", **style)
        low = min(
            np.min(layer_summary[f"{metric}_min"]), *(v[metric] for v in reference_lines.values())
        )
        ax.set_ylim(max(0.0, low - 0.05), 1.01)
        ax.set_ylabel(label)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    axes[-1].set_xlabel("decoder layer")
    axes[-1].set_xticks(layers[:: max(1, len(layers) // 15)])
    fig.suptitle(f"{model_name}: per-layer linear probes on held-out prompts")
    fig.tight_layout()
    return fig


def plot_alignment_layers(layer_summary, reward_accuracy, model_name: str) -> plt.Figure:
    """Fig 1 in the paper's form: per-layer probe precision before alignment (blue bars, mean and
    min-max over splits) and each layer's reward accuracy after alignment (orange: the refreshed
    R_h's layer scorers on the aligned policy's states of held-out pairs), with the gated R_h after
    alignment as a horizontal line; the same scorers before alignment in grey for reference.
    `reward_accuracy` is `evaluation.reward_accuracy_by_layer`'s rows for both stages."""
    use_style()
    layers = layer_summary["layer"].to_numpy()
    mean = layer_summary["precision_unsafe_mean"].to_numpy()
    spread = [
        mean - layer_summary["precision_unsafe_min"],
        layer_summary["precision_unsafe_max"] - mean,
    ]
    fig, ax = plt.subplots(figsize=(9.5, 3.4))
    ax.bar(
        layers,
        mean,
        width=0.75,
        color="#7fa7d3",
        edgecolor="#1f5fa8",
        linewidth=0.5,
        label="probe precision, before alignment (unsafe = positive)",
    )
    ax.errorbar(layers, mean, yerr=spread, fmt="none", ecolor="#1f3f68", lw=0.8, capsize=1.5)
    styles = {
        "after alignment": {"color": "#e67e22", "marker": "o", "linewidth": 1.6, "zorder": 3},
        "before alignment": {"color": "#888888", "marker": ".", "linewidth": 0.9, "zorder": 2},
    }
    lows = [float(np.nanmin(layer_summary["precision_unsafe_min"]))]
    for stage, style in styles.items():
        rows = reward_accuracy[reward_accuracy["stage"] == stage]
        per_layer = rows[rows["scorer"] == "layer"]
        hybrid = rows.loc[rows["scorer"] == "hybrid reward", "pairwise_accuracy"]
        if per_layer.empty:
            continue
        values = per_layer["pairwise_accuracy"].to_numpy(dtype=float)
        ax.plot(
            per_layer["layer"].to_numpy(dtype=float),
            values,
            markersize=3,
            label=f"layer reward accuracy, {stage}",
            **style,
        )
        if len(hybrid):
            value = float(hybrid.iloc[0])
            ax.axhline(
                value,
                color=style["color"],
                linestyle="dashed",
                linewidth=1.2,
                label=f"hybrid reward accuracy, {stage}: {value:.3f}",
            )
            lows.append(value)
        lows.append(float(np.nanmin(values)) if np.isfinite(values).any() else 1.0)
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.01)
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("precision / pairwise accuracy")
    ax.set_xticks(layers[:: max(1, len(layers) // 15)])
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    ax.set_title(f"{model_name}: probes before alignment, layer rewards after (held-out pairs)")
    fig.tight_layout()
    return fig


def plot_reward_strategies(strategy_summary) -> plt.Figure:
    """Fig 6 (pairwise form): held-out pairwise accuracy per reward strategy, mean and min-max."""
    use_style()
    names = strategy_summary["strategy"].tolist()
    mean = strategy_summary["pairwise_accuracy_mean"].to_numpy()
    low = strategy_summary["pairwise_accuracy_min"].to_numpy()
    high = strategy_summary["pairwise_accuracy_max"].to_numpy()
    colors = ["#c0392b" if name.startswith("ours") else "#999999" for name in names]
    rows = np.arange(len(names))[::-1]
    fig, ax = plt.subplots(figsize=(6.2, 0.38 * len(names) + 0.9))
    ax.barh(rows, mean, color=colors, edgecolor="#333333", linewidth=0.5, height=0.65)
    ax.errorbar(mean, rows, xerr=[mean - low, high - mean], fmt="none", ecolor="#222222", lw=0.8)
    for row, value, top in zip(rows, mean, high, strict=True):
        ax.text(top + 0.006, row, f"{value:.3f}", va="center", fontsize=7)
    ax.set_yticks(rows, names)
    ax.set_xlim(max(0.0, float(np.min(low)) - 0.05), 1.06)
    ax.set_xlabel("pairwise accuracy on held-out pairs (mean, min-max over splits)")
    fig.tight_layout()
    return fig


def plot_gate_weights(layers: Sequence[int], weights: dict[str, np.ndarray]) -> plt.Figure:
    """Mean gate weight per layer on held-out responses, one line per gate kind."""
    use_style()
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    styles = (
        {"marker": "o", "color": "#c0392b", "linestyle": "solid"},
        {"marker": "s", "color": "#555555", "linestyle": "dashed"},
        {"marker": "^", "color": "#1f5fa8", "linestyle": "dotted"},
    )
    for (name, values), style in zip(weights.items(), styles, strict=False):
        ax.plot(layers, values, markersize=3, linewidth=1.2, label=name, **style)
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("mean gate weight")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_reward_training(curves: dict[str, Sequence[float]]) -> plt.Figure:
    """Margin-BT loss of the hybrid reward over training steps, one line per run."""
    use_style()
    fig, ax = plt.subplots(figsize=(5, 2.8))
    for name, losses in curves.items():
        ax.plot(np.arange(len(losses)), losses, linewidth=1, label=name)
    ax.set_xlabel("step (full batch)")
    ax.set_ylabel("margin BT loss (train)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


CONTROL_NAMES = {"tfidf": "TF-IDF words (control)", "length": "length only (control)"}


def control_reference_lines(control_summary) -> dict[str, dict[str, float]]:
    """`{line name: {metric: mean over splits}}` from a control summary table."""
    metrics = [c[: -len("_mean")] for c in control_summary.columns if c.endswith("_mean")]
    return {
        CONTROL_NAMES[row["control"]]: {m: float(row[f"{m}_mean"]) for m in metrics}
        for _, row in control_summary.iterrows()
    }


def plot_confidence_cdf(gammas: dict[str, np.ndarray], alpha: float) -> plt.Figure:
    """Cumulative distribution of gamma, one line per set of pairs: the per-pair target of
    confidence DPO. (Most mass sits at 1, so a histogram would hide the pairs that matter.)"""
    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    styles = ("solid", "dashed", "dotted", "dashdot")
    for (name, gamma), style in zip(gammas.items(), styles, strict=False):
        values = np.sort(np.asarray(gamma, dtype=np.float64))
        shares = np.arange(1, len(values) + 1) / len(values)
        ax.step(
            np.concatenate([[0.0], values, [1.0]]),
            np.concatenate([[0.0], shares, [1.0]]),
            where="post",
            linewidth=1.4,
            linestyle=style,
            label=f"{name} (n={len(values)})",
        )
    ax.axvline(0.5, color="#c0392b", linewidth=0.8)
    ax.set_xlabel(f"gamma = sigmoid({alpha:g} * (R_h(chosen) - R_h(rejected)))")
    ax.set_ylabel("share of pairs with gamma <= x")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def _smoothed(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over `window` steps (fewer at the start)."""
    values = np.asarray(values, dtype=float)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


CROSS = "#e67e22"  # Fig 5's colour of the cross-fitted cDPO run
RUN_MARKERS = {"dpo": "s", "cdpo_crossfit": "^"}


def plot_training_curves(runs: dict[str, list[dict]], window: int = 5) -> plt.Figure:
    """Fig 5 from the logged per-step metrics: preference accuracy of the implicit DPO reward
    (Eq 3) and of R_h on each training batch, the implicit reward margin z, gamma (Eq 8: the
    paper's "hybrid reward" curve), and the SFT loss; cDPO with the paper's single R_h and with
    cross-fitted ones (`cdpo_crossfit`) side by side.
    Thin lines are the raw steps, thick ones a trailing mean over `window` steps."""
    use_style()
    fig, axes = plt.subplots(2, 2, figsize=(9, 5.6))
    lines = {
        (0, 0): [
            ("cdpo", "reward_accuracy", "cDPO implicit reward", "#c0392b", "solid"),
            ("cdpo_crossfit", "reward_accuracy", "cDPO cross-fit implicit reward", CROSS, "solid"),
            ("dpo", "reward_accuracy", "vanilla DPO implicit reward", "#1f5fa8", "solid"),
            ("cdpo", "hybrid_accuracy", "R_h, refreshed (cDPO)", "#c0392b", "dashed"),
            ("cdpo_crossfit", "hybrid_accuracy", "cross-fitted R_h, refreshed", CROSS, "dashed"),
            ("dpo", "hybrid_accuracy", "R_h, frozen (DPO run)", "#1f5fa8", "dashed"),
        ],
        (0, 1): [
            ("cdpo", "reward_margin", "cDPO", "#c0392b", "solid"),
            ("cdpo_crossfit", "reward_margin", "cDPO, cross-fitted gamma", CROSS, "solid"),
            ("dpo", "reward_margin", "vanilla DPO", "#1f5fa8", "solid"),
        ],
        (1, 0): [
            ("cdpo", "gamma_mean", "mean gamma, refreshed R_h (cDPO)", "#c0392b", "solid"),
            ("cdpo_crossfit", "gamma_mean", "mean gamma, cross-fitted R_h", CROSS, "solid"),
            ("dpo", "gamma_mean", "mean gamma, frozen R_h (DPO run)", "#1f5fa8", "dashed"),
            ("cdpo", "gamma_below_half", "share gamma < 0.5 (cDPO)", "#7f7f7f", "dotted"),
            ("cdpo_crossfit", "gamma_below_half", "share < 0.5 (cross-fit)", CROSS, "dotted"),
        ],
        (1, 1): [("sft", "loss", "SFT (token NLL)", "#2e8b57", "solid")],
    }
    labels = {
        (0, 0): "batch preference accuracy",
        (0, 1): "implicit reward margin z",
        (1, 0): "gamma",
        (1, 1): "loss",
    }
    for position, specs in lines.items():
        ax = axes[position]
        for run, key, label, color, style in specs:
            rows = [m for m in runs.get(run, []) if m.get(key) is not None]
            if not rows:
                continue
            steps = [m["step"] for m in rows]
            values = [m[key] for m in rows]
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
        ax.set_ylabel(labels[position])
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    axes[0, 0].set_ylim(-0.05, 1.05)
    axes[0, 1].axhline(0, color="#999999", linewidth=0.6)
    fig.tight_layout()
    return fig
