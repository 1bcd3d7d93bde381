"""Figures of notebook 01: safe vs unsafe hidden states on their top-2 principal directions
(paper Fig 2 / Fig 8), and the classes' separation along the depth.

They draw from notebook 01's tables: `pca_points.csv` (the projected states of each panel layer,
`tables.pca_points`) and `pca_separation.csv` (`tables.pca_summary`: per layer the variance each
direction explains and d').
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import gaussian_kde

from repsafe_lib.plots.style import CLASS_STYLE, use_style


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


def _pca_panel(ax, points: pd.DataFrame, summary: pd.Series) -> None:
    """One layer's scatter and KDE contours per class; `summary` is its `pca_separation` row."""
    coords, is_safe = points[["pc1", "pc2"]].to_numpy(), points["is_safe"].to_numpy(dtype=bool)
    grid = _grid(coords)
    for label in (False, True):
        style, class_points = CLASS_STYLE[label], coords[is_safe == label]
        ax.scatter(
            *class_points.T,
            s=4,
            alpha=0.35,
            color=style["color"],
            marker=style["marker"],
            label=f"{style['label']} (n={len(class_points)})",
            linewidths=0,
        )
        if len(class_points) > 2:
            _kde_contours(ax, class_points, grid, style)
    ax.set_title(f"layer {int(summary.name)}   d' = {summary['separation_d_prime']:.2f}")
    ax.set_xlabel(f"PC1 ({summary['pc1_variance']:.1%} of variance)")
    ax.set_ylabel(f"PC2 ({summary['pc2_variance']:.1%})")
    ax.legend(loc="best", fontsize=7, markerscale=3)


def plot_pca_kde(points: pd.DataFrame, separation: pd.DataFrame, model_name: str) -> plt.Figure:
    """Fig 2/8: KDE contours of safe vs unsafe states on the top-2 principal directions, one panel
    per layer of `points` (`tables.pca_points`), titled from its `separation` row."""
    use_style()
    layers = list(dict.fromkeys(points["layer"]))
    by_layer = separation.set_index("layer")
    cols = min(2, len(layers))
    rows = int(np.ceil(len(layers) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax, layer in zip(axes.flat, layers, strict=False):
        _pca_panel(ax, points[points["layer"] == layer], by_layer.loc[layer])
    for ax in axes.flat[len(layers) :]:
        ax.set_visible(False)
    fig.suptitle(f"{model_name}: last-token states of safe vs unsafe responses")
    fig.tight_layout()
    return fig


def plot_separation_by_layer(
    separation: pd.DataFrame, highlighted: Sequence[int] = ()
) -> plt.Figure:
    """d' between safe and unsafe in the top-2 PCA plane for every layer of `separation`
    (`pca_separation.csv`), the `highlighted` layers (the PCA figure's panels) circled."""
    use_style()
    layers, values = separation["layer"].tolist(), separation["separation_d_prime"].tolist()
    fig, ax = plt.subplots(figsize=(5.5, 2.8))
    ax.plot(layers, values, marker="o", markersize=3, color="#333333")
    marks = [i for i, layer in enumerate(layers) if layer in set(highlighted)]
    ax.scatter(
        [layers[i] for i in marks],
        [values[i] for i in marks],
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
