"""Latent inference: placement features, mirroring, export to the detector."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.dpm.pyramid import feature_pyramid
from viewfinder.dpm.train.latent import features_of, iter_level_scores, placement_at
from viewfinder.dpm.train.model import StarComponent, StarPart, TrainModel


def _model(seed: int = 0, parts: bool = True) -> TrainModel:
    rng = np.random.default_rng(seed)
    p = [StarPart(rng.normal(size=(4, 4, 32)), (1, 2), [0.05, 0.1, 0.08, -0.2]),
         StarPart(rng.normal(size=(3, 4, 32)), (3, 5), [0.2, -0.1, 0.05, 0.1])] if parts else []
    comp = StarComponent(rng.normal(size=(5, 4, 32)).astype(np.float32), p, bias=0.3)
    return TrainModel("thing", [comp], sbin=8, interval=4)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (96, 120, 3)).astype(np.uint8)


@pytest.mark.parametrize("parts", [True, False])
def test_placement_features_reproduce_scores_in_both_orientations(image, parts):
    model = _model(parts=parts)
    pyr = feature_pyramid(image, 8, 4, model.padding)
    w = model.components[0].to_vector()
    rng = np.random.default_rng(3)
    seen = set()
    for ls in iter_level_scores(model, pyr):
        ys, xs = np.nonzero(np.isfinite(ls.scores))
        for j in rng.choice(ys.size, min(3, ys.size), replace=False):
            pl = placement_at(ls, model, pyr, ys[j], xs[j])
            f = features_of(model, pyr, pl)
            assert f.shape == w.shape
            assert float(f @ w) == pytest.approx(pl.score, abs=1e-3)
            seen.add(pl.flip)
    assert seen == {False, True}


def test_flipping_twice_is_the_identity():
    comp = _model().components[0]
    back = comp.flipped().flipped()
    np.testing.assert_array_equal(back.root, comp.root)
    for a, b in zip(back.parts, comp.parts, strict=True):
        assert a.anchor == b.anchor
        np.testing.assert_array_equal(a.filter, b.filter)
        np.testing.assert_array_equal(a.deformation, b.deformation)


def test_exported_model_scores_equal_the_training_search(image):
    """viewfinder.dpm.detect on to_model() finds the same best score as training's search."""
    from viewfinder.dpm.detect import detect

    model = _model()
    pyr = feature_pyramid(image, 8, 4, model.padding)
    best = max(float(np.max(ls.scores)) for ls in iter_level_scores(model, pyr))
    found = detect(model.to_model(), image, threshold=-1e9, nms_overlap=None)
    assert float(found.scores.max()) == pytest.approx(best, abs=1e-3)
    assert len(model.to_model().components) == 2  # the mirrored component is materialised


def test_vector_round_trip_and_regularizer_layout():
    model = _model()
    w = model.to_vector()
    model.set_vector(w * 2)
    np.testing.assert_allclose(model.to_vector(), w * 2, rtol=1e-6)
    reg = model.regularizer()
    assert reg.reg_mult.shape == w.shape
    assert reg.reg_mult[-1] == 0.0 and reg.learn_mult[-1] == 20.0  # the bias block
    assert np.isfinite(reg.lower).sum() == 8  # two deformation blocks of 4


@pytest.mark.parametrize(("limit", "threshold"), [(0, 0.0), (0, -1e9), (5, -1e9), (1, 0.0)])
def test_hard_negatives_keeps_every_window_above_the_margin_without_a_cap(image, limit,
                                                                          threshold):
    from viewfinder.dpm.train.search import hard_negatives

    model = _model(parts=False)
    pyr = feature_pyramid(image, 8, 4, model.padding)
    above = sum(int((ls.scores > threshold).sum()) for ls in iter_level_scores(model, pyr))
    found = hard_negatives(model, pyr, threshold, limit)
    assert len(found) == (above if limit == 0 else min(limit, above))
    assert all(pl.score > threshold for pl in found)
    # the cap keeps the best ones
    assert [pl.score for pl in found] == sorted((pl.score for pl in found), reverse=True)
