"""Figures of the evaluation (notebooks 05 and 06): Table 2's toxic rates, Fig 4 (XSTest) and
Fig 6 in the paper's form.

Each draws from the table its notebook writes: `table2_<judge>.csv`, `fig4_xstest.csv` and
`fig6_top_k.csv`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from repsafe_lib.judges import RESPONSE_CLASSES
from repsafe_lib.plots.style import use_style

XSTEST_COLOURS = {
    "full_compliance": "#4c9a2a",
    "partial_refusal": "#e0b300",
    "full_refusal": "#c0392b",
}
XSTEST_HATCHES = {
    "full_compliance": "",
    "partial_refusal": "...",
    "full_refusal": "///",
}  # grayscale


def _stacked_shares(ax, part: pd.DataFrame, policies: list[str]) -> None:
    """One panel of Fig 4: per policy, the shares of each response class stacked left to right."""
    left = np.zeros(len(policies))
    for name in RESPONSE_CLASSES:
        widths = part[name].fillna(0).to_numpy()
        ax.barh(
            policies,
            widths,
            left=left,
            color=XSTEST_COLOURS[name],
            hatch=XSTEST_HATCHES[name],
            edgecolor="#333333",
            linewidth=0,
            label=name,
        )
        left += widths


def plot_xstest(shares: pd.DataFrame) -> plt.Figure:
    """Fig 4: stacked bars of compliance / partial / full refusal, safe and unsafe prompts
    (`fig4_xstest.csv`, `evaluation.xstest_shares`'s table)."""
    use_style()
    panels = [label for label in ("safe", "unsafe") if label in set(shares["prompts"])]
    policies = list(dict.fromkeys(shares["policy"]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 0.45 * len(policies) + 1.4), squeeze=False
    )
    for ax, label in zip(axes[0], panels, strict=True):
        part = shares[shares["prompts"] == label].set_index("policy").reindex(policies)
        _stacked_shares(ax, part, policies)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_title(f"XSTest {label} prompts")
        ax.set_xlabel(f"share of responses ({part['classifier'].iloc[0]})")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=7)
    return fig


def _selection_style(label: str) -> tuple[str, str]:
    """Colour and hatch of a Table 2 selection: ours red, the reward model's blue, all grey."""
    if "ours" in label:
        return "#c0392b", ""
    return ("#1f5fa8", "//") if "rm" in label else ("#7f7f7f", "..")


def plot_table2(shares: pd.DataFrame, *, judge: str) -> plt.Figure:
    """Toxic rate of each Table 2 selection, grouped by stage (before / after alignment), from
    one judge's `table2_<judge>.csv`."""
    use_style()
    stages = list(dict.fromkeys(s.split(": ")[0] for s in shares["selection"]))
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        rows = shares[shares["selection"].str.startswith(f"{stage}: ")]
        labels = [s.split(": ", 1)[1] for s in rows["selection"]]
        styles = [_selection_style(label) for label in labels]
        colours, hatches = [c for c, _ in styles], [h for _, h in styles]
        bars = ax.bar(range(len(rows)), 100 * rows["toxic_rate"].astype(float), color=colours)
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        ax.set_xticks(range(len(rows)), labels, rotation=35, ha="right")
        ax.set_title(f"{stage} alignment")
        ax.set_ylabel(f"toxic rate (%), judge: {judge}")
    fig.tight_layout()
    return fig


def plot_fig6_toxic_rates(rates: pd.DataFrame, *, judge: str) -> plt.Figure:
    """Fig 6 in the paper's form: toxic rate (%) of the top-k samples per reward strategy, by
    `judge`'s verdicts (`fig6_top_k.csv`, the rows of every judge), with the rate of all samples
    as a reference line and the random layer's min-max over draws."""
    use_style()
    rates = rates[rates["judge"] == judge]
    strategies = rates[rates["top_k"].notna()]
    everything = rates.loc[rates["top_k"].isna(), "toxic_rate"]
    mean = 100 * strategies["toxic_rate"].to_numpy(dtype=float)
    spread = [mean - 100 * strategies["min"], 100 * strategies["max"] - mean]
    colours = ["#c0392b" if s.startswith("ours") else "#7f7f7f" for s in strategies["strategy"]]
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    ax.bar(range(len(strategies)), mean, color=colours, edgecolor="#333333", linewidth=0.5)
    ax.errorbar(range(len(strategies)), mean, yerr=spread, fmt="none", ecolor="#222222", lw=0.8)
    if len(everything):
        value = 100 * float(everything.iloc[0])
        ax.axhline(value, color="#1f5fa8", linestyle="dashed", label=f"all samples: {value:.1f}%")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(strategies)), strategies["strategy"], rotation=25, ha="right")
    k = int(strategies["top_k"].iloc[0])
    ax.set_ylabel(f"toxic rate of the top-{k} (%), judge: {judge}")
    fig.tight_layout()
    return fig
