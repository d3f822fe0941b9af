"""After scoring: bounding-box prediction, clipping and voc-release's NMS.

All boxes here are devkit pixel corners (1-based, inclusive), as voc-release5 uses.
"""

from __future__ import annotations

import numpy as np

from viewfinder.errors import ShapeError, check_shape

__all__ = ["NMS_OVERLAP", "clip_voc_boxes", "predict_boxes", "voc_nms"]

#: Overlap above which a lower-scoring detection is suppressed (voc-release5 ``nms(ds, 0.5)``).
NMS_OVERLAP = 0.5


def voc_nms(boxes: np.ndarray, scores: np.ndarray, overlap: float = NMS_OVERLAP) -> np.ndarray:
    """Greedy NMS with voc-release's overlap rule (``test/nms.m``).

    A box ``j`` is suppressed by a higher-scoring kept box ``i`` when
    ``|i ∩ j| / |j| > overlap`` (the share of ``j`` that ``i`` covers, not IoU), with the
    +1-pixel area convention. Equal scores are visited as MATLAB's ascending ``sort``
    leaves them (the later index first).

    Args:
        boxes: ``(N, 4)`` devkit boxes.
        scores: ``(N,)``.
        overlap: Suppression threshold.

    Returns:
        ``(K,)`` int64 indices of kept boxes, highest score first.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    check_shape(s, (b.shape[0],), "scores")
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    order = np.argsort(s, kind="stable")[::-1]
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1
        h = np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1
        covered = (w > 0) & (h > 0) & (w * h / np.where(area[rest] > 0, area[rest], 1) > overlap)
        order = rest[~covered]
    return np.asarray(keep, dtype=np.int64)


def predict_boxes(windows: np.ndarray, filter_boxes: np.ndarray,
                  regressor: np.ndarray) -> np.ndarray:
    """voc-release5 ``bboxpred_get``: refine detection windows from the filter placements.

    Args:
        windows: ``(N, 4)`` detection windows.
        filter_boxes: ``(N, F, 4)`` boxes of the root and parts (in the regressor's order).
        regressor: ``(2F + 1, 4)`` coefficients for ``(dx1, dy1, dx2, dy2)``.

    Returns:
        ``(N, 4)`` predicted boxes: ``x1 + w*dx1, y1 + h*dy1, x2 + w*dx2, y2 + h*dy2`` with
        ``w = x2 - x1``, ``h = y2 - y1`` of the window.
    """
    win = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    fb = np.asarray(filter_boxes, dtype=np.float64)
    if fb.ndim != 3 or fb.shape[0] != win.shape[0] or fb.shape[2] != 4:
        raise ShapeError(f"filter boxes: expected shape ({win.shape[0]}, F, 4), got {fb.shape}")
    check_shape(regressor, (2 * fb.shape[1] + 1, 4), "regressor")
    w = win[:, 2] - win[:, 0]
    h = win[:, 3] - win[:, 1]
    rx, ry = win[:, 0] + w / 2, win[:, 1] + h / 2
    px = fb[:, :, 0] + (fb[:, :, 2] - fb[:, :, 0]) / 2
    py = fb[:, :, 1] + (fb[:, :, 3] - fb[:, :, 1]) / 2
    feats = np.empty((win.shape[0], 2 * fb.shape[1] + 1))
    feats[:, 0:-1:2] = (px - rx[:, None]) / w[:, None]
    feats[:, 1:-1:2] = (py - ry[:, None]) / h[:, None]
    feats[:, -1] = 1.0
    d = feats @ np.asarray(regressor, dtype=np.float64)
    return np.stack([win[:, 0] + w * d[:, 0], win[:, 1] + h * d[:, 1],
                     win[:, 2] + w * d[:, 2], win[:, 3] + h * d[:, 3]], axis=1)


def clip_voc_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip devkit boxes to ``[1, width] x [1, height]`` (``clipboxes.m``).

    Returns:
        ``(clipped (K, 4), kept (K,) indices)``: boxes left with no area are dropped.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, 0] = np.maximum(b[:, 0], 1)
    b[:, 1] = np.maximum(b[:, 1], 1)
    b[:, 2] = np.minimum(b[:, 2], width)
    b[:, 3] = np.minimum(b[:, 3], height)
    keep = np.nonzero((b[:, 2] - b[:, 0] + 1 > 0) & (b[:, 3] - b[:, 1] + 1 > 0))[0]
    return b[keep], keep
