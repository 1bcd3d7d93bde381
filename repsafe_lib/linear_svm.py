"""LinearSVC's optimisation problem, solved in torch for many problems on one layer at once.

Problem k, over the rows `i` of its subset `S_k` of one layer's states `x [n, d]`:

    minimise  0.5 * (|w|^2 + b^2) + C_k * sum_{i in S_k} max(0, 1 - y_i * (w . z_ik + b))^2
    with      z_ik = (x_i - mean_k) / scale_k

This is liblinear's L2-regularised squared-hinge primal with sklearn's `LinearSVC` defaults: the
intercept is a weight on a constant feature of value 1 (`intercept_scaling=1`), so it is
regularised like the others. The objective is strictly convex: both solvers reach the same
`(w, b)`, up to their stopping tolerances.

The solver is Newton's method on the generalised Hessian `I + 2 C Z_A^T Z_A` (`A`: rows inside the
margin), each Newton system solved by conjugate gradients, each step length by an exact line
search on the objective (piecewise quadratic along the step). The problems of a call share the
states and differ in C, rows and standardisation, so every product with the data is one matrix
product for all of them, and `z` is never formed: `Z_k u = x (u / scale_k) - (mean_k / scale_k) . u`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Relative gradient norm at which a problem counts as solved. liblinear stops near 1e-4 x a
# class-balance factor; a tighter stop makes this solver's margins agree with a converged liblinear.
DEFAULT_TOLERANCE = 1e-6
MAX_NEWTON_STEPS = 200
MAX_CG_STEPS = 250
LINE_SEARCH_STEPS = 50
# Rows per block of a Hessian product: 64 MB of float32 states, about what a cache holds.
NORMAL_BLOCK_ELEMENTS = 1 << 24
# How close (relative) a step length must come to the minimiser along the step: it then gives up
# about (1e-5)^2 of the step's decrease in the objective.
LINE_SEARCH_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SvmBatch:
    """K problems on the same states `[n, d]`: which rows each uses, its C and standardisation."""

    rows: torch.Tensor  # [K, n] float, 1 where the row belongs to the problem, else 0
    c: torch.Tensor  # [K]
    mean: torch.Tensor  # [K, d]
    scale: torch.Tensor  # [K, d]


@dataclass(frozen=True)
class SvmSolution:
    weight: torch.Tensor  # [K, d], in standardised space
    bias: torch.Tensor  # [K]
    newton_steps: int
    hessian_products: int
    converged: torch.Tensor  # [K] bool
    margins: torch.Tensor  # [n, K]: every row's margin under every problem's solution


class _Operator:
    """Products of the K standardised design matrices (plus the constant column) with vectors."""

    def __init__(self, x: torch.Tensor, batch: SvmBatch):
        self.x = x
        self.mean, self.scale = batch.mean, batch.scale

    def forward(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`[n, K]`: `z_ik . w_k + b_k` for every row and problem."""
        u = weight / self.scale
        return self.x @ u.T + (bias - (self.mean * u).sum(1))

    def transpose(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`sum_i r_ik z_ik` (`[K, d]`) and `sum_i r_ik` (`[K]`) for `r [n, K]`."""
        totals = r.sum(0)
        # [K, n] @ [n, d]: a row-major product; `x.T @ r` is many times slower on CPU for small K
        weighted = r.T.contiguous() @ self.x
        return weighted.sub_(self.mean * totals[:, None]).div_(self.scale), totals

    def weighted_normal(
        self, weighting: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`transpose(weighting * forward(weight, bias))`, a block of rows at a time: the states
        are far larger than any cache and the products are bound by reading them, so each block
        serves both products while it is still in cache (5-10 % faster at n = 45k, d = 4,096, on a CPU)."""
        u = weight / self.scale
        offset = bias - (self.mean * u).sum(1)
        weighted, totals = torch.zeros_like(weight), torch.zeros_like(bias)
        rows = max(1, NORMAL_BLOCK_ELEMENTS // self.x.shape[1])
        for start in range(0, self.x.shape[0], rows):
            block = self.x[start : start + rows]
            r = (block @ u.T + offset).mul_(weighting[start : start + rows])
            totals += r.sum(0)
            weighted.addmm_(r.T, block)
        return weighted.sub_(self.mean * totals[:, None]).div_(self.scale), totals


def _squared_norms(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return (weight * weight).sum(1) + bias * bias


def _dot(
    a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    return (a[0] * b[0]).sum(1) + a[1] * b[1]


def standardisations(
    x: torch.Tensor, row_sets: torch.Tensor, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and spread (population) `[S, d]` of the rows of each set `[S, n]` (0/1)
    of `x [n, d]`, in float64, in one pass over `x`. A dimension constant on a set gets spread 1.

    Sums are taken about the first row: an offset of a spread or so from the mean costs nothing of
    float64's precision, and a constant dimension sums exactly to zero. Small chunks keep each
    float64 copy in cache (4x faster than 4,096 rows here)."""
    sets = row_sets.to(torch.float64)
    origin = x[0].to(torch.float64)
    first = torch.zeros((sets.shape[0], x.shape[1]), dtype=torch.float64, device=x.device)
    second = torch.zeros_like(first)
    for start in range(0, x.shape[0], chunk):
        offset = x[start : start + chunk].to(torch.float64) - origin
        members = sets[:, start : start + chunk]
        first.addmm_(members, offset)
        second.addmm_(members, offset.mul_(offset))
    counts = sets.sum(1, keepdim=True)
    shift = first / counts
    variance = (second / counts - shift * shift).clamp_min(0)
    spread = variance.sqrt()
    return origin + shift, torch.where(spread > 0, spread, torch.ones_like(spread))


@dataclass(frozen=True)
class Spectrum:
    """Eigenvectors `[d, d]` (columns) and eigenvalues `[d]` of the states' correlation matrix
    `Z^T Z / n` under one standardisation: the shape of every problem's Hessian, up to scale."""

    vectors: torch.Tensor
    values: torch.Tensor

    @classmethod
    def of(
        cls,
        x: torch.Tensor,
        mean: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        chunk: int = 8192,
    ):
        """From all rows of `x [n, d]` (a subsample of 8k rows doubled the conjugate-gradient
        steps at n = 45k, d = 4,096, and cost more than it saved), standardised by `mean` and
        `scale`, by default the rows' own (the spread from the centred Gram's diagonal)."""
        d = x.shape[1]
        if mean is None:
            mean = x.mean(0)
        gram = x.new_zeros((d, d))
        for start in range(0, x.shape[0], chunk):
            centred = x[start : start + chunk] - mean
            gram.addmm_(centred.T, centred)
        gram /= x.shape[0]
        if scale is None:
            spread = gram.diagonal().sqrt()
            scale = torch.where(spread > 0, spread, torch.ones_like(spread))
        gram /= scale[:, None] * scale[None, :]
        values, vectors = torch.linalg.eigh(gram)
        return cls(vectors, values.clamp_min(0))


class _Preconditioner:
    """`M_k = I + 2 C_k |A_k| R` with `R` the correlation matrix and `|A_k|` the rows inside the
    margin: what the Hessian `I + 2 C_k Z_A^T Z_A` would be if the rows inside the margin were
    spread like all rows. The states' correlations span orders of magnitude, so plain CG needs
    thousands of products; against `M_k` it needs tens."""

    def __init__(self, spectrum: Spectrum, weighting_total: torch.Tensor):
        self.vectors = spectrum.vectors
        self.w_factor = 1 / (1 + weighting_total[:, None] * spectrum.values)  # [K, d]
        self.b_factor = 1 / (1 + weighting_total)

    def __call__(self, r_w: torch.Tensor, r_b: torch.Tensor):
        return ((r_w @ self.vectors) * self.w_factor) @ self.vectors.T, r_b * self.b_factor


def _identity(r_w: torch.Tensor, r_b: torch.Tensor):
    return r_w, r_b


def _conjugate_gradients(
    hessian_times,
    gradient: tuple[torch.Tensor, torch.Tensor],
    forcing: torch.Tensor,
    precondition=_identity,
) -> tuple[tuple[torch.Tensor, torch.Tensor], int]:
    """Solve `H p = -g` for every problem, stopping each once `|H p + g| <= forcing * |g|`.
    Returns the step and the number of Hessian products taken."""
    tiny = torch.finfo(gradient[0].dtype).tiny
    step_w, step_b = torch.zeros_like(gradient[0]), torch.zeros_like(gradient[1])
    res_w, res_b = -gradient[0], -gradient[1]
    pre_w, pre_b = precondition(res_w, res_b)
    dir_w, dir_b = pre_w.clone(), pre_b.clone()
    res_sq = _dot((res_w, res_b), (res_w, res_b))
    res_pre = _dot((res_w, res_b), (pre_w, pre_b))
    target = (forcing**2) * res_sq
    products = 0
    while products < MAX_CG_STEPS:
        active = res_sq > target
        if not active.any():
            break
        hd_w, hd_b = hessian_times(dir_w, dir_b)
        products += 1
        curvature = _dot((dir_w, dir_b), (hd_w, hd_b))
        alpha = torch.where(active, res_pre / curvature.clamp_min(tiny), 0)
        step_w += alpha[:, None] * dir_w
        step_b += alpha * dir_b
        res_w -= alpha[:, None] * hd_w
        res_b -= alpha * hd_b
        pre_w, pre_b = precondition(res_w, res_b)
        new_pre = _dot((res_w, res_b), (pre_w, pre_b))
        beta = torch.where(active, new_pre / res_pre.clamp_min(tiny), 0)
        dir_w = pre_w + beta[:, None] * dir_w
        dir_b = pre_b + beta * dir_b
        res_pre = torch.where(active, new_pre, res_pre)
        res_sq = torch.where(active, _dot((res_w, res_b), (res_w, res_b)), res_sq)
    return (step_w, step_b), products


def _line_search(
    margins: torch.Tensor,
    along: torch.Tensor,
    y: torch.Tensor,
    rows: torch.Tensor,
    c: torch.Tensor,
    theta_dot_step: torch.Tensor,
    step_sq: torch.Tensor,
) -> torch.Tensor:
    """The minimiser `t >= 0` of the objective along the step, per problem, to a relative
    `LINE_SEARCH_TOLERANCE`: 1-D Newton on the convex piecewise quadratic, safeguarded by bisection
    inside the bracket that the slope's signs have narrowed to (plain Newton can cycle between two
    points either side of a row crossing the margin). A problem already solved takes a zero step
    and gets `t = 0`."""
    moving = step_sq > 0
    t = moving.to(c.dtype)
    low, high = torch.zeros_like(c), torch.full_like(c, torch.inf)
    for _ in range(LINE_SEARCH_STEPS):
        f = margins + t * along
        inside = rows * ((y[:, None] * f) < 1)
        slope = theta_dot_step + t * step_sq + 2 * c * (inside * (f - y[:, None]) * along).sum(0)
        curvature = step_sq + 2 * c * (inside * along * along).sum(0)
        low = torch.where(slope < 0, t, low)
        high = torch.where(slope > 0, t, high)
        newton = t - slope / torch.where(moving, curvature, 1)
        inside_bracket = (newton > low) & (newton < high)
        halfway = torch.where(high.isinf(), 2 * t, (low + high) / 2)
        t_next = torch.where(moving, torch.where(inside_bracket, newton, halfway), 0)
        arrived = ((t_next - t).abs() <= LINE_SEARCH_TOLERANCE * t) | (slope == 0)
        t = torch.where(slope == 0, t, t_next)
        if arrived[moving].all():
            break
    return t


def solve(
    x: torch.Tensor,
    y: torch.Tensor,
    batch: SvmBatch,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    initial: tuple[torch.Tensor, torch.Tensor] | None = None,
    spectrum: Spectrum | None = None,
) -> SvmSolution:
    """Solve the K problems of `batch` on states `x [n, d]` with labels `y [n]` in {-1, +1}.

    Every tensor must share `x`'s device and dtype. `initial` warm-starts `(weight, bias)`.
    """
    k = batch.c.shape[0]
    op = _Operator(x, batch)
    rows, c = batch.rows.T, batch.c  # rows: [n, K]
    if initial is None:
        weight, bias = x.new_zeros((k, x.shape[1])), x.new_zeros(k)
    else:
        weight, bias = initial[0].clone(), initial[1].clone()
    start_norm, last_objective = None, None
    converged = torch.zeros(k, dtype=torch.bool, device=x.device)
    stalled = torch.zeros_like(converged)
    steps = hessian_products = 0
    margins = op.forward(weight, bias)
    for newton_step in range(1, MAX_NEWTON_STEPS + 1):
        steps = newton_step
        inside = rows * ((y[:, None] * margins) < 1)
        objective = 0.5 * _squared_norms(weight, bias) + c * (
            inside * (1 - y[:, None] * margins) ** 2
        ).sum(0)
        if last_objective is not None:
            # Past the dtype's resolution a step no longer lowers the objective: stop there.
            resolution = 16 * torch.finfo(x.dtype).eps * objective.abs()
            stalled |= last_objective - objective <= resolution
        last_objective = objective
        grad_w, grad_b = op.transpose(2 * c * inside * (margins - y[:, None]))
        grad_w += weight
        grad_b += bias
        grad_norm = _squared_norms(grad_w, grad_b).sqrt()
        if start_norm is None:
            # The gradient at w = 0 is the scale liblinear measures its stopping point against.
            start_norm = grad_norm if initial is None else _start_gradient_norm(op, y, rows, c)
        converged = grad_norm <= tolerance * start_norm
        if (converged | stalled).all():
            break
        weighting = 2 * c * inside

        def hessian_times(v_w: torch.Tensor, v_b: torch.Tensor, weighting=weighting):
            h_w, h_b = op.weighted_normal(weighting, v_w, v_b)
            return h_w + v_w, h_b + v_b

        forcing = torch.clamp((grad_norm / start_norm).sqrt(), max=0.1)
        precondition = (
            _identity if spectrum is None else _Preconditioner(spectrum, weighting.sum(0))
        )
        (step_w, step_b), products = _conjugate_gradients(
            hessian_times, (grad_w, grad_b), forcing, precondition
        )
        hessian_products += products
        done = converged | stalled
        step_w[done], step_b[done] = 0, 0
        along = op.forward(step_w, step_b)
        t = _line_search(
            margins,
            along,
            y,
            rows,
            c,
            _dot((weight, bias), (step_w, step_b)),
            _squared_norms(step_w, step_b),
        )
        weight += t[:, None] * step_w
        bias += t * step_b
        # The margins are linear in (w, b): update them rather than take another pass over x.
        margins += t * along
    return SvmSolution(weight, bias, steps, hessian_products, converged, margins)


def margins(x: torch.Tensor, batch: SvmBatch, solution: SvmSolution) -> torch.Tensor:
    """`[n, K]`: every row's margin under every problem's standardisation and hyperplane."""
    return _Operator(x, batch).forward(solution.weight, solution.bias)


def _start_gradient_norm(op: _Operator, y: torch.Tensor, rows: torch.Tensor, c: torch.Tensor):
    """`|grad|` at `(w, b) = 0`, where every row is inside the margin."""
    grad_w, grad_b = op.transpose(-2 * c * rows * y[:, None])
    return _squared_norms(grad_w, grad_b).sqrt()
