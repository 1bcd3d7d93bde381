"""Figures: a saved table in, a matplotlib Figure out (saving lives in `artifacts`).

Every plotting function of the suite lives here, one module per family of figures: `data`
(notebook 00), `representations` (01: PCA + KDE, Fig 2/8), `rewards` (02, 03, 06: probes, R_h,
Fig 1 and Fig 6's pairwise form), `training_curves` (04: Fig 5), `evaluation` (05, 06: Table 2,
Fig 4, Fig 6) and `compute` (07: Fig 7); the style is set once in `style`. Each takes the
DataFrames as its notebook writes them to disk (CSV or JSON lines), so notebook 08 and the report
redraw every paper figure from its tables alone (`results.PAPER_ITEMS`); the tables themselves
are built in `tables`.
"""

from repsafe_lib.plots.compute import plot_fig7
from repsafe_lib.plots.data import plot_category_counts, plot_length_by_class
from repsafe_lib.plots.evaluation import (
    XSTEST_COLOURS,
    XSTEST_HATCHES,
    plot_fig6_toxic_rates,
    plot_table2,
    plot_xstest,
)
from repsafe_lib.plots.representations import (
    plot_pca_kde,
    plot_separation_by_layer,
)
from repsafe_lib.plots.rewards import (
    CONTROL_NAMES,
    control_reference_lines,
    plot_alignment_layers,
    plot_confidence_cdf,
    plot_gate_weights,
    plot_probe_layers,
    plot_reward_strategies,
    plot_reward_training,
    plot_transfer,
    reference_lines,
)
from repsafe_lib.plots.style import CLASS_STYLE, STYLE, use_style
from repsafe_lib.plots.training_curves import plot_training_curves

__all__ = [
    "CLASS_STYLE",
    "CONTROL_NAMES",
    "STYLE",
    "XSTEST_COLOURS",
    "XSTEST_HATCHES",
    "control_reference_lines",
    "plot_alignment_layers",
    "plot_category_counts",
    "plot_confidence_cdf",
    "plot_fig6_toxic_rates",
    "plot_fig7",
    "plot_gate_weights",
    "plot_length_by_class",
    "plot_pca_kde",
    "plot_probe_layers",
    "plot_reward_strategies",
    "plot_reward_training",
    "plot_separation_by_layer",
    "plot_table2",
    "plot_training_curves",
    "plot_transfer",
    "plot_xstest",
    "reference_lines",
    "use_style",
]
