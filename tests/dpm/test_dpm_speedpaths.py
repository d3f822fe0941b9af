"""The fast paths of detection against the plain algorithms they replace.

* ``score_levels`` (one numba kernel per level) vs per-component, per-part
  ``sampled_distance_transform`` calls and a max over components.
* The FFT patchwork's shared per-level output arrays (disjoint tile regions) vs the
  direct path, with mixed filter sizes and levels cut into many tiles.
* ``_gradients``' branch-free orientation choice vs ``features.cc``'s if / else-if loop.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
import pytest

from viewfinder.dpm.convolve import filter_responses
from viewfinder.dpm.detect import _filter_banks, _octave, responses, score_levels
from viewfinder.dpm.dt import sampled_distance_transform
from viewfinder.dpm.features import _UU, _VV, _gradients
from viewfinder.dpm.model import Model
from viewfinder.dpm.pyramid import feature_pyramid
from viewfinder.dpm.zoo import load_model

RNG = np.random.default_rng(11)


@cache
def _model() -> Model:
    return load_model("VOC2007_person")


def _scene(h: int, w: int) -> np.ndarray:
    im = np.random.default_rng(3).integers(0, 255, (h, w, 3)).astype(np.uint8)
    return cv2.GaussianBlur(im, (5, 5), 2)


def _component_score(model: Model, pyr, c: int, level: int, root: np.ndarray,
                     parts: list) -> np.ndarray:
    _, _, _, part_index = _filter_banks(model)
    cm, iv = model.components[c], pyr.interval
    score = root.astype(np.float64) + (cm.bias + cm.loc[_octave(level, iv)])
    for part in cm.parts:
        origin = (part.anchor[1] - pyr.pady, part.anchor[0] - pyr.padx)
        val, _, _ = sampled_distance_transform(parts[part_index[part.filter]],
                                               part.deformation, origin, 2, root.shape)
        score = score + val + (part.bias + part.loc[_octave(level - iv, iv)])
    return score


def _reference_levels(model: Model, pyr, root_resp: list, part_resp: list) -> dict:
    """Best score and component per root level, composed one transform at a time."""
    _, _, root_index, _ = _filter_banks(model)
    out = {}
    for li in range(min(len(root_resp), len(part_resp))):
        roots = [root_resp[li][root_index[cm.root]] for cm in model.components]
        scores = [(c, _component_score(model, pyr, c, pyr.interval + li, r, part_resp[li]))
                  for c, r in enumerate(roots) if r.size]
        if not scores:
            continue
        shape = np.max([s.shape for _, s in scores], axis=0)
        best, comp = np.full(shape, -np.inf), np.full(shape, -1)
        for c, score in scores:  # first component wins ties
            region = best[:score.shape[0], :score.shape[1]]
            better = score > region
            region[better] = score[better]
            comp[:score.shape[0], :score.shape[1]][better] = c
        out[pyr.interval + li] = (best, comp)
    return out


@pytest.mark.parametrize("copy_responses", [False, True])
def test_score_levels_match_per_part_transforms(copy_responses: bool) -> None:
    model = _model()
    pyr = feature_pyramid(_scene(150, 120), model.sbin, model.interval, model.padding)
    root_resp, part_resp = responses(model, pyr, "fft")
    if copy_responses:  # plain arrays instead of views of one per-level array
        root_resp = [[r.copy() for r in row] for row in root_resp]
        part_resp = [[r.copy() for r in row] for row in part_resp]
    threshold = -2.5
    cand = score_levels(model, pyr, root_resp, part_resp, threshold)
    ref = _reference_levels(model, pyr, root_resp, part_resp)
    got = {lv: (y, x, c, s) for lv, y, x, c, s in
           zip(cand.level, cand.y, cand.x, cand.comp, cand.score, strict=True)}
    total = 0
    for level, (best, comp) in ref.items():
        ys, xs = np.nonzero(best > threshold)
        total += ys.size
        if ys.size == 0:
            assert level not in got
            continue
        y, x, c, s = got[level]
        np.testing.assert_array_equal(y, ys)
        np.testing.assert_array_equal(x, xs)
        np.testing.assert_array_equal(c, comp[ys, xs])
        np.testing.assert_allclose(s, best[ys, xs], rtol=0, atol=1e-9)
    assert total > 0


@pytest.mark.parametrize("patch", [(16, 16), (24, 40), (64, 64)])
def test_fft_shared_outputs_match_direct(patch: tuple[int, int]) -> None:
    levels = [RNG.random((h, w, 32), dtype=np.float32) for h, w in
              [(61, 47), (17, 90), (9, 9), (3, 20), (33, 34)]]
    filters = tuple(RNG.random((h, w, 32), dtype=np.float32) - 0.5 for h, w in
                    [(6, 6), (11, 7), (2, 9), (1, 1), (11, 4), (8, 3)])
    fft = filter_responses(levels, filters, "fft", patch=patch)
    direct = filter_responses(levels, filters, "direct")
    for frow, drow in zip(fft, direct, strict=True):
        for a, b in zip(frow, drow, strict=True):
            assert a.shape == b.shape and a.dtype == np.float32
            np.testing.assert_allclose(a, b, atol=2e-4)


def _orientation_reference(im: np.ndarray) -> np.ndarray:
    """features.cc's orientation loop, literally."""
    h, w = im.shape[:2]
    ori = np.zeros((h, w), np.int8)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            best_v, dx, dy = -1.0, 0.0, 0.0
            for c in range(3):
                gy = im[y + 1, x, c] - im[y - 1, x, c]
                gx = im[y, x + 1, c] - im[y, x - 1, c]
                if gx * gx + gy * gy > best_v:
                    best_v, dx, dy = gx * gx + gy * gy, gx, gy
            best_dot, best_o = 0.0, 0
            for o in range(9):
                dot = _UU[o] * dx + _VV[o] * dy
                if dot > best_dot:
                    best_dot, best_o = dot, o
                elif -dot > best_dot:
                    best_dot, best_o = -dot, o + 9
            ori[y, x] = best_o
    return ori


@pytest.mark.parametrize("levels", [2, 3, 256])
def test_gradient_orientations_follow_features_cc(levels: int) -> None:
    # few grey levels: many zero, axis-aligned and diagonal gradients (ties)
    im = RNG.integers(0, levels, (24, 31, 3)).astype(np.float64) * (255 // max(levels - 1, 1))
    _, ori = _gradients(im, im.shape[0], im.shape[1])
    want = _orientation_reference(im)
    np.testing.assert_array_equal(ori[1:-1, 1:-1], want[1:-1, 1:-1])
