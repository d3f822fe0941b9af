"""Bridges to :class:`viewfinder.datasets.voc.VOCDataset` and
:class:`viewfinder.eval.voc.VOCEvaluator` for the YOLO recipe.

The one place the recipe touches those packages: boxes leave here as continuous
0-based xyxy (``voc_to_xyxy``), and AP comes from the project's one VOC evaluator.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewfinder.datasets.voc import VOCDataset, voc_to_xyxy
from viewfinder.eval.voc import VOCEvaluator
from viewfinder.structures import Detections

__all__ = ["VOCItem", "VOCSplit", "evaluate_voc", "read_voc"]


@dataclass(frozen=True)
class VOCItem:
    """One annotated image: ``boxes`` ``(N, 4)`` xyxy continuous pixels, class names."""

    image_id: str
    image_path: Path
    boxes: np.ndarray
    labels: tuple[str, ...]


@dataclass(frozen=True)
class VOCSplit:
    """A split's dataset (for the evaluator) and its items."""

    dataset: VOCDataset
    items: tuple[VOCItem, ...]


def read_voc(root: str | os.PathLike[str], split: str) -> VOCSplit:
    """Read every annotation of a VOC-layout split.

    Raises:
        DatasetError: missing directory, split list or annotation, or a malformed XML.
    """
    ds = VOCDataset(root, split)
    items = []
    for image_id in ds.ids:
        ann = ds.annotation(image_id)
        items.append(VOCItem(image_id, ds.image_path(image_id),
                             voc_to_xyxy(ann.boxes()).astype(np.float32),
                             tuple(o.name for o in ann.objects)))
    return VOCSplit(ds, tuple(items))


def evaluate_voc(split: VOCSplit, detections: Sequence[Detections]) -> dict[str, float]:
    """``{"mAP": ..., "AP/<class>": ...}`` over the split's classes (VOC07 11-point AP)."""
    evaluator = VOCEvaluator(split.dataset)
    for item, dets in zip(split.items, detections, strict=True):
        evaluator.process(item.image_id, dets)
    result = evaluator.evaluate()
    out = {"mAP": result.mean_ap}
    out.update({f"AP/{k}": v for k, v in result.ap.items() if not math.isnan(v)})
    return out
