"""The batched torch solver of LinearSVC's problem, against liblinear and against its optimality
conditions written out by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from repsafe_lib import linear_svm


def ill_conditioned_states(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A few loud directions over quiet noise, a planted class direction, and dimensions on very
    different scales: correlations spanning orders of magnitude, like a transformer's states."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    basis = rng.normal(size=(4, d)) * np.array([[4.0], [2.0], [1.0], [0.5]])
    x = rng.normal(size=(n, 4)) @ basis + 0.05 * rng.normal(size=(n, d))
    direction = rng.normal(size=d) / np.sqrt(d)
    x += np.outer(0.8 * y + rng.normal(size=n), direction)
    x[:, :2] *= 100
    return x, y


def batch_of(x, problems, dtype=torch.float64) -> linear_svm.SvmBatch:
    """problems: (C, row mask, mean, scale) tuples."""

    def stack(values):
        return torch.tensor(np.stack(values), dtype=dtype)

    return linear_svm.SvmBatch(
        rows=stack([p[1].astype(float) for p in problems]),
        c=torch.tensor([p[0] for p in problems], dtype=dtype),
        mean=stack([p[2] for p in problems]),
        scale=stack([p[3] for p in problems]),
    )


def liblinear(z: np.ndarray, y: np.ndarray, c: float) -> LinearSVC:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LinearSVC(C=c, tol=1e-10, max_iter=200_000).fit(z, y)


@pytest.mark.parametrize("c", [1e-3, 0.1, 2.0])
@pytest.mark.parametrize("preconditioned", [False, True])
def test_solution_is_liblinears(c, preconditioned):
    x, y = ill_conditioned_states(200, 12, seed=1)
    mean, scale = x.mean(0), x.std(0)
    batch = batch_of(x, [(c, np.ones(len(x), bool), mean, scale)])
    xt = torch.tensor(x)
    spectrum = linear_svm.Spectrum.of(xt, batch.mean[0], batch.scale[0]) if preconditioned else None
    solution = linear_svm.solve(xt, torch.tensor(y), batch, tolerance=1e-10, spectrum=spectrum)
    assert solution.converged.all()
    svm = liblinear((x - mean) / scale, y, c)
    np.testing.assert_allclose(solution.weight[0].numpy(), svm.coef_[0], atol=1e-6, rtol=1e-5)
    assert float(solution.bias[0]) == pytest.approx(svm.intercept_[0], abs=1e-6)


def test_gradient_vanishes_at_the_solution():
    """The objective's gradient, written out in numpy: w + 2C sum_i -y_i z_i max(0, 1 - y_i f_i),
    and the same with z_i -> 1 for the bias (the intercept is a regularised weight)."""
    x, y = ill_conditioned_states(150, 6, seed=2)
    rows = np.arange(150) % 3 != 0
    mean, scale = x[rows].mean(0), x[rows].std(0)
    c = 0.5
    batch = batch_of(x, [(c, rows, mean, scale)])
    solution = linear_svm.solve(torch.tensor(x), torch.tensor(y), batch, tolerance=1e-12)
    w, b = solution.weight[0].numpy(), float(solution.bias[0])
    z = (x[rows] - mean) / scale
    slack = np.maximum(0.0, 1 - y[rows] * (z @ w + b))
    grad_w = w - 2 * c * (z * (y[rows] * slack)[:, None]).sum(0)
    grad_b = b - 2 * c * (y[rows] * slack).sum()
    assert np.abs(grad_w).max() < 1e-8 and abs(grad_b) < 1e-8
    assert (slack > 0).sum() > 10  # the test means something: many rows inside the margin


def test_a_batch_solves_each_problem_as_if_alone():
    """Different rows, C and standardisation per problem; one already-solved problem (C tiny)
    must stay put while the others keep stepping."""
    x, y = ill_conditioned_states(240, 10, seed=3)
    rng = np.random.default_rng(0)
    problems = []
    for c in (1e-6, 0.01, 1.0):
        rows = rng.random(240) < 0.7
        problems.append((c, rows, x[rows].mean(0), x[rows].std(0)))
    xt, yt = torch.tensor(x), torch.tensor(y)
    together = linear_svm.solve(xt, yt, batch_of(x, problems), tolerance=1e-10)
    assert torch.isfinite(together.weight).all()
    for k, problem in enumerate(problems):
        alone = linear_svm.solve(xt, yt, batch_of(x, [problem]), tolerance=1e-10)
        torch.testing.assert_close(together.weight[k], alone.weight[0], atol=1e-7, rtol=1e-6)
        torch.testing.assert_close(together.bias[k], alone.bias[0], atol=1e-7, rtol=1e-6)


def test_preconditioner_cuts_hessian_products_not_accuracy():
    x, y = ill_conditioned_states(400, 60, seed=4)
    mean, scale = x.mean(0), x.std(0)
    folds = np.arange(400) % 3
    problems = [(c, folds != f, mean, scale) for c in (0.01, 1.0) for f in range(3)]
    xt, yt, batch = torch.tensor(x), torch.tensor(y), batch_of(x, problems)
    plain = linear_svm.solve(xt, yt, batch, tolerance=1e-9)
    spectrum = linear_svm.Spectrum.of(xt, batch.mean[0], batch.scale[0])
    preconditioned = linear_svm.solve(xt, yt, batch, tolerance=1e-9, spectrum=spectrum)
    assert plain.converged.all() and preconditioned.converged.all()
    assert preconditioned.hessian_products * 3 < plain.hessian_products
    torch.testing.assert_close(preconditioned.weight, plain.weight, atol=1e-6, rtol=1e-5)


def test_float32_stops_at_its_resolution_and_agrees_with_liblinear():
    x, y = ill_conditioned_states(300, 40, seed=5)
    mean, scale = x.mean(0), x.std(0)
    batch = batch_of(x, [(1.0, np.ones(300, bool), mean, scale)], dtype=torch.float32)
    xt = torch.tensor(x, dtype=torch.float32)
    spectrum = linear_svm.Spectrum.of(xt, batch.mean[0], batch.scale[0])
    solution = linear_svm.solve(xt, torch.tensor(y, dtype=torch.float32), batch, spectrum=spectrum)
    assert solution.newton_steps < linear_svm.MAX_NEWTON_STEPS
    margins = linear_svm.margins(xt, batch, solution)[:, 0].double().numpy()
    expected = liblinear((x - mean) / scale, y, 1.0).decision_function((x - mean) / scale)
    assert np.corrcoef(margins, expected)[0, 1] > 0.99999
    assert np.array_equal(margins > 0, expected > 0)
