"""Dual coordinate descent (issue 18): warm starts, shrinking, duality gap, no re-solve.

Every objective is checked against a plain reference written here: the cached problem
with the latent entries fixed is a small convex QP in (w, slack), solved by SciPy's
SLSQP; the latent problem's optimum is the best QP over all latent assignments.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest

from viewfinder.dpm.train.cache import FeatureCache
from viewfinder.dpm.train.optimize import Problem, Regularizer, dcd, objective
from viewfinder.dpm.train.params import TrainParams
from viewfinder.dpm.train.stages import _Trainer
from viewfinder.errors import ShapeError

scipy_optimize = pytest.importorskip("scipy.optimize")


def _qp_reference(x: np.ndarray, y: np.ndarray, reg: Regularizer, C: float, J: float) -> float:
    """min 1/2 sum r w^2 + sum U_i xi_i, xi_i >= 1 - y_i w.x_i, xi >= 0, w >= lb (SLSQP)."""
    n, d = x.shape
    upper = np.where(y > 0, C * J, C)
    r = reg.reg_mult

    def f(z):
        w, xi = z[:d], z[d:]
        return 0.5 * float(np.sum(r * w * w)) + float(upper @ xi)

    def grad(z):
        return np.r_[r * z[:d], upper]

    cons = [{"type": "ineq", "fun": lambda z: y * (x @ z[:d]) - 1 + z[d:],
             "jac": lambda z: np.c_[y[:, None] * x, np.eye(n)]}]
    bounds = [(lb if np.isfinite(lb) else None, None) for lb in reg.lower] + [(0, None)] * n
    w0 = np.clip(np.zeros(d), reg.lower, None)
    z0 = np.r_[w0, np.maximum(0.0, 1.0 - y * (x @ w0))]  # a feasible start
    res = scipy_optimize.minimize(f, z0, jac=grad, constraints=cons, bounds=bounds,
                                  method="SLSQP", options={"maxiter": 5000, "ftol": 1e-12})
    assert res.status in (0, 8), res.message  # 8: converged to the line-search's precision
    return float(res.fun)


def _dense_case(n: int, d: int, seed: int, bias: bool, bound: bool, noise: float):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * 0.5
    w_true = rng.normal(size=d)
    y = np.where(x @ w_true + noise * rng.normal(size=n) > 0.3, 1.0, -1.0)
    reg_mult, lower = np.ones(d), np.full(d, -np.inf)
    if bias:  # voc-release's bias block: feature value 10, no regularisation
        x[:, -1] = 10.0
        reg_mult[-1] = 0.0
    if bound:  # deformation-like coordinates: heavier regularisation, lower bound
        reg_mult[:2] = 10.0
        lower[:2] = 0.05
    return x.astype(np.float32), y, Regularizer(reg_mult, np.ones(d), lower)


CASES = [  # n, d, seed, bias, bound, noise, C, J
    (40, 6, 0, False, False, 0.0, 1.0, 1.0),
    (40, 6, 1, True, False, 0.5, 0.5, 1.0),
    (60, 8, 2, True, True, 0.5, 0.2, 2.0),
    (50, 5, 3, False, True, 1.0, 5.0, 1.0),
    (80, 7, 4, True, True, 2.0, 0.05, 1.0),
]


@pytest.mark.parametrize(("n", "d", "seed", "bias", "bound", "noise", "C", "J"), CASES)
def test_dcd_reaches_the_qp_optimum(n, d, seed, bias, bound, noise, C, J):
    x, y, reg = _dense_case(n, d, seed, bias, bound, noise)
    ref = _qp_reference(x.astype(np.float64), y, reg, C, J)
    res = dcd(Problem.from_dense(x, y), reg, C, J, gap_tol=1e-5, tol=1e-5, passes=1000)
    assert res.objective.total <= ref * (1 + 2e-3) + 1e-7
    assert res.objective.total >= ref * (1 - 1e-6) - 1e-7  # the reference is the optimum
    assert (res.w >= reg.lower - 1e-12).all()


@pytest.mark.parametrize(("n", "d", "seed", "bias", "bound", "noise", "C", "J"), CASES)
def test_dcd_defaults_are_close_to_the_optimum_and_the_gap_is_a_bound(n, d, seed, bias, bound,
                                                                     noise, C, J):
    x, y, reg = _dense_case(n, d, seed, bias, bound, noise)
    ref = _qp_reference(x.astype(np.float64), y, reg, C, J)
    res = dcd(Problem.from_dense(x, y), reg, C, J)
    assert res.objective.total <= ref * (1 + 1e-2) + 1e-7
    assert res.gap >= -1e-9  # weak duality: a negative gap means a wrong dual


@pytest.mark.parametrize(("n", "d", "seed", "bias", "bound", "noise", "C", "J"), CASES[1:4])
def test_warm_start_from_the_solution_costs_few_passes(n, d, seed, bias, bound, noise, C, J):
    x, y, reg = _dense_case(n, d, seed, bias, bound, noise)
    prob = Problem.from_dense(x, y)
    cold = dcd(prob, reg, C, J, gap_tol=1e-4, tol=1e-4, passes=1000)
    warm = dcd(prob, reg, C, J, gap_tol=1e-4, tol=1e-4, passes=1000, w0=cold.w,
               alpha0=cold.alpha)
    assert warm.passes < cold.passes / 2
    assert warm.objective.total <= cold.objective.total * (1 + 1e-4) + 1e-9


@pytest.mark.parametrize("extra", [5, 30])
def test_warm_start_after_new_examples_reaches_the_optimum(extra):
    x, y, reg = _dense_case(60 + extra, 6, 7, True, True, 0.7)
    first = dcd(Problem.from_dense(x[:60], y[:60]), reg, 0.3)
    alpha0 = np.r_[first.alpha, np.zeros(extra)]  # new examples start at 0
    warm = dcd(Problem.from_dense(x, y), reg, 0.3, w0=first.w, alpha0=alpha0, gap_tol=1e-5,
               tol=1e-5, passes=1000)
    ref = _qp_reference(x.astype(np.float64), y, reg, 0.3, 1.0)
    assert warm.objective.total <= ref * (1 + 2e-3) + 1e-7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shrinking_changes_the_work_not_the_answer(seed):
    x, y, reg = _dense_case(200, 10, seed, True, True, 0.5)
    prob = Problem.from_dense(x, y)
    on = dcd(prob, reg, 0.1, gap_tol=1e-4, tol=1e-4, passes=500)
    off = dcd(prob, reg, 0.1, gap_tol=1e-4, tol=1e-4, passes=500, shrinking=False)
    assert on.objective.total == pytest.approx(off.objective.total, rel=2e-3)


def _latent_case(seed: int):
    """Positives with two entries each (two segments of w), single-entry negatives."""
    rng = np.random.default_rng(seed)
    d_seg, n_pos, n_neg = 3, 4, 12
    entries, starts, ex_sizes, labels = [], [], [], []
    for _ in range(n_pos):
        for seg in (0, 1):
            entries.append(rng.normal(size=d_seg) + (1.0 if seg == 0 else 0.5))
            starts.append(seg * d_seg)
        ex_sizes.append(2)
        labels.append(1)
    for _ in range(n_neg):
        seg = int(rng.integers(0, 2))
        entries.append(rng.normal(size=d_seg) - 0.7)
        starts.append(seg * d_seg)
        ex_sizes.append(1)
        labels.append(-1)
    data = np.concatenate(entries).astype(np.float32)
    ptr = np.arange(len(entries) + 1) * d_seg
    prob = Problem(data, ptr, np.array(starts), np.r_[0, np.cumsum(ex_sizes)],
                   np.array(labels), 2 * d_seg)
    return prob, Regularizer.plain(2 * d_seg)


def _latent_reference(prob: Problem, reg: Regularizer, C: float) -> tuple[float, dict]:
    """The exact optimum: the best QP over every choice of the positives' entries."""
    def dense_row(e):
        row = np.zeros(prob.dim)
        s = prob.start[e]
        row[s:s + prob.ptr[e + 1] - prob.ptr[e]] = prob.data[prob.ptr[e]:prob.ptr[e + 1]]
        return row

    pos = [i for i in range(prob.num_examples) if prob.labels[i] > 0]
    neg_rows = [dense_row(prob.ex_ptr[i]) for i in range(prob.num_examples)
                if prob.labels[i] < 0]
    per_choice = {}
    for choice in itertools.product(*[range(prob.ex_ptr[i], prob.ex_ptr[i + 1]) for i in pos]):
        x = np.array([dense_row(e) for e in choice] + neg_rows)
        y = np.r_[np.ones(len(pos)), -np.ones(len(neg_rows))]
        per_choice[choice] = _qp_reference(x, y, reg, C, 1.0)
    return min(per_choice.values()), per_choice


@pytest.mark.parametrize(("seed", "C"), [(0, 1.0), (1, 0.3), (2, 3.0)])
def test_latent_dcd_is_no_worse_than_the_qp_of_its_first_choice(seed, C):
    prob, reg = _latent_case(seed)
    best, per_choice = _latent_reference(prob, reg, C)
    w0 = np.r_[np.ones(3), np.zeros(3)] * 0.1  # the first round's choice follows
    res = dcd(prob, reg, C, w0=w0, gap_tol=1e-5, tol=1e-5, passes=1000)
    first = tuple(max(range(prob.ex_ptr[i], prob.ex_ptr[i + 1]), key=lambda e: float(
        prob.data[prob.ptr[e]:prob.ptr[e + 1]] @ w0[prob.start[e]:prob.start[e] + 3]))
        for i in range(prob.num_examples) if prob.labels[i] > 0)
    f = res.objective.total
    assert f <= per_choice[first] * (1 + 2e-3) + 1e-7  # CCCP never rises
    assert f >= best * (1 - 1e-6) - 1e-7
    assert f == pytest.approx(objective(prob, res.w, reg, C, 1.0).total)


@pytest.mark.parametrize(("alpha0", "error"), [(np.zeros(3), ShapeError)])
def test_dcd_rejects_a_wrong_alpha0(alpha0, error):
    x, y, reg = _dense_case(10, 3, 0, False, False, 0.0)
    with pytest.raises(error, match="alpha0"):
        dcd(Problem.from_dense(x, y), reg, 1.0, alpha0=alpha0)


# --------------------------------------------------------------------------- cache


def _feat(v: float, n: int = 3) -> np.ndarray:
    return np.full(n, v, np.float32)


@pytest.mark.parametrize(("action", "changes"), [
    (lambda c: c.add_negative("a", 0, _feat(1.0)), False),   # same key, same features
    (lambda c: c.add_negative("a", 0, _feat(2.0)), True),    # same key, new features
    (lambda c: c.add_negative("z", 0, _feat(1.0)), True),    # a new negative
    (lambda c: c.set_positives([[(0, _feat(3.0))]], ["p"]), False),
    (lambda c: c.set_positives([[(0, _feat(4.0))]], ["p"]), True),
    (lambda c: c.set_positives([[(0, _feat(3.0))]], ["q"]), True),
    (lambda c: c.shrink(np.ones(3), margin=-100.0), False),  # nothing dropped
    (lambda c: c.shrink(np.ones(3), margin=100.0), True),    # everything dropped
])
def test_cache_version_changes_exactly_when_the_content_does(action, changes):
    cache = FeatureCache(np.array([0, 3]), 10, 10_000)
    cache.set_positives([[(0, _feat(3.0))]], ["p"])
    cache.add_negative("a", 0, _feat(1.0))
    before = cache.version
    action(cache)
    assert (cache.version != before) is changes


def test_cache_keeps_duals_by_key():
    cache = FeatureCache(np.array([0, 3]), 10, 10_000)
    cache.set_positives([[(0, _feat(1.0))], [(0, _feat(2.0))]], ["p1", "p2"])
    for k in "abc":
        cache.add_negative(k, 0, _feat(-1.0))
    cache.set_alpha(np.array([0.1, 0.2, 0.3, 0.0, 0.5]))
    cache.shrink(np.array([0.0, 0.0, 0.0]), margin=-1e9)  # keeps all
    cache.set_positives([[(0, _feat(2.5))], [(0, _feat(9.0))]], ["p2", "p3"])
    cache.add_negative("d", 0, _feat(-2.0))
    # p2 keeps its dual, p3 is new; negatives keep theirs, d is new
    np.testing.assert_allclose(cache.alpha(), [0.2, 0.0, 0.3, 0.0, 0.5, 0.0])
    with pytest.raises(ShapeError, match="set_alpha"):
        cache.set_alpha(np.zeros(2))
    with pytest.raises(ShapeError, match="keys"):
        cache.set_positives([[(0, _feat(1.0))]], ["x", "y"])


# --------------------------------------------------------------------------- no re-solve


class _StubModel:
    """What ``_Trainer._solve_cache`` needs of a TrainModel."""

    def __init__(self, dim: int) -> None:
        self.w = np.zeros(dim)

    def to_vector(self) -> np.ndarray:
        return self.w.copy()

    def set_vector(self, w: np.ndarray) -> None:
        self.w = np.asarray(w, np.float64).copy()

    def regularizer(self) -> Regularizer:
        return Regularizer.plain(self.w.shape[0])


@pytest.mark.parametrize(("change", "solves", "warm"), [
    (None, 1, [False]),                                             # unchanged: skipped
    (lambda c, m: c.add_negative("n9", 0, _feat(-0.5)), 2, [False, True]),
    (lambda c, m: m.set_vector(m.w + 0.1), 2, [False, True]),         # model moved
])
def test_an_unchanged_cache_is_not_solved_again(change, solves, warm, caplog):
    trainer = _Trainer(None, "x", None, TrainParams(C=1.0), None, None)
    cache = FeatureCache(np.array([0, 3]), 10, 10_000)
    cache.set_positives([[(0, _feat(1.0))], [(0, _feat(0.8))]], ["p1", "p2"])
    for k in range(4):
        cache.add_negative(f"n{k}", 0, _feat(-0.3 * (k + 1)))
    model = _StubModel(3)
    trainer._solve_cache(model, cache, "root_latent")
    if change is not None:
        change(cache, model)
    with caplog.at_level(logging.INFO, logger="viewfinder.dpm.train.stages"):
        trainer._solve_cache(model, cache, "root_latent")
    assert [s["warm"] for s in trainer.solves] == warm
    assert len(trainer.solves) == solves
    assert ("not solved again" in caplog.text) is (solves == 1)
