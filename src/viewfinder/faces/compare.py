"""How far a face model's task outputs move between two runs of it (backend, precision).

``viewfinder bench --compare`` prints raw output deltas; for a face detector or a
2d106det-style landmark net this module adds what a user of the pipeline sees: face
boxes, 5 keypoints and 106 points, in image pixels, on real images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from viewfinder.errors import InputFileError, ModelError
from viewfinder.faces.detectors import FaceDetector
from viewfinder.faces.landmarks import Landmarker106
from viewfinder.ops.boxes import box_iou
from viewfinder.runtime.base import Session
from viewfinder.structures import Detections

__all__ = ["TaskDelta", "face_task_kind", "task_deltas"]


@dataclass(frozen=True)
class TaskDelta:
    """One image's task-level change from run A to run B.

    Attributes:
        image: The image file.
        what: ``"boxes"``, ``"keypoints"`` or ``"landmarks"``.
        faces: Faces found by A and by B (the same for landmarks: A's detections).
        matched: Faces of A matched to one of B (IoU >= 0.5).
        max_px, mean_px: Largest and mean absolute coordinate change of matched faces.
    """

    image: str
    what: str
    faces: tuple[int, int]
    matched: int
    max_px: float
    mean_px: float

    def __str__(self) -> str:
        count = (f"{self.faces[0]} faces" if self.faces[0] == self.faces[1]
                 else f"{self.faces[0]} vs {self.faces[1]} faces, {self.matched} matched")
        return (f"task {self.image}: {self.what} max |d| {self.max_px:.4g} px, "
                f"mean {self.mean_px:.3g} px ({count})")


def face_task_kind(session: Session) -> str | None:
    """``"detector"``, ``"landmarks"`` or None (not a face model) for a session."""
    for kind, build in (("landmarks", lambda: Landmarker106(session, "single")),
                        ("detector", lambda: FaceDetector(session))):
        try:
            build()
        except ModelError:
            continue
        return kind
    return None


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputFileError(f"{path}: cannot decode image for the task comparison")
    return image


def _match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices pairing boxes of ``a`` with their best-IoU box of ``b`` (IoU >= 0.5)."""
    if not len(a) or not len(b):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    iou = box_iou(a, b)
    best = iou.argmax(axis=1)
    ok = iou[np.arange(len(a)), best] >= 0.5
    return np.nonzero(ok)[0], best[ok]


def _delta(image: str, what: str, counts: tuple[int, int], a: np.ndarray, b: np.ndarray
           ) -> TaskDelta:
    d = np.abs(a.astype(np.float64) - b) if a.size else np.zeros(1)
    return TaskDelta(image, what, counts, len(a), float(d.max()), float(d.mean()))


def _detector_deltas(a: Session, b: Session, path: Path) -> list[TaskDelta]:
    image = _read(path)
    fa, fb = FaceDetector(a).detect(image), FaceDetector(b).detect(image)
    ia, ib = _match(fa.boxes, fb.boxes)
    counts = (len(fa), len(fb))
    out = [_delta(path.name, "boxes", counts, fa.boxes[ia], fb.boxes[ib])]
    if fa.keypoints is not None and fb.keypoints is not None:
        out.append(_delta(path.name, "keypoints", counts, fa.keypoints[ia], fb.keypoints[ib]))
    return out


def _landmark_deltas(a: Session, b: Session, path: Path, faces: Detections) -> list[TaskDelta]:
    image = _read(path)
    pa = Landmarker106(a, "all")(image, faces.boxes)
    pb = Landmarker106(b, "all")(image, faces.boxes)
    return [_delta(path.name, "landmarks", (len(faces), len(faces)), pa, pb)]


def task_deltas(a: Session, b: Session, images: Sequence[str | Path],
                detector: FaceDetector | None = None) -> list[TaskDelta]:
    """Task-level deltas of face model ``b`` against ``a`` on ``images``.

    Args:
        a: The reference run (e.g. f32 ONNX Runtime).
        b: The same model on another backend or precision.
        images: Image files.
        detector: Where the faces for a landmark net come from (required for one).

    Returns:
        One or two :class:`TaskDelta` per image; empty when ``a`` is not a face model.

    Raises:
        ModelError: a landmark net without ``detector``.
        InputFileError: an image cannot be decoded.
    """
    kind = face_task_kind(a)
    if kind is None:
        return []
    if kind == "landmarks" and detector is None:
        raise ModelError(f"{Path(a.path).name}: comparing landmarks needs a face detector")
    out: list[TaskDelta] = []
    for path in map(Path, images):
        if kind == "detector":
            out += _detector_deltas(a, b, path)
        else:
            out += _landmark_deltas(a, b, path, detector.detect(_read(path)))  # type: ignore[union-attr]
    return out
