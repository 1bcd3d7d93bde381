"""Tables: records in, DataFrame out, with fixed column order so regenerated files diff cleanly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd


def dataset_summary(
    name: str, source: str, loaded, split: tuple[Sequence, Sequence] | None = None
) -> dict:
    """One row of the data table: rows read = filtered by design + skipped as bad + left out by
    the size cap + used.

    `source` is the params' spelling (e.g. `demo:...`), so tables don't depend on the install path.
    """
    return {
        "dataset": name,
        "source": source,
        "rows_read": loaded.n_rows,
        "filtered": loaded.n_filtered,
        "bad_rows_skipped": loaded.n_skipped,
        "capped": loaded.n_capped,
        "used": len(loaded.records),
        "train/test": f"{len(split[0])}/{len(split[1])}" if split else "-",
    }


def category_counts(train_pairs: Sequence, test_pairs: Sequence) -> pd.DataFrame:
    """Pairs per harm category of the rejected response, per split (a pair may have several)."""
    counts = {
        split: Counter(c for pair in pairs for c in (pair.categories or ("(none)",)))
        for split, pairs in (("train", train_pairs), ("test", test_pairs))
    }
    categories = sorted(set(counts["train"]) | set(counts["test"]), key=_category_order)
    return pd.DataFrame(
        {
            "category": categories,
            "train": [counts["train"][c] for c in categories],
            "test": [counts["test"][c] for c in categories],
        }
    )


def _category_order(name: str) -> tuple:
    # "S10: ..." sorts after "S9: ...".
    head = name.split(":", 1)[0]
    return (0, int(head[1:]), name) if head[:1] == "S" and head[1:].isdigit() else (1, 0, name)


def length_summary(words: np.ndarray, is_safe: np.ndarray) -> pd.DataFrame:
    """Mean / median / max response length in words, safe vs unsafe."""
    rows = []
    for label, name in ((True, "safe"), (False, "unsafe")):
        w = words[is_safe == label]
        rows.append(
            {
                "class": name,
                "responses": len(w),
                "mean_words": float(w.mean()),
                "median_words": float(np.median(w)),
                "max_words": int(w.max()),
            }
        )
    return pd.DataFrame(rows)


def pca_summary(panels: Sequence) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": [p.layer for p in panels],
            "pc1_variance": [float(p.explained[0]) for p in panels],
            "pc2_variance": [float(p.explained[1]) for p in panels],
            "separation_d_prime": [p.separation for p in panels],
            "n_safe": [int(p.is_safe.sum()) for p in panels],
            "n_unsafe": [int((~p.is_safe).sum()) for p in panels],
        }
    )
