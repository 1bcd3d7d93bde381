"""Low-dimensional views of hidden states: PCA onto the top principal directions (paper Fig 2/8).

States are standardised per dimension first: a few dimensions of LLM residual streams reach
|x| ~ 500 and would otherwise *be* the principal directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PcaPanel:
    """One layer's states projected on its top-2 principal directions."""

    layer: int
    coords: np.ndarray  # [n, 2]
    is_safe: np.ndarray  # [n] bool
    explained: np.ndarray  # [2] share of variance
    separation: float


def spread_layers(num_layers: int, num_panels: int) -> list[int]:
    """`num_panels` 1-based layers spread evenly from shallow to the last: (30, 4) -> 8, 15, 22, 30."""
    count = min(num_panels, num_layers)
    return sorted({int(round(num_layers * (i + 1) / count)) for i in range(count)})


def balanced_sample(is_safe: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of up to `per_class` safe and `per_class` unsafe examples, seeded."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in (True, False):
        members = np.flatnonzero(is_safe == label)
        picks.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(picks))


def pca_project(states: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates `[n, k]` on the top-k principal directions of standardised `states [n, d]`,
    and the share of variance each direction explains `[k]`.

    Signs are fixed so each direction's largest-magnitude loading is positive (deterministic plots).
    """
    x = np.asarray(states, dtype=np.float64)
    scale = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    _, singular, components = np.linalg.svd(x, full_matrices=False)
    components = components[:n_components]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    explained = singular**2 / max((singular**2).sum(), np.finfo(float).tiny)
    return x @ components.T, explained[:n_components]


def class_separation(coords: np.ndarray, is_safe: np.ndarray) -> float:
    """Mahalanobis distance between the class means under the pooled covariance (d' in 2-D)."""
    safe, unsafe = coords[is_safe], coords[~is_safe]
    pooled = (np.cov(safe, rowvar=False) + np.cov(unsafe, rowvar=False)) / 2
    delta = safe.mean(axis=0) - unsafe.mean(axis=0)
    return float(np.sqrt(delta @ np.linalg.pinv(np.atleast_2d(pooled)) @ delta))


def project_layers(
    states: np.ndarray, is_safe: np.ndarray, layer_numbers: Sequence[int]
) -> list[PcaPanel]:
    """A `PcaPanel` per layer of `states [n, L, d]`, whose layers are `layer_numbers` in order."""
    panels = []
    for position, layer in enumerate(layer_numbers):
        coords, explained = pca_project(states[:, position])
        separation = class_separation(coords, is_safe)
        panels.append(PcaPanel(layer, coords, is_safe, explained, separation))
    return panels


def panel_layers(
    requested: str | Sequence[int], extracted: Sequence[int], num_panels: int
) -> list[int]:
    """Layers for the PCA figure: `num_panels` spread over the extracted ones ("auto"), or those
    requested, which must have been extracted."""
    if requested == "auto":
        return [extracted[i - 1] for i in spread_layers(len(extracted), num_panels)]
    missing = sorted(set(requested) - set(extracted))
    if missing:
        raise ValueError(
            f"pca.layers {missing} were not extracted (extraction.layers: {list(extracted)})"
        )
    return list(requested)
