"""Generalized distance transform (Felzenszwalb & Huttenlocher), linear time.

For a part's filter response ``f`` and deformation weights ``(ax, bx, ay, by)``::

    D(py, px) = max_{qy, qx} f(qy, qx) - ax*(px-qx)² - bx*(px-qx) - ay*(py-qy)² - by*(py-qy)

is the best score of the part when its anchor is at ``(py, px)``, with the argmax
``(qy, qx)`` the part's placement. The 2-D transform is two 1-D passes (rows, then
columns); each pass builds the upper envelope of the parabolas rooted at every source
cell in O(n) (the lower-envelope algorithm of *Distance Transforms of Sampled
Functions*, negated for a max) and reads it at the query points in O(n).

:func:`distance_transform` evaluates every cell, like voc-release5's ``dt.cc``.
:func:`sampled_distance_transform` evaluates only a strided grid of anchors (every
other cell, where a root of the level above puts its parts) and returns ``-inf`` for
anchors outside the response, as voc-release5's structural rule does.
"""

from __future__ import annotations

import numba
import numpy as np

from viewfinder.errors import ShapeError, check_shape

__all__ = ["distance_transform", "sampled_distance_transform"]


@numba.njit(cache=True, nogil=True)
def _dt1d_brute(src: np.ndarray, a: float, b: float, p0: int, step: int, m: int,
                out: np.ndarray, arg: np.ndarray) -> None:
    """The definition, O(n*m): used when ``a <= 0`` (no parabola envelope exists)."""
    n = src.shape[0]
    for i in range(m):
        p = p0 + step * i
        best, arg_best = -np.inf, -1
        if 0 <= p < n:
            for q in range(n):
                val = src[q] - a * (p - q) * (p - q) - b * (p - q)
                if val > best:
                    best, arg_best = val, q
        out[i], arg[i] = best, arg_best


@numba.njit(cache=True, nogil=True)
def _dt1d(src: np.ndarray, a: float, b: float, p0: int, step: int, m: int,
          out: np.ndarray, arg: np.ndarray, v: np.ndarray, z: np.ndarray,
          hv: np.ndarray, recip: np.ndarray) -> None:
    """1-D max-transform of ``src`` read at ``p0 + step*i`` (i < m); writes out/arg.

    ``-inf`` sources are skipped (they never win); ``recip[d] = 1/d`` avoids divisions.
    """
    n = src.shape[0]
    if a <= 0.0:  # degenerate cost: no parabola envelope, use the definition
        _dt1d_brute(src, a, b, p0, step, m, out, arg)
        return
    inv2a = 0.5 / a
    k = -1
    for q in range(n):
        if src[q] == -np.inf:
            continue
        hq = -src[q] + (a * q - b) * q
        if k < 0:
            k = 0
            v[0] = q
            hv[0] = hq
            z[0] = -np.inf
            z[1] = np.inf
            continue
        s = (hq - hv[k]) * inv2a * recip[q - v[k]]
        while s <= z[k]:
            k -= 1
            s = (hq - hv[k]) * inv2a * recip[q - v[k]]
        k += 1
        v[k] = q
        hv[k] = hq
        z[k] = s
        z[k + 1] = np.inf
    j = 0
    for i in range(m):
        p = p0 + step * i
        if p < 0 or p >= n or k < 0:
            out[i] = -np.inf
            arg[i] = -1
            continue
        while z[j + 1] < p:
            j += 1
        q = v[j]
        out[i] = src[q] - a * (p - q) * (p - q) - b * (p - q)
        arg[i] = q


@numba.njit(cache=True, nogil=True)
def _workspace(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Envelope buffers ``v, z, hv``, reciprocals ``1/d`` and a source row, for ``n`` cells."""
    recip = np.empty(n + 1, np.float64)
    recip[0] = 0.0
    for d in range(1, n + 1):
        recip[d] = 1.0 / d
    return (np.empty(n, np.int64), np.empty(n + 1, np.float64), np.empty(n, np.float64),
            recip, np.empty(n, np.float64))


@numba.njit(cache=True, nogil=True)
def _dt2d_into(f: np.ndarray, h: int, w: int, ax: float, bx: float, ay: float, by: float,
               y0: int, x0: int, step: int, ny: int, nx: int, out: np.ndarray,
               iy: np.ndarray, ix: np.ndarray, ws: tuple) -> None:
    """Sampled 2-D transform of ``f[:h, :w]`` into ``out/iy/ix[:ny, :nx]`` (-inf, -1 outside).

    ``ws`` is :func:`_workspace` of at least ``max(h, w)`` cells.
    """
    v, z, hv, recip, src = ws
    tmp = np.empty((nx, h), np.float64)  # row pass, stored column-major for the 2nd pass
    targ = np.empty((nx, h), np.int32)
    row_out = np.empty(nx, np.float64)
    row_arg = np.empty(nx, np.int32)
    for y in range(h):
        for x in range(w):
            src[x] = f[y, x]
        _dt1d(src[:w], ax, bx, x0, step, nx, row_out, row_arg, v, z, hv, recip)
        for j in range(nx):
            tmp[j, y] = row_out[j]
            targ[j, y] = row_arg[j]
    col_out = np.empty(ny, np.float64)
    col_arg = np.empty(ny, np.int32)
    for j in range(nx):
        if x0 + step * j < 0 or x0 + step * j >= w:  # anchor column outside the response
            for i in range(ny):
                out[i, j] = -np.inf
                iy[i, j] = -1
                ix[i, j] = -1
            continue
        _dt1d(tmp[j], ay, by, y0, step, ny, col_out, col_arg, v, z, hv, recip)
        for i in range(ny):
            if col_arg[i] >= 0:
                out[i, j] = col_out[i]
                iy[i, j] = col_arg[i]
                ix[i, j] = targ[j, col_arg[i]]
            else:
                out[i, j] = -np.inf
                iy[i, j] = -1
                ix[i, j] = -1


@numba.njit(cache=True, nogil=True)
def _dt2d(f: np.ndarray, ax: float, bx: float, ay: float, by: float,
          y0: int, x0: int, step: int, ny: int, nx: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = f.shape
    out = np.empty((ny, nx), np.float64)
    iy = np.empty((ny, nx), np.int32)
    ix = np.empty((ny, nx), np.int32)
    _dt2d_into(f, h, w, ax, bx, ay, by, y0, x0, step, ny, nx, out, iy, ix,
               _workspace(max(h, w)))
    return out, iy, ix


@numba.njit(cache=True, nogil=True)
def score_level_kernel(roots: np.ndarray, root_hw: np.ndarray, parts: np.ndarray,
                       part_hw: np.ndarray, comp_root: np.ndarray, comp_offset: np.ndarray,
                       comp_jobs: np.ndarray, job_filter: np.ndarray, job_def: np.ndarray,
                       job_origin: np.ndarray, job_bias: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All components of one root level: part DTs, star scores and their max.

    Component ``c`` (skipped when ``comp_root[c] < 0``) scores
    ``roots[r, :h, :w] + comp_offset[c]`` plus, for its jobs ``comp_jobs[c]:comp_jobs[c+1]``,
    the DT of ``parts[job_filter[j]]`` sampled at ``job_origin[j] + 2*(y, x)`` plus
    ``job_bias[j]`` (voc-release5's order of additions). Returns ``best`` and ``comp`` (max
    over components, first wins ties; -inf / -1 where none) and the parts' argmax ``iy, ix``
    ``(jobs, NY, NX)``, set only inside the job's component's root response.
    """
    ncomp = comp_root.shape[0]
    bh, bw = _max_shape(root_hw, comp_root)
    best = np.full((bh, bw), -np.inf)
    comp = np.full((bh, bw), -1, np.int64)
    njobs = job_filter.shape[0]
    # written at [:ny, :nx] of each job's component, the only cells read for its candidates
    iy = np.empty((njobs, bh, bw), np.int32)
    ix = np.empty((njobs, bh, bw), np.int32)
    ws = _workspace(max(parts.shape[1], parts.shape[2], 1))
    val = np.empty((bh, bw), np.float64)
    for c in range(ncomp):
        r = comp_root[c]
        if r < 0:
            continue
        ny, nx = root_hw[r, 0], root_hw[r, 1]
        score = np.empty((ny, nx), np.float64)
        for i in range(ny):
            for j in range(nx):
                score[i, j] = np.float64(roots[r, i, j]) + comp_offset[c]
        for jb in range(comp_jobs[c], comp_jobs[c + 1]):
            k = job_filter[jb]
            d = job_def[jb]
            _dt2d_into(parts[k], part_hw[k, 0], part_hw[k, 1], d[0], d[1], d[2], d[3],
                       job_origin[jb, 0], job_origin[jb, 1], 2, ny, nx, val, iy[jb], ix[jb], ws)
            for i in range(ny):
                for j in range(nx):
                    score[i, j] = (score[i, j] + val[i, j]) + job_bias[jb]
        _update_best(score, c, best, comp)
    return best, comp, iy, ix


@numba.njit(cache=True, nogil=True)
def _max_shape(root_hw: np.ndarray, comp_root: np.ndarray) -> tuple[int, int]:
    bh, bw = 0, 0
    for c in range(comp_root.shape[0]):
        if comp_root[c] >= 0:
            bh = max(bh, root_hw[comp_root[c], 0])
            bw = max(bw, root_hw[comp_root[c], 1])
    return bh, bw


@numba.njit(cache=True, nogil=True)
def _update_best(score: np.ndarray, c: int, best: np.ndarray, comp: np.ndarray) -> None:
    """Max over components; the first keeps ties."""
    for i in range(score.shape[0]):
        for j in range(score.shape[1]):
            if score[i, j] > best[i, j]:
                best[i, j] = score[i, j]
                comp[i, j] = c


def _check(scores: np.ndarray, deformation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.ascontiguousarray(scores, dtype=np.float64)
    if f.ndim != 2:
        raise ShapeError(f"scores: expected shape (H, W), got {np.shape(scores)}")
    d = np.asarray(deformation, dtype=np.float64).reshape(-1)
    check_shape(d, (4,), "deformation")
    if f.size and (np.isnan(f).any() or (f == np.inf).any()):
        raise ShapeError("scores: expected finite values or -inf, got NaN or +inf")
    return f, d


def distance_transform(scores: np.ndarray, deformation: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generalized distance transform of a response map, at every cell.

    Args:
        scores: ``(H, W)`` filter response (``-inf`` marks cells a part cannot take).
        deformation: ``(ax, bx, ay, by)``.

    Returns:
        ``(values, iy, ix)``: ``(H, W)`` float64 best scores and int32 argmax rows/columns.
    """
    f, d = _check(scores, deformation)
    if f.size == 0:
        return f.copy(), np.zeros(f.shape, np.int32), np.zeros(f.shape, np.int32)
    return _dt2d(f, d[0], d[1], d[2], d[3], 0, 0, 1, f.shape[0], f.shape[1])


def sampled_distance_transform(
    scores: np.ndarray, deformation: np.ndarray, origin: tuple[int, int], step: int,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distance transform read at anchors ``origin + step * (i, j)`` only.

    Args:
        scores: ``(H, W)`` finite filter response.
        deformation: ``(ax, bx, ay, by)``.
        origin: ``(y0, x0)`` first anchor (may be negative).
        step: Anchor spacing (2 between a root level and its part level).
        shape: ``(ny, nx)`` anchors per axis.

    Returns:
        ``(values, iy, ix)`` of shape ``shape``; anchors outside the response get
        ``-inf`` and argmax ``-1``.
    """
    f, d = _check(scores, deformation)
    ny, nx = int(shape[0]), int(shape[1])
    if f.size == 0 or ny <= 0 or nx <= 0:
        return (np.full((max(ny, 0), max(nx, 0)), -np.inf), np.full((max(ny, 0), max(nx, 0)),
                -1, np.int32), np.full((max(ny, 0), max(nx, 0)), -1, np.int32))
    return _dt2d(f, d[0], d[1], d[2], d[3], int(origin[0]), int(origin[1]), int(step), ny, nx)
