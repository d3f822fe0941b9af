"""The latent SVM objective and its two solvers (learn.cc SGD, dual coordinate descent)."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.dpm.train.optimize import (
    Problem,
    Regularizer,
    dcd,
    example_scores,
    objective,
    sgd,
)
from viewfinder.errors import ConfigError, ShapeError


def _separable(n: int = 300, d: int = 40, seed: int = 0, bias_col: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32) * 0.3
    w_true = rng.normal(size=d)
    y = np.where(x @ w_true + 0.3 * rng.normal(size=n) > 0.4, 1, -1)
    if bias_col:
        x[:, -1] = 10.0
    reg = Regularizer(np.r_[np.ones(d - 1), 0.0], np.r_[np.ones(d - 1), 20.0],
                      np.full(d, -np.inf)) if bias_col else Regularizer.plain(d)
    return Problem.from_dense(x, y), reg


def _latent_problem():
    """Two positives with 2 entries each (different segments), three negatives."""
    data = np.array([1, 0, 0, 1, 2, 2, 0, 1, 1, 1, 0, 1, -1, 0], np.float32)
    ptr = np.array([0, 2, 4, 6, 8, 10, 12, 14])
    start = np.array([0, 2, 0, 2, 0, 2, 1])
    ex_ptr = np.array([0, 2, 4, 5, 6, 7])
    labels = np.array([1, 1, -1, -1, -1])
    return Problem(data, ptr, start, ex_ptr, labels, 4)


def _brute_objective(prob: Problem, w, reg, C, J):
    total = 0.5 * float(np.sum(reg.reg_mult * w * w))
    for i in range(prob.num_examples):
        scores = []
        for e in range(prob.ex_ptr[i], prob.ex_ptr[i + 1]):
            seg = prob.data[prob.ptr[e]:prob.ptr[e + 1]]
            s = prob.start[e]
            scores.append(float(seg @ w[s:s + seg.size]))
        y = prob.labels[i]
        total += C * (J if y > 0 else 1) * max(0.0, 1 - y * max(scores))
    return total


@pytest.mark.parametrize("w", [np.zeros(4), np.array([1.0, -2.0, 0.5, 3.0]),
                               np.array([-0.3, 0.2, 0.9, -1.0])])
@pytest.mark.parametrize(("C", "J"), [(1.0, 1.0), (0.01, 3.0)])
def test_objective_matches_brute_force_with_latent_max(w, C, J):
    prob = _latent_problem()
    reg = Regularizer(np.array([1.0, 1.0, 10.0, 0.0]), np.ones(4), np.full(4, -np.inf))
    assert objective(prob, w, reg, C, J).total == pytest.approx(
        _brute_objective(prob, w, reg, C, J), rel=1e-6)


def test_example_scores_take_the_max_entry():
    prob = _latent_problem()
    w = np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(example_scores(prob, w), [1.0, 2.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"ptr": np.array([0, 1, 2])}, ShapeError, "Problem.ptr"),
    ({"labels": np.array([1, 2])}, ShapeError, "labels"),
    ({"start": np.array([3, 0])}, ShapeError, "inside the weight vector"),
    ({"ex_ptr": np.array([0, 0, 2])}, ShapeError, "at least one entry"),
])
def test_problem_rejects_malformed_input(kwargs, error, match):
    base = dict(data=np.ones(4, np.float32), ptr=np.array([0, 2, 4]), start=np.array([0, 0]),
                ex_ptr=np.array([0, 1, 2]), labels=np.array([1, -1]), dim=2)
    base.update(kwargs)
    with pytest.raises(error, match=match):
        Problem(**base)


@pytest.mark.parametrize(("C", "J"), [(0.0, 1.0), (1.0, -1.0), (float("inf"), 1.0)])
def test_solvers_reject_bad_constants(C, J):
    prob, reg = _separable(20, 5)
    for solve in (sgd, dcd):
        with pytest.raises(ConfigError, match="expected positive finite"):
            solve(prob, reg, C, J)


def test_dcd_rejects_multi_entry_negatives():
    prob = Problem(np.ones(4, np.float32), np.array([0, 2, 4]), np.array([0, 0]),
                   np.array([0, 2]), np.array([-1]), 2)
    with pytest.raises(ConfigError, match="exactly one entry"):
        dcd(prob, Regularizer.plain(2), 1.0)


@pytest.mark.parametrize("C", [0.002, 0.05])
def test_dcd_reaches_an_objective_no_higher_than_learn_cc_sgd(C):
    prob, reg = _separable()
    f_sgd = sgd(prob, reg, C, passes=200, min_iter=0).objective.total
    f_dcd = dcd(prob, reg, C, passes=200, tol=1e-6).objective.total
    f_zero = objective(prob, np.zeros(prob.dim), reg, C, 1.0).total
    assert f_dcd <= f_sgd * (1 + 1e-4)
    assert f_dcd < 0.9 * f_zero  # it actually learned something


def test_sgd_objective_decreases_and_history_is_recorded():
    prob, reg = _separable()
    seen = []
    res = sgd(prob, reg, 0.01, passes=40, min_iter=0, progress=lambda k, f: seen.append(k))
    # 300 examples: a convergence check every ceil(10000 / 300) = 34 passes, and at the end
    assert seen == [34, 40] and len(res.history) == 2
    assert res.history[-1] < objective(prob, np.zeros(prob.dim), reg, 0.01, 1.0).total


@pytest.mark.parametrize("solve", [sgd, dcd])
def test_lower_bounds_hold_and_bind(solve):
    prob, _ = _separable(bias_col=False)
    d = prob.dim
    lower = np.full(d, -np.inf)
    lower[:3] = 0.5  # force three weights up, as deformation weights are kept >= 0.01
    reg = Regularizer(np.ones(d), np.ones(d), lower)
    kw = {"passes": 30, "min_iter": 0} if solve is sgd else {"passes": 30}
    w = solve(prob, reg, 0.01, **kw).w
    assert (w[:3] >= 0.5 - 1e-12).all()
    assert np.isclose(w[:3], 0.5).any()  # at least one bound is active


def test_dcd_latent_rounds_never_raise_the_objective():
    prob = _latent_problem()
    reg = Regularizer(np.array([1.0, 1.0, 10.0, 0.5]), np.ones(4), np.full(4, -np.inf))
    f = [dcd(prob, reg, 1.0, rounds=r, passes=200, tol=1e-9).objective.total for r in (1, 2, 4)]
    assert f[1] <= f[0] + 1e-9 and f[2] <= f[1] + 1e-9


def test_empty_problem_gives_zero_weights():
    prob = Problem(np.zeros(0, np.float32), np.zeros(1), np.zeros(0), np.zeros(1),
                   np.zeros(0), 3)
    for solve in (sgd, dcd):
        res = solve(prob, Regularizer.plain(3), 1.0)
        np.testing.assert_array_equal(res.w, np.zeros(3))
