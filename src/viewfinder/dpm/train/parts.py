"""Parts from the root filter's energy (rel5 ``model_addparts.m``), and box regressors.

Parts: the root filter is interpolated to twice its resolution; its *energy* is the
sum over channels of the squared positive weights; parts are placed greedily where a
part-sized window holds the most energy, that window's energy is then zeroed, and
each part filter starts as the interpolated root under it, with deformation weights
``[0.1 0 0.1 0]`` and its anchor at that position.

Box regressors (rel5 ``trainbox.m``): per component, a ridge regression from the
normalised centres of the root and parts of a positive's best placement to the
corrections of the root box's corners; mirrored placements are reflected first, so
one regressor serves both orientations.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from viewfinder.dpm.train.model import StarComponent, StarPart

__all__ = ["add_parts", "apply_regressor", "fit_regressor", "regression_inputs"]

logger = logging.getLogger(__name__)


def _interpolate_root(root: np.ndarray) -> np.ndarray:
    h, w, d = root.shape
    out = np.empty((2 * h, 2 * w, d), np.float32)
    for k in range(0, d, 4):  # cv2.resize handles at most 4 channels per call reliably
        out[:, :, k:k + 4] = cv2.resize(np.ascontiguousarray(root[:, :, k:k + 4]), (2 * w, 2 * h),
                                        interpolation=cv2.INTER_CUBIC).reshape(2 * h, 2 * w, -1)
    return out


def add_parts(comp: StarComponent, n_parts: int, part_size: int) -> StarComponent:
    """A copy of ``comp`` with ``n_parts`` parts placed at the root's highest energy.

    Part filters are ``part_size`` square (clipped to the doubled root). Returns the
    component unchanged (with a log line) if it already has parts or ``n_parts`` is 0.
    """
    if n_parts <= 0 or comp.parts:
        return comp
    root2 = _interpolate_root(comp.root)
    energy = np.square(np.maximum(root2, 0)).sum(axis=2).astype(np.float64)
    ph, pw = min(part_size, root2.shape[0]), min(part_size, root2.shape[1])
    parts = []
    for _ in range(n_parts):
        window = cv2.boxFilter(energy, -1, (pw, ph), anchor=(0, 0), normalize=False,
                               borderType=cv2.BORDER_CONSTANT)
        window = window[:root2.shape[0] - ph + 1, :root2.shape[1] - pw + 1]
        y, x = np.unravel_index(int(np.argmax(window)), window.shape)
        parts.append(StarPart(root2[y:y + ph, x:x + pw].copy(), (int(x), int(y))))
        energy[y:y + ph, x:x + pw] = 0
    logger.info("parts: %d parts of %dx%d on a %dx%d root", n_parts, pw, ph, comp.size[1],
                comp.size[0])
    return StarComponent(comp.root.copy(), parts, comp.bias)


def regression_inputs(box: np.ndarray, part_boxes: np.ndarray, flip: bool) -> np.ndarray:
    """``(2 (1 + P) + 1,)`` normalised centres of the root and parts, then 1.

    Centres are relative to the root box's top-left, in units of its width/height;
    a mirrored placement's x coordinates are reflected (``x -> 1 - x``).
    """
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 1e-9), max(y2 - y1, 1e-9)
    boxes = np.vstack([np.asarray(box, np.float64)[None], np.asarray(part_boxes).reshape(-1, 4)])
    cx = ((boxes[:, 0] + boxes[:, 2]) / 2 - x1) / bw
    cy = ((boxes[:, 1] + boxes[:, 3]) / 2 - y1) / bh
    if flip:
        cx = 1.0 - cx
    return np.concatenate([np.stack([cx, cy], axis=1).ravel(), [1.0]])


def _targets(box: np.ndarray, gt: np.ndarray, flip: bool) -> np.ndarray:
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    d = np.array([(gt[0] - x1) / bw, (gt[1] - y1) / bh, (gt[2] - x2) / bw, (gt[3] - y2) / bh])
    return np.array([-d[2], d[1], -d[0], d[3]]) if flip else d


def fit_regressor(inputs: np.ndarray, boxes: np.ndarray, gts: np.ndarray, flips: np.ndarray,
                  ridge: float) -> np.ndarray | None:
    """Ridge fit ``(K, 4)`` of corner corrections; None with fewer than 2 samples."""
    if len(inputs) < 2:
        return None
    x = np.asarray(inputs, np.float64)
    y = np.stack([_targets(b, g, f) for b, g, f in zip(boxes, gts, flips, strict=True)])
    reg = ridge * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # the constant is not shrunk
    return np.linalg.solve(x.T @ x + reg, x.T @ y)


def apply_regressor(reg: np.ndarray, box: np.ndarray, part_boxes: np.ndarray,
                    flip: bool) -> np.ndarray:
    """The corrected xyxy box of one placement."""
    d = regression_inputs(box, part_boxes, flip) @ reg
    if flip:
        d = np.array([-d[2], d[1], -d[0], d[3]])
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    return np.array([x1 + d[0] * bw, y1 + d[1] * bh, x2 + d[2] * bw, y2 + d[3] * bh])
