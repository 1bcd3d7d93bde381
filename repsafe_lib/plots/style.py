"""The figures' shared style, set once: rcParams and the class colours.

Safe is drawn red with solid contours and unsafe blue with dashed ones, as in the paper's Fig 2,
so the figures stay readable in grayscale.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

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
