"""Track ids and smoothing for faces in video.

* :class:`OneEuroFilter`: Casiez et al.'s 1€ filter on arrays of points - little
  smoothing when a point moves fast (low lag), strong smoothing when it holds
  still (no jitter).
* :class:`FaceTracker`: keeps tracks across frames, matches new boxes to tracks by
  IoU (optimal assignment), gives new faces fresh ids, smooths each track's points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from viewfinder.errors import ConfigError
from viewfinder.ops.boxes import box_iou

__all__ = ["FaceTracker", "OneEuroFilter", "OneEuroParams", "Track"]


@dataclass(frozen=True)
class OneEuroParams:
    """1€ filter parameters.

    Attributes:
        min_cutoff: Cutoff frequency (Hz) at rest: lower = smoother, more lag.
        beta: How fast the cutoff rises with speed: higher = less lag when moving.
        d_cutoff: Cutoff (Hz) for the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ConfigError(f"One-Euro parameters: expected min_cutoff > 0, d_cutoff > 0, "
                              f"beta >= 0, got {self.min_cutoff}, {self.d_cutoff}, {self.beta}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """1€ filter over an array of any shape (each element filtered on its own)."""

    def __init__(self, params: OneEuroParams | None = None) -> None:
        self.params = params or OneEuroParams()
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        """Forget the history (the next value passes unfiltered)."""
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter the value ``x`` observed at time ``t`` (seconds, increasing)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t or x.shape != self._x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.astype(np.float32)
        p = self.params
        dt = t - self._t
        dx = (x - self._x) / dt
        a_d = _alpha(p.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = _alpha(p.min_cutoff + p.beta * np.abs(self._dx), dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x.astype(np.float32)


_DEFAULT = OneEuroParams()


def _assign(iou: np.ndarray) -> tuple[list[int], list[int]]:
    """Optimal one-to-one assignment maximising total IoU (rows, cols). One box or one
    track is its best match (no SciPy import, which costs ~0.5 s on first use)."""
    if iou.shape[0] == 1:
        return [0], [int(iou[0].argmax())]
    if iou.shape[1] == 1:
        return [int(iou[:, 0].argmax())], [0]
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    return rows.tolist(), cols.tolist()


@dataclass
class Track:
    """One face followed across frames."""

    id: int
    box: np.ndarray
    points: np.ndarray | None = None
    score: float = 1.0
    ratio: tuple[float, float] = (1.0, 1.0)  # box size / landmark extent, set at detection
    hits: int = 1
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)


class FaceTracker:
    """Assigns stable ids by IoU and smooths landmarks per track.

    Args:
        iou_threshold: A box continues a track when their IoU is at least this.
        smoothing: 1€ parameters; None disables smoothing.
    """

    def __init__(self, iou_threshold: float = 0.3,
                 smoothing: OneEuroParams | None = _DEFAULT) -> None:
        self.iou_threshold = float(iou_threshold)
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 1

    def match(self, boxes: np.ndarray) -> list[Track]:
        """Tracks for detected ``boxes`` (same order); unmatched tracks end, new faces start.

        Returns:
            One :class:`Track` per box.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        assigned: list[Track | None] = [None] * len(boxes)
        if self.tracks and len(boxes):
            iou = box_iou(boxes, np.stack([t.box for t in self.tracks]))
            rows, cols = _assign(iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    track = self.tracks[c]
                    track.box, track.hits = boxes[r], track.hits + 1
                    assigned[r] = track
        for i, t in enumerate(assigned):
            if t is None:
                assigned[i] = self._new(boxes[i])
        self.tracks = [t for t in assigned if t is not None]
        return list(self.tracks)

    def _new(self, box: np.ndarray) -> Track:
        track = Track(self._next_id, box, filter=OneEuroFilter(self.smoothing))
        self._next_id += 1
        return track

    def drop(self, ids: set[int]) -> None:
        """End the tracks with these ids."""
        self.tracks = [t for t in self.tracks if t.id not in ids]

    def smooth(self, track: Track, points: np.ndarray, t: float) -> np.ndarray:
        """Store and return ``points`` filtered by the track's 1€ filter."""
        track.points = np.asarray(points, dtype=np.float32)
        if self.smoothing is None:
            return track.points
        return track.filter(points, t)
