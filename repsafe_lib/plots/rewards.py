"""Figures of the probes and the hybrid reward (notebooks 02, 03 and 06; paper Fig 1, Fig 6's
pairwise form, Eq 7-8).

Each draws from a table its notebook writes: the probe, control and hybrid-reward metrics over
splits (`probe_metrics.csv`, `control_metrics.csv`, `hybrid_metrics.csv`), the per-layer reward
accuracy before and after alignment (`fig1_reward_accuracy.csv`), the strategies' pairwise
accuracy (`fig6_strategies.csv`), R_h's training curves, the gate's weights and gamma per pair.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repsafe_lib.plots.style import use_style

REFERENCE_LINE_STYLE = {
    "hybrid reward": {"color": "#c0392b", "linestyle": "solid", "linewidth": 1.6},
    "TF-IDF words (control)": {"color": "#333333", "linestyle": "dashed", "linewidth": 1.2},
    "length only (control)": {"color": "#777777", "linestyle": "dotted", "linewidth": 1.4},
}
PROBE_PANELS = (
    ("precision_unsafe", "precision (unsafe = positive)"),
    ("accuracy", "accuracy"),
)
CONTROL_NAMES = {"tfidf": "TF-IDF words (control)", "length": "length only (control)"}
ALIGNMENT_STAGES = {
    "after alignment": {"color": "#e67e22", "marker": "o", "linewidth": 1.6, "zorder": 3},
    "before alignment": {"color": "#888888", "marker": ".", "linewidth": 0.9, "zorder": 2},
}


def _means(summary_row: pd.Series) -> dict[str, float]:
    """`{metric: mean over splits}` of one row of an `over_splits` table."""
    return {c[: -len("_mean")]: float(v) for c, v in summary_row.items() if c.endswith("_mean")}


def control_reference_lines(control_summary: pd.DataFrame) -> dict[str, dict[str, float]]:
    """`{line name: {metric: mean over splits}}` from a control summary table."""
    return {CONTROL_NAMES[row["control"]]: _means(row) for _, row in control_summary.iterrows()}


def reference_lines(
    controls: pd.DataFrame, hybrid: pd.DataFrame | None = None
) -> dict[str, dict[str, float]]:
    """The hybrid reward's line (its `hybrid_metrics` row, when given) and the controls'."""
    lines = {"hybrid reward": _means(hybrid.iloc[0])} if hybrid is not None else {}
    return lines | control_reference_lines(controls)


def _probe_bars(ax, layer_summary: pd.DataFrame, metric: str, label: str | None = None):
    """Bars of `metric`'s mean over splits per layer, whiskers min-max; returns the means."""
    layers = layer_summary["layer"].to_numpy()
    mean = layer_summary[f"{metric}_mean"].to_numpy()
    spread = [mean - layer_summary[f"{metric}_min"], layer_summary[f"{metric}_max"] - mean]
    ax.bar(
        layers,
        mean,
        width=0.75,
        color="#7fa7d3",
        edgecolor="#1f5fa8",
        linewidth=0.5,
        **({"label": label} if label else {}),
    )
    ax.errorbar(layers, mean, yerr=spread, fmt="none", ecolor="#1f3f68", lw=0.8, capsize=1.5)
    return mean


def _layer_axis(ax, layers: np.ndarray) -> None:
    ax.set_xlabel("decoder layer")
    ax.set_xticks(layers[:: max(1, len(layers) // 15)])


def plot_probe_layers(
    layer_summary: pd.DataFrame,
    controls: pd.DataFrame,
    model_name: str,
    hybrid: pd.DataFrame | None = None,
) -> plt.Figure:
    """Fig 1: per-layer probe precision and accuracy on held-out prompts (bars: mean over splits,
    whiskers: min-max; `probe_metrics.csv`), with the text-only `controls`
    (`control_metrics.csv`) and, when given, the `hybrid` reward (`hybrid_metrics.csv`) as lines."""
    use_style()
    lines = reference_lines(controls, hybrid)
    fig, axes = plt.subplots(len(PROBE_PANELS), 1, figsize=(9.5, 5.2), sharex=True)
    for ax, (metric, label) in zip(axes, PROBE_PANELS, strict=True):
        _probe_bars(ax, layer_summary, metric)
        for name, values in lines.items():
            style = REFERENCE_LINE_STYLE.get(name, {"color": "black", "linestyle": "dashdot"})
            ax.axhline(values[metric], label=f"{name}: {values[metric]:.3f}", **style)
        low = min(np.min(layer_summary[f"{metric}_min"]), *(v[metric] for v in lines.values()))
        ax.set_ylim(max(0.0, low - 0.05), 1.01)
        ax.set_ylabel(label)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    _layer_axis(axes[-1], layer_summary["layer"].to_numpy())
    fig.suptitle(f"{model_name}: per-layer linear probes on held-out prompts")
    fig.tight_layout()
    return fig


def _stage_lines(ax, rows: pd.DataFrame, stage: str, style: dict) -> list[float]:
    """One stage's per-layer reward accuracy (a line) and the gated R_h's (a dashed level);
    returns the lowest values drawn, for the y range."""
    per_layer = rows[rows["scorer"] == "layer"]
    hybrid = rows.loc[rows["scorer"] == "hybrid reward", "pairwise_accuracy"]
    if per_layer.empty:
        return []
    values = per_layer["pairwise_accuracy"].to_numpy(dtype=float)
    ax.plot(
        per_layer["layer"].to_numpy(dtype=float),
        values,
        markersize=3,
        label=f"layer reward accuracy, {stage}",
        **style,
    )
    lows = []
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
    return [*lows, float(np.nanmin(values)) if np.isfinite(values).any() else 1.0]


def plot_alignment_layers(
    layer_summary: pd.DataFrame, reward_accuracy: pd.DataFrame, model_name: str
) -> plt.Figure:
    """Fig 1 in the paper's form: per-layer probe precision before alignment (blue bars, mean and
    min-max over splits; `probe_metrics.csv`) and each layer's reward accuracy after alignment
    (orange: the refreshed R_h's layer scorers on the aligned policy's states of held-out pairs),
    with the gated R_h after alignment as a horizontal line; the same scorers before alignment in
    grey for reference. `reward_accuracy` is `fig1_reward_accuracy.csv`
    (`evaluation.reward_accuracy_by_layer`'s rows for both stages)."""
    use_style()
    fig, ax = plt.subplots(figsize=(9.5, 3.4))
    label = "probe precision, before alignment (unsafe = positive)"
    _probe_bars(ax, layer_summary, "precision_unsafe", label)
    lows = [float(np.nanmin(layer_summary["precision_unsafe_min"]))]
    for stage, style in ALIGNMENT_STAGES.items():
        lows += _stage_lines(ax, reward_accuracy[reward_accuracy["stage"] == stage], stage, style)
    ax.set_ylim(max(0.0, min(lows) - 0.05), 1.01)
    ax.set_ylabel("precision / pairwise accuracy")
    _layer_axis(ax, layer_summary["layer"].to_numpy())
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    ax.set_title(f"{model_name}: probes before alignment, layer rewards after (held-out pairs)")
    fig.tight_layout()
    return fig


def plot_reward_strategies(strategy_summary: pd.DataFrame) -> plt.Figure:
    """Fig 6 (pairwise form): held-out pairwise accuracy per reward strategy, mean and min-max
    (`fig6_strategies.csv`)."""
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


def plot_gate_weights(gate_weights: pd.DataFrame) -> plt.Figure:
    """Mean gate weight per layer on held-out responses, one line per gate kind
    (`tables.gate_weights`)."""
    use_style()
    fig, ax = plt.subplots(figsize=(6.2, 2.8))
    styles = (
        {"marker": "o", "color": "#c0392b", "linestyle": "solid"},
        {"marker": "s", "color": "#555555", "linestyle": "dashed"},
        {"marker": "^", "color": "#1f5fa8", "linestyle": "dotted"},
    )
    gates = gate_weights.groupby("gate", sort=False)
    for (name, rows), style in zip(gates, styles, strict=False):
        ax.plot(
            rows["layer"], rows["mean_weight"], markersize=3, linewidth=1.2, label=name, **style
        )
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("mean gate weight")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_reward_training(curves: pd.DataFrame) -> plt.Figure:
    """Margin-BT loss of the hybrid reward over training steps, one line per run
    (`tables.reward_training`)."""
    use_style()
    fig, ax = plt.subplots(figsize=(5, 2.8))
    for name, rows in curves.groupby("run", sort=False):
        ax.plot(rows["step"].to_numpy(), rows["loss"].to_numpy(), linewidth=1, label=name)
    ax.set_xlabel("step (full batch)")
    ax.set_ylabel("margin BT loss (train)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_confidence_cdf(gammas: pd.DataFrame, alpha: float) -> plt.Figure:
    """Cumulative distribution of gamma, one line per set of pairs (`tables.gamma_per_pair`): the
    per-pair target of confidence DPO. (Most mass sits at 1, so a histogram would hide the pairs
    that matter.)"""
    use_style()
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    styles = ("solid", "dashed", "dotted", "dashdot")
    for (name, rows), style in zip(gammas.groupby("pairs", sort=False), styles, strict=False):
        values = np.sort(rows["gamma"].to_numpy(dtype=np.float64))
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


TRANSFER_PANELS = (("auroc", "AUROC (unsafe = positive)"), ("accuracy", "accuracy"))
TRANSFER_PROBE_LINES = {
    "held_out": {"color": "#7fa7d3", "marker": ".", "lw": 1.0, "label": "probe, held-out pairs"},
    "transfer": {"color": "#1f5fa8", "marker": "o", "lw": 1.6, "label": "probe, transfer set"},
}


def plot_transfer(transfer: pd.DataFrame, model_name: str) -> plt.Figure:
    """Transfer (notebook 03's `transfer.csv`): each layer's probe on the profile's held-out
    pairs and on the transfer set (lines over layers), with R_h and the text-only controls on the
    transfer set as horizontal lines; accuracy at the threshold calibrated on the training side."""
    use_style()
    probes = transfer[transfer["layer"].notna()].sort_values("layer")
    others = transfer[transfer["layer"].isna()]
    layers = probes["layer"].to_numpy(dtype=int)
    fig, axes = plt.subplots(len(TRANSFER_PANELS), 1, figsize=(9.5, 5.2), sharex=True)
    for ax, (metric, label) in zip(axes, TRANSFER_PANELS, strict=True):
        for data, style in TRANSFER_PROBE_LINES.items():
            ax.plot(layers, probes[f"{data}_{metric}"], **style)
        for _, row in others.iterrows():
            style = REFERENCE_LINE_STYLE.get(row["scorer"], {"color": "black"})
            value = row[f"transfer_{metric}"]
            ax.axhline(value, label=f"{row['scorer']}, transfer: {value:.3f}", **style)
        ax.axhline(
            0.5, color="#bbbbbb", lw=0.8, label="chance (AUROC)" if metric == "auroc" else None
        )
        ax.set_ylim(0.0, 1.01)
        ax.set_ylabel(label)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    _layer_axis(axes[-1], layers)
    fig.suptitle(f"{model_name}: fit on this profile's pairs, scored on other labelled responses")
    fig.tight_layout()
    return fig
