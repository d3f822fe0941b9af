"""Filter responses (FFT patchwork and direct) and the distance transform vs brute force."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.dpm.convolve import filter_responses
from viewfinder.dpm.dt import distance_transform, sampled_distance_transform
from viewfinder.errors import ConfigError, ShapeError

RNG = np.random.default_rng(5)


def brute_correlation(level: np.ndarray, filt: np.ndarray) -> np.ndarray:
    fh, fw = filt.shape[:2]
    oh, ow = level.shape[0] - fh + 1, level.shape[1] - fw + 1
    out = np.zeros((max(oh, 0), max(ow, 0)))
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            out[y, x] = np.sum(level[y:y + fh, x:x + fw].astype(np.float64) * filt)
    return out


LEVELS = [RNG.random((h, w, 32), dtype=np.float32) for h, w in
          [(40, 70), (23, 19), (6, 6), (5, 30), (11, 12)]]
FILTERS = tuple(RNG.random((h, w, 32), dtype=np.float32) - 0.5 for h, w in
                [(6, 6), (11, 7), (3, 9), (1, 1)])


@pytest.fixture(scope="module")
def expected() -> list[list[np.ndarray]]:
    return [[brute_correlation(lv, f) for f in FILTERS] for lv in LEVELS]


@pytest.mark.parametrize("method", ["fft", "direct", "auto"])
def test_responses_match_brute_force(method: str, expected: list) -> None:
    got = filter_responses(LEVELS, FILTERS, method, patch=(24, 32))
    for row, want_row in zip(got, expected, strict=True):
        for resp, want in zip(row, want_row, strict=True):
            assert resp.shape == want.shape and resp.dtype == np.float32
            np.testing.assert_allclose(resp, want, atol=2e-4)


def test_fft_tiles_large_levels_across_patches() -> None:
    level = RNG.random((70, 90, 32), dtype=np.float32)
    a = filter_responses([level], FILTERS[:2], "fft", patch=(16, 16))[0]
    b = filter_responses([level], FILTERS[:2], "direct")[0]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=2e-4)


@pytest.mark.parametrize(("levels", "filters", "kwargs", "error"), [
    ([np.zeros((5, 5, 31), np.float32)], FILTERS, {}, ShapeError),
    (LEVELS, (np.zeros((3, 3)),), {}, ShapeError),
    (LEVELS, FILTERS, {"method": "winograd"}, ConfigError),
    (LEVELS, FILTERS, {"method": "fft", "patch": (8, 8)}, ConfigError),
])
def test_bad_arguments(levels: list, filters: tuple, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        filter_responses(levels, filters, **kwargs)


def brute_dt(f: np.ndarray, d: tuple) -> np.ndarray:
    h, w = f.shape
    qy, qx = np.mgrid[0:h, 0:w]
    out = np.empty((h, w))
    for y in range(h):
        for x in range(w):
            dx, dy = x - qx, y - qy
            out[y, x] = np.max(f - d[0] * dx**2 - d[1] * dx - d[2] * dy**2 - d[3] * dy)
    return out


DEFS = [(0.01, 0.02, 0.03, -0.01), (1.0, 0.0, 1.0, 0.0), (0.001, 0.5, 0.2, 0.3),
        (0.0, 0.1, 0.05, 0.0), (1000.0, 0.0, 1000.0, 0.0)]


@pytest.mark.parametrize("d", DEFS)
def test_distance_transform_matches_definition(d: tuple) -> None:
    f = RNG.normal(size=(13, 17))
    val, iy, ix = distance_transform(f, d)
    np.testing.assert_allclose(val, brute_dt(f, d), atol=1e-9)
    yy, xx = np.mgrid[0:13, 0:17]
    dx, dy = xx - ix, yy - iy
    recon = f[iy, ix] - d[0] * dx**2 - d[1] * dx - d[2] * dy**2 - d[3] * dy
    np.testing.assert_allclose(recon, val, atol=1e-9)  # the argmax achieves the value


@pytest.mark.parametrize(("origin", "step", "shape"), [((-3, -2), 2, (10, 12)), ((0, 0), 1, (13, 17)),
                                                        ((5, 20), 2, (3, 3))])
def test_sampled_transform_reads_the_full_one(origin: tuple, step: int, shape: tuple) -> None:
    f = RNG.normal(size=(13, 17))
    full = brute_dt(f, DEFS[0])
    val, iy, _ = sampled_distance_transform(f, DEFS[0], origin, step, shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            y, x = origin[0] + step * i, origin[1] + step * j
            if 0 <= y < 13 and 0 <= x < 17:
                assert val[i, j] == pytest.approx(full[y, x])
            else:
                assert val[i, j] == -np.inf and iy[i, j] == -1


def test_minus_infinity_cells_are_never_chosen() -> None:
    f = RNG.normal(size=(9, 9))
    f[:, :4] = -np.inf
    val, _, ix = distance_transform(f, DEFS[0])
    assert np.isfinite(val).all() and (ix >= 4).all()
    assert (distance_transform(np.full((3, 3), -np.inf), DEFS[0])[0] == -np.inf).all()


@pytest.mark.parametrize(("scores", "d"), [
    (np.zeros((3,)), DEFS[0]), (np.zeros((3, 3)), (1, 2, 3)), (np.full((2, 2), np.nan), DEFS[0]),
])
def test_distance_transform_rejects_bad_input(scores: np.ndarray, d: tuple) -> None:
    with pytest.raises(ShapeError):
        distance_transform(scores, d)
