"""Training data from a VOC-layout set: positives, negatives, aspect clusters, warps.

As voc-release5's ``pascal_data.m``: positives are the non-difficult boxes of the
class (truncated ones kept unless ``use_truncated`` is off), negatives are the images
holding no object of the class at all (not even a difficult one). Small sets are
used as they are: fewer negatives than asked for, or fewer positives than
components, only shrink what is trained (and the log says so); no positives at all
is the one error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from viewfinder.datasets.voc import VOCDataset, voc_to_xyxy
from viewfinder.dpm.features import flip_features, hog
from viewfinder.dpm.train.params import TrainParams
from viewfinder.errors import DatasetError

__all__ = ["Positive", "TrainingData", "collect", "random_negatives", "root_size",
           "split_by_aspect", "warp_positive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Positive:
    """One positive box: image id, continuous xyxy box, truncated flag."""

    image_id: str
    box: tuple[float, float, float, float]
    truncated: bool = False

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class TrainingData:
    """Positives and negative image ids of one class."""

    cls: str
    positives: tuple[Positive, ...]
    negatives: tuple[str, ...]

    def to_dict(self) -> dict:
        """JSON-ready form (for the run directory)."""
        return {"cls": self.cls, "negatives": list(self.negatives),
                "positives": [[p.image_id, list(p.box), p.truncated] for p in self.positives]}

    @classmethod
    def from_dict(cls, d: dict) -> TrainingData:
        """Inverse of :meth:`to_dict`."""
        pos = tuple(Positive(i, tuple(float(v) for v in b), bool(t)) for i, b, t in d["positives"])
        return cls(d["cls"], pos, tuple(d["negatives"]))


def collect(voc: VOCDataset, cls: str, params: TrainParams) -> TrainingData:
    """Positives and negatives of ``cls`` in a VOC split.

    Raises:
        DatasetError: the split has no usable positive of ``cls`` (one line).
    """
    positives: list[Positive] = []
    negatives: list[str] = []
    n_difficult = n_truncated = 0
    for image_id in voc:
        objs = [o for o in voc.annotation(image_id).objects if o.name == cls]
        if not objs:
            negatives.append(image_id)
        for o in objs:
            if o.difficult:
                n_difficult += 1
            elif o.truncated and not params.use_truncated:
                n_truncated += 1
            else:
                x1, y1, x2, y2 = voc_to_xyxy(np.array(o.box))[0]
                positives.append(Positive(image_id, (x1, y1, x2, y2), bool(o.truncated)))
    if not positives:
        raise DatasetError(f"{voc.root}: class {cls!r} has no usable positive in split "
                           f"{voc.split!r} ({len(voc)} images, {n_difficult} difficult and "
                           f"{n_truncated} truncated boxes skipped)")
    if params.max_pos and len(positives) > params.max_pos:
        positives = positives[:params.max_pos]
    if len(negatives) < params.max_neg:
        logger.warning("class %s: %d negative images, fewer than the %d asked for: using all",
                       cls, len(negatives), params.max_neg)
    negatives = negatives[:params.max_neg] if params.max_neg else negatives
    logger.info("class %s: %d positives (%d difficult, %d truncated skipped), %d negative images",
                cls, len(positives), n_difficult, n_truncated, len(negatives))
    return TrainingData(cls, tuple(positives), tuple(negatives))


def split_by_aspect(positives: tuple[Positive, ...], n: int) -> list[list[int]]:
    """Indices of positives in ``n`` aspect-ratio clusters of equal size (rel5 ``split.m``).

    Fewer positives than ``n`` give fewer clusters (logged), never an empty one.
    """
    aspects = np.array([p.height / max(p.width, 1e-6) for p in positives])
    n_use = max(1, min(n, len(positives)))
    if n_use < n:
        logger.warning("%d positives for %d components: training %d component(s)",
                       len(positives), n, n_use)
    order = np.argsort(aspects, kind="stable")
    return [list(map(int, chunk)) for chunk in np.array_split(order, n_use)]


def root_size(positives: list[Positive], params: TrainParams) -> tuple[int, int]:
    """Root filter ``(h, w)`` in cells (rel5 ``initmodel.m``).

    Aspect = median box aspect; area = the ``area_percentile`` of box areas, clipped to
    ``[min_root_area, max_root_area]``.
    """
    h = np.array([p.height for p in positives])
    w = np.array([p.width for p in positives])
    aspect = float(np.median(h / np.maximum(w, 1e-6)))
    area = float(np.percentile(h * w, params.area_percentile))
    area = min(max(area, params.min_root_area), params.max_root_area)
    width = np.sqrt(area / aspect)
    height = width * aspect
    return max(1, round(height / params.sbin)), max(1, round(width / params.sbin))


def warp_positive(image: np.ndarray, box: tuple[float, float, float, float],
                  size: tuple[int, int], sbin: int) -> np.ndarray:
    """HOG of a box warped to the root size (rel5 ``warppos.m``): ``(h, w, 32)``.

    The box is grown by one cell on each side (HOG drops the border cells), cropped
    (outside pixels replicate the border) and resized to ``(h + 2, w + 2)`` cells.
    """
    h, w = size
    x1, y1, x2, y2 = box
    px, py = (x2 - x1) / w, (y2 - y1) / h
    out_w, out_h = (w + 2) * sbin, (h + 2) * sbin
    sx, sy = out_w / (x2 - x1 + 2 * px), out_h / (y2 - y1 + 2 * py)
    mat = np.array([[sx, 0, -(x1 - px) * sx], [0, sy, -(y1 - py) * sy]], np.float64)
    crop = cv2.warpAffine(np.ascontiguousarray(image), mat, (out_w, out_h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return hog(crop.astype(np.float64), sbin)[:h, :w]


def warped_set(images: dict[str, np.ndarray], positives: list[Positive], size: tuple[int, int],
               sbin: int, mirror: bool) -> np.ndarray:
    """``(N, h*w*32)`` warped positives, each followed by its mirror image if ``mirror``."""
    rows = []
    for p in positives:
        f = warp_positive(images[p.image_id], p.box, size, sbin)
        rows.append(f.ravel())
        if mirror:
            rows.append(flip_features(f).ravel())
    return np.asarray(rows, np.float32).reshape(len(rows), -1)


def random_negatives(image: np.ndarray, size: tuple[int, int], sbin: int, count: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` random ``(h, w)`` windows of the image's HOG (rel5 ``rndneg``)."""
    h, w = size
    feat = hog(np.asarray(image, np.float64), sbin)
    if feat.shape[0] < h or feat.shape[1] < w:
        return np.zeros((0, h * w * feat.shape[2]), np.float32)
    ys = rng.integers(0, feat.shape[0] - h + 1, count)
    xs = rng.integers(0, feat.shape[1] - w + 1, count)
    return np.stack([feat[y:y + h, x:x + w].ravel() for y, x in zip(ys, xs, strict=True)])
