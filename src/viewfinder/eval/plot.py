"""Precision/recall curves drawn with OpenCV (no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from viewfinder.draw import color_for
from viewfinder.eval.voc import ClassResult, VOCResult

__all__ = ["pr_curve_image"]

_MARGIN = (70, 30, 30, 60)  # left, top, right, bottom
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _axes(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Frame, grid every 0.1 and tick labels every 0.2."""
    for i in range(11):
        t = i / 10
        x = int(round(x0 + t * (x1 - x0)))
        y = int(round(y1 - t * (y1 - y0)))
        cv2.line(img, (x, y0), (x, y1), (225, 225, 225), 1)
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        if i % 2 == 0:
            cv2.putText(img, f"{t:.1f}", (x - 12, y1 + 20), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(img, f"{t:.1f}", (x0 - 38, y + 5), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    cv2.putText(img, "recall", ((x0 + x1) // 2 - 25, y1 + 45), _FONT, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, "precision", (8, y0 - 10), _FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)


def pr_curve_image(results: VOCResult | Sequence[ClassResult], size: tuple[int, int] = (800, 600),
                   title: str = "") -> np.ndarray:
    """Draw the precision/recall curve of each class, with AP in the legend.

    Args:
        results: A :class:`VOCResult` or class results.
        size: ``(width, height)`` in pixels.
        title: Optional title (e.g. ``"VOC2007 test, mAP 0.43"``).

    Returns:
        ``(height, width, 3)`` uint8 BGR, for :func:`viewfinder.draw.save_image`.
    """
    classes = list(results.classes if isinstance(results, VOCResult) else results)
    w, h = int(size[0]), int(size[1])
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = _MARGIN[0], _MARGIN[1], w - _MARGIN[2], h - _MARGIN[3]
    _axes(img, x0, y0, x1, y1)
    legend_y = y0 + 18
    for k, res in enumerate(classes):
        color = color_for(k)
        if res.recall.size:
            xs = x0 + res.recall * (x1 - x0)
            ys = y1 - res.precision * (y1 - y0)
            pts = np.stack([xs, ys], axis=1).round().astype(np.int32)
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA)
        ap = "n/a" if np.isnan(res.ap) else f"{res.ap:.3f}"
        text = f"{res.name}: AP {ap}"
        cv2.line(img, (x1 - 190, legend_y - 5), (x1 - 170, legend_y - 5), color, 2)
        cv2.putText(img, text, (x1 - 165, legend_y), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        legend_y += 18
    if title:
        cv2.putText(img, title, ((x0 + x1) // 2 - 4 * len(title), y0 - 10), _FONT, 0.5, (0, 0, 0),
                    1, cv2.LINE_AA)
    return img
