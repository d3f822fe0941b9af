"""The face result type: boxes, scores, 5 keypoints, 106 landmarks and track ids.

Like :class:`viewfinder.structures.Detections`, :class:`Faces` is a small frozen
dataclass over NumPy arrays that validates shapes when it is built, so a
malformed result can never travel further than the line that made it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewfinder.errors import ShapeError, check_shape

__all__ = ["Faces"]


def _points(value: Any, n: int, k: int, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    if arr.size == 0 and n == 0:
        arr = arr.reshape(0, k, 2)
    check_shape(arr, (n, k, 2), name)
    return arr


def _frozen(arr: np.ndarray | None) -> np.ndarray | None:
    if arr is not None:
        arr = np.ascontiguousarray(arr)
        arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class Faces:
    """The faces found in one image.

    Attributes:
        boxes: ``(N, 4)`` float32 xyxy boxes in image pixels.
        scores: ``(N,)`` float32 detector confidences (1.0 for boxes derived from
            tracked landmarks).
        kps: ``(N, 5, 2)`` float32 keypoints (eyes, nose, mouth corners) or None.
        landmarks: ``(N, 106, 2)`` float32 2d106det points or None.
        track_ids: ``(N,)`` int64 stable ids across video frames, or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    kps: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        check_shape(boxes, ("N", 4), "Faces.boxes")
        n = boxes.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        check_shape(scores, (n,), "Faces.scores")
        if n and not np.isfinite(boxes).all():
            raise ShapeError("Faces.boxes: expected finite values, got NaN or inf")
        kps = _points(self.kps, n, 5, "Faces.kps")
        landmarks = _points(self.landmarks, n, 106, "Faces.landmarks")
        ids = None
        if self.track_ids is not None:
            ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            check_shape(ids, (n,), "Faces.track_ids")
        for name, value in (("boxes", boxes), ("scores", scores), ("kps", kps),
                            ("landmarks", landmarks), ("track_ids", ids)):
            object.__setattr__(self, name, _frozen(value))

    @classmethod
    def empty(cls, with_kps: bool = False, with_landmarks: bool = False) -> Faces:
        """No faces (optionally with empty keypoint/landmark arrays)."""
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32) if with_kps else None,
            np.zeros((0, 106, 2), np.float32) if with_landmarks else None,
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Faces:
        """Select faces by int, slice, index array or boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return Faces(self.boxes[index], self.scores[index], pick(self.kps),
                     pick(self.landmarks), pick(self.track_ids))

    def replace(self, **changes: Any) -> Faces:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"faces": [{"box", "score", "kps"?, "landmarks"?, "track_id"?}]}``.

        Coordinates are rounded to 1/1000 px, scores to 6 decimals.
        """
        faces = []
        for i in range(len(self)):
            face: dict[str, Any] = {
                "box": np.round(self.boxes[i].astype(np.float64), 3).tolist(),
                "score": round(float(self.scores[i]), 6),
            }
            if self.track_ids is not None:
                face["track_id"] = int(self.track_ids[i])
            if self.kps is not None:
                face["kps"] = np.round(self.kps[i].astype(np.float64), 3).tolist()
            if self.landmarks is not None:
                face["landmarks"] = np.round(self.landmarks[i].astype(np.float64), 3).tolist()
            faces.append(face)
        return {"faces": faces}

    def to_json(self) -> str:
        """:meth:`to_dict` as a compact one-line JSON string."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faces:
        """Rebuild from :meth:`to_dict` output (the inverse up to rounding)."""
        faces = data.get("faces", [])
        if not faces:
            return cls.empty()

        def col(key: str) -> Any:
            return [f[key] for f in faces] if key in faces[0] else None

        return cls(col("box"), col("score"), col("kps"), col("landmarks"), col("track_id"))

    def draw(self, image: np.ndarray, *, boxes: bool = True, points: bool = True,
             labels: bool = True) -> np.ndarray:
        """Draw boxes, ids/scores, keypoints and landmarks on a copy of a BGR image."""
        from viewfinder.draw import color_for, draw_boxes, draw_points

        out = image
        if boxes and len(self):
            ids = self.track_ids
            colors = [color_for(int(ids[i]) if ids is not None else 0) for i in range(len(self))]
            text = None
            if labels:
                text = [f"#{int(ids[i])}" if ids is not None else f"{self.scores[i]:.2f}"
                        for i in range(len(self))]
            out = draw_boxes(out, self.boxes, text, colors)
        # dots sized to each face (a 40 px face gets 1 px dots, a 300 px face 3-4 px)
        side = np.minimum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])
        cap = max(1, round(max(image.shape[:2]) / 800))
        radii = [int(min(cap, max(1, round(v / 80)))) for v in side]
        if points and self.landmarks is not None and len(self):
            out = draw_points(out, self.landmarks, (0, 255, 0), radii)
        if points and self.kps is not None and len(self):
            out = draw_points(out, self.kps, (0, 0, 255), [r + 1 for r in radii])
        if out is image:
            out = draw_points(image, np.zeros((0, 2)))
        return out
