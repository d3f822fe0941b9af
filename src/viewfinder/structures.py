"""Validated result types shared across tasks.

:class:`Detections` is the one result type of class-labelled box detectors
(YOLO, DPM) and what :mod:`viewfinder.eval` consumes. Like supervision's
``Detections``, it validates shapes when built; unlike it, it stays small.
Face results (with keypoints, landmarks and track ids) live in
:mod:`viewfinder.faces.types`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewfinder.errors import ShapeError, check_shape

__all__ = ["Detections"]


@dataclass(frozen=True)
class Detections:
    """Boxes with scores and class ids, for one image.

    Attributes:
        boxes: ``(N, 4)`` float32 xyxy in image pixels.
        scores: ``(N,)`` float32.
        class_ids: ``(N,)`` int64.
        names: Class names indexed by class id (may be empty).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4) if np.size(
            self.boxes) == 0 else np.asarray(self.boxes, dtype=np.float32)
        check_shape(boxes, ("N", 4), "Detections.boxes")
        n = boxes.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        check_shape(scores, (n,), "Detections.scores")
        check_shape(class_ids, (n,), "Detections.class_ids")
        if n and not np.isfinite(boxes).all():
            raise ShapeError("Detections.boxes: expected finite values, got NaN or inf")
        if self.names and n and (class_ids.min() < 0 or class_ids.max() >= len(self.names)):
            raise ShapeError(
                f"Detections.class_ids: expected ids in [0, {len(self.names)}), "
                f"got [{class_ids.min()}, {class_ids.max()}]"
            )
        for name, value in (("boxes", boxes), ("scores", scores), ("class_ids", class_ids)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "names", tuple(self.names))

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   np.zeros(0, np.int64), tuple(names))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Select by int, slice, index array or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index], self.names)

    def label(self, i: int) -> str:
        """Class name of detection ``i`` (the id as text when names are unknown)."""
        cid = int(self.class_ids[i])
        return self.names[cid] if cid < len(self.names) else str(cid)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per detection: ``box`` (xyxy), ``score``, ``class_id``, ``label``."""
        return [
            {
                "box": [round(float(v), 3) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 6),
                "class_id": int(self.class_ids[i]),
                "label": self.label(i),
            }
            for i in range(len(self))
        ]
