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


def test_standardisations_are_each_row_sets_mean_and_spread():
    """Against numpy per set, in float64; a dimension constant on a set (and one constant only
    on part of the rows) gets spread exactly 1, as `probes.standardiser` gives it."""
    x, _ = ill_conditioned_states(500, 8, seed=6)
    x[:, 3] = 7.25
    x[::2, 5] = -1.5  # constant on the even rows only
    sets = np.stack([np.ones(500, bool), np.arange(500) % 2 == 0, np.arange(500) % 3 != 1])
    means, spreads = linear_svm.standardisations(
        torch.tensor(x), torch.tensor(sets, dtype=torch.float64), chunk=64
    )
    for k, rows in enumerate(sets):
        expected = x[rows].std(0)
        expected[expected == 0] = 1
        np.testing.assert_allclose(means[k].numpy(), x[rows].mean(0), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(spreads[k].numpy(), expected, rtol=1e-12)
    assert spreads[0, 3] == 1 and spreads[1, 3] == 1 and spreads[1, 5] == 1
    assert spreads[0, 5] != 1


def test_spectrum_defaults_to_the_rows_own_standardisation():
    x, _ = ill_conditioned_states(300, 10, seed=7)
    x[:, 4] = 3.0  # constant: spread 1, no NaN
    xt = torch.tensor(x)
    scale = np.where(x.std(0) > 0, x.std(0), 1.0)
    explicit = linear_svm.Spectrum.of(xt, torch.tensor(x.mean(0)), torch.tensor(scale))
    own = linear_svm.Spectrum.of(xt, chunk=64)
    torch.testing.assert_close(own.values, explicit.values, rtol=1e-10, atol=1e-12)
    correlation = np.corrcoef(np.delete(x, 4, axis=1), rowvar=False)
    kept = np.delete(np.arange(10), 4)
    rebuilt = (own.vectors * own.values) @ own.vectors.T
    np.testing.assert_allclose(rebuilt.numpy()[np.ix_(kept, kept)], correlation, atol=1e-10)


def objective_along(t, margins, along, y, rows, c, weight, bias, step_w, step_b):
    """The problem's objective at (w, b) + t * step, written out directly."""
    w, b = weight + t * step_w, bias + t * step_b
    slack = np.maximum(0.0, 1 - y * (margins + t * along)) * rows
    return 0.5 * (w @ w + b * b) + c * (slack**2).sum()


@pytest.mark.parametrize("seed", range(6))
def test_line_search_finds_the_minimum_along_the_step(seed):
    """Against a dense scan of the objective along the step (a convex piecewise quadratic with
    hundreds of kinks); a zero step stays at t = 0."""
    rng = np.random.default_rng(seed)
    n, d = 400, 5
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    rows = (rng.random(n) < 0.8).astype(float)
    c = 10.0 ** rng.uniform(-2, 1)
    weight, step_w = rng.normal(size=d), rng.normal(size=d)
    bias, step_b = rng.normal(), rng.normal()
    margins, along = rng.normal(size=n) * 2, rng.normal(size=n) * 3
    args = (margins, along, y, rows, c, weight, bias, step_w, step_b)
    # Make the step a descent direction, as a Newton step is.
    if objective_along(1e-6, *args) > objective_along(0, *args):
        step_w, step_b, along = -step_w, -step_b, -along
        args = (margins, along, y, rows, c, weight, bias, step_w, step_b)
    as_tensor = lambda values: torch.tensor(np.stack(values, axis=-1))  # noqa: E731
    t = linear_svm._line_search(
        as_tensor([margins, margins]),
        as_tensor([along, np.zeros(n)]),
        torch.tensor(y),
        as_tensor([rows, rows]),
        torch.tensor([c, c]),
        torch.tensor([weight @ step_w + bias * step_b, 0.0]),
        torch.tensor([step_w @ step_w + step_b**2, 0.0]),
    )
    scan = np.linspace(0, 3 * max(float(t[0]), 1e-3), 30001)
    values = [objective_along(s, *args) for s in scan]
    best = scan[int(np.argmin(values))]
    assert float(t[0]) == pytest.approx(best, abs=scan[1] * 1.01)
    assert objective_along(float(t[0]), *args) <= min(values) + 1e-9 * abs(min(values))
    assert float(t[1]) == 0


def test_margins_and_blocked_products_match_direct_computation(monkeypatch):
    """The solver's running margins equal a fresh pass over the states; the Hessian product in
    row blocks equals the two whole products it replaces."""
    x, y = ill_conditioned_states(300, 12, seed=8)
    rows = np.arange(300) % 4 != 0
    problems = [(c, rows, x[rows].mean(0), x[rows].std(0)) for c in (0.01, 3.0)]
    xt, batch = torch.tensor(x), batch_of(x, problems)
    solution = linear_svm.solve(xt, torch.tensor(y), batch, tolerance=1e-10)
    assert solution.newton_steps > 2
    torch.testing.assert_close(
        solution.margins, linear_svm.margins(xt, batch, solution), rtol=1e-10, atol=1e-10
    )
    monkeypatch.setattr(linear_svm, "NORMAL_BLOCK_ELEMENTS", 12 * 7)  # blocks of 7 rows
    op = linear_svm._Operator(xt, batch)
    weighting = torch.rand(300, 2, dtype=torch.float64)
    v_w, v_b = torch.randn(2, 12, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    blocked = op.weighted_normal(weighting, v_w, v_b)
    whole = op.transpose(weighting * op.forward(v_w, v_b))
    torch.testing.assert_close(blocked, whole, rtol=1e-12, atol=1e-12)
