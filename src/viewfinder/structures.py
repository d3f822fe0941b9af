"""The one result type of every task: :class:`Detections`.

Faces (boxes, 5 keypoints, 106 landmarks, track ids), YOLO (class-labelled boxes)
and DPM (boxes with root and part boxes) all return a :class:`Detections`, which the
runner, the sinks, ``viewfinder eval``, the drawing code and the HTTP service
consume without knowing the task. Like supervision's ``Detections`` it folds the
optional extras of each task into one validated type; unlike it, the extras are a
closed set of named, shape-checked fields (``keypoints``, ``landmarks``,
``track_ids``, ``parts``) plus ``data`` for per-detection scalars (e.g. a DPM
component), so it cannot grow into a bag of untyped attributes.

Coordinates are continuous pixel corners, 0-based: a box ``[0, 0, 10, 10]`` covers
the top-left 10×10 pixels. The JSON form (:meth:`Detections.to_dict`) is the record
every command writes and ``viewfinder eval voc`` reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewfinder.errors import ShapeError, check_shape

__all__ = ["FACE_NAMES", "Detections"]

#: The class names of face results.
FACE_NAMES = ("face",)

_POINT_FIELDS = ("keypoints", "landmarks")


def _points(value: Any, n: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    if arr.size == 0 and n == 0:
        arr = arr.reshape(0, arr.shape[1] if arr.ndim == 3 else 0, 2)
    check_shape(arr, (n, None, 2), name)
    return arr


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is not None:
        arr = np.ascontiguousarray(arr)
        arr.setflags(write=False)
    return arr


def _round(a: np.ndarray, digits: int = 3) -> list[Any]:
    return np.round(a.astype(np.float64), digits).tolist()


@dataclass(frozen=True)
class Detections:
    """The objects found in one image.

    Attributes:
        boxes: ``(N, 4)`` float32 xyxy, continuous 0-based pixel corners.
        scores: ``(N,)`` float32 confidences (1.0 for face boxes that follow tracked
            landmarks; DPM scores are SVM margins and may be negative).
        class_ids: ``(N,)`` int64, indexes into ``names`` (zeros when omitted).
        names: Class names indexed by class id (may be empty: labels are then the ids).
        keypoints: ``(N, K, 2)`` float32 points (faces: eyes, nose, mouth corners) or None.
        landmarks: ``(N, L, 2)`` float32 dense points (faces: 2d106det's 106) or None.
        track_ids: ``(N,)`` int64 ids that stay stable across video frames, or None.
        parts: ``(N, P, 4)`` float32 xyxy part boxes (DPM: the root filter first, then
            its parts; NaN rows where a component has fewer parts), or None.
        data: Per-detection ``(N,)`` arrays by name (e.g. ``{"component": ...}``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray | None = None
    names: tuple[str, ...] = field(default=())
    keypoints: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    parts: np.ndarray | None = None
    data: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        check_shape(boxes, ("N", 4), "Detections.boxes")
        n = boxes.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        check_shape(scores, (n,), "Detections.scores")
        if n and not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ShapeError("Detections: expected finite boxes and scores, got NaN or inf")
        ids = (np.zeros(n, np.int64) if self.class_ids is None
               else np.asarray(self.class_ids, dtype=np.int64).reshape(-1))
        check_shape(ids, (n,), "Detections.class_ids")
        names = tuple(str(v) for v in self.names)
        if names and n and (ids.min() < 0 or ids.max() >= len(names)):
            raise ShapeError(f"Detections.class_ids: expected ids in [0, {len(names)}), "
                             f"got [{ids.min()}, {ids.max()}]")
        values: dict[str, Any] = {"boxes": boxes, "scores": scores, "class_ids": ids,
                                  "keypoints": _points(self.keypoints, n, "Detections.keypoints"),
                                  "landmarks": _points(self.landmarks, n, "Detections.landmarks"),
                                  "track_ids": self._ids(n), "parts": self._parts(n)}
        for name, value in values.items():
            object.__setattr__(self, name, _frozen(value))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "data", self._data(n))

    def _ids(self, n: int) -> np.ndarray | None:
        if self.track_ids is None:
            return None
        ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        check_shape(ids, (n,), "Detections.track_ids")
        return ids

    def _parts(self, n: int) -> np.ndarray | None:
        if self.parts is None:
            return None
        parts = np.asarray(self.parts, dtype=np.float32)
        if parts.size == 0:
            parts = parts.reshape(n, 0, 4)
        check_shape(parts, (n, None, 4), "Detections.parts")
        return parts

    def _data(self, n: int) -> dict[str, np.ndarray]:
        out = {}
        for key, value in dict(self.data).items():
            arr = np.asarray(value).reshape(-1) if np.ndim(value) <= 1 else np.asarray(value)
            check_shape(arr, (n,), f"Detections.data[{key!r}]")
            out[str(key)] = _frozen(arr)
        return out

    # ------------------------------------------------------------------ building
    @classmethod
    def empty(cls, names: Sequence[str] = (), *, keypoints: int | None = None,
              landmarks: int | None = None) -> Detections:
        """No detections (optionally with empty ``(0, K, 2)`` point arrays)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None, tuple(names),
                   None if keypoints is None else np.zeros((0, keypoints, 2), np.float32),
                   None if landmarks is None else np.zeros((0, landmarks, 2), np.float32))

    def replace(self, **changes: Any) -> Detections:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Detections:
        """Select by int, slice, index array or boolean mask; always returns Detections."""
        if isinstance(index, int | np.integer):
            index = [int(index)]

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Detections(self.boxes[index], self.scores[index], self.class_ids[index],
                          self.names, pick(self.keypoints), pick(self.landmarks),
                          pick(self.track_ids), pick(self.parts),
                          {k: v[index] for k, v in self.data.items()})

    def label(self, i: int) -> str:
        """Class name of detection ``i`` (the id as text when names are unknown)."""
        cid = int(self.class_ids[i])
        return self.names[cid] if cid < len(self.names) else str(cid)

    # ------------------------------------------------------------------ JSON
    def to_dicts(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per detection: ``box``, ``score``, ``label``, ``class_id``,
        and ``track_id``, ``keypoints``, ``landmarks``, ``parts`` and the ``data`` keys when
        present. Coordinates are rounded to 1/1000 px, scores to 6 decimals."""
        out = []
        for i in range(len(self)):
            d: dict[str, Any] = {"box": _round(self.boxes[i]),
                                 "score": round(float(self.scores[i]), 6),
                                 "label": self.label(i), "class_id": int(self.class_ids[i])}
            if self.track_ids is not None:
                d["track_id"] = int(self.track_ids[i])
            for key in _POINT_FIELDS:
                pts = getattr(self, key)
                if pts is not None:
                    d[key] = _round(pts[i])
            if self.parts is not None:
                d["parts"] = [_round(b) for b in self.parts[i] if np.isfinite(b).all()]
            for key, value in self.data.items():
                d[key] = value[i].item()
            out.append(d)
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"detections": [...]}`` (see :meth:`to_dicts`): the results part of a record."""
        return {"detections": self.to_dicts()}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], names: Sequence[str] = ()) -> Detections:
        """Rebuild from :meth:`to_dict` output (the inverse up to rounding).

        Args:
            record: A mapping with a ``detections`` list.
            names: Class names; by default those the labels and class ids imply.
        """
        dets = list(record.get("detections", []))
        if not dets:
            return cls.empty(names)
        ids = [int(d.get("class_id", 0)) for d in dets]
        if not names:
            table = {i: str(d.get("label", i)) for i, d in zip(ids, dets, strict=True)}
            names = [table.get(i, str(i)) for i in range(max(ids) + 1)]

        def col(key: str) -> Any:
            return [d[key] for d in dets] if key in dets[0] else None

        parts = col("parts")
        if parts is not None:
            width = max(len(p) for p in parts)
            parts = [list(p) + [[np.nan] * 4] * (width - len(p)) for p in parts]
        known = {"box", "score", "label", "class_id", "track_id", "keypoints", "landmarks",
                 "parts"}
        data = {k: [d[k] for d in dets] for k in dets[0] if k not in known}
        return cls([d["box"] for d in dets], [d["score"] for d in dets], ids, tuple(names),
                   col("keypoints"), col("landmarks"), col("track_id"), parts, data)

    # ------------------------------------------------------------------ drawing
    def draw(self, image: np.ndarray, *, boxes: bool = True, points: bool = True,
             labels: bool = True, parts: bool = False) -> np.ndarray:
        """Draw on a copy of a BGR image: boxes with labels (``"dog 0.87"``, or
        ``"#3"`` for tracks), keypoints and landmarks, and optionally part boxes.

        Lower scores are drawn first, so where boxes overlap the label of the higher
        score is the one on top.
        """
        from viewfinder.draw import draw_detections

        return draw_detections(image, self, boxes=boxes, points=points, labels=labels,
                               parts=parts)
