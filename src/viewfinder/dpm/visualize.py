"""Pictures of DPM filters and detections (voc-release5 ``HOGpicture.m``, ``visualizemodel.m``).

A HOG glyph draws, in each cell, one bar per contrast-insensitive orientation, as
bright as the filter's positive weight for it. A model picture shows, per component,
the root filter, the parts at twice the root resolution pasted at their anchors, and
the deformation costs (darker = cheaper placement).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from viewfinder.dpm.detect import DPMDetections
from viewfinder.dpm.model import Model
from viewfinder.draw import color_for, draw_boxes
from viewfinder.errors import ShapeError

__all__ = ["draw_detections", "hog_picture", "model_picture"]

_GLYPH_CACHE: dict[int, np.ndarray] = {}
_GAP = 8  # pixels between panels


def _glyphs(cell: int) -> np.ndarray:
    """``(9, cell, cell)`` bars: vertical, then rotated clockwise by 20° steps."""
    if cell not in _GLYPH_CACHE:
        bar = np.zeros((cell, cell), np.float32)
        mid = int(round(cell / 2.0)) - 1
        bar[:, mid:mid + 2] = 1
        centre = ((cell - 1) / 2.0, (cell - 1) / 2.0)
        _GLYPH_CACHE[cell] = np.stack([
            cv2.warpAffine(bar, cv2.getRotationMatrix2D(centre, -20.0 * i, 1.0), (cell, cell),
                           flags=cv2.INTER_NEAREST) for i in range(9)])
    return _GLYPH_CACHE[cell]


def hog_picture(weights: np.ndarray, cell: int = 20) -> np.ndarray:
    """Glyph picture of the positive weights of a filter.

    Args:
        weights: ``(h, w, 32)`` filter (its 9 contrast-insensitive channels are drawn,
            ``foldHOG.m``) or ``(h, w, 9)`` orientation weights.
        cell: Pixels per cell.

    Returns:
        ``(h*cell, w*cell)`` float32, not normalised.
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 3 or w.shape[2] not in (9, 32):
        raise ShapeError(f"filter: expected shape (h, w, 32) or (h, w, 9), got {w.shape}")
    folded = np.maximum(w[:, :, 18:27] if w.shape[2] == 32 else w, 0)
    glyphs = _glyphs(cell)
    pic = np.einsum("yxo,oab->yaxb", folded, glyphs)
    return pic.reshape(w.shape[0] * cell, w.shape[1] * cell)


def _to_u8(pic: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(pic * (255.0 / scale if scale > 0 else 0), 0, 255).astype(np.uint8)


def _component_panels(model: Model, c: int, cell: int) -> list[np.ndarray]:
    comp = model.components[c]
    root = hog_picture(model.filters[comp.root], cell)
    scale = float(root.max())
    root2 = cv2.resize(root, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    with_parts = _to_u8(root2, scale)
    deform = np.zeros_like(with_parts)
    for part in comp.parts:
        p = _to_u8(hog_picture(model.filters[part.filter], cell), scale)
        p[:2, :] = p[-2:, :] = p[:, :2] = p[:, -2:] = 128
        x1, y1 = part.anchor[0] * cell, part.anchor[1] * cell
        h = min(p.shape[0], with_parts.shape[0] - y1)
        w = min(p.shape[1], with_parts.shape[1] - x1)
        if h <= 0 or w <= 0:
            continue
        with_parts[y1:y1 + h, x1:x1 + w] = p[:h, :w]
        deform[y1:y1 + h, x1:x1 + w] = _deformation_picture(part.deformation, p.shape, cell)[:h,
                                                                                             :w]
    return [_to_u8(root, scale), with_parts, deform]


def _deformation_picture(d: np.ndarray, shape: tuple[int, ...], cell: int) -> np.ndarray:
    """Cost of displacing the part, in cells, around the middle of its box (``def_scale`` 500)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    px, py = (shape[1] / 2 - xx) / cell, (shape[0] / 2 - yy) / cell
    cost = d[0] * px**2 + d[1] * px + d[2] * py**2 + d[3] * py
    return np.clip(cost * 500, 0, 255).astype(np.uint8)


def _row(panels: Sequence[np.ndarray]) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    cols = []
    for p in panels:
        cols.append(np.pad(p, ((0, h - p.shape[0]), (0, _GAP)), constant_values=255))
    return np.concatenate(cols, axis=1)


def model_picture(model: Model, components: Sequence[int] | None = None,
                  cell: int = 20) -> np.ndarray:
    """Picture of a model: one row per component (root | root + parts | deformations).

    Args:
        model: The model.
        components: Which components; default: those that are not mirrors.
        cell: Pixels per part cell (root cells are twice as large in the 2nd panel).

    Returns:
        ``(H, W, 3)`` uint8 BGR on a white background, ready for ``viewfinder.draw.save_image``.
    """
    if components is None:
        components = [i for i, c in enumerate(model.components) if c.mirror_of is None]
    for c in components:
        if not 0 <= c < len(model.components):
            raise ShapeError(f"component {c}: expected 0..{len(model.components) - 1}")
    rows = [_row(_component_panels(model, c, cell)) for c in components]
    if not rows:
        return np.full((cell, cell, 3), 255, np.uint8)
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, _GAP), (0, w - r.shape[1])), constant_values=255) for r in rows]
    gray = np.concatenate(rows, axis=0)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def draw_detections(image: np.ndarray, dets: DPMDetections, parts: bool = True,
                    label: str | None = None) -> np.ndarray:
    """Draw detections on an RGB image: boxes with scores, and part boxes (thin, blue).

    Args:
        image: ``(H, W, 3)`` RGB uint8 (or gray).
        dets: The detections (devkit coordinates).
        parts: Also draw the root and part filter boxes.
        label: Text before each score (default: the class name).

    Returns:
        A new ``(H, W, 3)`` uint8 BGR image.
    """
    im = np.asarray(image)
    bgr = cv2.cvtColor(im, cv2.COLOR_RGB2BGR) if im.ndim == 3 else im
    name = dets.name if label is None else label
    out = bgr
    if parts and len(dets):
        fb = dets.part_boxes.reshape(-1, 4)
        fb = fb[np.isfinite(fb).all(axis=1)] - np.array([1, 1, 0, 0])
        out = draw_boxes(out, fb, colors=[(255, 128, 0)] * len(fb), thickness=1)
    boxes = dets.boxes - np.array([1, 1, 0, 0]) if len(dets) else np.zeros((0, 4))
    labels = [f"{name} {s:.2f}".strip() for s in dets.scores]
    return draw_boxes(out, boxes, labels, colors=[color_for(0)] * len(dets))
