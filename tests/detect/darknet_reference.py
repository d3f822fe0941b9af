"""Darknet's own yolov3-tiny detections (``shared/reference/darknet_yolov3_tiny_coco12.json``)
and how a detector's output is held against them (imported by the test files).

The reference is pjreddie's C Darknet (CPU build, ``detector test``, thresh 0.1, hier 0.5,
NMS 0.45, letterbox 416) on 12 coco256-voc test images. Its boxes are the raw
``correct_yolo_boxes`` corners, which may run past the image border; ours are clipped to
the image (as Darknet's ``draw_detections`` clips them), so the reference is clipped the
same way before comparing.

Matching: per image and class, Darknet's detections at ``score >= FOUND_AT`` in decreasing
score each take the unused detection of ours of the same class with the highest IoU. An
"extra" is a detection of ours at ``score >= EXTRA_AT`` that overlaps (IoU >= 0.5) no
same-class detection in Darknet's full list (scores down to 0.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewfinder.media import read_image
from viewfinder.ops.boxes import box_iou
from viewfinder.structures import Detections

REFERENCE = "reference/darknet_yolov3_tiny_coco12.json"
IMAGES = "data/coco256-voc/JPEGImages"
FOUND_AT = 0.25  # every Darknet detection at or above this must be found
EXTRA_AT = 0.3  # nothing of ours at or above this may be missing from Darknet's list
CONF = 0.1  # run our detector at Darknet's threshold, so borderline scores are seen
N_FOUND = 44  # Darknet detections >= FOUND_AT in the file (guards against a vacuous pass)


@dataclass(frozen=True)
class Case:
    """One reference image: the decoded image and Darknet's detections (clipped)."""

    name: str
    image: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: tuple[str, ...]


@dataclass
class Agreement:
    """Darknet's detections against ours.

    ``pairs``: ``(image, label, darknet score, IoU, our score)`` for every Darknet
    detection at ``>= FOUND_AT`` that found a same-class partner; ``missing`` the ones
    that found none; ``extras`` ``(image, label, score, box)`` of ours.
    """

    pairs: list[tuple[str, str, float, float, float]] = field(default_factory=list)
    missing: list[tuple[str, str, float]] = field(default_factory=list)
    extras: list[tuple[str, str, float, list[float]]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.pairs) + len(self.missing)

    @property
    def worst_iou(self) -> float:
        return min((p[3] for p in self.pairs), default=0.0)

    @property
    def worst_gap(self) -> float:
        return max((abs(p[4] - p[2]) for p in self.pairs), default=float("inf"))

    def outside(self, iou: float, gap: float) -> list[tuple[str, str, float, float, float]]:
        """Pairs with IoU below ``iou`` or a score gap above ``gap``."""
        return [p for p in self.pairs if p[3] < iou or abs(p[4] - p[2]) > gap]

    def summary(self) -> str:
        n = self.total - len(self.missing)
        return (f"found {n}/{self.total}, worst IoU {self.worst_iou:.4f}, worst score gap "
                f"{self.worst_gap:.4f}, {len(self.extras)} extras")


def load_reference(shared: Path) -> list[Case]:
    """The reference images, decoded, with Darknet's detections clipped to each image."""
    data = json.loads((shared / REFERENCE).read_text())
    cases = []
    for item in data["results"]:
        image = read_image(shared / IMAGES / item["image"])
        h, w = image.shape[:2]
        boxes = np.array([d["box"] for d in item["dets"]], np.float64).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        cases.append(Case(item["image"], image, boxes,
                          np.array([d["score"] for d in item["dets"]], np.float64),
                          tuple(d["class"] for d in item["dets"])))
    return cases


def _match_case(case: Case, dets: Detections, result: Agreement) -> None:
    ours = np.array([dets.label(i) for i in range(len(dets))], dtype=object)
    used: set[int] = set()
    for k in np.argsort(-case.scores, kind="stable"):
        label, score = case.labels[k], float(case.scores[k])
        if score < FOUND_AT:
            continue
        same = [i for i in np.flatnonzero(ours == label) if i not in used]
        if not same:
            result.missing.append((case.name, label, score))
            continue
        iou = box_iou(case.boxes[k:k + 1], dets.boxes[same].astype(np.float64))[0]
        best = same[int(iou.argmax())]
        used.add(best)
        result.pairs.append((case.name, label, score, float(iou.max()),
                             float(dets.scores[best])))
    for i in np.flatnonzero(dets.scores >= EXTRA_AT):
        mine = np.array([lb == ours[i] for lb in case.labels], bool)
        iou = box_iou(dets.boxes[i:i + 1].astype(np.float64), case.boxes[mine])[0]
        if not (iou >= 0.5).any():
            result.extras.append((case.name, str(ours[i]), float(dets.scores[i]),
                                  dets.boxes[i].round(1).tolist()))


def agreement(detect: Callable[[np.ndarray], Detections], cases: list[Case]) -> Agreement:
    """Run ``detect`` on every reference image and match its output to Darknet's."""
    result = Agreement()
    for case in cases:
        _match_case(case, detect(case.image), result)
    return result
