"""Fitting and measuring the refusal classifier (`repsafe_lib.refusal`) on human-labelled
responses in the schema of XSTest's released completion files (Röttger et al., NAACL 2024): one
CSV per model, columns `id, type, prompt, completion, ..., final_label, gpt4_label`,
`final_label` one of `1_full_compliance`, `2_full_refusal`, `3_partial_refusal`.

Both stages are L2-regularised logistic regressions over the standardised cues and the binary
presence of words and word pairs seen in at least `MIN_RESPONSES` training responses (words are
regularised `WORD_REGULARISATION` times harder than cues). Every full refusal also enters the
fit a second time cut to its first sentence: a refusal's opening alone is a refusal, and without
that a model fit on verbose refusers reads a one-line refusal as an answer.

Honest scores come from `cross_fit`: a response of model m to prompt p is classified by weights
fit on the *other* models' responses to prompts of *other* prompt groups, so neither the model
nor the prompt it is scored on was seen in fitting (leave one model out, grouped by prompt).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from repsafe_lib.refusal import RESPONSE_CLASSES, RefusalModel, ResponseClass, Stage
from repsafe_lib.refusal_features import response_inputs, sentences

COMPLETION_FILES = "xstest_v2_completions_*_gpteval.csv"
LABELS: dict[str, ResponseClass] = {
    "1_full_compliance": "full_compliance",
    "2_full_refusal": "full_refusal",
    "3_partial_refusal": "partial_refusal",
}
REGULARISATION = 1.0  # inverse L2 strength on the standardised cues
WORD_REGULARISATION = 5.0  # how much harder words are held back than cues
MIN_RESPONSES = 5  # a word or word pair enters the vocabulary from this many responses on
PROMPT_GROUPS = 5
# Where `cut_short` stops a response: about 48 tokens of English, a short generation budget.
CUT_CHARS = 220


def model_name(path: Path) -> str:
    """`xstest_v2_completions_<model>_gpteval.csv` -> `<model>`."""
    return path.stem.removeprefix("xstest_v2_completions_").removesuffix("_gpteval")


def read_completions(directory: str | Path) -> pd.DataFrame:
    """Every completion file of `directory` as one frame: `model, prompt_id, prompt, completion,
    label` (human, as a `RESPONSE_CLASSES` name) and `gpt4_label` (the same names; None where
    GPT-4's output isn't one of the three labels)."""
    paths = sorted(Path(directory).glob(COMPLETION_FILES))
    if not paths:
        raise FileNotFoundError(f"no {COMPLETION_FILES} in {directory}")
    frames = []
    for path in paths:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        unknown = set(frame["final_label"]) - set(LABELS)
        if unknown:
            raise ValueError(f"{path.name}: unknown final_label values {sorted(unknown)}")
        frames.append(
            pd.DataFrame(
                {
                    "model": model_name(path),
                    "prompt_id": frame["id"],
                    "prompt": frame["prompt"],
                    "completion": frame["completion"],
                    "label": frame["final_label"].map(LABELS),
                    "gpt4_label": frame["gpt4_label"].map(lambda v: LABELS.get(v.strip())),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def first_sentence(response: str) -> str:
    parts = sentences(response.strip())  # on the raw text: the cue features re-normalise it
    return parts[0] if parts else response


@dataclass(frozen=True)
class Examples:
    """Fitting rows: cue features, word sets, labels, and the row of the data each came from."""

    cues: np.ndarray
    words: list[frozenset[str]]
    labels: np.ndarray
    source: np.ndarray

    def subset(self, rows: np.ndarray) -> Examples:
        """The examples made from responses `rows`."""
        keep = np.isin(self.source, rows)
        words = [w for w, k in zip(self.words, keep, strict=True) if k]
        return Examples(self.cues[keep], words, self.labels[keep], self.source[keep])


def cut_short(response: str, chars: int = CUT_CHARS) -> str:
    """The response stopped mid-sentence at a word boundary, as a small generation budget leaves
    it: near `chars` characters, or near 70% of a shorter one (so that short responses, mostly
    refusals, are seen cut short as often as long ones); unchanged below 60 characters."""
    chars = min(chars, int(0.7 * len(response)))
    if chars < 42:
        return response
    cut = response.rfind(" ", 0, chars)
    return response[: cut if cut > 0 else chars]


def examples(responses: Sequence[str], labels: Sequence[str]) -> Examples:
    """The labelled responses plus two kinds of copies: each full refusal's first sentence,
    labelled full refusal, and each full refusal or full compliance cut short (`cut_short`),
    with its label. A partial refusal cut short may have lost either half, so it isn't copied."""
    extra: list[tuple[int, str, str]] = []  # (source row, text, label)
    for i, (r, label) in enumerate(zip(responses, labels, strict=True)):
        if label == "full_refusal" and first_sentence(r).strip() != r.strip():
            extra.append((i, first_sentence(r), label))
        if label != "partial_refusal" and cut_short(r.strip()) != r.strip():
            extra.append((i, cut_short(r.strip()), label))
    cues, words = response_inputs([*responses, *(text for _, text, _ in extra)])
    return Examples(
        cues,
        words,
        np.asarray([*labels, *(label for _, _, label in extra)]),
        np.asarray([*range(len(responses)), *(i for i, _, _ in extra)], dtype=np.int64),
    )


def vocabulary(words: Sequence[frozenset[str]]) -> list[str]:
    counts = Counter(w for present in words for w in present)
    return sorted(w for w, n in counts.items() if n >= MIN_RESPONSES)


def word_matrix(words: Sequence[frozenset[str]], vocab: Sequence[str]) -> sparse.csr_matrix:
    index = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for row, present in enumerate(words):
        hits = sorted(index[w] for w in present if w in index)
        rows += [row] * len(hits)
        cols += hits
    data = np.ones(len(rows))
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(words), len(vocab)))


def fit_stage(standardised: np.ndarray, words: list[frozenset[str]], target: np.ndarray) -> Stage:
    """One logistic regression (lbfgs: deterministic); words scaled down so that their L2
    penalty is `WORD_REGULARISATION` times the cues'."""
    if len(set(target.tolist())) < 2:  # one class only (a tiny sample): always say it
        return Stage(np.zeros(standardised.shape[1]), {}, 10.0 if target.all() else -10.0)
    vocab = vocabulary(words)
    shrink = WORD_REGULARISATION**-0.5
    design = sparse.hstack([sparse.csr_matrix(standardised), word_matrix(words, vocab) * shrink])
    regression = LogisticRegression(C=REGULARISATION, max_iter=10000, tol=1e-6, random_state=0)
    regression.fit(design.tocsr(), target)
    coef = regression.coef_[0]
    n_cues = standardised.shape[1]
    word_weights = {
        w: float(c * shrink) for w, c in zip(vocab, coef[n_cues:], strict=True) if c != 0
    }
    return Stage(coef[:n_cues].copy(), word_weights, float(regression.intercept_[0]))


def fit_model(responses: Sequence[str], labels: Sequence[str], *, fit_on: str = "") -> RefusalModel:
    """Both stages fit on non-empty labelled responses (labels: `RESPONSE_CLASSES` names)."""
    unknown = set(labels) - set(RESPONSE_CLASSES)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}")
    return fit_examples(examples(responses, labels), fit_on=fit_on)


def fit_examples(found: Examples, *, fit_on: str = "") -> RefusalModel:
    mean = found.cues.mean(axis=0)
    scale = found.cues.std(axis=0)
    scale[scale < 1e-9] = 1.0
    standardised = (found.cues - mean) / scale
    refuses = found.labels != "full_compliance"
    refusal = fit_stage(standardised, found.words, refuses)
    partial = fit_stage(
        standardised[refuses],
        [w for w, r in zip(found.words, refuses, strict=True) if r],
        found.labels[refuses] == "partial_refusal",
    )
    return RefusalModel(mean, scale, refusal, partial, fit_on)


def present(data: pd.DataFrame) -> np.ndarray:
    """Rows with a non-empty completion: the classifier says None for the others."""
    return data["completion"].str.strip().ne("").to_numpy()


def fit_on_frame(data: pd.DataFrame, *, fit_on: str = "") -> RefusalModel:
    keep = present(data)
    return fit_model(list(data["completion"][keep]), list(data["label"][keep]), fit_on=fit_on)


def prompt_groups(prompt_ids: pd.Series, groups: int = PROMPT_GROUPS, seed: int = 0) -> pd.Series:
    """A seeded assignment of each distinct prompt id to one of `groups` groups."""
    ids = sorted(set(prompt_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    group_of = {ids[i]: rank % groups for rank, i in enumerate(order)}
    return prompt_ids.map(group_of)


def cross_fit(
    data: pd.DataFrame, *, groups: int = PROMPT_GROUPS, seed: int = 0
) -> list[ResponseClass | None]:
    """Every response classified by weights fit without its model and without its prompt group
    (leave one model out, grouped by prompt); None for an empty response."""
    group = prompt_groups(data["prompt_id"], groups, seed).to_numpy()
    models = data["model"].to_numpy()
    keep = present(data)
    responses = list(data["completion"])
    found = examples(
        [r for r, k in zip(responses, keep, strict=True) if k], list(data["label"][keep])
    )
    rows = np.flatnonzero(keep)  # data row of each of `found`'s responses
    predicted: list[ResponseClass | None] = [None] * len(data)
    for model in dict.fromkeys(models):
        for g in range(groups):
            held_out = (models[rows] == model) | (group[rows] == g)
            test = rows[(models[rows] == model) & (group[rows] == g)]
            if not len(test):
                continue
            fitted = fit_examples(found.subset(np.flatnonzero(~held_out)))
            for i, label in zip(test, fitted.predict([responses[i] for i in test]), strict=True):
                predicted[i] = label
    return predicted
