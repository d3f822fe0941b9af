"""Searching pyramids: latent positives, hard negatives, detections with placements.

Built on :mod:`viewfinder.dpm.train.latent`. Pyramids are computed once per image
and kept in a bounded in-memory cache, because every latent round revisits them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from viewfinder.datasets.voc import VOCDataset
from viewfinder.dpm.pyramid import Pyramid, feature_pyramid
from viewfinder.dpm.train.latent import (
    Placement,
    features_of,
    iter_level_scores,
    placement_at,
    placement_boxes,
)
from viewfinder.dpm.train.model import TrainModel
from viewfinder.dpm.train.parts import apply_regressor
from viewfinder.ops.boxes import box_iou, nms

__all__ = ["PyramidCache", "best_placements", "detect_placements", "hard_negatives",
           "part_boxes", "predict_boxes"]

logger = logging.getLogger(__name__)


class PyramidCache:
    """Images' feature pyramids for one model geometry, least recently used evicted.

    Args:
        voc: Where images come from.
        sbin, interval, pad: Pyramid geometry (``pad`` = model padding ``(padx, pady)``).
        max_bytes: Memory budget for the pyramids held.
    """

    def __init__(self, voc: VOCDataset, sbin: int, interval: int, pad: tuple[int, int],
                 max_bytes: int = 1_000_000_000) -> None:
        self.voc, self.sbin, self.interval, self.pad = voc, sbin, interval, pad
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, Pyramid] = OrderedDict()
        self._bytes = 0

    def get(self, image_id: str) -> Pyramid:
        """The pyramid of ``image_id`` (computed on first use)."""
        if image_id in self._items:
            self._items.move_to_end(image_id)
            return self._items[image_id]
        image = self.voc.read_image(image_id)
        pyr = feature_pyramid(image, self.sbin, self.interval, self.pad)
        size = sum(level.nbytes for level in pyr.levels)
        while self._items and self._bytes + size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= sum(level.nbytes for level in old.levels)
        self._items[image_id] = pyr
        self._bytes += size
        return pyr


def best_placements(model: TrainModel, pyr: Pyramid, boxes: np.ndarray, min_overlap: float,
                    mirror: bool = True) -> list[list[Placement]]:
    """Per box and component, the best placement whose root box overlaps the box enough.

    The pyramid is scored once for all boxes of the image.

    Args:
        boxes: ``(B, 4)`` xyxy ground-truth boxes of one image.

    Returns:
        For each box, one :class:`Placement` per component that has any (maybe none).
    """
    gt = np.asarray(boxes, np.float64).reshape(-1, 4)
    best: list[dict[int, tuple[float, object, int, int]]] = [{} for _ in range(len(gt))]
    for ls in iter_level_scores(model, pyr, mirror):
        size = model.components[ls.component].size
        grid = placement_boxes(pyr, ls.level, size, ls.scores.shape).reshape(-1, 4)
        iou = box_iou(grid, gt)
        finite = np.isfinite(ls.scores).ravel()
        for b in range(len(gt)):
            cand = np.where((iou[:, b] >= min_overlap) & finite, ls.scores.ravel(), -np.inf)
            k = int(np.argmax(cand))
            if np.isfinite(cand[k]) and (ls.component not in best[b]
                                         or cand[k] > best[b][ls.component][0]):
                ry, rx = np.unravel_index(k, ls.scores.shape)
                best[b][ls.component] = (float(cand[k]), ls, int(ry), int(rx))
    return [[placement_at(v[1], model, pyr, v[2], v[3]) for v in per.values()] for per in best]


def hard_negatives(model: TrainModel, pyr: Pyramid, threshold: float, limit: int,
                   mirror: bool = True) -> list[Placement]:
    """The ``limit`` best placements scoring above ``threshold`` (any component).

    ``limit`` 0 keeps every placement above ``threshold`` (voc-release: every window
    scoring above -1.002 is a hard negative; only the cache bounds how many are kept).
    """
    found: list[tuple[float, object, int, int]] = []
    for ls in iter_level_scores(model, pyr, mirror):
        ys, xs = np.nonzero(ls.scores > threshold)
        if 0 < limit < ys.size:
            top = np.argpartition(-ls.scores[ys, xs], limit - 1)[:limit]
            ys, xs = ys[top], xs[top]
        found += [(float(ls.scores[y, x]), ls, int(y), int(x)) for y, x in zip(ys, xs,
                                                                               strict=True)]
    found.sort(key=lambda t: -t[0])
    found = found[:limit] if limit > 0 else found
    return [placement_at(ls, model, pyr, y, x) for _, ls, y, x in found]


def part_boxes(model: TrainModel, pyr: Pyramid, pl: Placement) -> np.ndarray:
    """``(P, 4)`` xyxy image boxes of a placement's parts."""
    comp = model.components[pl.component]
    if not comp.parts:
        return np.zeros((0, 4))
    level = pl.level - pyr.interval
    cs = pyr.cell_size(level)
    sizes = np.array([p.filter.shape[:2] for p in comp.parts], np.float64)
    x1 = (pl.parts[:, 0] - pyr.padx) * cs
    y1 = (pl.parts[:, 1] - pyr.pady) * cs
    return np.stack([x1, y1, x1 + sizes[:, 1] * cs, y1 + sizes[:, 0] * cs], axis=1)


def predict_boxes(model: TrainModel, pyr: Pyramid, placements: list[Placement]) -> np.ndarray:
    """``(N, 4)`` boxes of placements, corrected by the components' regressors if any."""
    out = np.zeros((len(placements), 4))
    for i, pl in enumerate(placements):
        reg = model.components[pl.component].bbox_regressor
        out[i] = pl.box if reg is None else apply_regressor(reg, pl.box,
                                                            part_boxes(model, pyr, pl), pl.flip)
    return out


def detect_placements(model: TrainModel, pyr: Pyramid, threshold: float,
                      nms_iou: float = 0.5, limit: int = 1000,
                      mirror: bool = True) -> tuple[np.ndarray, np.ndarray, list[Placement]]:
    """Detections of one pyramid: ``(boxes (N, 4), scores (N,), placements)`` after NMS."""
    pls = hard_negatives(model, pyr, threshold, limit, mirror)
    if not pls:
        return np.zeros((0, 4)), np.zeros(0), []
    h, w = pyr.image_size
    boxes = predict_boxes(model, pyr, pls)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    scores = np.array([p.score for p in pls])
    keep = nms(boxes, scores, nms_iou)
    return boxes[keep], scores[keep], [pls[k] for k in keep]


def entries_of(model: TrainModel, pyr: Pyramid, placements: list[Placement]
               ) -> list[tuple[int, np.ndarray]]:
    """``(component, features)`` cache entries of placements."""
    return [(p.component, features_of(model, pyr, p)) for p in placements]

