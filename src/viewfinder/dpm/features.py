"""HOG features exactly as voc-release5 computes them (``features/features.cc``).

Each ``sbin`` × ``sbin`` cell gets 32 numbers: 18 contrast-sensitive orientation bins,
9 contrast-insensitive bins, 4 gradient-energy ("texture") features, and one
truncation feature that is 0 for every cell computed from the image (the pyramid
sets it to 1 in its padding, see :mod:`viewfinder.dpm.pyramid`).

The steps follow ``features.cc`` line by line: the gradient of the colour channel
with the largest magnitude, snapped to one of 18 orientations by the largest dot
product with fixed unit vectors, bilinear voting into cell histograms, four
block normalisations clipped at 0.2, and a one-cell border dropped. The output is
``(cells_y - 2, cells_x - 2, 32)`` with ``cells = round(size / sbin)``.
"""

from __future__ import annotations

import numba
import numpy as np

from viewfinder.errors import ShapeError, SizeError

__all__ = [
    "FEATURE_DIM",
    "FLIP_PERMUTATION",
    "HOG_CLIP",
    "HOG_EPS",
    "TEXTURE_SCALE",
    "TRUNCATION_INDEX",
    "flip_features",
    "hog",
    "hog_multi",
    "round_half_up",
]

#: Features per cell: 18 + 9 orientations, 4 texture, 1 truncation (features.cc ``out[2]``).
FEATURE_DIM = 32
#: Index of the truncation (boundary occlusion) feature (``model.features.truncation_dim`` - 1).
TRUNCATION_INDEX = 31
#: Small value that keeps the block normalisation finite (features.cc ``eps``).
HOG_EPS = 0.0001
#: Normalised histogram values are clipped at this value (features.cc, "0.2").
HOG_CLIP = 0.2
#: Weight of the texture features, 1/sqrt(18) rounded as in features.cc.
TEXTURE_SCALE = 0.2357

# Unit vectors of the 9 orientations 0..160 degrees (features.cc ``uu``, ``vv``).
_UU = np.array([1.0000, 0.9397, 0.7660, 0.500, 0.1736, -0.1736, -0.5000, -0.7660, -0.9397])
_VV = np.array([0.0000, 0.3420, 0.6428, 0.8660, 0.9848, 0.9848, 0.8660, 0.6428, 0.3420])

#: Channel permutation that mirrors HOG features left-right (voc-release5 ``flipfeat.m``).
FLIP_PERMUTATION = np.array(
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 17, 16, 15, 14, 13, 12, 11, 10,
     18, 26, 25, 24, 23, 22, 21, 20, 19, 29, 30, 27, 28, 31], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _gradients(im: np.ndarray, vis_y: int, vis_x: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and orientation bin (0..17) of the strongest channel's gradient.

    Pixel ``(y, x)`` for ``1 <= y < vis_y - 1``, ``1 <= x < vis_x - 1``, sampled at
    ``(min(y, H-2), min(x, W-2))`` as features.cc does; shared by every cell size.
    """
    h, w = im.shape[0], im.shape[1]
    mag = np.zeros((vis_y, vis_x), np.float64)
    ori = np.zeros((vis_y, vis_x), np.int8)
    for y in range(1, vis_y - 1):
        sy = min(y, h - 2)
        for x in range(1, vis_x - 1):
            sx = min(x, w - 2)
            best_v = -1.0
            dx = 0.0
            dy = 0.0
            for c in range(3):
                gy = im[sy + 1, sx, c] - im[sy - 1, sx, c]
                gx = im[sy, sx + 1, c] - im[sy, sx - 1, c]
                v = gx * gx + gy * gy
                if v > best_v:
                    best_v, dx, dy = v, gx, gy
            # features.cc: the first o with the largest |dot| (strictly above 0), +9 if
            # dot < 0; branch-free selects instead of its if/else-if
            best_dot = 0.0
            best_o = 0
            for o in range(9):
                dot = _UU[o] * dx + _VV[o] * dy
                a = abs(dot)
                better = a > best_dot
                best_dot = a if better else best_dot
                best_o = (o + 9 * (dot < 0.0)) if better else best_o
            mag[y, x] = np.sqrt(best_v)
            ori[y, x] = best_o
    return mag, ori


@numba.njit(cache=True, nogil=True)
def _histograms(mag: np.ndarray, ori: np.ndarray, sbin: int, cy: int, cx: int) -> np.ndarray:
    """Orientation histograms ``(cy, cx, 18)`` float32 with bilinear voting."""
    hist = np.zeros((cy, cx, 18), dtype=np.float32)
    nx = cx * sbin - 1
    ixs = np.empty(nx, np.int64)  # per column: left cell and the two weights
    wx0 = np.empty(nx, np.float64)
    wx1 = np.empty(nx, np.float64)
    for x in range(1, nx):
        xp = (x + 0.5) / sbin - 0.5
        ixs[x] = int(np.floor(xp))
        wx0[x] = xp - ixs[x]
        wx1[x] = 1.0 - wx0[x]
    for y in range(1, cy * sbin - 1):
        yp = (y + 0.5) / sbin - 0.5
        iyp = int(np.floor(yp))
        vy0 = yp - iyp
        vy1 = 1.0 - vy0
        top, bottom = iyp >= 0, iyp + 1 < cy
        for x in range(1, nx):
            ixp, vx0, vx1 = ixs[x], wx0[x], wx1[x]
            m = mag[y, x]
            o = ori[y, x]
            left, right = ixp >= 0, ixp + 1 < cx
            if left and top:
                hist[iyp, ixp, o] += vx1 * vy1 * m
            if right and top:
                hist[iyp, ixp + 1, o] += vx0 * vy1 * m
            if left and bottom:
                hist[iyp + 1, ixp, o] += vx1 * vy0 * m
            if right and bottom:
                hist[iyp + 1, ixp + 1, o] += vx0 * vy0 * m
    return hist


@numba.njit(cache=True, nogil=True)
def _block_norms(hist: np.ndarray) -> np.ndarray:
    """``1/sqrt(energy of the 2x2 block at (y, x) + eps)`` for every block (features.cc)."""
    cy, cx = hist.shape[0], hist.shape[1]
    norm = np.zeros((cy, cx), dtype=np.float32)
    for y in range(cy):
        for x in range(cx):
            acc = np.float32(0.0)
            for o in range(9):
                s = hist[y, x, o] + hist[y, x, o + 9]
                acc += s * s
            norm[y, x] = acc
    inv = np.zeros((max(cy - 1, 0), max(cx - 1, 0)), dtype=np.float32)
    for y in range(cy - 1):
        for x in range(cx - 1):
            s = norm[y, x] + norm[y + 1, x] + norm[y, x + 1] + norm[y + 1, x + 1]
            inv[y, x] = 1.0 / np.sqrt(s + HOG_EPS)
    return inv


@numba.njit(cache=True, nogil=True)
def _normalise(hist: np.ndarray) -> np.ndarray:
    """Block-normalised 32-dim features from ``(cy, cx, 18)`` histograms."""
    cy, cx = hist.shape[0], hist.shape[1]
    inv = _block_norms(hist)
    oy, ox = max(cy - 2, 0), max(cx - 2, 0)
    feat = np.zeros((oy, ox, 32), dtype=np.float32)
    clip = np.float32(HOG_CLIP)
    for y in range(oy):
        for x in range(ox):
            # n1: block below-right, n2: right, n3: below, n4: the cell's own top-left block.
            n1, n2 = inv[y + 1, x + 1], inv[y, x + 1]
            n3, n4 = inv[y + 1, x], inv[y, x]
            t1 = t2 = t3 = t4 = np.float32(0.0)
            for o in range(18):
                v = hist[y + 1, x + 1, o]
                h1, h2 = min(v * n1, clip), min(v * n2, clip)
                h3, h4 = min(v * n3, clip), min(v * n4, clip)
                t1 += h1
                t2 += h2
                t3 += h3
                t4 += h4
                feat[y, x, o] = 0.5 * (h1 + h2 + h3 + h4)
            for o in range(9):
                v = hist[y + 1, x + 1, o] + hist[y + 1, x + 1, o + 9]
                h1, h2 = min(v * n1, clip), min(v * n2, clip)
                h3, h4 = min(v * n3, clip), min(v * n4, clip)
                feat[y, x, 18 + o] = 0.5 * (h1 + h2 + h3 + h4)
            feat[y, x, 27] = TEXTURE_SCALE * t1
            feat[y, x, 28] = TEXTURE_SCALE * t2
            feat[y, x, 29] = TEXTURE_SCALE * t3
            feat[y, x, 30] = TEXTURE_SCALE * t4
    return feat


def round_half_up(value: float) -> int:
    """C's ``round`` for non-negative values (Python's ``round`` rounds half to even)."""
    return int(np.floor(value + 0.5))


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` → contiguous float64 ``(H, W, 3)``."""
    im = np.asarray(image)
    if im.ndim == 2:
        im = im[:, :, None]
    if im.ndim != 3 or im.shape[2] not in (1, 3):
        raise ShapeError(f"image: expected shape (H, W, 3) or (H, W), got {np.shape(image)}")
    if im.shape[2] == 1:
        im = np.repeat(im, 3, axis=2)
    return np.ascontiguousarray(im, dtype=np.float64)


def hog(image: np.ndarray, sbin: int = 8) -> np.ndarray:
    """voc-release5 HOG features of one image.

    Args:
        image: ``(H, W, 3)`` RGB (or ``(H, W)`` gray, replicated to 3 channels), values
            0..255, any real dtype.
        sbin: Cell size in pixels (8 for root levels, 4 for part levels).

    Returns:
        ``(round(H/sbin) - 2, round(W/sbin) - 2, 32)`` float32 (empty when the image
        has fewer than 3 cells along a side).

    Raises:
        ShapeError: the image is not 2-D gray or 3-channel.
        SizeError: ``sbin`` < 2 or the image is smaller than 3 × 3 pixels.
    """
    return hog_multi(image, (sbin,))[0]


def hog_multi(image: np.ndarray, sbins: tuple[int, ...]) -> list[np.ndarray]:
    """:func:`hog` of one image for several cell sizes, sharing the gradient pass.

    The pyramid needs ``sbin/2`` and ``sbin`` features of every first-octave image.
    """
    im = _as_rgb(image)
    for sbin in sbins:
        if int(sbin) < 2:
            raise SizeError(f"sbin: expected an integer >= 2, got {sbin}")
    h, w = im.shape[:2]
    if h < 3 or w < 3:
        raise SizeError(f"image: expected at least 3x3 pixels, got {w}x{h}")
    cells = [(round_half_up(h / s), round_half_up(w / s)) for s in sbins]
    vis_y = max(c[0] * int(s) for c, s in zip(cells, sbins, strict=True))
    vis_x = max(c[1] * int(s) for c, s in zip(cells, sbins, strict=True))
    mag, ori = _gradients(im, vis_y, vis_x)
    out = []
    for (cy, cx), sbin in zip(cells, sbins, strict=True):
        if cy < 3 or cx < 3:
            out.append(np.zeros((max(cy - 2, 0), max(cx - 2, 0), FEATURE_DIM), np.float32))
        else:
            out.append(_normalise(_histograms(mag, ori, int(sbin), cy, cx)))
    return out


def flip_features(feat: np.ndarray) -> np.ndarray:
    """Mirror ``(h, w, 32)`` HOG features (or filters) left-right, as ``flipfeat.m``."""
    f = np.asarray(feat)
    if f.ndim != 3 or f.shape[2] != FEATURE_DIM:
        raise ShapeError(f"features: expected shape (h, w, {FEATURE_DIM}), got {f.shape}")
    return np.ascontiguousarray(f[:, ::-1, FLIP_PERMUTATION])
