"""PASCAL VOC detection AP, computed exactly as the devkit's ``VOCevaldet.m``.

* Detections of a class are sorted by decreasing score (stable: ties keep input order).
* Each detection takes the ground-truth box of its image with the highest overlap,
  IoU with the devkit's +1-pixel convention (``width = x2 - x1 + 1``). With overlap
  ``>= 0.5`` (``VOCopts.minoverlap``; the devkit compares with ``>=``) it is a true
  positive if that object is not yet matched, a false positive if it is (a duplicate),
  and ignored when the object is *difficult*. Otherwise it is a false positive.
* Recall is over the non-difficult objects; AP is the VOC2007 11-point interpolated
  average (``use_07_metric=True``) or, from VOC2010 on, the area under the monotone
  (upper) envelope of the precision/recall curve.
* A class with no non-difficult objects has AP ``nan`` and is left out of the mAP.

:class:`VOCEvaluator` follows detectron2's ``DatasetEvaluator`` protocol
(``reset`` / ``process`` / ``evaluate``) and consumes
:class:`viewfinder.structures.Detections` (continuous 0-based xyxy boxes; converted to
devkit boxes with :func:`viewfinder.datasets.voc.xyxy_to_voc`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from viewfinder.datasets.voc import Annotation, VOCDataset, xyxy_to_voc
from viewfinder.errors import DatasetError, ShapeError, check_shape
from viewfinder.structures import Detections

__all__ = ["MIN_OVERLAP", "ClassResult", "VOCEvaluator", "VOCResult", "evaluate_class", "voc_ap"]

#: Overlap a detection needs to count as correct (devkit ``VOCopts.minoverlap``).
MIN_OVERLAP = 0.5


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Average precision from a precision/recall curve, as the devkit computes it.

    Args:
        recall: ``(N,)`` recall after each detection (non-decreasing).
        precision: ``(N,)`` precision after each detection.
        use_07_metric: VOC2007's 11-point interpolation (max precision at recall >= t for
            t = 0, 0.1, ..., 1); otherwise the area under the monotone precision envelope.

    Returns:
        AP in [0, 1] (0 for an empty curve).
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    check_shape(prec, (rec.shape[0],), "precision")
    if use_07_metric:
        ap = 0.0
        for t in np.linspace(0.0, 1.0, 11):
            mask = rec >= t
            ap += (prec[mask].max() if mask.any() else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx]))


def _overlaps(box: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Devkit IoU (+1-pixel convention) of one box with ``(M, 4)`` boxes; 0 if disjoint."""
    iw = np.minimum(box[2], gt[:, 2]) - np.maximum(box[0], gt[:, 0]) + 1
    ih = np.minimum(box[3], gt[:, 3]) - np.maximum(box[1], gt[:, 1]) + 1
    inter = iw * ih
    union = ((box[2] - box[0] + 1) * (box[3] - box[1] + 1)
             + (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1) - inter)
    return np.where((iw > 0) & (ih > 0), inter / np.where(union > 0, union, 1), -np.inf)


@dataclass(frozen=True)
class ClassResult:
    """AP of one class with its curve.

    Attributes:
        name: The class.
        ap: Average precision (``nan`` without ground truth).
        recall: ``(K,)`` recall after each counted detection.
        precision: ``(K,)`` precision after each counted detection.
        npos: Non-difficult ground-truth objects.
        ndet: Detections of the class.
    """

    name: str
    ap: float
    recall: np.ndarray
    precision: np.ndarray
    npos: int
    ndet: int


def evaluate_class(
    name: str,
    image_ids: Sequence[str],
    scores: np.ndarray,
    boxes: np.ndarray,
    ground_truth: Mapping[str, tuple[np.ndarray, np.ndarray]],
    use_07_metric: bool = True,
    min_overlap: float = MIN_OVERLAP,
) -> ClassResult:
    """The devkit's evaluation of one class.

    Args:
        name: Class name (for the result).
        image_ids: Image id of each detection.
        scores: ``(N,)`` detection scores.
        boxes: ``(N, 4)`` devkit boxes (1-based, inclusive).
        ground_truth: ``{image_id: (boxes (M, 4) devkit, difficult (M,) bool)}`` for every
            image of the test set (images without objects of the class may be absent).
        use_07_metric: VOC2007 11-point AP; False for VOC2010+ area AP.
        min_overlap: IoU a detection needs (``>=``, as the devkit).

    Returns:
        The :class:`ClassResult`.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    check_shape(boxes, (scores.shape[0], 4), f"{name}: detection boxes")
    if len(image_ids) != scores.shape[0]:
        raise ShapeError(f"{name}: {len(image_ids)} image ids for {scores.shape[0]} scores")
    npos = int(sum(int((~d).sum()) for _, d in ground_truth.values()))
    matched = {k: np.zeros(len(d), dtype=bool) for k, (_, d) in ground_truth.items()}
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for rank, i in enumerate(order):
        gt_boxes, difficult = ground_truth.get(image_ids[i], (np.zeros((0, 4)), np.zeros(0, bool)))
        ov = _overlaps(boxes[i], gt_boxes) if len(gt_boxes) else np.zeros(0)
        j = int(np.argmax(ov)) if ov.size else -1
        if j >= 0 and ov[j] >= min_overlap:
            if difficult[j]:
                continue  # neither a true nor a false positive
            if not matched[image_ids[i]][j]:
                tp[rank] = matched[image_ids[i]][j] = True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    keep = (tp + fp) > 0
    tp, fp = np.cumsum(tp[keep]), np.cumsum(fp[keep])
    if npos == 0:
        return ClassResult(name, float("nan"), np.zeros(0), np.zeros(0), 0, len(order))
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(recall, precision, use_07_metric)
    return ClassResult(name, ap, recall, precision, npos, len(order))


@dataclass(frozen=True)
class VOCResult:
    """Per-class results and their mean.

    Attributes:
        classes: One :class:`ClassResult` per class, in class order.
        mean_ap: Mean AP over the classes with ground truth (``nan`` if none has any).
        use_07_metric: Which AP definition was used.
    """

    classes: tuple[ClassResult, ...]
    mean_ap: float
    use_07_metric: bool = True
    _by_name: dict[str, ClassResult] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.classes})

    def __getitem__(self, name: str) -> ClassResult:
        return self._by_name[name]

    @property
    def ap(self) -> dict[str, float]:
        """``{class: AP}``."""
        return {c.name: c.ap for c in self.classes}


class VOCEvaluator:
    """Accumulates detections per image and computes devkit AP per class.

    Args:
        dataset: The VOC split that is evaluated: ground truth comes from its annotations
            and every image of the split counts (images without detections included).
            None: ground truth must be given to :meth:`process` or :meth:`add_ground_truth`.
        classes: Classes to evaluate (default: the dataset's classes, else the names seen).
        use_07_metric: VOC2007 11-point AP (default); False for VOC2010+.
        min_overlap: IoU threshold (``>=``).
    """

    def __init__(self, dataset: VOCDataset | None = None, classes: Sequence[str] | None = None,
                 use_07_metric: bool = True, min_overlap: float = MIN_OVERLAP) -> None:
        self.dataset = dataset
        self._classes = tuple(classes) if classes is not None else None
        self.use_07_metric = use_07_metric
        self.min_overlap = min_overlap
        self.reset()

    def reset(self) -> None:
        """Forget all detections and ground truth given so far."""
        self._dets: dict[str, list[tuple[str, float, np.ndarray]]] = {}
        self._gt: dict[str, Annotation] = {}

    def add_ground_truth(self, image_id: str, annotation: Annotation) -> None:
        """Register an image's ground truth (for evaluation without a dataset)."""
        self._gt[image_id] = annotation

    def process(self, image_id: str, detections: Detections,
                annotation: Annotation | None = None) -> None:
        """Add the detections of one image.

        Args:
            image_id: The image (must be in the dataset's split when a dataset is set).
            detections: Its detections; ``class_ids`` index ``detections.names``.
            annotation: Its ground truth, when the evaluator has no dataset.
        """
        if not isinstance(detections, Detections):
            raise ShapeError(f"image {image_id}: expected Detections, got "
                             f"{type(detections).__name__}")
        if annotation is not None:
            self._gt[image_id] = annotation
        boxes = xyxy_to_voc(detections.boxes)
        for i in range(len(detections)):
            self._dets.setdefault(detections.label(i), []).append(
                (image_id, float(detections.scores[i]), boxes[i]))

    def add_devkit(self, name: str, image_id: str, score: float, box: Sequence[float]) -> None:
        """Add one detection with a devkit box (1-based, inclusive), as in comp4 files."""
        self._dets.setdefault(name, []).append(
            (image_id, float(score), np.asarray(box, dtype=np.float64)))

    def _ground_truth(self) -> dict[str, Annotation]:
        if self.dataset is None:
            if not self._gt:
                raise DatasetError("VOC evaluation: no ground truth (give a dataset or "
                                   "annotations)")
            return self._gt
        return {i: self.dataset.annotation(i) for i in self.dataset.ids}

    def _class_names(self, gt: Mapping[str, Annotation]) -> tuple[str, ...]:
        if self._classes is not None:
            return self._classes
        if self.dataset is not None:
            return self.dataset.classes
        names = {o.name for a in gt.values() for o in a.objects} | set(self._dets)
        return tuple(sorted(names))

    def evaluate(self) -> VOCResult:
        """AP per class and mAP over everything processed since :meth:`reset`.

        Raises:
            DatasetError: a detection names an image that is not in the evaluated set.
        """
        gt = self._ground_truth()
        for name, dets in self._dets.items():
            unknown = [d[0] for d in dets if d[0] not in gt]
            if unknown:
                raise DatasetError(f"detections of {name}: image {unknown[0]} is not in the "
                                   f"evaluated set")
        results = []
        for name in self._class_names(gt):
            per_image = {k: (a.boxes(name), a.difficult(name)) for k, a in gt.items()}
            dets = self._dets.get(name, [])
            results.append(evaluate_class(
                name, [d[0] for d in dets], np.array([d[1] for d in dets]),
                np.array([d[2] for d in dets]).reshape(-1, 4), per_image,
                self.use_07_metric, self.min_overlap))
        aps = np.array([r.ap for r in results if not np.isnan(r.ap)])
        mean = float(aps.mean()) if aps.size else float("nan")
        return VOCResult(tuple(results), mean, self.use_07_metric)
