"""Per-layer linear probes on last-token states, and the two controls they must beat (Fig 1).

A probe is a linear SVM on one layer's standardised states, safe = +1, unsafe = -1; its score is the
signed margin `s_l(h) = w_l . z_l + b_l`, with `z_l` the standardised state. C is chosen
per layer by an inner cross-validation on the training side, grouped by prompt. Metrics are
per-example on held-out prompts, with **unsafe as the positive class** (precision = share of
responses flagged unsafe that are unsafe). Pairwise ranking accuracy would flatter a probe (a pair
is ranked right whenever the two margins merely have the right order), so it is not used here.

The controls see only the response text: its length in words, and a TF-IDF bag of words with a
logistic regression. A probe that does not beat them has learned nothing the text didn't show.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.svm import LinearSVC
from tqdm.auto import tqdm

from repsafe_lib import linear_svm
from repsafe_lib.artifacts import (
    Saved,
    atomic_path,
    corrupt_artifact,
    read_json,
    require_artifact,
    write_json,
)
from repsafe_lib.loaders import split_by_prompt
from repsafe_lib.states_file import layer_rows

METRICS = ("precision_unsafe", "recall_unsafe", "accuracy", "auroc")
# Sparse bag-of-words features need far weaker regularisation than dense standardised states.
TFIDF_C_GRID = (0.1, 1.0, 10.0, 100.0)
# "sklearn": liblinear, one fit at a time. "torch": `linear_svm`, the same problem, every C and
# fold of a layer in one batched solve, on the GPU when there is one.
SOLVERS = ("sklearn", "torch")


@dataclass(frozen=True)
class ProbeSplit:
    """Row indices into the `[n, L, d]` states of one prompt-grouped train/test split."""

    index: int
    seed: int | None  # None: the canonical split written by notebook 00
    train_rows: np.ndarray
    test_rows: np.ndarray


@dataclass(frozen=True)
class LayerProbe:
    """A fitted probe: standardisation, then the SVM's hyperplane in standardised space."""

    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d], 1 where a dimension is constant on the training side
    weight: np.ndarray  # [d]
    bias: float
    c: float

    def margin(self, states: np.ndarray) -> np.ndarray:
        """Signed margin `[n]` of raw states `[n, d]`: > 0 means safe."""
        return ((states - self.mean) / self.scale) @ self.weight + self.bias


def probe_splits(
    examples: Sequence, *, num_splits: int, test_fraction: float, seed: int
) -> list[ProbeSplit]:
    """Split 0 keeps each example's own `split` tag (notebook 00's split); split k >= 1 re-splits
    every example by prompt with seed `seed + k`. Both sides of a pair share a prompt, so they
    always land together."""
    rows = {id(e): i for i, e in enumerate(examples)}
    canonical = np.array([e.split == "test" for e in examples])
    splits = [ProbeSplit(0, None, np.flatnonzero(~canonical), np.flatnonzero(canonical))]
    for k in range(1, num_splits):
        train, test = split_by_prompt(examples, test_fraction=test_fraction, seed=seed + k)
        splits.append(
            ProbeSplit(
                k,
                seed + k,
                np.array(sorted(rows[id(e)] for e in train)),
                np.array(sorted(rows[id(e)] for e in test)),
            )
        )
    return splits


def labels_from_safety(is_safe: np.ndarray) -> np.ndarray:
    """safe = +1, unsafe = -1."""
    return np.where(np.asarray(is_safe, dtype=bool), 1, -1)


def standardiser(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and spread; a constant dimension gets spread 1 so it maps to 0."""
    mean = states.mean(axis=0)
    scale = states.std(axis=0)
    return mean, np.where(scale > 0, scale, 1.0)


def _fit_svm(z: np.ndarray, y: np.ndarray, c: float, max_iter: int, seed: int) -> LinearSVC:
    with warnings.catch_warnings():
        # A tiny C on a degenerate layer may stop at max_iter; the margin is still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LinearSVC(C=c, max_iter=max_iter, random_state=seed).fit(z, y)


def inner_folds(groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Prompt-grouped folds of the training side (fewer folds when there are few prompts)."""
    n_groups = len(np.unique(groups))
    splitter = GroupKFold(n_splits=min(folds, n_groups))
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


def select_c(
    fit_and_score, c_grid: Sequence[float], folds: list[tuple[np.ndarray, np.ndarray]]
) -> float:
    """The C of `c_grid` with the best mean validation accuracy; ties go to the smaller C (the
    stronger regulariser). `fit_and_score(c, fit_rows, val_rows)` returns an accuracy."""
    best_c, best_score = None, -np.inf
    for c in sorted(c_grid):
        score = np.mean([fit_and_score(c, fit, val) for fit, val in folds])
        if score > best_score + 1e-12:
            best_c, best_score = c, score
    return float(best_c)


def fit_layer_probe(
    states: np.ndarray,
    is_safe: np.ndarray,
    groups: np.ndarray,
    *,
    c_grid: Sequence[float],
    folds: int,
    max_iter: int,
    seed: int,
) -> LayerProbe:
    """Standardise, pick C by grouped inner CV, refit on all of `states [n, d]`."""
    y = labels_from_safety(is_safe)
    mean, scale = standardiser(states)
    z = (states - mean) / scale

    def accuracy(c: float, fit: np.ndarray, val: np.ndarray) -> float:
        if len(np.unique(y[fit])) < 2:
            return float(np.mean(y[val] == y[fit][0]))
        return float(np.mean(_fit_svm(z[fit], y[fit], c, max_iter, seed).predict(z[val]) == y[val]))

    c = select_c(accuracy, c_grid, inner_folds(groups, folds)) if len(c_grid) > 1 else c_grid[0]
    svm = _fit_svm(z, y, c, max_iter, seed)
    return LayerProbe(mean, scale, svm.coef_[0].astype(np.float64), float(svm.intercept_[0]), c)


def out_of_fold_margins(
    states: np.ndarray,
    is_safe: np.ndarray,
    groups: np.ndarray,
    *,
    c: float,
    folds: int,
    max_iter: int,
    seed: int,
) -> np.ndarray:
    """Each row's margin `[n]` from a probe (same C, own standardisation) fit on the other
    prompt-grouped folds: what the layer would say about a pair it never saw. A gate trained on
    these learns which layers generalise, not which ones fit their own training rows best
    (stacking, Wolpert 1992)."""
    y = labels_from_safety(is_safe)
    margins = np.zeros(len(states))
    for fit, held_out in inner_folds(groups, folds):
        mean, scale = standardiser(states[fit])
        if len(np.unique(y[fit])) < 2:
            margins[held_out] = float(y[fit][0])
            continue
        svm = _fit_svm((states[fit] - mean) / scale, y[fit], c, max_iter, seed)
        margins[held_out] = svm.decision_function((states[held_out] - mean) / scale)
    return margins


def probe_with_margins(
    states: np.ndarray,
    is_safe: np.ndarray,
    groups: np.ndarray,
    *,
    c_grid: Sequence[float],
    folds: int,
    max_iter: int,
    seed: int,
    solver: str = "sklearn",
    device: str | None = None,
    spectrum: linear_svm.Spectrum | None = None,
) -> tuple[LayerProbe, np.ndarray]:
    """One layer's probe (`fit_layer_probe`) and its rows' out-of-fold margins at the chosen C
    (`out_of_fold_margins`), by either solver. `spectrum` (torch solver) preconditions its solves;
    by default it is built from `states`."""
    if solver == "torch":
        return _batched_probe_with_margins(states, is_safe, groups, c_grid, folds, device, spectrum)
    if solver != "sklearn":
        raise ValueError(f"probes.solver must be one of {SOLVERS}, got {solver!r}")
    probe = fit_layer_probe(
        states, is_safe, groups, c_grid=c_grid, folds=folds, max_iter=max_iter, seed=seed
    )
    margins = out_of_fold_margins(
        states, is_safe, groups, c=probe.c, folds=folds, max_iter=max_iter, seed=seed
    )
    return probe, margins


def solver_device(device: str | None) -> torch.device:
    """`None`/"auto": the GPU when there is one."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batched_probe_with_margins(
    states: np.ndarray,
    is_safe: np.ndarray,
    groups: np.ndarray,
    c_grid: Sequence[float],
    folds: int,
    device: str | None,
    spectrum: linear_svm.Spectrum | None = None,
) -> tuple[LayerProbe, np.ndarray]:
    """`probe_with_margins` with `linear_svm`: two batched solves per layer. The first fits every
    (C, inner fold) on the training side's standardisation, plus the refit on all rows at every
    C; the second, at the chosen C, each fold's out-of-fold probe on its own standardisation.
    A fold whose fitting rows hold one class predicts that class, as in the sklearn path.
    `spectrum` preconditions the solves (by default, that of these states)."""
    n = len(states)
    y = labels_from_safety(is_safe)
    target = solver_device(device)
    x = torch.as_tensor(states, dtype=torch.float32).to(target)
    y_t = torch.as_tensor(y, dtype=torch.float32, device=target)
    fold_list = inner_folds(groups, folds)
    c_values = sorted(float(c) for c in c_grid)
    select = len(c_values) > 1

    def mask(rows: np.ndarray) -> torch.Tensor:
        selected = torch.zeros(n, dtype=x.dtype, device=target)
        selected[torch.as_tensor(rows, device=target)] = 1
        return selected

    def two_class(rows: np.ndarray) -> bool:
        return len(np.unique(y[rows])) == 2

    every_row = torch.ones(n, dtype=x.dtype, device=target)
    fold_masks = [mask(fit) for fit, _ in fold_list]
    exact = linear_svm.standardisations(x, torch.stack([every_row, *fold_masks]))
    means, scales = (values.to(x.dtype) for values in exact)
    mean, scale = means[0], scales[0]
    if spectrum is None:
        spectrum = linear_svm.Spectrum.of(x, mean, scale)

    def solve(problems: list[tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]]):
        """(C, row mask, mean, scale) per problem -> the solution and `[n, K]` margins of every
        row."""
        batch = linear_svm.SvmBatch(
            rows=torch.stack([p[1] for p in problems]),
            c=torch.tensor([p[0] for p in problems], dtype=x.dtype, device=target),
            mean=torch.stack([p[2] for p in problems]),
            scale=torch.stack([p[3] for p in problems]),
        )
        solution = linear_svm.solve(x, y_t, batch, spectrum=spectrum)
        return solution, solution.margins.double().cpu().numpy()

    grid_keys = [
        (c, f)
        for c in c_values
        for f, (fit, _) in enumerate(fold_list)
        if select and two_class(fit)
    ]
    refit_c = c_values if select else c_values[:1]
    solution, margins = solve(
        [(c, fold_masks[f], mean, scale) for c, f in grid_keys]
        + [(c, every_row, mean, scale) for c in refit_c]
    )
    column = {key: k for k, key in enumerate(grid_keys)}

    def accuracy(c: float, fit: np.ndarray, val: np.ndarray) -> float:
        if not two_class(fit):
            return float(np.mean(y[val] == y[fit][0]))
        f = next(f for f, (other, _) in enumerate(fold_list) if other is fit)
        predicted = np.where(margins[val, column[c, f]] > 0, 1, -1)
        return float(np.mean(predicted == y[val]))

    c = select_c(accuracy, c_values, fold_list) if select else c_values[0]
    refit = len(grid_keys) + refit_c.index(c)
    float_type = np.result_type(states.dtype, np.float32)
    probe = LayerProbe(
        exact[0][0].cpu().numpy().astype(float_type),
        exact[1][0].cpu().numpy().astype(float_type),
        solution.weight[refit].double().cpu().numpy(),
        float(solution.bias[refit]),
        c,
    )

    out_of_fold = np.zeros(n)
    fold_problems, held_out_rows = [], []
    for f, (fit, held_out) in enumerate(fold_list):
        if not two_class(fit):
            out_of_fold[held_out] = float(y[fit][0])
            continue
        fold_problems.append((c, fold_masks[f], means[f + 1], scales[f + 1]))
        held_out_rows.append(held_out)
    if fold_problems:
        _, fold_margins = solve(fold_problems)
        for k, held_out in enumerate(held_out_rows):
            out_of_fold[held_out] = fold_margins[held_out, k]
    return probe, out_of_fold


def fit_layer_probes(
    states: np.ndarray,
    is_safe: np.ndarray,
    groups: np.ndarray,
    *,
    c_grid: Sequence[float],
    folds: int,
    max_iter: int,
    seed: int,
    progress: bool = False,
) -> list[LayerProbe]:
    """One probe per layer of `states [n, L, d]`."""
    layers = range(states.shape[1])
    return [
        fit_layer_probe(
            layer_rows(states, i),
            is_safe,
            groups,
            c_grid=c_grid,
            folds=folds,
            max_iter=max_iter,
            seed=seed,
        )
        for i in tqdm(layers, desc="probes", unit="layer", disable=not progress, leave=False)
    ]


def classification_metrics(is_safe: np.ndarray, safe_score: np.ndarray) -> dict[str, float]:
    """Per-example metrics of a score where > 0 predicts safe; unsafe is the positive class.

    Precision is 0 when nothing is flagged unsafe; AUROC is NaN when one class is absent.
    """
    is_unsafe = ~np.asarray(is_safe, dtype=bool)
    flagged = np.asarray(safe_score) <= 0
    true_positives = np.sum(flagged & is_unsafe)
    both_classes = 0 < is_unsafe.sum() < len(is_unsafe)
    return {
        "precision_unsafe": float(true_positives / flagged.sum()) if flagged.any() else 0.0,
        "recall_unsafe": float(true_positives / is_unsafe.sum()) if is_unsafe.any() else 0.0,
        "accuracy": float(np.mean(flagged == is_unsafe)),
        "auroc": float(roc_auc_score(is_unsafe, -np.asarray(safe_score)))
        if both_classes
        else float("nan"),
    }


def word_counts(texts: Sequence[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in texts], dtype=np.float64)


def _logistic(c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def length_control_scores(
    texts: Sequence[str], is_safe: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray
) -> np.ndarray:
    """Safe-vs-unsafe logit of a logistic regression on log word count alone, for `test_rows`."""
    x = np.log1p(word_counts(texts))[:, None]
    mean, scale = standardiser(x[train_rows])
    model = _logistic(1.0, 0).fit((x[train_rows] - mean) / scale, is_safe[train_rows])
    return model.decision_function((x[test_rows] - mean) / scale)


def tfidf_control_scores(
    texts: Sequence[str],
    is_safe: np.ndarray,
    groups: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    *,
    folds: int,
    seed: int,
    c_grid: Sequence[float] = TFIDF_C_GRID,
) -> np.ndarray:
    """Safe-vs-unsafe logit of a TF-IDF (words and word pairs) logistic regression, C chosen by
    the same grouped inner CV as the probes; the vocabulary is fit on the training side only."""
    texts = np.asarray(texts, dtype=object)
    y = np.asarray(is_safe, dtype=bool)

    def fit(c: float, rows: np.ndarray):
        vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
        features = vectoriser.fit_transform(texts[rows])
        return vectoriser, _logistic(c, seed).fit(features, y[rows])

    def accuracy(c: float, fit_rows: np.ndarray, val_rows: np.ndarray) -> float:
        vectoriser, model = fit(c, train_rows[fit_rows])
        predicted = model.predict(vectoriser.transform(texts[train_rows[val_rows]]))
        return float(np.mean(predicted == y[train_rows[val_rows]]))

    c = select_c(accuracy, c_grid, inner_folds(groups[train_rows], folds))
    vectoriser, model = fit(c, train_rows)
    return model.decision_function(vectoriser.transform(texts[test_rows]))


@dataclass(frozen=True)
class SplitResult:
    """Probes of one split and the held-out metrics of every layer and both controls."""

    split: ProbeSplit
    probes: list[LayerProbe]
    layer_metrics: list[dict[str, float]]  # one per layer
    control_metrics: dict[str, dict[str, float]]  # "length", "tfidf"
    train_scores: np.ndarray  # [n_train, L] out-of-fold margins of split.train_rows, in order


def layer_spectrum(states: np.ndarray, layer: int, rows: np.ndarray, device=None):
    """The torch solver's preconditioner for one layer: the spectrum of its states' correlations
    over `rows`. It holds no labels and only sets how fast the solves converge, not where they
    end, so one layer's splits can share it."""
    x = torch.as_tensor(layer_rows(states, layer, rows)).to(solver_device(device))
    return linear_svm.Spectrum.of(x)


def fit_layer_splits(
    states: np.ndarray,
    layer: int,
    is_safe: np.ndarray,
    groups: np.ndarray,
    splits: Sequence[ProbeSplit],
    *,
    c_grid: Sequence[float],
    folds: int,
    max_iter: int,
    seed: int,
    solver: str = "sklearn",
    device: str | None = None,
) -> list[tuple[LayerProbe, np.ndarray]]:
    """One layer's probe and out-of-fold training margins (`probe_with_margins`) on each split's
    training rows. With the torch solver the layer's preconditioner (`layer_spectrum`, over the
    rows any split trains on) is built once for all the splits: after the solves themselves it
    is the costliest step of a layer."""
    spectrum = None
    if solver == "torch":
        trained_on = np.unique(np.concatenate([split.train_rows for split in splits]))
        spectrum = layer_spectrum(states, layer, trained_on, device)
    return [
        probe_with_margins(
            layer_rows(states, layer, split.train_rows),
            is_safe[split.train_rows],
            groups[split.train_rows],
            c_grid=c_grid,
            folds=folds,
            max_iter=max_iter,
            seed=seed,
            solver=solver,
            device=device,
            spectrum=spectrum,
        )
        for split in splits
    ]


def evaluate_splits(
    states: np.ndarray,
    examples: Sequence,
    splits: Sequence[ProbeSplit],
    *,
    c_grid: Sequence[float],
    folds: int,
    max_iter: int,
    seed: int,
    solver: str = "sklearn",
    device: str | None = None,
    progress: bool = False,
) -> list[SplitResult]:
    """For each split, fit every layer's probe on its training rows and score its test rows; same
    for the two text-only controls. `states [n, L, d]` may be float16 (memory-mapped): each
    layer's rows are upcast to float32 when that layer is fit.

    The work goes layer by layer, every split within a layer (`fit_layer_splits`)."""
    is_safe = np.array([e.is_safe for e in examples])
    groups = np.array([e.prompt for e in examples], dtype=object)
    texts = [e.response for e in examples]
    fit = dict(c_grid=c_grid, folds=folds, max_iter=max_iter, seed=seed, solver=solver)
    by_layer = [
        fit_layer_splits(states, i, is_safe, groups, splits, **fit, device=device)
        for i in tqdm(
            range(states.shape[1]),
            desc=f"probes ({len(splits)} splits)",
            unit="layer",
            disable=not progress,
            leave=False,
        )
    ]
    fitted = list(zip(*by_layer, strict=True))
    results = []
    for split, layer_fits in zip(splits, fitted, strict=True):
        train, test = split.train_rows, split.test_rows
        probes = [probe for probe, _ in layer_fits]
        layer_metrics = [
            classification_metrics(is_safe[test], probe.margin(layer_rows(states, i, test)))
            for i, probe in enumerate(probes)
        ]
        train_scores = np.stack([margins for _, margins in layer_fits], axis=1)
        controls = {
            "length": length_control_scores(texts, is_safe, train, test),
            "tfidf": tfidf_control_scores(
                texts, is_safe, groups, train, test, folds=folds, seed=seed
            ),
        }
        control_metrics = {
            name: classification_metrics(is_safe[test], score) for name, score in controls.items()
        }
        results.append(SplitResult(split, probes, layer_metrics, control_metrics, train_scores))
    return results


def evaluate_split(states: np.ndarray, examples: Sequence, split: ProbeSplit, **fit) -> SplitResult:
    """`evaluate_splits` for one split."""
    return evaluate_splits(states, examples, [split], **fit)[0]


def pair_rows(examples: Sequence, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the chosen and of the rejected response of every pair whose both sides are in
    `rows` (example ids are `<pair_id>:chosen` / `<pair_id>:rejected`)."""
    index = {e.example_id: i for i, e in enumerate(examples)}
    members = set(np.asarray(rows).tolist())
    chosen, rejected = [], []
    for row in sorted(members):
        pair_id, side = examples[row].example_id.rsplit(":", 1)
        other = index.get(f"{pair_id}:rejected")
        if side == "chosen" and other in members:
            chosen.append(row)
            rejected.append(other)
    return np.array(chosen, dtype=np.int64), np.array(rejected, dtype=np.int64)


def save_probe_sets(results: Sequence[SplitResult], layers: Sequence[int], path_stem) -> Saved:
    """Every split's probes as `<stem>.safetensors` (`[k, L, d]` stacks) plus `<stem>.json` (the
    layers, each split's seed, rows and chosen C)."""
    stem = Path(path_stem)
    tensors = {
        name: torch.tensor(np.stack([[getattr(p, name) for p in r.probes] for r in results]))
        for name in ("mean", "scale", "weight", "bias", "c")
    }
    tensors.update({f"train_scores_{r.split.index}": torch.tensor(r.train_scores) for r in results})
    weights = stem.with_suffix(".safetensors")
    with atomic_path(weights) as tmp:
        save_file({k: v.to(torch.float64).contiguous() for k, v in tensors.items()}, tmp)
    index = {
        "layers": list(layers),
        "splits": [
            {
                "index": r.split.index,
                "seed": r.split.seed,
                "train_rows": r.split.train_rows.tolist(),
                "test_rows": r.split.test_rows.tolist(),
            }
            for r in results
        ],
    }
    return Saved((weights, write_json(stem.with_suffix(".json"), index)))


@dataclass(frozen=True)
class ProbeSet:
    """One split's probes as notebook 02 saved them, for notebook 03."""

    split: ProbeSplit
    probes: list[LayerProbe]
    train_scores: np.ndarray  # [n_train, L] out-of-fold margins of split.train_rows


PROBE_TENSORS = ("mean", "scale", "weight", "bias", "c")


def _read_probe_tensors(path: Path, split_indices: Sequence[int]) -> dict[str, np.ndarray]:
    """The tensors `save_probe_sets` wrote; a file that isn't them is an error naming it."""
    require_artifact(path, producer="02_probes")
    try:
        tensors = {k: v.numpy() for k, v in load_file(path).items()}
    except (SafetensorError, OSError) as error:
        problem = f"not a safetensors file ({error})"
        raise corrupt_artifact(path, problem, producer="02_probes") from None
    expected = {*PROBE_TENSORS, *(f"train_scores_{i}" for i in split_indices)}
    if missing := sorted(expected - set(tensors)):
        raise corrupt_artifact(path, f"tensors {missing} missing", producer="02_probes")
    return tensors


def load_probe_sets(path_stem) -> tuple[list[int], list[ProbeSet]]:
    """The layers and every split's `ProbeSet`, as `save_probe_sets` wrote them."""
    stem = Path(path_stem)
    index = read_json(stem.with_suffix(".json"), producer="02_probes")
    split_indices = [split["index"] for split in index["splits"]]
    tensors = _read_probe_tensors(stem.with_suffix(".safetensors"), split_indices)
    sets = []
    for k, split in enumerate(index["splits"]):
        probe_split = ProbeSplit(
            split["index"],
            split["seed"],
            np.array(split["train_rows"], dtype=np.int64),
            np.array(split["test_rows"], dtype=np.int64),
        )
        probes = [
            LayerProbe(
                tensors["mean"][k, i],
                tensors["scale"][k, i],
                tensors["weight"][k, i],
                float(tensors["bias"][k, i]),
                float(tensors["c"][k, i]),
            )
            for i in range(len(index["layers"]))
        ]
        sets.append(ProbeSet(probe_split, probes, tensors[f"train_scores_{probe_split.index}"]))
    return index["layers"], sets
