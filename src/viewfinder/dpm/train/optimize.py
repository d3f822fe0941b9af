"""Solvers for the latent SVM objective on a cached problem.

The cached problem (voc-release4/5 ``learn.cc`` / ``gradient.cc``): examples
``i`` with labels ``y_i`` in {-1, +1}; each example holds one or more *entries*
(feature vectors for latent choices), each touching one contiguous segment of the
weight vector (one component's blocks). The score of an example is the max over its
entries. The objective is

    f(w) = 1/2 sum_j r_j w_j^2 + C sum_{y=-1} max(0, 1 + s_i) + C J sum_{y=+1} max(0, 1 - s_i)

subject to ``w_j >= lb_j`` (the lower bounds of deformation weights), with ``r_j``
the per-coordinate regularisation multipliers. (voc-release5 regularises only the
component of largest norm; this is voc-release4's sum regulariser.)

Two solvers share that objective:

* :func:`sgd` -- ``learn.cc``'s stochastic subgradient descent: random permutations,
  rate ``cnum * C / min(ITER/2, t + 10000)``, per-block learning-rate multipliers,
  lazy regularisation every ``REG_FREQ`` steps with lower-bound projection, and the
  adaptive inner cache that skips examples that were beyond the margin for a while.
* :func:`dcd` -- dual coordinate descent (Hsieh et al. 2008, liblinear's L1-loss
  SVM) generalised to per-coordinate regularisation and lower bounds (the bound's
  multiplier has a closed form, so ``w = max(u / r, lb)``), with positives' latent
  entries fixed per outer round (CCCP), liblinear's shrinking, warm starts from a
  previous solve's dual variables and a stop on the relative duality gap. Numba
  kernels, float32 features.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from viewfinder.dpm.train.kernels import (
    IN_CACHE,
    MAX_RND_WAIT,
    NO_BOUND,
    chosen_scores,
    dcd_pass,
    dual_sum,
    entry_scores_parallel,
    entry_scores_serial,
    qii,
    segment_argmax,
    sgd_pass,
)
from viewfinder.errors import ConfigError, ShapeError, check_shape

__all__ = [
    "Objective",
    "Problem",
    "Regularizer",
    "SolveResult",
    "dcd",
    "entry_scores",
    "objective",
    "sgd",
]

logger = logging.getLogger(__name__)

Progress = Callable[[int, float], None]
# Below this many feature values a serial pass beats waking the thread pool.
_PARALLEL_MIN = 1 << 20


@dataclass(frozen=True)
class Problem:
    """A cached latent SVM problem in packed (CSR-like, block-contiguous) form.

    Attributes:
        data: ``(nnz,)`` float32, the entries' feature values back to back.
        ptr: ``(E + 1,)`` int64, entry ``e`` is ``data[ptr[e]:ptr[e + 1]]``.
        start: ``(E,)`` int64, where entry ``e`` starts in the weight vector.
        ex_ptr: ``(N + 1,)`` int64, example ``i`` owns entries ``ex_ptr[i]:ex_ptr[i + 1]``.
        labels: ``(N,)`` int8, +1 or -1.
        dim: length of the weight vector.
    """

    data: np.ndarray
    ptr: np.ndarray
    start: np.ndarray
    ex_ptr: np.ndarray
    labels: np.ndarray
    dim: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", np.ascontiguousarray(self.data, np.float32))
        for name in ("ptr", "start", "ex_ptr"):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), np.int64))
        object.__setattr__(self, "labels", np.ascontiguousarray(self.labels, np.int8))
        n_entries = self.start.shape[0]
        check_shape(self.ptr, (n_entries + 1,), "Problem.ptr")
        check_shape(self.ex_ptr, (self.labels.shape[0] + 1,), "Problem.ex_ptr")
        if self.ptr[0] != 0 or self.ptr[-1] != self.data.shape[0] or np.any(np.diff(self.ptr) < 0):
            raise ShapeError("Problem.ptr: expected non-decreasing offsets from 0 to len(data)")
        if self.ex_ptr[0] != 0 or self.ex_ptr[-1] != n_entries or np.any(np.diff(self.ex_ptr) < 1):
            raise ShapeError("Problem.ex_ptr: expected every example to own at least one entry")
        if n_entries and (self.start.min() < 0 or (self.start + np.diff(self.ptr)).max() > self.dim):
            raise ShapeError(f"Problem.start: entries must lie inside the weight vector (dim {self.dim})")
        if self.labels.size and not np.isin(self.labels, (-1, 1)).all():
            raise ShapeError("Problem.labels: expected only +1 and -1")

    @property
    def num_examples(self) -> int:
        """Number of examples."""
        return int(self.labels.shape[0])

    @classmethod
    def from_dense(cls, x: np.ndarray, labels: np.ndarray) -> Problem:
        """One single-entry example per row of a dense ``(N, D)`` matrix."""
        x = np.ascontiguousarray(x, np.float32)
        n, d = x.shape
        return cls(x.reshape(-1), np.arange(n + 1, dtype=np.int64) * d, np.zeros(n, np.int64),
                   np.arange(n + 1, dtype=np.int64), np.asarray(labels), d)


@dataclass(frozen=True)
class Regularizer:
    """Per-coordinate regularisation, learning-rate multipliers and lower bounds.

    Built from the model's blocks (filters: r 1, lr 1; deformations: r 10, lr 0.1,
    lb [0.01, -100, 0.01, -100]; biases: r 0, lr 20 -- voc-release5).
    """

    reg_mult: np.ndarray
    learn_mult: np.ndarray
    lower: np.ndarray

    def __post_init__(self) -> None:
        d = np.asarray(self.reg_mult).shape[0]
        for name in ("reg_mult", "learn_mult", "lower"):
            value = np.ascontiguousarray(getattr(self, name), np.float64)
            check_shape(value, (d,), f"Regularizer.{name}")
            object.__setattr__(self, name, value)
        if (self.reg_mult < 0).any():
            raise ConfigError("Regularizer.reg_mult: expected values >= 0")

    @classmethod
    def plain(cls, dim: int) -> Regularizer:
        """Ordinary ``1/2 ||w||^2``, unit rates, no bounds."""
        return cls(np.ones(dim), np.ones(dim), np.full(dim, -np.inf))

    def clamp(self, w: np.ndarray) -> np.ndarray:
        """``w`` projected onto the lower bounds."""
        return np.maximum(w, self.lower)


@dataclass(frozen=True)
class Objective:
    """The objective's parts: ``total = reg + neg_loss + pos_loss``."""

    total: float
    reg: float
    neg_loss: float
    pos_loss: float


@dataclass
class SolveResult:
    """A solver's weights and its objective after each pass."""

    w: np.ndarray
    objective: Objective
    history: list[float] = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    alpha: np.ndarray | None = None
    gap: float = float("nan")


# --------------------------------------------------------------------------- kernels


# --------------------------------------------------------------------------- API


def entry_scores(problem: Problem, w: np.ndarray) -> np.ndarray:
    """Score of every entry, ``(E,)`` float64 (parallel over entries on big caches)."""
    kernel = entry_scores_parallel if problem.data.size >= _PARALLEL_MIN else entry_scores_serial
    return kernel(problem.data, problem.ptr, problem.start, np.asarray(w, np.float64))


def example_scores(problem: Problem, w: np.ndarray) -> np.ndarray:
    """Score of every example (max over its entries), ``(N,)`` float64."""
    if problem.num_examples == 0:
        return np.zeros(0)
    return np.maximum.reduceat(entry_scores(problem, w), problem.ex_ptr[:-1])


def objective(problem: Problem, w: np.ndarray, reg: Regularizer, C: float, J: float) -> Objective:
    """The latent SVM objective of ``w`` on the cached problem (see module docstring)."""
    w = np.asarray(w, np.float64)
    check_shape(w, (problem.dim,), "w")
    regv = 0.5 * float(np.sum(reg.reg_mult * w * w))
    s = example_scores(problem, w)
    y = problem.labels.astype(np.float64)
    hinge = np.maximum(0.0, 1.0 - y * s)
    neg = C * float(hinge[y < 0].sum())
    pos = C * J * float(hinge[y > 0].sum())
    return Objective(regv + neg + pos, regv, neg, pos)


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal values (blocks share multipliers): boundaries and one value per run."""
    if values.size == 0:
        return np.zeros(1, np.int64), np.zeros(0)
    cuts = np.flatnonzero(np.diff(values) != 0) + 1
    bounds = np.concatenate([[0], cuts, [values.size]]).astype(np.int64)
    return bounds, values[bounds[:-1]].astype(np.float64)


def _check_solver_args(problem: Problem, reg: Regularizer, C: float, J: float) -> None:
    if reg.reg_mult.shape[0] != problem.dim:
        raise ShapeError(f"Regularizer: expected dim {problem.dim}, got {reg.reg_mult.shape[0]}")
    if not (C > 0 and J > 0 and math.isfinite(C) and math.isfinite(J)):
        raise ConfigError(f"C={C}, J={J}: expected positive finite values")


def _init_w(problem: Problem, reg: Regularizer, w0: np.ndarray | None) -> np.ndarray:
    if w0 is None:
        return reg.clamp(np.zeros(problem.dim))
    w0 = np.asarray(w0, np.float64)
    check_shape(w0, (problem.dim,), "w0")
    return reg.clamp(w0.copy())


def sgd(problem: Problem, reg: Regularizer, C: float, J: float = 1.0, *,
        w0: np.ndarray | None = None, max_iter: int = 10_000_000, min_iter: int = 5_000_000,
        passes: int | None = None, delta_stop: float = 0.9995, stop_count: int = 5,
        seed: int = 3, progress: Progress | None = None) -> SolveResult:
    """``learn.cc``'s stochastic subgradient descent with the adaptive easy-example cache.

    Args:
        problem: The cached problem.
        reg: Regularisation and learning-rate multipliers, lower bounds.
        C: Hinge-loss weight. J: extra weight of positives.
        w0: Starting weights (zeros by default; projected on the bounds).
        max_iter: ``ITER``, example visits at most (also sets the rate schedule).
        min_iter: ``MIN_ITER``, visits before the convergence test may stop.
        passes: Stop after this many permutations (None: only the tests above).
        delta_stop: ``DELTA_STOP``, ``1 - |f_prev - f| / f`` needed to count as converged.
        stop_count: ``STOP_COUNT``, consecutive converged checks to stop (a check after
            every pass, or every ``ceil(10000 / N)`` passes on small caches).
        seed: Random seed (learn.cc's ``srand48(3)``).
        progress: Called as ``progress(pass, objective)`` at every convergence check.

    Returns:
        The weights and the objective at each check.
    """
    _check_solver_args(problem, reg, C, J)
    w = _init_w(problem, reg, w0)
    n = problem.num_examples
    rng = np.random.default_rng(seed)
    wait = np.full(n, IN_CACHE, np.int64)
    result = SolveResult(w, objective(problem, w, reg, C, J))
    if n == 0:
        return result
    t0, t, prev, count = time.perf_counter(), 0, 1e9, 0
    runs, run_rl = _runs(reg.reg_mult * reg.learn_mult)
    # learn.cc tests convergence every 100000 visits; here every pass of >= 10000 visits.
    check_every = max(1, -(-10_000 // n))
    while t < max_iter and (passes is None or result.passes < passes):
        perm = rng.permutation(n).astype(np.int64)
        rand_wait = rng.integers(0, MAX_RND_WAIT, n).astype(np.int64)
        t = sgd_pass(problem.data, problem.ptr, problem.start, problem.ex_ptr, problem.labels,
                      w, reg.learn_mult, runs, run_rl, np.maximum(reg.lower, NO_BOUND),
                      wait, perm, rand_wait, t, float(C), float(J), float(max_iter))
        result.passes += 1
        last = t >= max_iter or (passes is not None and result.passes >= passes)
        if result.passes % check_every and not last:
            continue
        f = objective(problem, reg.clamp(w), reg, C, J).total
        result.history.append(f)
        if progress is not None:
            progress(result.passes, f)
        delta = 1.0 - abs(prev - f) / max(abs(f), 1e-12)
        count = count + 1 if (delta >= delta_stop and t >= min_iter) else 0
        prev = f
        if count > stop_count:
            break
    result.w = reg.clamp(w)
    result.objective = objective(problem, result.w, reg, C, J)
    result.seconds = time.perf_counter() - t0
    return result


def dcd(problem: Problem, reg: Regularizer, C: float, J: float = 1.0, *,
        passes: int = 300, rounds: int = 3, tol: float = 1e-3, gap_tol: float = 1e-3,
        reg_floor: float = 0.01, prox_steps: int = 4, shrinking: bool = True,
        w0: np.ndarray | None = None, alpha0: np.ndarray | None = None, seed: int = 0,
        progress: Progress | None = None) -> SolveResult:
    """Dual coordinate descent on the same objective (the faster solver).

    Positives' latent entries are fixed to their best-scoring entry for each of
    ``rounds`` outer rounds (CCCP: the objective never rises); a round whose choice
    did not change ends the solve, and the dual variables carry over from round to
    round. Negatives must have one entry each (as mined negatives do). Coordinates with
    ``reg_mult`` below ``reg_floor`` (biases) get ``reg_floor`` inside the dual,
    reached in warm-started steps from 1 (the dual variables carry over), then
    ``prox_steps`` proximal steps pull the floor's shrinkage off them (regularisation
    around the current value instead of 0); finally each unbounded one is set to its
    exact minimiser with the rest held fixed. The objective reported is the true one.

    A step stops when liblinear's projected-gradient spread falls below ``tol`` (with
    examples that stay at a bound shrunk out of the passes and checked again at the
    end) or when its duality gap falls below ``gap_tol`` times its primal objective.

    Args:
        problem: The cached problem.
        reg: Regularisation multipliers and lower bounds (``learn_mult`` is an SGD
            notion and is ignored).
        C: Hinge-loss weight. J: extra weight of positives.
        passes: Coordinate passes per step at most.
        rounds: Outer rounds that re-pick positives' latent entries.
        tol: Projected-gradient spread that ends a step (liblinear's eps).
        gap_tol: Relative duality gap that ends a step (0: not checked).
        reg_floor: Smallest regularisation used in the dual.
        prox_steps: Proximal steps on the under-regularised coordinates at the floor.
        shrinking: Skip examples that stay at a bound (liblinear's shrinking).
        w0: Weights that pick the first round's latent entries (zeros by default).
        alpha0: Dual variables to start from (a previous solve's ``alpha`` on the same
            examples; clipped to ``[0, C]`` / ``[0, C J]``).
        seed: Random seed for the coordinate order.
        progress: Called as ``progress(pass, objective)`` at the end of every step.
    """
    _check_solver_args(problem, reg, C, J)
    n = problem.num_examples
    multi = np.diff(problem.ex_ptr) > 1
    if (multi & (problem.labels < 0)).any():
        raise ConfigError("dcd: negative examples must have exactly one entry each")
    w = _init_w(problem, reg, w0)
    result = SolveResult(w, objective(problem, w, reg, C, J), alpha=np.zeros(n))
    if n == 0:
        return result
    t0 = time.perf_counter()
    upper = np.where(problem.labels > 0, C * J, C).astype(np.float64)
    alpha = np.zeros(n) if alpha0 is None else np.asarray(alpha0, np.float64)
    check_shape(alpha, (n,), "alpha0")
    alpha = np.clip(alpha, 0.0, upper)
    warm = bool(alpha.any())
    # The ladder also when warm: straight to the floor, the dual is ill-conditioned (the
    # bias couples every example) and a perturbed start takes 5x the passes.
    floors = [f for f in (1.0, 0.1) if f > reg_floor] + [reg_floor]
    free = reg.reg_mult < reg_floor
    steps = [(f, False) for f in floors] + [(reg_floor, True)] * (prox_steps if free.any() else 0)
    solver = _DualSolver(problem, reg, upper, alpha, w[free] if warm else 0.0, free,
                         passes, tol, gap_tol, shrinking, np.random.default_rng(seed))
    chosen = _choose_entries(problem, w)
    for _ in range(max(rounds, 1)):
        solver.start_round(chosen)
        for floor, prox in steps:
            w = solver.step(floor, prox)
            f = objective(problem, w, reg, C, J).total
            result.history.append(f)
            if progress is not None:
                progress(solver.passes, f)
            if prox and solver.settled:
                break
        new = _choose_entries(problem, w)
        if not multi.any() or np.array_equal(new, chosen):
            break
        chosen = new
    w = _polish_free(problem, _choose_entries(problem, w), w, reg, upper)
    result.w, result.alpha, result.passes, result.gap = w, alpha, solver.passes, solver.gap
    result.objective = objective(problem, w, reg, C, J)
    result.seconds = time.perf_counter() - t0
    return result


def _choose_entries(problem: Problem, w: np.ndarray) -> np.ndarray:
    return segment_argmax(entry_scores(problem, w), problem.ex_ptr)


class _DualSolver:
    """The dual state (alpha, u = sum alpha y x) of :func:`dcd` and its steps."""

    def __init__(self, problem, reg, upper, alpha, free_center, free, passes, tol, gap_tol,
                 shrinking, rng) -> None:
        self.p, self.reg, self.upper, self.alpha, self.free = problem, reg, upper, alpha, free
        self.lower = np.maximum(reg.lower, NO_BOUND)
        self.center = np.zeros(problem.dim)
        self.center[free] = free_center
        self.max_passes, self.tol, self.gap_tol = passes, tol, gap_tol
        self.shrinking, self.rng = shrinking, rng
        self.passes, self.gap, self.settled = 0, float("nan"), False
        self.chosen = np.zeros(problem.num_examples, np.int64)
        self.u = np.zeros(problem.dim)
        self.w = np.zeros(problem.dim)

    def start_round(self, chosen: np.ndarray) -> None:
        """Fix the latent entries; ``u`` follows from the carried-over ``alpha``."""
        p = self.p
        self.chosen = chosen
        self.u = dual_sum(p.data, p.ptr, p.start, chosen, p.labels, self.alpha, p.dim)

    def step(self, floor: float, prox: bool) -> np.ndarray:
        """Solve the dual with ``floor`` (and a proximal centre when ``prox``)."""
        p = self.p
        before = self.center[self.free].copy()
        if prox:  # regularise the free coordinates around their current value
            self.center[self.free] = self.w[self.free]
        rr = np.maximum(self.reg.reg_mult, floor)
        inv_r = 1.0 / rr
        self.w = np.maximum(self.u * inv_r + self.center, self.lower)
        diag = qii(p.data, p.ptr, p.start, self.chosen, inv_r)
        n = p.num_examples
        active, shrunk = np.arange(n, dtype=np.int64), np.zeros(n, np.bool_)
        pg_max, pg_min = np.inf, -np.inf
        for k in range(self.max_passes):
            order = active[self.rng.permutation(active.shape[0])]
            hi, lo = dcd_pass(p.data, p.ptr, p.start, self.chosen, p.labels, self.upper, diag,
                              self.alpha, self.u, self.w, inv_r, self.center, self.lower, order,
                              shrunk, pg_max, pg_min)
            self.passes += 1
            active = order[~shrunk[order]] if self.shrinking else order
            if hi - lo <= self.tol:
                if active.shape[0] == n:
                    break
                active, pg_max, pg_min = np.arange(n, dtype=np.int64), np.inf, -np.inf
                shrunk[:] = False
                continue
            pg_max, pg_min = (hi if hi > 0 else np.inf), (lo if lo < 0 else -np.inf)
            if (k + 1) % 10 == 0 and self._gap_ok(rr):
                break
        moved = np.abs(self.center[self.free] - before)
        self.settled = prox and bool((moved <= 1e-4 * np.maximum(1.0, np.abs(before))).all())
        return self.w

    def _gap_ok(self, rr: np.ndarray) -> bool:
        """Whether the step's relative duality gap is below ``gap_tol``."""
        p, w = self.p, self.w
        s = chosen_scores(p.data, p.ptr, p.start, self.chosen, w)
        dw = w - self.center
        half = 0.5 * float(np.sum(rr * dw * dw))
        primal = half + float(np.sum(self.upper * np.maximum(0.0, 1.0 - p.labels * s)))
        dual = float(self.alpha.sum()) - float(np.dot(self.u, w)) + half
        self.gap = (primal - dual) / max(abs(primal), 1e-12)
        return self.gap <= self.gap_tol


def _polish_free(problem: Problem, chosen: np.ndarray, w: np.ndarray, reg: Regularizer,
                 upper: np.ndarray) -> np.ndarray:
    """Set each unregularised, unbounded coordinate to its exact 1-D minimiser."""
    w = w.copy()
    free = np.flatnonzero((reg.reg_mult == 0) & ~np.isfinite(reg.lower))
    if free.size == 0 or free.size > 64:
        return w
    lengths = np.diff(problem.ptr)[chosen]
    starts = problem.start[chosen]
    y = problem.labels.astype(np.float64)
    for j in free:
        rows = np.flatnonzero((starts <= j) & (j < starts + lengths))
        if rows.size == 0:
            continue
        xj = problem.data[problem.ptr[chosen[rows]] + (j - starts[rows])].astype(np.float64)
        keep = xj != 0
        rows, xj = rows[keep], xj[keep]
        if rows.size == 0:
            continue
        s = entry_scores(problem, w)[chosen[rows]] - w[j] * xj
        w[j] = _argmin_hinge_1d(y[rows] * xj, 1.0 - y[rows] * s, upper[rows])
    return w


def _argmin_hinge_1d(a: np.ndarray, c: np.ndarray, u: np.ndarray) -> float:
    """argmin over b of ``sum u_i max(0, c_i - a_i b)`` (all ``a_i != 0``): weighted median."""
    knots = c / a
    order = np.argsort(knots)
    knots, a, u = knots[order], a[order], u[order]
    # slope left of every knot: terms with a < 0 are inactive there, a > 0 active (-u a).
    slope = -np.sum(u[a > 0] * a[a > 0])
    for k in range(knots.shape[0]):
        slope += u[k] * abs(a[k])
        if slope >= 0:
            return float(knots[k])
    return float(knots[-1])
