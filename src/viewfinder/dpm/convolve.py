"""Filter responses over a feature pyramid: FFT "patchwork" or direct BLAS.

The score of a ``(fh, fw, 32)`` filter at cell ``(y, x)`` of a level is the valid
cross-correlation ``sum(filter * level[y:y+fh, x:x+fw])``; the response of a level
of ``(H, W)`` cells is ``(H - fh + 1, W - fw + 1)`` (empty if the filter is larger).

* ``"fft"`` follows FFLD's patchwork (Dubout & Fleuret, *Exact Acceleration of Linear
  Object Detectors*, ECCV 2012): levels are cut into overlapping tiles that are packed
  into a few patches of one fixed size, so the filters' transforms are computed once
  per patch size (and cached) and the per-frequency products over all patches become
  one batched complex matrix product (BLAS ``cgemm``).
* ``"direct"`` multiplies each level by the filter with one GEMM per filter (``level
  (H*W, 32) @ filter (32, fh*fw)``) and sums the ``fh*fw`` shifted columns in numba.
* ``"auto"`` picks FFT when the work is large (many filters on large levels), where it
  needs several times fewer operations; ``benchmarks/dpm.py`` measures both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from viewfinder.dpm.features import FEATURE_DIM
from viewfinder.errors import ConfigError, ShapeError

__all__ = ["DEFAULT_PATCH", "FFT_MIN_WORK", "filter_responses"]

#: Patch size (cells) of the FFT patchwork: large enough for the 11-cell root filters to
#: waste little overlap, small enough that the 54 filters' transforms stay ~30 MB.
DEFAULT_PATCH = (64, 64)
#: Below this many multiply-adds (cells x filter weights) the direct path is used.
FFT_MIN_WORK = 2.0e8
_FILTER_FFT_CACHE: dict[tuple[int, int, int], tuple[tuple[np.ndarray, ...], np.ndarray]] = {}
_CACHE_SIZE = 2  # each entry is ~50 MB for 48 filters at 64x64


@numba.njit(cache=True)
def _shift_sum(z: np.ndarray, fh: int, fw: int) -> np.ndarray:
    """``out[y, x] = sum_{dy, dx} z[y + dy, x + dx, dy * fw + dx]``."""
    oh, ow = z.shape[0] - fh + 1, z.shape[1] - fw + 1
    out = np.zeros((oh, ow), np.float32)
    for dy in range(fh):
        for y in range(oh):
            for dx in range(fw):
                k = dy * fw + dx
                for x in range(ow):
                    out[y, x] += z[y + dy, x + dx, k]
    return out


def _direct(level: np.ndarray, filt: np.ndarray) -> np.ndarray:
    h, w, d = level.shape
    fh, fw = filt.shape[:2]
    if h < fh or w < fw:
        return np.zeros((max(h - fh + 1, 0), max(w - fw + 1, 0)), np.float32)
    z = level.reshape(-1, d) @ filt.reshape(-1, d).T
    return _shift_sum(z.reshape(h, w, fh * fw), fh, fw)


@dataclass(frozen=True)
class _Tile:
    level: int
    y: int  # tile origin in the level
    x: int
    h: int
    w: int
    patch: int
    py: int  # tile origin in the patch
    px: int


def _cut(shape: tuple[int, int], patch: tuple[int, int], fmax: tuple[int, int]) -> list[tuple]:
    """Tiles of one level: (y, x, h, w), overlapping by ``fmax - 1`` so outputs are covered."""
    sy, sx = patch[0] - fmax[0] + 1, patch[1] - fmax[1] + 1
    out = []
    for y in range(0, max(shape[0] - fmax[0] + 1, 1), sy):
        for x in range(0, max(shape[1] - fmax[1] + 1, 1), sx):
            out.append((y, x, min(patch[0], shape[0] - y), min(patch[1], shape[1] - x)))
    return out


def _pack(shapes: Sequence[tuple[int, int]], patch: tuple[int, int],
          fmax: tuple[int, int]) -> tuple[list[_Tile], int]:
    """Shelf-pack the tiles of all levels into patches, first fit by decreasing height.

    Each tile goes on the first shelf (of any patch) that is tall enough and has room
    left, else on a new shelf in the first patch with height left, else in a new patch.
    """
    rects = [(lvl, *t) for lvl, s in enumerate(shapes) if s[0] > 0 and s[1] > 0
             for t in _cut(s, patch, fmax)]
    rects.sort(key=lambda r: (-r[3], -r[4]))
    shelves: list[list[int]] = []  # [patch, y, height, used width]
    used: list[int] = []  # height used per patch
    tiles: list[_Tile] = []
    for lvl, y, x, h, w in rects:
        shelf = next((sh for sh in shelves if h <= sh[2] and sh[3] + w <= patch[1]), None)
        if shelf is None:
            p = next((i for i, u in enumerate(used) if u + h <= patch[0]), len(used))
            if p == len(used):
                used.append(0)
            shelf = [p, used[p], h, 0]
            used[p] += h
            shelves.append(shelf)
        tiles.append(_Tile(lvl, y, x, h, w, shelf[0], shelf[1], shelf[3]))
        shelf[3] += w
    return tiles, len(used)


def _filter_ffts(filters: tuple[np.ndarray, ...], patch: tuple[int, int]) -> np.ndarray:
    """Conjugate filter transforms as real blocks ``(F, 64, 2K)`` (cached by identity).

    The complex products ``X . conj(W)`` per frequency are computed as one real product
    ``X' @ B`` (NumPy batches real ``sgemm`` efficiently but not complex ones), where
    ``X'`` is the complex64 spectrum seen as float32 (rows alternate ``Xr``, ``Xi`` per
    channel, no copy). The columns of ``B`` alternate real and imaginary parts
    (``[Wr; Wi]``, ``[-Wi; Wr]`` interleaved by row), so the float32 result *is* the
    complex64 spectrum ``(F, P, K)``, without a copy.
    """
    key = (id(filters), patch[0], patch[1])
    hit = _FILTER_FFT_CACHE.get(key)
    if hit is not None and hit[0] is filters:
        return hit[1]
    import scipy.fft  # on first use: 0.3 s of import the direct path does not need

    padded = np.zeros((len(filters), patch[0], patch[1], FEATURE_DIM), np.float32)
    for k, f in enumerate(filters):
        padded[k, :f.shape[0], :f.shape[1]] = f
    spec = scipy.fft.rfftn(padded, axes=(1, 2), workers=os.cpu_count())
    spec = spec.reshape(len(filters), -1, FEATURE_DIM).transpose(1, 2, 0)  # (F, 32, K)
    wr, wi = spec.real, spec.imag  # conj(W) = wr - i*wi
    out = np.empty((spec.shape[0], 2 * FEATURE_DIM, 2 * len(filters)), np.float32)
    out[:, 0::2, 0::2], out[:, 1::2, 0::2] = wr, wi
    out[:, 0::2, 1::2], out[:, 1::2, 1::2] = -wi, wr
    if len(_FILTER_FFT_CACHE) >= _CACHE_SIZE:
        _FILTER_FFT_CACHE.pop(next(iter(_FILTER_FFT_CACHE)))
    _FILTER_FFT_CACHE[key] = (filters, out)
    return out


def _fft(levels: Sequence[np.ndarray], filters: tuple[np.ndarray, ...],
         patch: tuple[int, int]) -> list[list[np.ndarray]]:
    fmax = (max(f.shape[0] for f in filters), max(f.shape[1] for f in filters))
    if fmax[0] > patch[0] or fmax[1] > patch[1]:
        raise ConfigError(f"FFT patch {patch}: smaller than the largest filter {fmax}")
    tiles, npatch = _pack([lv.shape[:2] for lv in levels], patch, fmax)
    if not tiles:
        return [[_empty(lv, f) for f in filters] for lv in levels]
    import scipy.fft

    x = np.zeros((npatch, patch[0], patch[1], FEATURE_DIM), np.float32)
    for t in tiles:
        x[t.patch, t.py:t.py + t.h, t.px:t.px + t.w] = levels[t.level][t.y:t.y + t.h,
                                                                        t.x:t.x + t.w]
    xf = scipy.fft.rfftn(x, axes=(1, 2), workers=os.cpu_count())
    nf = xf.shape[1] * xf.shape[2]
    # (F, P, 64) float32 view, real and imaginary parts interleaved (BLAS takes the strides)
    xb = xf.reshape(npatch, nf, FEATURE_DIM).view(np.float32).transpose(1, 0, 2)
    wb = _filter_ffts(filters, patch)
    stacks = _stacks(levels, filters)
    by_patch: list[list[_Tile]] = [[] for _ in range(npatch)]
    for t in tiles:
        by_patch[t.patch].append(t)
    owned = _owned(tiles, levels, patch, fmax, filters)

    workers = max(1, min(os.cpu_count() or 1, npatch))
    chunk = -(-npatch // workers)  # one job per thread: small GEMMs are inefficient

    def inverse(p0: int) -> None:  # BLAS and pocketfft release the GIL
        p1 = min(p0 + chunk, npatch)
        prod = np.matmul(xb[:, p0:p1], wb)  # (F, p, 2K) = complex (F, p, K)
        spec = prod.view(np.complex64).reshape(patch[0], patch[1] // 2 + 1, p1 - p0, -1)
        # NumPy's pocketfft reads the strided (p, K, PH, PW/2+1) view faster than scipy
        # reads a contiguous copy
        resp = np.fft.irfft2(spec.transpose(2, 3, 0, 1), s=patch)  # (p, K, PH, PW) float32
        for p in range(p0, p1):
            for t in by_patch[p]:
                oh, ow = owned[t]
                stacks[t.level][:, t.y:t.y + oh, t.x:t.x + ow] = resp[
                    p - p0, :, t.py:t.py + oh, t.px:t.px + ow]

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(inverse, range(0, npatch, chunk)))
    return [[st[k, :max(lv.shape[0] - f.shape[0] + 1, 0), :max(lv.shape[1] - f.shape[1] + 1, 0)]
             for k, f in enumerate(filters)] for st, lv in zip(stacks, levels, strict=True)]


def _stacks(levels: Sequence[np.ndarray], filters: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """One ``(K, H - fh_min + 1, W - fw_min + 1)`` output array per level (uninitialised).

    The tiles of a level cover all of it (see :func:`_owned`).

    Filter ``k``'s response is the view ``stack[k, :H - fh_k + 1, :W - fw_k + 1]``.
    """
    fmin = (min(f.shape[0] for f in filters), min(f.shape[1] for f in filters))
    return [np.empty((len(filters), max(lv.shape[0] - fmin[0] + 1, 0),
                      max(lv.shape[1] - fmin[1] + 1, 0)), np.float32) for lv in levels]


def _owned(tiles: list[_Tile], levels: Sequence[np.ndarray], patch: tuple[int, int],
           fmax: tuple[int, int], filters: tuple[np.ndarray, ...]) -> dict[_Tile, tuple]:
    """Output rows/columns each tile writes, so that tiles write disjoint regions.

    A tile owns its outputs up to where the next tile of its level starts (``patch - fmax
    + 1`` further), where every filter's output is valid; the last tile of a row or
    column owns the rest of the smallest filter's output (outputs of larger filters
    beyond their own valid size lie outside their views).
    """
    fmin = (min(f.shape[0] for f in filters), min(f.shape[1] for f in filters))
    sy, sx = patch[0] - fmax[0] + 1, patch[1] - fmax[1] + 1
    out = {}
    for t in tiles:
        h, w = levels[t.level].shape[:2]
        oh = min(t.h - fmin[0] + 1, h - fmin[0] + 1 - t.y)
        ow = min(t.w - fmin[1] + 1, w - fmin[1] + 1 - t.x)
        if t.y + sy < h - fmax[0] + 1:  # another tile starts below
            oh = min(oh, sy)
        if t.x + sx < w - fmax[1] + 1:
            ow = min(ow, sx)
        out[t] = (max(oh, 0), max(ow, 0))
    return out


def _empty(level: np.ndarray, filt: np.ndarray) -> np.ndarray:
    return np.zeros((max(level.shape[0] - filt.shape[0] + 1, 0),
                     max(level.shape[1] - filt.shape[1] + 1, 0)), np.float32)


def filter_responses(
    levels: Sequence[np.ndarray],
    filters: Sequence[np.ndarray],
    method: str = "auto",
    patch: tuple[int, int] = DEFAULT_PATCH,
) -> list[list[np.ndarray]]:
    """Responses of every filter on every level.

    Args:
        levels: ``(H, W, 32)`` float32 feature maps.
        filters: ``(fh, fw, 32)`` float32 filters. Pass the same tuple object again to
            reuse its cached transforms.
        method: ``"fft"``, ``"direct"`` or ``"auto"``.
        patch: FFT patch size in cells (at least the largest filter).

    Returns:
        ``out[level][filter]``: ``(H - fh + 1, W - fw + 1)`` float32 (``(0, *)`` or
        ``(*, 0)`` when the filter does not fit).

    Raises:
        ShapeError: a level or filter is not ``(*, *, 32)``.
        ConfigError: unknown method, or a patch smaller than a filter.
    """
    filters = tuple(filters)
    for name, arrs in (("level", levels), ("filter", filters)):
        for i, a in enumerate(arrs):
            if a.ndim != 3 or a.shape[2] != FEATURE_DIM:
                raise ShapeError(f"{name} {i}: expected shape (h, w, 32), got {a.shape}")
    if method not in ("auto", "fft", "direct"):
        raise ConfigError(f"convolution method {method!r}: expected auto, fft or direct")
    if not filters or not levels:
        return [[] for _ in levels]
    if method == "auto":
        cells = sum(lv.shape[0] * lv.shape[1] for lv in levels)
        work = cells * sum(f.size for f in filters)
        method = "fft" if work >= FFT_MIN_WORK else "direct"
    if method == "direct":
        return [[_direct(lv, f) for f in filters] for lv in levels]
    return _fft(levels, filters, patch)
