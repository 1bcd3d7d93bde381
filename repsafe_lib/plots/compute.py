"""Fig 7: the reward's extra compute per training sample, ours vs online sampling (notebook 07),
drawn from `fig7_measured.csv` and `fig7_analytic.csv` (`compute_cost.measured_costs`,
`compute_cost.analytic_costs`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from repsafe_lib.plots.style import use_style


def plot_fig7(measured: pd.DataFrame, analytic: pd.DataFrame, model_name: str) -> plt.Figure:
    """Fig 7: per-sample cost of online sampling vs ours, measured (left) and for Llama-2-7B in
    FLOPs (right), log scale; solid circles = online, dashed triangles = ours (grayscale-safe)."""
    use_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    panels = (
        (left, measured, "online_s", "ours_s", f"measured, {model_name}", "seconds per sample"),
        (right, analytic, "online_flops", "ours_flops", "analytic, Llama-2-7B", "FLOPs per sample"),
    )
    for ax, frame, online, ours, title, ylabel in panels:
        ax.plot(frame["new_tokens"], frame[online], "o-", color="#1f5fa8", label="online sampling")
        ax.plot(frame["new_tokens"], frame[ours], "^--", color="#c0392b", label="ours (R_h)")
        ax.set(xscale="log", yscale="log", xlabel="new tokens per response", ylabel=ylabel)
        ax.set_title(
            f"{title}: {frame['orders_of_magnitude'].min():.1f}"
            f"-{frame['orders_of_magnitude'].max():.1f} orders"
        )
        ax.set_xticks(list(frame["new_tokens"]), [str(t) for t in frame["new_tokens"]])
        ax.minorticks_off()
    left.legend(loc="center right")
    fig.tight_layout()
    return fig
