"""The paper's published numbers, to print beside ours (Llama2-7B unless said otherwise).

Transcribed from the paper's tables; where the paper gives only a plot, `FIGURE_NOTES` says so.
Table 2's per-category cells are only partly legible in the paper's text (merged cells), so only
its toxic rates and its sample-8 category rows are kept.
"""

from __future__ import annotations

import pandas as pd

# Table 1: toxic rate (%) per benchmark x judge, and the average of the six cells.
# SG = Llama-Guard-2, MJ = MD-Judge; benchmarks in the order of PAPER_BENCHMARKS.
TABLE1 = {
    "base": {"SG": (32.5, 31.9, 35.2), "MJ": (56.6, 22.2, 68.3), "average": 41.1},
    "sft": {"SG": (19.2, 31.7, 29.6), "MJ": (29.2, 14.0, 44.3), "average": 28.0},
    "dpo": {"SG": (17.5, 28.0, 27.3), "MJ": (29.5, 9.7, 42.7), "average": 25.7},
    "rs_star": {"SG": (18.7, 22.1, 17.7), "MJ": (35.7, 13.4, 43.4), "average": 25.1},
    "dpo_star": {"SG": (14.9, 16.1, 22.3), "MJ": (33.5, 7.5, 42.9), "average": 22.8},
    "cdpo_star": {"SG": (13.7, 25.3, 18.0), "MJ": (27.6, 10.8, 32.8), "average": 21.4},
    "online": {"SG": (6.9, 8.6, 13.5), "MJ": (26.6, 8.1, 38.9), "average": 17.1},
}
BENCHMARKS = ("red_team", "do_not_answer", "salad_base")
JUDGES = {"llama_guard_2": "SG", "md_judge": "MJ"}

# Table 2: toxic rate (%) of the top-k samples chosen by R_h ("ours") or by a trained 7B reward
# model ("rm"), before and after one epoch of alignment; sample-8 = all 8 samples.
TABLE2_TOXIC = {
    "before": {
        "top-1-ours": 20.82,
        "top-1-rm": 16.18,
        "top-2-ours": 23.48,
        "top-2-rm": 20.23,
        "top-4-ours": 27.34,
        "top-4-rm": 26.79,
        "sample-8": 33.36,
    },
    "after": {
        "top-1-ours": 12.00,
        "top-1-rm": 7.00,
        "top-2-ours": 12.50,
        "top-2-rm": 10.10,
        "top-4-ours": 14.20,
        "top-4-rm": 15.70,
        "sample-8": 20.20,
    },
}
# Table 2, sample-8 rows: share (%) of each MLCommons hazard category S1-S11 among unsafe outputs.
TABLE2_SAMPLE8_CATEGORIES = {
    "before": (17.45, 40.38, 6.47, 0.01, 2.16, 11.91, 0.50, 0.17, 13.64, 1.17, 4.47),
    "after": (12.87, 32.92, 8.17, 0.12, 2.10, 23.64, 0.25, 0.0, 12.25, 1.36, 6.31),
}

# Table 3 (appendix A.1): general reward-model scores on Alpaca-Eval prompts and MMLU accuracy.
TABLE3 = {
    "base": {"RM-deberta": -4.309, "FsfairX": -2.911, "MMLU": 0.45898},
    "dpo": {"RM-deberta": -4.518, "FsfairX": -2.909, "MMLU": 0.45947},
    "cdpo_star": {"RM-deberta": -4.410, "FsfairX": -2.747, "MMLU": 0.43476},
}
MMLU = {policy: row["MMLU"] for policy, row in TABLE3.items()}

# Sec 4.8, Fig 7: ours vs online sampling at 7B, "5-6 orders of magnitude lower".
FIG7_ORDERS_OF_MAGNITUDE = (5, 6)

FIGURE_NOTES = {
    "fig1": "The paper gives Fig 1 as a plot only (per-layer probe precision and per-layer reward"
    " accuracy after alignment, Llama2-7B on PKU-SafeRLHF); no numbers to set beside ours.",
    "fig2": "The paper gives Fig 2 (and Fig 8 for 13B) as KDE plots only.",
    "fig4": "The paper gives Fig 4 as a plot only (XSTest graded by GPT-4o); no numbers.",
    "fig5": "The paper gives Fig 5 as a plot only (reward curves during alignment).",
    "fig6": "The paper gives Fig 6 as a plot only (toxic rate by reward strategy and unsafe"
    " category, top-4 of 8 samples, PKU-SafeRLHF test and hh red-team prompts).",
    "fig7": "The paper gives Fig 7 as a plot only; its text (Sec 4.8) says ours is 5-6 orders of"
    " magnitude cheaper than online sampling at 7B and does not grow with the sequence length.",
}


def table1() -> pd.DataFrame:
    """Table 1's Llama2-7B rows: a column per benchmark x judge (%), and the average."""
    rows = []
    for policy, cells in TABLE1.items():
        row = {"policy": policy}
        for judge in JUDGES.values():
            for benchmark, value in zip(BENCHMARKS, cells[judge], strict=True):
                row[f"{benchmark} · {judge}"] = value
        rows.append({**row, "average": cells["average"]})
    return pd.DataFrame(rows)


def table2() -> pd.DataFrame:
    """Table 2's toxic rates (%) per selection, before and after alignment, with the sample-8
    rows' category shares (%); the other rows' category cells are not legible in the paper."""
    categories = [f"S{i}" for i in range(1, 12)]
    rows = []
    for stage, rates in TABLE2_TOXIC.items():
        for selection, rate in rates.items():
            shares = TABLE2_SAMPLE8_CATEGORIES[stage] if selection == "sample-8" else (None,) * 11
            rows.append(
                {"selection": f"{stage}: {selection}", "toxic_rate": rate}
                | dict(zip(categories, shares, strict=True))
            )
    return pd.DataFrame(rows)


def table3() -> pd.DataFrame:
    return pd.DataFrame([{"policy": policy, **row} for policy, row in TABLE3.items()])
