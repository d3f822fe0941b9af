"""HOG and pyramid vs plain references written straight from features.cc / resize.cc."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viewfinder.dpm.features import FLIP_PERMUTATION, flip_features, hog
from viewfinder.dpm.pyramid import feature_pyramid, voc_resize
from viewfinder.errors import ShapeError, SizeError

UU = [1.0000, 0.9397, 0.7660, 0.500, 0.1736, -0.1736, -0.5000, -0.7660, -0.9397]
VV = [0.0000, 0.3420, 0.6428, 0.8660, 0.9848, 0.9848, 0.8660, 0.6428, 0.3420]


def reference_hog(im: np.ndarray, sbin: int) -> np.ndarray:
    """features.cc transcribed with plain loops."""
    h, w = im.shape[:2]
    cells = [int(math.floor(h / sbin + 0.5)), int(math.floor(w / sbin + 0.5))]
    return reference_normalise(reference_histograms(im, sbin, cells))


def reference_histograms(im: np.ndarray, sbin: int, cells: list[int]) -> np.ndarray:
    h, w = im.shape[:2]
    hist = np.zeros((cells[0], cells[1], 18))
    for x in range(1, cells[1] * sbin - 1):
        for y in range(1, cells[0] * sbin - 1):
            sx, sy = min(x, w - 2), min(y, h - 2)
            best = None
            for c in range(3):
                dy = im[sy + 1, sx, c] - im[sy - 1, sx, c]
                dx = im[sy, sx + 1, c] - im[sy, sx - 1, c]
                v = dx * dx + dy * dy
                if best is None or v > best[0]:
                    best = (v, dx, dy)
            v, dx, dy = best
            best_dot, best_o = 0.0, 0
            for o in range(9):
                dot = UU[o] * dx + VV[o] * dy
                if dot > best_dot:
                    best_dot, best_o = dot, o
                elif -dot > best_dot:
                    best_dot, best_o = -dot, o + 9
            xp, yp = (x + 0.5) / sbin - 0.5, (y + 0.5) / sbin - 0.5
            ixp, iyp = math.floor(xp), math.floor(yp)
            vx0, vy0 = xp - ixp, yp - iyp
            mag = math.sqrt(v)
            for ddx, wx in ((0, 1 - vx0), (1, vx0)):
                for ddy, wy in ((0, 1 - vy0), (1, vy0)):
                    cx, cy = ixp + ddx, iyp + ddy
                    if 0 <= cx < cells[1] and 0 <= cy < cells[0]:
                        hist[cy, cx, best_o] += wx * wy * mag
    return hist


def reference_normalise(hist: np.ndarray) -> np.ndarray:
    cells = hist.shape[:2]
    norm = ((hist[:, :, :9] + hist[:, :, 9:]) ** 2).sum(axis=2)
    out = np.zeros((max(cells[0] - 2, 0), max(cells[1] - 2, 0), 32))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            ns = []
            for by, bx in ((y + 1, x + 1), (y, x + 1), (y + 1, x), (y, x)):
                s = norm[by, bx] + norm[by + 1, bx] + norm[by, bx + 1] + norm[by + 1, bx + 1]
                ns.append(1 / math.sqrt(s + 0.0001))
            src = hist[y + 1, x + 1]
            t = [0.0] * 4
            for o in range(18):
                hs = [min(src[o] * n, 0.2) for n in ns]
                out[y, x, o] = 0.5 * sum(hs)
                t = [a + b for a, b in zip(t, hs, strict=True)]
            for o in range(9):
                out[y, x, 18 + o] = 0.5 * sum(min((src[o] + src[o + 9]) * n, 0.2) for n in ns)
            out[y, x, 27:31] = [0.2357 * v for v in t]
    return out


def reference_resize_1d(n: int, m: int) -> np.ndarray:
    """resize.cc's interpolation as an (m, n) matrix."""
    a = np.zeros((m, n))
    scale, inv = m / n, n / m
    for d in range(m):
        f1, f2 = d * inv, d * inv + inv
        s1, s2 = math.ceil(f1), math.floor(f2)
        if s1 - f1 > 1e-3:
            a[d, s1 - 1] += (s1 - f1) * scale
        for s in range(s1, s2):
            a[d, s] += scale
        if f2 - s2 > 1e-3:
            a[d, s2] += (f2 - s2) * scale
    return a


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 100 * np.sin(xx / 5.0 + seed)[..., None] * np.cos(yy / 7.0)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255)


@pytest.mark.parametrize(("h", "w", "sbin"), [
    (40, 48, 8), (43, 37, 8), (29, 30, 4), (20, 60, 4), (36, 36, 8), (24, 24, 2),
])
def test_hog_matches_features_cc(h: int, w: int, sbin: int) -> None:
    im = _image(h, w, seed=h + w)
    got = hog(im.astype(np.float32), sbin)
    want = reference_hog(im.astype(np.float32).astype(np.float64), sbin)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got[..., 31] == 0).all()


def test_hog_of_real_image_matches(shared) -> None:
    import cv2

    im = cv2.imread(str(shared / "images" / "voc2007" / "000084.jpg"))[100:180, 200:296, ::-1]
    np.testing.assert_allclose(hog(im, 8), reference_hog(im.astype(np.float64), 8), atol=1e-4)


def test_gray_image_equals_replicated_rgb() -> None:
    gray = _image(32, 40)[..., 0]
    np.testing.assert_array_equal(hog(gray, 8), hog(np.repeat(gray[..., None], 3, 2), 8))


@pytest.mark.parametrize(("shape", "sbin", "error"), [
    ((10, 10, 4), 8, ShapeError), ((10,), 8, ShapeError), ((2, 40, 3), 8, SizeError),
    ((40, 40, 3), 1, SizeError),
])
def test_hog_rejects_bad_input(shape: tuple[int, ...], sbin: int, error: type) -> None:
    with pytest.raises(error):
        hog(np.zeros(shape), sbin)


@pytest.mark.parametrize(("h", "w"), [(17, 16), (8, 40), (3, 3)])
def test_tiny_images_give_empty_features(h: int, w: int) -> None:
    assert hog(np.zeros((h, w, 3)), 8).shape[2] == 32
    assert hog(np.zeros((h, w, 3)), 8).size == 0


def test_flip_is_an_involution_and_mirrors_the_image() -> None:
    im = _image(40, 56)
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(32))
    f = hog(im, 8)
    np.testing.assert_array_equal(flip_features(flip_features(f)), f)
    mirrored = hog(im[:, ::-1].copy(), 8)
    # Mirrored orientations agree except where the tie-breaking of ``features.cc`` differs.
    assert np.mean(np.abs(flip_features(f) - mirrored) < 1e-3) > 0.9


@pytest.mark.parametrize(("h", "w", "scale"), [(37, 41, 0.5), (50, 30, 0.77), (9, 9, 1.0)])
def test_voc_resize_matches_resize_cc(h: int, w: int, scale: float) -> None:
    im = _image(h, w)
    m, n = int(math.floor(h * scale + 0.5)), int(math.floor(w * scale + 0.5))
    ay, ax = reference_resize_1d(h, m), reference_resize_1d(w, n)
    want = np.einsum("ab,bcd,ec->aed", ay, im, ax)
    np.testing.assert_allclose(voc_resize(im, scale), want, atol=1e-9)


def test_pyramid_levels_scales_and_padding() -> None:
    im = _image(120, 100)
    pyr = feature_pyramid(im, sbin=8, interval=5, pad=(3, 4))
    # featpyramid.m: max_scale = 1 + floor(log(100 / 40) / log(2^(1/5))) = 7 root levels.
    assert len(pyr) == 5 + 7
    assert pyr.scales[0] == 2.0 and pyr.scales[5] == 1.0
    np.testing.assert_allclose(pyr.scales[10], 0.5)
    np.testing.assert_allclose(pyr.levels[5][5:-5, 4:-4], hog(im, 8))
    np.testing.assert_allclose(pyr.levels[0][5:-5, 4:-4], hog(im, 4))
    lvl = pyr.levels[5]
    assert (lvl[:5, :, 31] == 1).all() and (lvl[-5:, :, 31] == 1).all()
    assert (lvl[:, :4, 31] == 1).all() and (lvl[5:-5, 4:-4, 31] == 0).all()
    assert not lvl[:5, :, :31].any()


def test_pyramid_extra_octave_and_bad_args() -> None:
    im = _image(90, 90)
    pyr = feature_pyramid(im, 8, 4, (1, 1), extra_octave=True)
    assert pyr.scales[0] == 4.0 and pyr.scales[4] == 2.0 and pyr.scales[8] == 1.0
    with pytest.raises(SizeError):
        feature_pyramid(im, 8, 0)
    with pytest.raises(SizeError):
        feature_pyramid(im, 6, 4, extra_octave=True)
