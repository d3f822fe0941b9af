"""Recognising a face detector's output layout from tensor shapes, and decoding it.

Output names differ between exports (``score_8``..., ``out0``..., numeric ids), so
outputs are matched by their last dimension and their anchor count ``A``:

* SCRFD: per stride a score ``[A, 1]``, a box ``[A, 4]`` (distances to the anchor
  centre, in strides) and optionally keypoints ``[A, 10]``; ``A = H/s * W/s * k``
  with ``k`` anchors per cell (derived from the shapes).
* YuNet: per stride ``cls [A, 1]``, ``obj [A, 1]``, ``bbox [A, 4]``, ``kps [A, 10]``
  (one anchor per cell; offsets in strides, log sizes).
* UltraFace: ``scores [A, 2]`` (softmax) and ``boxes [A, 4]`` (normalised corners).

Each ``decode_*`` function takes one image's outputs (batch dimension removed)
and returns candidate boxes, scores and keypoints above a threshold, in network
input pixels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from viewfinder.errors import ModelError

__all__ = ["Candidates", "Layout", "Level", "decode", "identify_layout", "levels_for"]

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class Layout:
    """Which output index plays which role.

    Attributes:
        family: ``"scrfd"``, ``"yunet"`` or ``"ultraface"``.
        score: Indices of score outputs (YuNet: ``cls`` and ``obj`` together).
        bbox: Indices of box outputs.
        kps: Indices of keypoint outputs (empty when the model has none).
        batched: Whether outputs carry a leading batch dimension.
    """

    family: str
    score: tuple[int, ...]
    bbox: tuple[int, ...]
    kps: tuple[int, ...]
    batched: bool


@dataclass(frozen=True)
class Level:
    """One feature level (stride) of an anchor-based detector at one input size."""

    stride: int
    anchors: int
    score: tuple[int, ...]
    bbox: int
    kps: int | None


def _describe(shapes: Sequence[Sequence[object]]) -> str:
    return ", ".join("x".join(str(d) for d in s) for s in shapes)


def identify_layout(shapes: Sequence[Sequence[object]], model: str) -> Layout:
    """Classify a detector by its output shapes (ints, or None/str where dynamic).

    Raises:
        ModelError: the outputs match no known face detector layout.
    """
    groups: dict[object, list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape[-1] if len(shape) else None, []).append(i)
    n = {d: len(groups.get(d, [])) for d in (1, 2, 4, 10)}
    ranks = {len(s) for s in shapes}
    batched = ranks == {3}
    fail = ModelError(
        f"{model}: outputs ({_describe(shapes)}) match no known face detector layout "
        "(SCRFD, YuNet or UltraFace)")
    if ranks not in ({2}, {3}):
        raise fail
    g = {d: tuple(groups.get(d, [])) for d in (1, 2, 4, 10)}
    if len(shapes) == 2 and n[2] == 1 and n[4] == 1:
        return Layout("ultraface", g[2], g[4], (), batched)
    if n[4] and n[1] == n[4] and n[10] in (0, n[4]) and len(shapes) == n[1] + n[4] + n[10]:
        return Layout("scrfd", g[1], g[4], g[10], batched)
    if n[4] and n[1] == 2 * n[4] and n[10] in (0, n[4]) and len(shapes) == n[1] + n[4] + n[10]:
        return Layout("yunet", g[1], g[4], g[10], batched)
    raise fail


def levels_for(layout: Layout, counts: Sequence[int], width: int, height: int,
               model: str) -> list[Level]:
    """Pair outputs by anchor count and give each level its stride (8, 16, 32...).

    Args:
        counts: The anchor count ``A`` of every output at this input size.
        width, height: The network input size.

    Raises:
        ModelError: the counts do not fit a stride pyramid over this input.
    """
    by_count: dict[int, list[int]] = {}
    for i in layout.score:
        by_count.setdefault(counts[i], []).append(i)
    per_level = 2 if layout.family == "yunet" else 1
    levels = []
    for rank, a in enumerate(sorted(by_count, reverse=True)):
        stride = 8 * 2 ** rank
        cells = -(-height // stride) * -(-width // stride)
        bbox = [i for i in layout.bbox if counts[i] == a]
        kps = [i for i in layout.kps if counts[i] == a]
        ok = (len(by_count[a]) == per_level and len(bbox) == 1
              and len(kps) == (1 if layout.kps else 0) and cells and a % cells == 0)
        if not ok:
            raise ModelError(
                f"{model}: output sizes {sorted(counts)} do not fit strides 8/16/32 "
                f"over a {width}x{height} input (no known face detector layout)")
        levels.append(Level(stride, a // cells, tuple(by_count[a]), bbox[0],
                            kps[0] if kps else None))
    return levels


@functools.lru_cache(maxsize=64)
def _grid(width: int, height: int, stride: int, anchors: int) -> np.ndarray:
    """``(A, 2)`` cell indices (col, row), each repeated ``anchors`` times, row-major."""
    cols, rows = -(-width // stride), -(-height // stride)
    yy, xx = np.mgrid[:rows, :cols]
    grid = np.stack([xx, yy], axis=-1).reshape(-1, 2).astype(np.float32)
    grid = np.repeat(grid, anchors, axis=0)
    grid.setflags(write=False)
    return grid


def _empty(with_kps: bool) -> Candidates:
    return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
            np.zeros((0, 5, 2), np.float32) if with_kps else None)


def _concat(parts: list[Candidates], with_kps: bool) -> Candidates:
    if not parts:
        return _empty(with_kps)
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    kps = np.concatenate([p[2] for p in parts]) if with_kps else None
    return boxes, scores, kps


def decode_scrfd(outs: Sequence[np.ndarray], levels: Sequence[Level], width: int,
                 height: int, threshold: float) -> Candidates:
    """SCRFD: ``box = centre -/+ distance * stride``, ``kp = centre + offset * stride``."""
    parts = []
    with_kps = levels[0].kps is not None
    for lv in levels:
        scores = outs[lv.score[0]].reshape(-1)
        keep = np.flatnonzero(scores >= threshold)
        if not keep.size:
            continue
        centres = _grid(width, height, lv.stride, lv.anchors)[keep] * lv.stride
        dist = outs[lv.bbox].reshape(-1, 4)[keep] * lv.stride
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
        kps = None
        if with_kps:
            off = outs[lv.kps].reshape(-1, 5, 2)[keep] * lv.stride
            kps = centres[:, None, :] + off
        parts.append((boxes, scores[keep], kps))
    return _concat(parts, with_kps)


def decode_yunet(outs: Sequence[np.ndarray], levels: Sequence[Level], width: int,
                 height: int, threshold: float) -> Candidates:
    """YuNet: ``score = sqrt(cls * obj)``, centre ``(cell + d) * s``, size ``exp(d) * s``."""
    parts = []
    with_kps = levels[0].kps is not None
    for lv in levels:
        cls = np.clip(outs[lv.score[0]].reshape(-1), 0.0, 1.0)
        obj = np.clip(outs[lv.score[1]].reshape(-1), 0.0, 1.0)
        scores = np.sqrt(cls * obj)
        keep = np.flatnonzero(scores >= threshold)
        if not keep.size:
            continue
        cells = _grid(width, height, lv.stride, lv.anchors)[keep]
        d = outs[lv.bbox].reshape(-1, 4)[keep]
        centre = (cells + d[:, :2]) * lv.stride
        half = np.exp(d[:, 2:]) * lv.stride / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        kps = None
        if with_kps:
            kps = (cells[:, None, :] + outs[lv.kps].reshape(-1, 5, 2)[keep]) * lv.stride
        parts.append((boxes, scores[keep], kps))
    return _concat(parts, with_kps)


def decode_ultraface(outs: Sequence[np.ndarray], layout: Layout, width: int, height: int,
                     threshold: float) -> Candidates:
    """UltraFace: face probability is column 1; boxes are corners in [0, 1]."""
    scores = outs[layout.score[0]].reshape(-1, 2)[:, 1]
    keep = np.flatnonzero(scores >= threshold)
    boxes = outs[layout.bbox[0]].reshape(-1, 4)[keep] * np.float32([width, height] * 2)
    return boxes.astype(np.float32), scores[keep].astype(np.float32), None


def decode(layout: Layout, levels: Sequence[Level], outs: Sequence[np.ndarray], width: int,
           height: int, threshold: float) -> Candidates:
    """Dispatch to the family's decoder; returns ``(boxes, scores, kps | None)``."""
    if layout.family == "ultraface":
        return decode_ultraface(outs, layout, width, height, threshold)
    fn = decode_scrfd if layout.family == "scrfd" else decode_yunet
    return fn(outs, levels, width, height, threshold)
