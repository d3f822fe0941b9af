"""The HOG feature pyramid of voc-release5 (``features/featpyramid.m``, ``resize.cc``).

Levels ``0 .. interval-1`` are the *part levels*: HOG with ``sbin/2`` cells on the
image scaled by ``2^(-i/interval)``, i.e. twice the resolution of the *root level*
``i + interval`` that is computed with ``sbin`` cells on the same scaled image. The
remaining levels halve the image octave by octave. Every level is padded with
``pady + 1`` rows and ``padx + 1`` columns of zeros (the extra 1 replaces the border
cell that HOG drops) whose truncation feature is 1, so objects cut by the image
border can still be detected.

Images are scaled with voc-release5's own area-averaging resampler (``resize.cc``),
reimplemented here, so the features match the published models' training data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np

from viewfinder.dpm.features import TRUNCATION_INDEX, _as_rgb, hog, hog_multi, round_half_up
from viewfinder.errors import SizeError

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SBIN",
    "MIN_CELLS_PER_SIDE",
    "Pyramid",
    "feature_pyramid",
    "voc_resize",
]

#: Levels per octave (voc-release5 ``globals.m``/model ``interval``: 10).
DEFAULT_INTERVAL = 10
#: Root cell size in pixels (voc-release5 model ``sbin``: 8).
DEFAULT_SBIN = 8
#: The smallest root level still has ``5 * sbin`` pixels on its short side (featpyramid.m).
MIN_CELLS_PER_SIDE = 5


@dataclass(frozen=True)
class Pyramid:
    """A padded HOG feature pyramid.

    Attributes:
        levels: One ``(h, w, 32)`` float32 array per level, padded.
        scales: ``(L,)`` image scale of each level relative to ``sbin``-cells: a cell of
            level ``l`` covers ``sbin / scales[l]`` input pixels.
        sbin: Root cell size in pixels.
        interval: Levels per octave; level ``l >= interval`` is a root level whose parts
            live at level ``l - interval``.
        padx: Columns of padding (each side, excluding the one replacing HOG's border).
        pady: Rows of padding.
        image_size: ``(height, width)`` of the input image.
    """

    levels: tuple[np.ndarray, ...]
    scales: np.ndarray
    sbin: int
    interval: int
    padx: int
    pady: int
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.levels)

    @property
    def root_levels(self) -> range:
        """Indices of the levels where root filters are placed."""
        return range(self.interval, len(self.levels))

    def cell_size(self, level: int) -> float:
        """Input-image pixels per cell at ``level``."""
        return self.sbin / float(self.scales[level])


@numba.njit(cache=True, nogil=True)
def _resize_weights(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``resize.cc`` interpolation table: (destination, source, weight) triples."""
    scale = dst / src
    inv = src / dst
    cap = int(math.ceil(dst * inv)) + 2 * dst
    di = np.empty(cap, np.int64)
    si = np.empty(cap, np.int64)
    alpha = np.empty(cap, np.float64)
    k = 0
    for d in range(dst):
        f1 = d * inv
        f2 = f1 + inv
        s1 = int(math.ceil(f1))
        s2 = int(math.floor(f2))
        if s1 - f1 > 1e-3:
            di[k], si[k], alpha[k] = d, s1 - 1, (s1 - f1) * scale
            k += 1
        for s in range(s1, s2):
            di[k], si[k], alpha[k] = d, s, scale
            k += 1
        if f2 - s2 > 1e-3:
            di[k], si[k], alpha[k] = d, s2, (f2 - s2) * scale
            k += 1
    return di[:k], si[:k], alpha[:k]


@numba.njit(cache=True, nogil=True)
def _resize_rows(src: np.ndarray, dst_n: int) -> np.ndarray:
    """Resample axis 0 of a 2-D array (rows are contiguous, so each step is a row axpy)."""
    di, si, alpha = _resize_weights(src.shape[0], dst_n)
    out = np.zeros((dst_n, src.shape[1]), np.float64)
    for k in range(di.shape[0]):
        a = alpha[k]
        d = out[di[k]]
        s = src[si[k]]
        for j in range(src.shape[1]):
            d[j] += a * s[j]
    return out


@numba.njit(cache=True, nogil=True)
def _resize_cols(src: np.ndarray, dst_n: int) -> np.ndarray:
    """Resample axis 1 of an ``(H, W, C)`` array (same table and order as the rows)."""
    di, si, alpha = _resize_weights(src.shape[1], dst_n)
    out = np.zeros((src.shape[0], dst_n, src.shape[2]), np.float64)
    for r in range(src.shape[0]):
        d = out[r]
        s = src[r]
        for k in range(di.shape[0]):
            a = alpha[k]
            for j in range(src.shape[2]):
                d[di[k], j] += a * s[si[k], j]
    return out


def _resize(im: np.ndarray, dh: int, dw: int) -> np.ndarray:
    h, w, c = im.shape
    tmp = _resize_rows(im.reshape(h, w * c), dh).reshape(dh, w, c)
    return _resize_cols(tmp, dw)


def voc_resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Downscale an ``(H, W, C)`` image by ``scale`` <= 1 exactly as voc-release5's ``resize.cc``.

    Each output pixel is the area-weighted mean of the input pixels it covers.

    Returns:
        ``(round(H*scale), round(W*scale), C)`` float64.
    """
    if not 0 < scale <= 1:
        raise SizeError(f"resize scale: expected 0 < scale <= 1, got {scale}")
    im = np.ascontiguousarray(image, dtype=np.float64)
    if im.ndim == 2:
        im = im[:, :, None]
    dh, dw = round_half_up(im.shape[0] * scale), round_half_up(im.shape[1] * scale)
    if dh < 1 or dw < 1:
        return np.zeros((max(dh, 0), max(dw, 0), im.shape[2]), np.float64)
    return _resize(im, dh, dw)


def _pad_level(feat: np.ndarray, padx: int, pady: int) -> np.ndarray:
    """Zero-pad by ``pad + 1`` and set the truncation feature in the padding."""
    h, w, d = feat.shape
    out = np.zeros((h + 2 * (pady + 1), w + 2 * (padx + 1), d), np.float32)
    out[pady + 1:pady + 1 + h, padx + 1:padx + 1 + w] = feat
    t = out[:, :, TRUNCATION_INDEX]
    t[:pady + 1, :] = 1
    t[-(pady + 1):, :] = 1
    t[:, :padx + 1] = 1
    t[:, -(padx + 1):] = 1
    return out


def _hog_or_none(image: np.ndarray, sbin: int) -> np.ndarray | None:
    return hog(image, sbin) if min(image.shape[:2]) >= 3 else None


def _scale_levels(im: np.ndarray, i: int, sc: float, sbin: int, interval: int, extra: int,
                  max_scale: int) -> list[tuple[int, np.ndarray | None, float]]:
    """All levels of the ``i``-th scale of the first octave and its later octaves."""
    scaled = voc_resize(im, 1.0 / sc**i)
    out = []
    sbins = ((sbin // 4,) if extra else ()) + (sbin // 2, sbin)
    feats = hog_multi(scaled, sbins) if min(scaled.shape[:2]) >= 3 else [None] * len(sbins)
    if extra:
        out.append((i, feats[0], 4.0 / sc**i))
    out.append((i + extra, feats[-2], 2.0 / sc**i))
    out.append((i + extra + interval, feats[-1], 1.0 / sc**i))
    scale = 1.0 / sc**i
    for j in range(i + interval, max_scale, interval):
        scaled = voc_resize(scaled, 0.5)
        scale *= 0.5
        out.append((j + extra + interval, _hog_or_none(scaled, sbin), scale))
    return out


def feature_pyramid(
    image: np.ndarray,
    sbin: int = DEFAULT_SBIN,
    interval: int = DEFAULT_INTERVAL,
    pad: tuple[int, int] = (0, 0),
    extra_octave: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Pyramid:
    """Compute voc-release5's padded HOG pyramid of an image.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` gray, values 0..255.
        sbin: Root cell size (part levels use ``sbin // 2``).
        interval: Levels per octave.
        pad: ``(padx, pady)`` in cells; detection uses the model's ``maxsize``
            (``getpadding.m``): ``(maxsize_w, maxsize_h)``.
        extra_octave: Add an octave of ``sbin/4`` levels below the part levels (model
            ``features.extra_octave``, used by the INRIA person model) so roots can also
            be placed at twice the usual resolution.
        progress: Optional ``callback(done, total)`` after each scale of the first octave.

    Returns:
        The :class:`Pyramid`. An image whose short side is below ``5 * sbin`` pixels has
        only the part levels and the first root octave.

    Raises:
        ShapeError: the image is neither gray nor 3-channel.
        SizeError: ``sbin`` or ``interval`` is invalid, or the image is under 3 × 3 pixels.
    """
    if int(interval) < 1:
        raise SizeError(f"interval: expected an integer >= 1, got {interval}")
    step = 4 if extra_octave else 2
    if int(sbin) < 2 * step or int(sbin) % step:
        raise SizeError(f"sbin: expected a multiple of {step} >= {2 * step}, got {sbin}")
    im = _as_rgb(image)
    h, w = im.shape[:2]
    if h < 3 or w < 3:
        raise SizeError(f"image: expected at least 3x3 pixels, got {w}x{h}")
    padx, pady = int(pad[0]), int(pad[1])
    sc = 2.0 ** (1.0 / interval)
    ratio = min(h, w) / (MIN_CELLS_PER_SIDE * sbin)
    max_scale = 1 + math.floor(math.log(ratio) / math.log(sc)) if ratio > 0 else 1
    extra = interval if extra_octave else 0
    n = max(max_scale, interval) + extra + interval
    feats: list[np.ndarray | None] = [None] * n
    scales = np.zeros(n, np.float64)

    def scale_job(i: int) -> list[tuple[int, np.ndarray | None, float]]:
        return _scale_levels(im, i, sc, sbin, interval, extra, max_scale)

    workers = max(1, min(interval, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        for done, items in enumerate(pool.map(scale_job, range(interval))):
            for k, feat, scale in items:
                feats[k], scales[k] = feat, scale
            if progress is not None:
                progress(done + 1, interval)
    used = [k for k in range(n) if feats[k] is not None]
    empty = np.zeros((0, 0, 32), np.float32)
    levels = tuple(_pad_level(feats[k] if feats[k] is not None else empty, padx, pady)
                   for k in range(used[-1] + 1 if used else 0))
    return Pyramid(levels, scales[:len(levels)].copy(), int(sbin), int(interval), padx, pady,
                   (int(h), int(w)))
