"""The face pipeline: detect -> 106 landmarks, and for video: track + smooth.

Three lines:

    >>> from viewfinder.faces import FacePipeline
    >>> pipe = FacePipeline()                      # scrfd_500m + 2d106det from the zoo
    >>> faces = pipe(image_bgr)                    # Detections: boxes, keypoints, landmarks

Video, frame by frame with ``pipe.step(frame, t)`` (or over any source with
:func:`viewfinder.runner.run`): the detector runs every ``every`` frames, or at once
when a track is lost; in between, each face's box comes from its previous
landmarks (their extent times the box/extent ratio measured at the last
detection), so the landmark net alone follows the face. Points are smoothed by a
One-Euro filter per track; ids stay stable by IoU matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewfinder.errors import ConfigError
from viewfinder.faces._runtime import Profiler
from viewfinder.faces.detectors import load_detector, to_bgr
from viewfinder.faces.landmarks import load_landmarker
from viewfinder.faces.tracking import FaceTracker, OneEuroParams, Track
from viewfinder.structures import FACE_NAMES, Detections

__all__ = ["STAGES", "FacePipeline", "StreamState"]

# The call flow, in order (the rows of --profile).
STAGES = ("decode", "detect pre", "detect infer", "detect post", "crop",
          "landmark infer", "landmark post", "track + smooth", "draw / encode")


_DEFAULT_SMOOTHING = OneEuroParams()


@dataclass
class StreamState:
    """The tracking state of one video stream: tracks, frame count, detector runs."""

    tracker: FaceTracker
    frame: int = 0
    detections: int = 0


@dataclass
class _Plan:
    """A frame's faces before landmarks: boxes, their tracks, the detection (if any)."""

    boxes: np.ndarray
    tracks: list[Track]
    detected: Detections | None


def _plain(plan: _Plan) -> Detections:
    """A frame without a landmark model: the detection, or the tracked boxes, with ids."""
    ids = [tr.id for tr in plan.tracks]
    if plan.detected is not None:
        return plan.detected.replace(track_ids=ids)
    return Detections(plan.boxes, [tr.score for tr in plan.tracks], names=FACE_NAMES,
                      track_ids=ids)


def _points_box(points: np.ndarray, ratio: tuple[float, float]) -> np.ndarray:
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) * np.asarray(ratio, np.float32) / 2
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def _visible(box: np.ndarray, width: int, height: int, min_size: float) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    if min(w, h) < max(min_size, 8.0):
        return False
    iw = max(0.0, min(box[2], width) - max(box[0], 0))
    ih = max(0.0, min(box[3], height) - max(box[1], 0))
    return bool(iw * ih >= 0.5 * w * h)


class FacePipeline:
    """Face detection, 106-point landmarks and (for video) tracking in one object.

    Args:
        detector: Zoo name (``scrfd_500m``, ``scrfd_2.5g``, ``yunet``, ``ultraface``) or path.
        landmarks: ``"2d106det"`` (or a path), or None for boxes and keypoints only.
        every: In video, run the detector every this many frames (1 = every frame).
        backend, provider, threads, precision: Where the models run (see
            :func:`viewfinder.runtime.session.load_session`).
        det_size: Detector input ``(w, h)``; None adapts to each image (longer side 640).
        score_threshold, max_faces, min_size: Detector filtering.
        smoothing: One-Euro parameters for the landmarks in video; None disables.
        iou_threshold: IoU for a detection to continue a track.
        landmark_batch: ``"auto"`` (measure once), ``"all"`` or ``"single"``: how the
            faces of a frame share landmark calls (see :class:`Landmarker106`).
        profile: Time every stage (see :meth:`profile_rows`).
    """

    def __init__(self, detector: str | Path = "scrfd_500m", landmarks: str | Path | None = "2d106det",
                 *, every: int = 1, backend: str = "auto", provider: str = "cpu", threads: int = 0,
                 precision: str = "f32", det_size: tuple[int, int] | None = None,
                 score_threshold: float | None = None, max_faces: int = 0, min_size: float = 0.0,
                 smoothing: OneEuroParams | None = _DEFAULT_SMOOTHING, iou_threshold: float = 0.3,
                 landmark_batch: str = "auto", profile: bool = False) -> None:
        if int(every) < 1:
            raise ConfigError(f"every {every}: expected a frame interval >= 1")
        rt = {"backend": backend, "provider": provider, "threads": threads, "precision": precision}
        self.detector = load_detector(detector, det_size=det_size, score_threshold=score_threshold,
                                      max_faces=max_faces, min_size=min_size, **rt)
        self.landmarker = (load_landmarker(landmarks, batch=landmark_batch, **rt)
                           if landmarks else None)
        self.every = int(every)
        self.smoothing = smoothing
        self.iou_threshold = iou_threshold
        self.profiler = Profiler(enabled=profile)
        self.reset()

    def reset(self) -> None:
        """Forget tracks (start a new video)."""
        self.state = self.new_stream()

    def new_stream(self) -> StreamState:
        """The tracking state of one more video stream (see :meth:`step_many`)."""
        return StreamState(FaceTracker(self.iou_threshold, self.smoothing))

    @property
    def tracker(self) -> FaceTracker:
        """The tracker of the current stream."""
        return self.state.tracker

    @property
    def detections(self) -> int:
        """Frames of the current stream on which the detector ran."""
        return self.state.detections

    def describe(self) -> list[str]:
        """One line per model: what runs it (backend, device, precision, and for
        ``backend="auto"`` what was measured and picked)."""
        lines = [f"detector: {self.detector.session.describe()}"]
        if self.landmarker is not None:
            lines.append(f"landmarks: {self.landmarker.session.describe()}")
            if self.landmarker.batch_reason:
                lines.append(self.landmarker.batch_reason)
        return lines

    def __call__(self, image: np.ndarray) -> Detections:
        """Faces of one still image: detection, then landmarks for every face (one batch)."""
        image = to_bgr(image)
        self.profiler.frames += 1
        faces = self.detector.detect(image, profiler=self.profiler)
        if self.landmarker is None:
            return faces
        pts = self.landmarker(image, faces.boxes, self.profiler)
        return faces.replace(landmarks=pts)

    def step(self, image: np.ndarray, t: float | None = None) -> Detections:
        """Process the next video frame (time ``t`` in seconds; frame count / 25 if None)."""
        return self.step_many([self.state], [image], [t])[0]

    def step_many(self, states: list[StreamState], images: list[np.ndarray],
                  times: list[float | None]) -> list[Detections]:
        """The next frame of several streams at once: one detector batch for the streams
        that detect on this frame, one landmark batch for the faces of all of them, and
        tracking and smoothing per stream (each state from :meth:`new_stream`)."""
        images = [to_bgr(im) for im in images]
        self.profiler.frames += len(images)
        times = [st.frame / 25.0 if t is None else float(t)
                 for st, t in zip(states, times, strict=True)]
        plans = [self._plan(st, im) for st, im in zip(states, images, strict=True)]
        todo = [i for i, plan in enumerate(plans) if plan is None]
        for i, det in zip(todo, self._detect_all([images[i] for i in todo]), strict=True):
            states[i].detections += 1
            plans[i] = self._match(states[i], det)
        out = self._landmarks_all(states, images, plans, times)
        for st in states:
            st.frame += 1
        return out

    def _plan(self, st: StreamState, image: np.ndarray) -> _Plan | None:
        """Boxes from the previous landmarks; None when the detector must run (a
        scheduled frame, no tracks, or a track that left the picture)."""
        tracks = st.tracker.tracks
        if not (st.frame % self.every and tracks):
            return None
        if self.landmarker is None:
            return _Plan(np.stack([tr.box for tr in tracks]), tracks, None)
        with self.profiler.stage("track + smooth"):
            boxes = np.stack([_points_box(tr.points, tr.ratio) for tr in tracks])
            h, w = image.shape[:2]
            if not all(_visible(b, w, h, self.detector.min_size) for b in boxes):
                return None
        return _Plan(boxes, tracks, None)

    def _detect_all(self, images: list[np.ndarray]) -> list[Detections]:
        if len(images) <= 1:
            return [self.detector.detect(im, profiler=self.profiler) for im in images]
        return self.detector.detect_batch(images, profiler=self.profiler)

    def _match(self, st: StreamState, det: Detections) -> _Plan:
        with self.profiler.stage("track + smooth"):
            tracks = st.tracker.match(det.boxes)
            for tr, s in zip(tracks, det.scores, strict=True):
                tr.score = float(s)
        return _Plan(det.boxes, tracks, det)

    def _landmarks_all(self, states: list[StreamState], images: list[np.ndarray],
                       plans: list[_Plan], times: list[float]) -> list[Detections]:
        if self.landmarker is None:
            return [_plain(p) for p in plans]
        if len(images) == 1:
            points = [self.landmarker(images[0], plans[0].boxes, self.profiler)]
        else:
            from viewfinder.faces.landmarks import landmarks_many

            points = landmarks_many(self.landmarker, images, [p.boxes for p in plans],
                                    self.profiler)
        return [self._finish(st, p, pts, t)
                for st, p, pts, t in zip(states, plans, points, times, strict=True)]

    def _finish(self, st: StreamState, plan: _Plan, pts: np.ndarray, t: float) -> Detections:
        with self.profiler.stage("track + smooth"):
            for tr, box, p in zip(plan.tracks, plan.boxes, pts, strict=True):
                if plan.detected is not None:  # box / landmark-extent ratio at a detection
                    ext = np.maximum(p.max(axis=0) - p.min(axis=0), 1e-3)
                    tr.ratio = (float((box[2] - box[0]) / ext[0]),
                                float((box[3] - box[1]) / ext[1]))
                else:
                    tr.box = box
            out = [st.tracker.smooth(tr, p, t) for tr, p in zip(plan.tracks, pts, strict=True)]
            smoothed = np.stack(out) if out else np.zeros((0, 106, 2), np.float32)
        ids = [tr.id for tr in plan.tracks]
        if plan.detected is not None:
            return plan.detected.replace(landmarks=smoothed, track_ids=ids)
        return Detections(plan.boxes, [tr.score for tr in plan.tracks], names=FACE_NAMES,
                          landmarks=smoothed, track_ids=ids)

    def profile_rows(self) -> list[tuple[str, float, float]]:
        """``(stage, ms per frame, share)`` for every stage of :data:`STAGES` that ran."""
        rows = {name: (ms, share) for name, ms, share in self.profiler.rows()}
        return [(name, *rows[name]) for name in STAGES if name in rows]

    def batch(self, images: list[np.ndarray], *,
              score_threshold: float | None | list[float | None] = None,
              max_faces: int | None | list[int | None] = None,
              landmarks: bool | None | list[bool | None] = None,
              detector_batch: bool = False) -> list[Detections]:
        """Faces of several still images: the detector on each (or, with
        ``detector_batch``, one call for the images of one input size and options), then
        the landmarks of all their faces in one batch
        (:func:`viewfinder.faces.landmarks.landmarks_many`). What the service runs for
        the images of concurrent requests.

        The detector runs image by image by default: on a 2-core AVX2 host SCRFD-500M
        at 640x480 ran 2x slower per image in batches of 8 than one by one (its feature
        maps outgrow the caches), while the landmark net gains from batches.

        Args:
            images: BGR (gray/BGRA accepted) uint8 images.
            score_threshold, max_faces: The detector's filters (None: its own); one
                value for all images or a list with one per image.
            landmarks: Whether to add the 106 points (None: when the pipeline has a
                landmark model); one value or one per image.
            detector_batch: Batch the detector calls too.

        Returns:
            One :class:`Detections` per image, as :meth:`__call__` gives it.

        Raises:
            ConfigError: landmarks asked for on a pipeline without a landmark model, or a
                per-image list whose length is not the number of images.
        """
        from viewfinder.faces.landmarks import landmarks_many

        n = len(images)
        thr, top, pts = (_per_image(v, n, name) for v, name in (
            (score_threshold, "score_threshold"), (max_faces, "max_faces"),
            (landmarks, "landmarks")))
        if self.landmarker is None and any(pts):
            raise ConfigError("landmarks: this pipeline has no landmark model")
        bgr = [to_bgr(im, f"image {i}") for i, im in enumerate(images)]
        self.profiler.frames += n
        groups: dict[tuple[object, ...], list[int]] = {}
        for i in range(n):
            groups.setdefault((thr[i], top[i]) if detector_batch else (i,), []).append(i)
        faces: list[Detections | None] = [None] * n
        for idx in groups.values():
            found = self.detector.detect_batch([bgr[i] for i in idx], score_threshold=thr[idx[0]],
                                               max_faces=top[idx[0]], profiler=self.profiler)
            for i, det in zip(idx, found, strict=True):
                faces[i] = det
        want = [i for i in range(n) if self.landmarker is not None and pts[i] is not False]
        if want:
            points = landmarks_many(self.landmarker, [bgr[i] for i in want],
                                    [faces[i].boxes for i in want], self.profiler)
            for i, p in zip(want, points, strict=True):
                faces[i] = faces[i].replace(landmarks=p)
        return [f for f in faces if f is not None]


def _per_image(value: object, n: int, name: str) -> list:
    """One value per image from a scalar or a list of ``n``."""
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ConfigError(f"{name}: expected one value per image ({n}), got {len(value)}")
        return list(value)
    return [value] * n
