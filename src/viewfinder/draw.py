"""Drawing results on images (boxes, labels, points) and saving them as PNG/JPEG.

Works on ``(H, W, 3)`` uint8 BGR arrays (OpenCV order) and returns a new array;
the input is never modified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from viewfinder.errors import EncodeError, ShapeError
from viewfinder.fileio import atomic_path

__all__ = ["color_for", "draw_boxes", "draw_detections", "draw_points", "save_image"]

# A qualitative palette (BGR), readable on photos.
_PALETTE = (
    (56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
    (10, 249, 72), (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0),
    (168, 153, 44), (255, 194, 0), (147, 69, 52), (255, 115, 100), (236, 24, 0),
    (255, 56, 132), (133, 0, 82), (255, 56, 203), (200, 149, 255), (199, 55, 255),
)


def color_for(index: int) -> tuple[int, int, int]:
    """A stable BGR colour for a class or track id."""
    return _PALETTE[int(index) % len(_PALETTE)]


def _canvas(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ShapeError(f"image: expected shape (H, W, 3), got {image.shape}")
    return np.ascontiguousarray(image[..., :3]).copy()


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str] | None = None,
    colors: Sequence[tuple[int, int, int]] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw ``(N, 4)`` xyxy boxes with optional text labels; returns a new image.

    Without ``thickness``, lines and labels scale with the image and shrink with each
    box, so that a crowd of small faces stays readable: a label is at most about the
    width of its box, and left out when it would be smaller than legible.
    """
    out = _canvas(image)
    base_t = thickness or max(1, round(max(out.shape[:2]) / 500))
    for i, box in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
        color = colors[i] if colors is not None else color_for(0)
        p1 = (int(round(box[0])), int(round(box[1])))
        p2 = (int(round(box[2])), int(round(box[3])))
        side = max(min(box[2] - box[0], box[3] - box[1]), 0.0)
        t = base_t if thickness else max(1, min(base_t, round(side / 24)))
        cv2.rectangle(out, p1, p2, color, t, cv2.LINE_AA)
        if labels is not None and labels[i]:
            _label(out, labels[i], p1, max(box[2] - box[0], 0.0), 0.4 * base_t, color)
    return out


def _label(out: np.ndarray, text: str, p1: tuple[int, int], box_w: float, scale: float,
           color: tuple[int, int, int]) -> None:
    """A filled label above the box's top-left corner, no wider than ~the box."""
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    scale = min(scale, scale * box_w / max(tw, 1))
    if scale < 0.3:  # below ~7 px text: unreadable, and it would hide the face
        return
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(p1[1], th + base + 2)
    cv2.rectangle(out, (p1[0], y - th - base - 2), (p1[0] + tw + 2, y), color, -1)
    cv2.putText(out, text, (p1[0] + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), 1, cv2.LINE_AA)


def draw_points(
    image: np.ndarray,
    points: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    radius: int | Sequence[int] | None = None,
) -> np.ndarray:
    """Draw ``(..., 2)`` xy points as filled dots; returns a new image.

    ``radius``: one for all points, or one per leading index of ``points`` (e.g. per
    face of ``(N, 106, 2)`` landmarks); None scales with the image.
    """
    out = _canvas(image)
    pts = np.asarray(points, dtype=np.float64)
    default = max(1, round(max(out.shape[:2]) / 800))
    if radius is None or isinstance(radius, int | np.integer):
        groups = [(pts.reshape(-1, 2), int(radius or default))]
    else:
        if len(radius) != (pts.shape[0] if pts.ndim > 2 else 1):
            raise ShapeError(f"radius: expected one per point set ({pts.shape[0]}), "
                             f"got {len(radius)}")
        groups = [(p.reshape(-1, 2), int(r)) for p, r in zip(pts.reshape(len(radius), -1, 2),
                                                              radius, strict=True)]
    for group, r in groups:
        for x, y in group:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (int(round(x)), int(round(y))), r, color, -1, cv2.LINE_AA)
    return out


def save_image(path: str | os.PathLike[str], image: np.ndarray, quality: int = 95) -> None:
    """Save a BGR (or gray) image; the format follows the extension (.png, .jpg...).

    Written atomically: on failure nothing is left at ``path``.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower() or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise EncodeError(f"{path}: cannot encode image as {ext}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _point_radii(boxes: np.ndarray, shape: tuple[int, ...]) -> list[int]:
    """Dots sized to each box (a 40 px face gets 1 px dots, a 300 px face 3-4 px)."""
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cap = max(1, round(max(shape[:2]) / 800))
    return [int(min(cap, max(1, round(float(v) / 80)))) for v in side]


def draw_detections(image: np.ndarray, dets: Any, *, boxes: bool = True, points: bool = True,
                    labels: bool = True, parts: bool = False) -> np.ndarray:
    """Draw a :class:`viewfinder.structures.Detections` on a copy of a BGR image.

    Boxes are coloured by track id when there are tracks, else by class, and labelled
    ``"#id"`` or ``"label score"``. They are drawn in increasing score order, so where
    two boxes overlap the higher score's label is drawn last and stays readable.
    Keypoints are red dots, landmarks green, part boxes thin and blue.
    """
    out = _canvas(image)
    n = len(dets)
    if n == 0:
        return out
    order = np.argsort(dets.scores, kind="stable")
    tracks = dets.track_ids
    if parts and dets.parts is not None:  # the parts, after each detection's root filter
        found = dets.parts[order][:, 1:].reshape(-1, 4)
        found = found[np.isfinite(found).all(axis=1)]
        if len(found):
            out = draw_boxes(out, found, None, [(255, 64, 0)] * len(found), 1)
    if boxes:
        colors = [color_for(int(tracks[i]) if tracks is not None else int(dets.class_ids[i]))
                  for i in order]
        text = None
        if labels:
            text = [f"#{int(tracks[i])}" if tracks is not None
                    else f"{dets.label(int(i))} {float(dets.scores[i]):.2f}" for i in order]
        out = draw_boxes(out, dets.boxes[order], text, colors)
    if points:
        radii = _point_radii(dets.boxes, out.shape)
        if dets.landmarks is not None:
            out = draw_points(out, dets.landmarks, (0, 255, 0), radii)
        if dets.keypoints is not None:
            out = draw_points(out, dets.keypoints, (0, 0, 255), [r + 1 for r in radii])
    return out
