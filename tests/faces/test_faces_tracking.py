"""One-Euro smoothing and IoU track ids."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import ConfigError
from viewfinder.faces import FaceTracker, OneEuroFilter, OneEuroParams


def test_one_euro_passes_constants_and_cuts_jitter() -> None:
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    rng = np.random.default_rng(0)
    truth = np.full((106, 2), 50.0)
    noisy = [truth + rng.normal(0, 1.0, truth.shape) for _ in range(60)]
    out = [f(x, i / 30) for i, x in enumerate(noisy)]
    raw_jitter = np.std(np.diff(noisy, axis=0))
    smooth_jitter = np.std(np.diff(out[10:], axis=0))
    assert smooth_jitter < raw_jitter / 3
    g = OneEuroFilter()
    assert all(np.allclose(g(truth, i / 30), truth) for i in range(5))


def test_one_euro_beta_reduces_lag() -> None:
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(OneEuroParams(min_cutoff=0.5, beta=beta))
        for i in range(30):
            y = f(np.array([i * 10.0]), i / 30)
        lag[beta] = 29 * 10.0 - float(y[0])
    assert lag[1.0] < lag[0.0] / 2


@pytest.mark.parametrize("params", [dict(min_cutoff=0), dict(d_cutoff=-1), dict(beta=-0.1)])
def test_one_euro_rejects_bad_parameters(params) -> None:
    with pytest.raises(ConfigError, match="One-Euro"):
        OneEuroParams(**params)


def test_tracker_keeps_ids_and_starts_new_ones() -> None:
    tr = FaceTracker(iou_threshold=0.3)
    a = [[0, 0, 10, 10], [50, 50, 70, 70]]
    ids1 = [t.id for t in tr.match(np.array(a, np.float32))]
    moved = [[52, 51, 72, 71], [1, 0, 11, 10], [200, 200, 220, 220]]  # order swapped + new
    ids2 = [t.id for t in tr.match(np.array(moved, np.float32))]
    assert ids2[:2] == [ids1[1], ids1[0]] and ids2[2] not in ids1
    ids3 = [t.id for t in tr.match(np.array([[100, 0, 110, 10]], np.float32))]
    assert ids3[0] not in ids1 + ids2   # no overlap: a new face, old tracks end
    assert len(tr.tracks) == 1
    assert tr.match(np.zeros((0, 4), np.float32)) == [] and tr.tracks == []


@pytest.mark.parametrize("iou", [[[0.1, 0.7, 0.2]], [[0.1], [0.0], [0.9]], [[0.5]],
                                 [[0.9, 0.8], [0.85, 0.1]]])
def test_assignment_shortcut_matches_scipy(iou: list) -> None:
    from scipy.optimize import linear_sum_assignment

    from viewfinder.faces.tracking import _assign

    a = np.array(iou)
    rows, cols = linear_sum_assignment(-a)
    assert _assign(a) == (rows.tolist(), cols.tolist())
