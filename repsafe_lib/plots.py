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
