"""Numba kernels of the latent SVM solvers (see :mod:`viewfinder.dpm.train.optimize`).

Kernels index through slice views (``w[s:s + m]``): with a non-negative loop index
numba drops its wraparound checks and LLVM vectorises the loops (5x faster).
"""

from __future__ import annotations

import numba
import numpy as np

# learn.cc constants (voc-release5 gradient.cc); see params.py for the others.
IN_CACHE = 25
MIN_WAIT = IN_CACHE + 25
MAX_RND_WAIT = 50
REG_FREQ = 20
NO_BOUND = -1e30


@numba.njit(fastmath=True, cache=True)
def dot(a, b):  # pragma: no cover - numba
    acc = 0.0
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


@numba.njit(parallel=True, fastmath=True, cache=True)
def entry_scores_parallel(data, ptr, start, w):  # pragma: no cover - numba
    n = start.shape[0]
    out = np.empty(n, np.float64)
    for e in numba.prange(n):
        m = ptr[e + 1] - ptr[e]
        out[e] = dot(w[start[e]:start[e] + m], data[ptr[e]:ptr[e + 1]])
    return out


@numba.njit(fastmath=True, cache=True)
def entry_scores_serial(data, ptr, start, w):  # pragma: no cover - numba
    n = start.shape[0]
    out = np.empty(n, np.float64)
    for e in range(n):
        m = ptr[e + 1] - ptr[e]
        out[e] = dot(w[start[e]:start[e] + m], data[ptr[e]:ptr[e + 1]])
    return out


@numba.njit(fastmath=True, cache=True)
def best_entry(data, ptr, start, ex_ptr, w, i):  # pragma: no cover - numba
    best, arg = -np.inf, ex_ptr[i]
    for e in range(ex_ptr[i], ex_ptr[i + 1]):
        m = ptr[e + 1] - ptr[e]
        v = dot(w[start[e]:start[e] + m], data[ptr[e]:ptr[e + 1]])
        if v > best:
            best, arg = v, e
    return best, arg


@numba.njit(fastmath=True, cache=True)
def regularize(w, lower, runs, run_rl, rate_r):  # pragma: no cover - numba
    for r in range(run_rl.shape[0]):
        mult = (1.0 - rate_r * run_rl[r]) ** REG_FREQ
        ws, ls = w[runs[r]:runs[r + 1]], lower[runs[r]:runs[r + 1]]
        for k in range(ws.shape[0]):
            ws[k] = max(ws[k], ls[k]) * mult


@numba.njit(fastmath=True, cache=True)
def sgd_pass(data, ptr, start, ex_ptr, labels, w, learn_mult, runs, run_rl, lower,
              wait, perm, rand_wait, t, C, J, max_iter):  # pragma: no cover - numba
    n = labels.shape[0]
    cnum = 0
    for i in range(n):
        if wait[i] <= IN_CACHE:
            cnum += 1
    for q in range(n):
        i = perm[q]
        if wait[i] > IN_CACHE:
            wait[i] -= 1
            continue
        big_t = min(max_iter / 2.0, t + 10000.0)
        y = labels[i]
        rate_x = cnum * C * (J if y > 0 else 1.0) / big_t
        t += 1
        v, e = best_entry(data, ptr, start, ex_ptr, w, i)
        if y * v <= 1.0:
            s, m = start[e], ptr[e + 1] - ptr[e]
            ws, ls, xs = w[s:s + m], learn_mult[s:s + m], data[ptr[e]:ptr[e + 1]]
            step = y * rate_x
            for k in range(m):
                ws[k] += step * ls[k] * xs[k]
            wait[i] = 0
        elif wait[i] == IN_CACHE:
            wait[i] = MIN_WAIT + rand_wait[q]
        else:
            wait[i] += 1
        if t % REG_FREQ == 0:
            regularize(w, lower, runs, run_rl, 1.0 / big_t)
    return t


@numba.njit(fastmath=True, cache=True)
def dcd_pass(data, ptr, start, chosen, labels, upper, qii, alpha, u, w, inv_r, center, lower,
             order, shrunk, pg_max_old, pg_min_old):  # pragma: no cover - numba
    """One pass of dual coordinate descent over ``order`` with liblinear's shrinking.

    ``w = max(u * inv_r + center, lower)``. An example at a bound whose gradient lies
    beyond last pass's projected-gradient range (``pg_max_old``/``pg_min_old``; +-inf:
    no shrinking) is marked in ``shrunk`` and skipped. Returns this pass's
    projected-gradient range.
    """
    pg_max, pg_min = -np.inf, np.inf
    for q in range(order.shape[0]):
        i = order[q]
        e = chosen[i]
        s, m = start[e], ptr[e + 1] - ptr[e]
        ws, xs = w[s:s + m], data[ptr[e]:ptr[e + 1]]
        y = labels[i]
        g = y * dot(ws, xs) - 1.0
        a = alpha[i]
        pg = 0.0
        if a <= 0.0:
            if g > pg_max_old:
                shrunk[i] = True
                continue
            pg = min(g, 0.0)
        elif a >= upper[i]:
            if g < pg_min_old:
                shrunk[i] = True
                continue
            pg = max(g, 0.0)
        else:
            pg = g
        pg_max = max(pg_max, pg)
        pg_min = min(pg_min, pg)
        if abs(pg) < 1e-12 or qii[i] <= 0.0:
            continue
        a_new = min(max(a - g / qii[i], 0.0), upper[i])
        delta = (a_new - a) * y
        alpha[i] = a_new
        us, rs, cs, ls = u[s:s + m], inv_r[s:s + m], center[s:s + m], lower[s:s + m]
        for k in range(m):
            us[k] += delta * xs[k]
            ws[k] = max(us[k] * rs[k] + cs[k], ls[k])
    return pg_max, pg_min


@numba.njit(parallel=True, fastmath=True, cache=True)
def chosen_scores(data, ptr, start, chosen, w):  # pragma: no cover - numba
    """Score of each example's chosen entry."""
    n = chosen.shape[0]
    out = np.empty(n, np.float64)
    for i in numba.prange(n):
        e = chosen[i]
        m = ptr[e + 1] - ptr[e]
        out[i] = dot(w[start[e]:start[e] + m], data[ptr[e]:ptr[e + 1]])
    return out


@numba.njit(fastmath=True, cache=True)
def dual_sum(data, ptr, start, chosen, labels, alpha, dim):  # pragma: no cover - numba
    """``u = sum_i alpha_i y_i x_i`` over the chosen entries."""
    u = np.zeros(dim)
    for i in range(chosen.shape[0]):
        a = alpha[i] * labels[i]
        if a == 0.0:
            continue
        e = chosen[i]
        s, m = start[e], ptr[e + 1] - ptr[e]
        us, xs = u[s:s + m], data[ptr[e]:ptr[e + 1]]
        for k in range(m):
            us[k] += a * xs[k]
    return u


@numba.njit(parallel=True, fastmath=True, cache=True)
def qii(data, ptr, start, chosen, inv_r):  # pragma: no cover - numba
    n = chosen.shape[0]
    out = np.empty(n, np.float64)
    for i in numba.prange(n):
        e = chosen[i]
        s, m = start[e], ptr[e + 1] - ptr[e]
        xs, rs = data[ptr[e]:ptr[e + 1]], inv_r[s:s + m]
        acc = 0.0
        for k in range(m):
            acc += xs[k] * xs[k] * rs[k]
        out[i] = acc
    return out


@numba.njit(cache=True)
def segment_argmax(scores, ex_ptr):  # pragma: no cover - numba
    n = ex_ptr.shape[0] - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        best, arg = -np.inf, ex_ptr[i]
        for e in range(ex_ptr[i], ex_ptr[i + 1]):
            if scores[e] > best:
                best, arg = scores[e], e
        out[i] = arg
    return out
