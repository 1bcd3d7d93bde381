"""Per-layer probes, their splits, metrics and text-only controls (Fig 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.svm import LinearSVC
from synthetic_states import FIT, separable_states, synthetic_examples

from repsafe_lib import probes


def test_classification_metrics_by_hand():
    is_safe = np.array([True, True, False, False, False])
    safe_score = np.array([1.0, -0.5, -2.0, 0.3, -1.0])
    # flagged unsafe (score <= 0): rows 1, 2, 4 -> 2 of 3 truly unsafe; 2 of 3 unsafe found
    metrics = probes.classification_metrics(is_safe, safe_score)
    assert metrics["precision_unsafe"] == pytest.approx(2 / 3)
    assert metrics["recall_unsafe"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # AUROC, unsafe positive, score -safe_score: unsafe {2, -0.3, 1} vs safe {-1, 0.5}
    # pairs won: 2>-1, 2>0.5, -0.3>-1, 1>-1, 1>0.5 -> 5 of 6
    assert metrics["auroc"] == pytest.approx(5 / 6)


def test_metrics_when_nothing_is_flagged_or_a_class_is_missing():
    metrics = probes.classification_metrics(np.array([True, False]), np.array([1.0, 1.0]))
    assert metrics["precision_unsafe"] == 0.0 and metrics["recall_unsafe"] == 0.0
    assert np.isnan(probes.classification_metrics(np.array([True]), np.array([1.0]))["auroc"])


def test_probe_reaches_accuracy_one_on_separable_states():
    examples = synthetic_examples(80)
    is_safe = np.array([e.is_safe for e in examples])
    states = separable_states(is_safe)
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    result = probes.evaluate_split(states, examples, split, **FIT)
    assert [m["accuracy"] for m in result.layer_metrics] == [1.0, 1.0, 1.0]
    assert [m["auroc"] for m in result.layer_metrics] == [1.0, 1.0, 1.0]


def test_probe_is_at_chance_on_shuffled_labels():
    examples = synthetic_examples(200, seed=1)
    is_safe = np.array([e.is_safe for e in examples])
    states = separable_states(np.random.default_rng(5).permutation(is_safe), layers=1)
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    result = probes.evaluate_split(states, examples, split, **FIT)
    assert abs(result.layer_metrics[0]["accuracy"] - 0.5) < 0.12


def test_probe_margin_is_the_svm_decision_function():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(60, 8)) * 3 + 1
    is_safe = states[:, 0] + 0.3 * rng.normal(size=60) > 1
    probe = probes.fit_layer_probe(
        states, is_safe, np.arange(60), c_grid=(0.5,), folds=3, max_iter=10000, seed=0
    )
    z = (states - states.mean(0)) / states.std(0)
    svm = LinearSVC(C=0.5, max_iter=10000, random_state=0).fit(z, np.where(is_safe, 1, -1))
    np.testing.assert_allclose(probe.margin(states), svm.decision_function(z), atol=1e-9)


def test_constant_layer_does_not_crash():
    examples = synthetic_examples(40)
    is_safe = np.array([e.is_safe for e in examples])
    states = separable_states(is_safe)
    states[:, 1] = 0.25
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    result = probes.evaluate_split(states, examples, split, **FIT)
    constant = result.probes[1]
    assert np.all(constant.weight == 0) and np.all(constant.scale == 1)
    assert 0.0 <= result.layer_metrics[1]["accuracy"] <= 1.0


def test_select_c_takes_the_best_mean_validation_accuracy():
    folds = [(np.arange(2), np.arange(2)), (np.arange(2), np.arange(2, 4))]
    scores = {0.01: [0.6, 0.8], 0.1: [0.9, 0.75], 1.0: [0.7, 0.7]}

    def score(c, fit, val):
        return scores[c][0 if val[0] == 0 else 1]

    assert probes.select_c(score, [1.0, 0.1, 0.01], folds) == 0.1


def test_select_c_breaks_ties_towards_the_smaller_c():
    folds = [(np.arange(2), np.arange(2))]
    assert probes.select_c(lambda c, fit, val: 0.8, [1.0, 0.01, 0.1], folds) == 0.01


def test_split_zero_is_the_tagged_split_and_others_keep_prompts_apart():
    examples = synthetic_examples(40)
    splits = probes.probe_splits(examples, num_splits=3, test_fraction=0.25, seed=7)
    tagged_test = [i for i, e in enumerate(examples) if e.split == "test"]
    assert splits[0].test_rows.tolist() == tagged_test and splits[0].seed is None
    assert [s.seed for s in splits[1:]] == [8, 9]
    assert splits[1].test_rows.tolist() != splits[2].test_rows.tolist()
    for split in splits:
        assert sorted([*split.train_rows, *split.test_rows]) == list(range(len(examples)))
        train_prompts = {examples[i].prompt for i in split.train_rows}
        assert not train_prompts & {examples[i].prompt for i in split.test_rows}


def test_pair_rows_keeps_only_complete_pairs():
    examples = synthetic_examples(4)
    chosen, rejected = probes.pair_rows(examples, np.array([0, 1, 2, 5, 6, 7]))
    assert chosen.tolist() == [0, 6] and rejected.tolist() == [1, 7]


def test_tfidf_control_finds_a_word_cue_and_length_control_finds_length():
    examples = synthetic_examples(60)
    texts = [e.response for e in examples]
    is_safe = np.array([e.is_safe for e in examples])
    groups = np.array([e.prompt for e in examples])
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    tfidf = probes.tfidf_control_scores(
        texts, is_safe, groups, split.train_rows, split.test_rows, folds=3, seed=0
    )
    assert probes.classification_metrics(is_safe[split.test_rows], tfidf)["accuracy"] == 1.0
    # same words, but unsafe responses are three times longer
    long_texts = [
        ("word " * (3 * len(t.split()) if not s else len(t.split())))
        for t, s in zip(texts, is_safe, strict=True)
    ]
    length = probes.length_control_scores(long_texts, is_safe, split.train_rows, split.test_rows)
    assert probes.classification_metrics(is_safe[split.test_rows], length)["accuracy"] > 0.7
    length_alone = probes.length_control_scores(texts, is_safe, split.train_rows, split.test_rows)
    assert probes.classification_metrics(is_safe[split.test_rows], length_alone)["accuracy"] < 0.7


def test_probe_sets_round_trip(tmp_path):
    examples = synthetic_examples(40)
    is_safe = np.array([e.is_safe for e in examples])
    states = separable_states(is_safe)
    splits = probes.probe_splits(examples, num_splits=2, test_fraction=0.25, seed=0)
    results = [probes.evaluate_split(states, examples, s, **FIT) for s in splits]
    probes.save_probe_sets(results, [1, 2, 3], tmp_path / "probes")
    layers, sets = probes.load_probe_sets(tmp_path / "probes")
    assert layers == [1, 2, 3]
    for result, loaded in zip(results, sets, strict=True):
        assert loaded.split.test_rows.tolist() == result.split.test_rows.tolist()
        np.testing.assert_array_equal(loaded.train_scores, result.train_scores)
        for original, copy in zip(result.probes, loaded.probes, strict=True):
            np.testing.assert_array_equal(copy.margin(states[:, 0]), original.margin(states[:, 0]))
            assert copy.c == original.c


def test_out_of_fold_margins_come_from_probes_that_never_saw_the_row():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(30, 5))
    is_safe = np.arange(30) % 2 == 0
    groups = np.arange(30) // 2  # 15 prompts, two responses each
    margins = probes.out_of_fold_margins(
        states, is_safe, groups, c=0.5, folds=3, max_iter=10000, seed=0
    )
    for fit, held_out in probes.inner_folds(groups, 3):
        mean, scale = probes.standardiser(states[fit])
        svm = LinearSVC(C=0.5, max_iter=10000, random_state=0).fit(
            (states[fit] - mean) / scale, np.where(is_safe[fit], 1, -1)
        )
        expected = svm.decision_function((states[held_out] - mean) / scale)
        np.testing.assert_allclose(margins[held_out], expected, atol=1e-12)


def test_out_of_fold_scores_are_worse_than_in_sample_on_noise():
    """On pure noise a probe fits its own training rows but not held-out ones: the out-of-fold
    scores show it, the in-sample ones hide it."""
    examples = synthetic_examples(60, seed=4)
    is_safe = np.array([e.is_safe for e in examples])
    states = np.random.default_rng(4).normal(size=(len(is_safe), 1, 200))
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    result = probes.evaluate_split(states, examples, split, **FIT)
    train_safe = is_safe[split.train_rows]
    in_sample = result.probes[0].margin(states[split.train_rows, 0])
    assert np.mean((in_sample > 0) == train_safe) > 0.95
    assert abs(np.mean((result.train_scores[:, 0] > 0) == train_safe) - 0.5) < 0.15


def test_torch_solver_reaches_sklearns_probes():
    """Same problem, two solvers: the same C per layer, the same held-out predictions, margins
    and out-of-fold margins that agree to float32 precision."""
    examples = synthetic_examples(120, seed=6)
    is_safe = np.array([e.is_safe for e in examples])
    rng = np.random.default_rng(6)
    states = separable_states(is_safe, layers=2, d=24, seed=6) + rng.normal(size=(240, 2, 24)) * 2
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    fit = {**FIT, "c_grid": (1e-3, 1e-2, 1.0)}
    reference = probes.evaluate_split(states, examples, split, **fit)
    batched = probes.evaluate_split(states, examples, split, **fit, solver="torch", device="cpu")
    test = states[split.test_rows]
    for layer, (ours, theirs) in enumerate(zip(batched.probes, reference.probes, strict=True)):
        assert ours.c == theirs.c
        expected = theirs.margin(test[:, layer])
        np.testing.assert_allclose(ours.margin(test[:, layer]), expected, atol=2e-3, rtol=1e-3)
        assert np.array_equal(ours.margin(test[:, layer]) > 0, expected > 0)
    np.testing.assert_allclose(batched.train_scores, reference.train_scores, atol=2e-3, rtol=1e-3)
    assert batched.layer_metrics == reference.layer_metrics


@pytest.mark.parametrize("solver", probes.SOLVERS)
def test_splits_fit_together_as_each_alone(solver):
    """`evaluate_splits` goes layer by layer over every split; with the torch solver a layer's
    splits share one preconditioner, built on the rows any of them trains on. Each split's
    result is the one it gets alone: exactly with sklearn, to the solver's tolerance with torch
    (the preconditioner changes only how fast the solves converge)."""
    examples = synthetic_examples(150, seed=9)
    is_safe = np.array([e.is_safe for e in examples])
    rng = np.random.default_rng(9)
    states = separable_states(is_safe, layers=2, d=20, seed=9) + rng.normal(size=(300, 2, 20)) * 2
    splits = probes.probe_splits(examples, num_splits=3, test_fraction=0.25, seed=0)
    fit = {**FIT, "c_grid": (1e-3, 1e-2, 1.0), "solver": solver, "device": "cpu"}
    together = probes.evaluate_splits(states, examples, splits, **fit)
    exact = solver == "sklearn"
    for split, result in zip(splits, together, strict=True):
        alone = probes.evaluate_split(states, examples, split, **fit)
        assert result.split is split and result.control_metrics == alone.control_metrics
        for ours, theirs in zip(result.probes, alone.probes, strict=True):
            assert ours.c == theirs.c
            np.testing.assert_array_equal(ours.mean, theirs.mean)
            np.testing.assert_allclose(
                ours.weight, theirs.weight, rtol=0 if exact else 1e-4, atol=0 if exact else 1e-5
            )
        np.testing.assert_allclose(
            result.train_scores,
            alone.train_scores,
            rtol=0 if exact else 1e-4,
            atol=0 if exact else 1e-5,
        )
        assert result.layer_metrics == alone.layer_metrics


def test_torch_solver_handles_a_fold_with_one_class():
    examples = synthetic_examples(12, seed=7)
    is_safe = np.array([e.is_safe for e in examples])
    groups = np.array([e.prompt for e in examples], dtype=object)
    is_safe[:] = True
    is_safe[0] = False  # one unsafe row: the folds without it hold one class
    states = np.random.default_rng(7).normal(size=(len(is_safe), 5))
    fit = {**FIT, "c_grid": (1e-2, 1.0)}
    ours = probes.probe_with_margins(states, is_safe, groups, **fit, solver="torch", device="cpu")
    theirs = probes.probe_with_margins(states, is_safe, groups, **fit)
    assert ours[0].c == theirs[0].c
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-3)


def test_unknown_solver_is_refused():
    with pytest.raises(ValueError, match="probes.solver"):
        probes.probe_with_margins(
            np.zeros((4, 2)), np.array([1, 0, 1, 0], bool), np.arange(4), **FIT, solver="svm"
        )


@pytest.mark.parametrize("solver", probes.SOLVERS)
def test_float16_states_fit_as_their_float32_values(solver):
    """Memory-mapped float16 states (as notebook 01 caches them) give exactly the probes, margins
    and metrics of the same values held in float32: each layer is upcast as it is fit."""
    examples = synthetic_examples(60, seed=3)
    is_safe = np.array([e.is_safe for e in examples])
    half = torch.tensor(separable_states(is_safe, layers=2, d=12, seed=3)).half()
    split = probes.probe_splits(examples, num_splits=1, test_fraction=0.25, seed=0)[0]
    fit = {**FIT, "solver": solver, "device": "cpu"}
    from_half = probes.evaluate_split(half.numpy(), examples, split, **fit)
    from_float = probes.evaluate_split(half.float().numpy(), examples, split, **fit)
    for ours, theirs in zip(from_half.probes, from_float.probes, strict=True):
        assert ours.mean.dtype == theirs.mean.dtype
        for name in ("mean", "scale", "weight"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    np.testing.assert_array_equal(from_half.train_scores, from_float.train_scores)
    assert from_half.layer_metrics == from_float.layer_metrics
