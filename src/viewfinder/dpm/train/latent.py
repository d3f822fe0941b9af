"""Latent inference for training: best placements and their features.

Training needs what detection hides: *where* every filter went. For each component
(and its mirror image) and each root level this module scores every root cell with
its parts (responses from :mod:`viewfinder.dpm.convolve`, part placements from the
distance transforms of :mod:`viewfinder.dpm.dt` with their argmaxes), and, for a
chosen placement, builds the feature segment whose dot product with the
component's weights is that score.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from viewfinder.dpm.features import flip_features
from viewfinder.dpm.model import BIAS_FEATURE
from viewfinder.dpm.pyramid import Pyramid
from viewfinder.dpm.train.model import StarComponent, TrainModel

__all__ = ["LevelScores", "Placement", "features_of", "iter_level_scores", "placement_at",
           "placement_boxes"]


@dataclass(frozen=True)
class Placement:
    """One latent choice: component, orientation, level, root cell, part cells, score."""

    component: int
    flip: bool
    level: int
    rx: int
    ry: int
    parts: np.ndarray  # (P, 2) int64 padded part-level cells (x, y)
    score: float
    box: np.ndarray  # (4,) float64 xyxy image pixels


@dataclass(frozen=True)
class LevelScores:
    """Scores of one component/orientation at one root level, with part argmaxes."""

    component: int
    flip: bool
    level: int
    scores: np.ndarray  # (Hr, Wr) float64, -inf where a part falls outside its level
    part_x: np.ndarray  # (P, Hr, Wr) int64
    part_y: np.ndarray  # (P, Hr, Wr) int64


def placement_boxes(pyr: Pyramid, level: int, size: tuple[int, int], shape: tuple[int, int]
                    ) -> np.ndarray:
    """``(Hr, Wr, 4)`` xyxy image boxes of every root cell of a level (root ``size`` h, w)."""
    cs = pyr.cell_size(level)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    x1, y1 = (xs - pyr.padx) * cs, (ys - pyr.pady) * cs
    return np.stack([x1, y1, x1 + size[1] * cs, y1 + size[0] * cs], axis=-1)


def _part_scores(star: StarComponent, pyr: Pyramid, shape: tuple[int, int],
                 resp: list[np.ndarray]):
    """Sum of the parts' transformed responses at every root cell, with their argmaxes."""
    from viewfinder.dpm.dt import sampled_distance_transform

    n_p = len(star.parts)
    total = np.zeros(shape)
    part_x = np.zeros((n_p, *shape), np.int64)
    part_y = np.zeros((n_p, *shape), np.int64)
    for k, part in enumerate(star.parts):
        if resp[k].size == 0:
            return np.full(shape, -np.inf), part_x, part_y
        origin = (part.anchor[1] - pyr.pady, part.anchor[0] - pyr.padx)
        val, iy, ix = sampled_distance_transform(resp[k], part.deformation, origin, 2, shape)
        total += val
        part_x[k], part_y[k] = ix, iy
    return total, part_x, part_y


_BANKS: dict[tuple[int, int, bool], tuple] = {}


def _banks(model: TrainModel, mirror: bool) -> tuple[list, tuple, tuple]:
    """Stars (component, flip, star) and their filters as stable tuples.

    ``filter_responses`` caches filter transforms by tuple identity, so the tuples are
    kept per model version: one FFT of the filters per solve, not per image.
    """
    key = (id(model), model.version, mirror)
    if key not in _BANKS:
        _BANKS.clear()
        stars = [(c, flip, comp.flipped() if flip else comp)
                 for c, comp in enumerate(model.components)
                 for flip in ((False, True) if mirror else (False,))]
        _BANKS[key] = (stars, tuple(s.root for _, _, s in stars),
                       tuple(p.filter for _, _, s in stars for p in s.parts), model)
    return _BANKS[key][:3]


def iter_level_scores(model: TrainModel, pyr: Pyramid, mirror: bool = True
                      ) -> Iterator[LevelScores]:
    """Scores of every component (and mirror image) at every root level of a pyramid.

    Filter responses come from :func:`viewfinder.dpm.convolve.filter_responses` (FFT
    patchwork or direct, by size), all filters of all components at once.
    """
    from viewfinder.dpm.convolve import filter_responses

    stars, root_bank, part_bank = _banks(model, mirror)
    iv = pyr.interval
    roots = filter_responses(pyr.levels[iv:], root_bank)
    parts = (filter_responses(pyr.levels[:len(pyr) - iv], part_bank) if part_bank
             else [[] for _ in roots])
    first = np.cumsum([0] + [len(s.parts) for _, _, s in stars])
    for li, level in enumerate(range(iv, len(pyr))):
        for k, (c, flip, star) in enumerate(stars):
            root = roots[li][k]
            if root.size == 0:
                continue
            ps, px, py = _part_scores(star, pyr, root.shape, parts[li][first[k]:first[k + 1]])
            yield LevelScores(c, flip, level, root.astype(np.float64) + ps
                              + star.bias * BIAS_FEATURE, px, py)


def placement_at(ls: LevelScores, model: TrainModel, pyr: Pyramid, ry: int, rx: int
                 ) -> Placement:
    """The :class:`Placement` at root cell ``(rx, ry)`` of a level's scores."""
    h, w = model.components[ls.component].size
    cs = pyr.cell_size(ls.level)
    x1, y1 = (rx - pyr.padx) * cs, (ry - pyr.pady) * cs
    box = np.array([x1, y1, x1 + w * cs, y1 + h * cs])
    parts = np.stack([ls.part_x[:, ry, rx], ls.part_y[:, ry, rx]], axis=1)
    return Placement(ls.component, ls.flip, ls.level, int(rx), int(ry), parts,
                     float(ls.scores[ry, rx]), box)


def features_of(model: TrainModel, pyr: Pyramid, pl: Placement) -> np.ndarray:
    """The feature segment of a placement, in its component's (unflipped) layout.

    Its dot product with the component's :meth:`StarComponent.to_vector` equals the
    placement's score (up to float rounding).
    """
    comp = model.components[pl.component]
    star = comp.flipped() if pl.flip else comp
    h, w = star.size
    root = pyr.levels[pl.level][pl.ry:pl.ry + h, pl.rx:pl.rx + w]
    pieces = [(flip_features(root) if pl.flip else root).ravel()]
    plevel = pyr.levels[pl.level - pyr.interval] if star.parts else None
    for k, part in enumerate(star.parts):
        px, py = (int(v) for v in pl.parts[k])
        ph, pw = part.filter.shape[:2]
        win = plevel[py:py + ph, px:px + pw]
        pieces.append((flip_features(win) if pl.flip else win).ravel())
        dx = 2 * pl.rx - pyr.padx + part.anchor[0] - px
        dy = 2 * pl.ry - pyr.pady + part.anchor[1] - py
        pieces.append(-np.array([dx * dx, -dx if pl.flip else dx, dy * dy, dy], np.float32))
    pieces.append(np.array([BIAS_FEATURE], np.float32))
    return np.concatenate([np.asarray(p, np.float32) for p in pieces])
