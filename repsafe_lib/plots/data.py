"""Figures of notebook 00: what the preference pairs hold before any model reads them.

Each draws from the table notebook 00 writes: `categories.csv` (pairs per harm category and
split) and `response_words.csv` (one row per response: its length in words and its class).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repsafe_lib.plots.style import CLASS_STYLE, use_style


def plot_length_by_class(responses: pd.DataFrame) -> plt.Figure:
    """Response length (words) of safe vs unsafe responses: a probe must beat what this separates.
    `responses` is `tables.response_words`'s table."""
    use_style()
    words, is_safe = responses["words"].to_numpy(), responses["is_safe"].to_numpy(dtype=bool)
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.histogram_bin_edges(np.concatenate([words[is_safe], words[~is_safe]]), bins=25)
    for label in (True, False):
        style, class_words = CLASS_STYLE[label], words[is_safe == label]
        ax.hist(
            class_words,
            bins=bins,
            histtype="step",
            linewidth=1.5,
            color=style["color"],
            linestyle=style["linestyles"],
            label=f"{style['label']} (mean {np.mean(class_words):.0f})",
        )
    ax.set_xlabel("response length (words)")
    ax.set_ylabel("responses")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_category_counts(categories: pd.DataFrame) -> plt.Figure:
    """Horizontal bars: preference pairs per harm category (train + test), from
    `tables.category_counts`'s table."""
    use_style()
    names, counts = categories["category"].tolist(), categories["train"] + categories["test"]
    fig, ax = plt.subplots(figsize=(5, 0.28 * len(names) + 1))
    ax.barh(names[::-1], list(counts)[::-1], color="#555555")
    ax.set_xlabel("preference pairs")
    fig.tight_layout()
    return fig
