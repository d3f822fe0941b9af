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

from pathlib import Path

import numpy as np

from viewfinder.errors import ConfigError
from viewfinder.faces._runtime import Profiler
from viewfinder.faces.detectors import load_detector, to_bgr
from viewfinder.faces.landmarks import load_landmarker
from viewfinder.faces.tracking import FaceTracker, OneEuroParams, Track
from viewfinder.structures import FACE_NAMES, Detections

__all__ = ["STAGES", "FacePipeline"]

# The call flow, in order (the rows of --profile).
STAGES = ("decode", "detect pre", "detect infer", "detect post", "crop",
          "landmark infer", "landmark post", "track + smooth", "draw / encode")


_DEFAULT_SMOOTHING = OneEuroParams()


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
        self.tracker = FaceTracker(self.iou_threshold, self.smoothing)
        self._frame = 0
        self.detections = 0

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
        image = to_bgr(image)
        self.profiler.frames += 1
        t = self._frame / 25.0 if t is None else float(t)
        faces = None
        if self._frame % self.every and self.tracker.tracks:
            faces = self._follow(image, t)
        if faces is None:
            faces = self._detect(image, t)
        self._frame += 1
        return faces

    def _detect(self, image: np.ndarray, t: float) -> Detections:
        self.detections += 1
        det = self.detector.detect(image, profiler=self.profiler)
        with self.profiler.stage("track + smooth"):
            tracks = self.tracker.match(det.boxes)
            for tr, s in zip(tracks, det.scores, strict=True):
                tr.score = float(s)
        if self.landmarker is None:
            return det.replace(track_ids=[tr.id for tr in tracks])
        pts = self.landmarker(image, det.boxes, self.profiler)
        with self.profiler.stage("track + smooth"):
            for tr, box, p in zip(tracks, det.boxes, pts, strict=True):
                ext = np.maximum(p.max(axis=0) - p.min(axis=0), 1e-3)
                tr.ratio = (float((box[2] - box[0]) / ext[0]), float((box[3] - box[1]) / ext[1]))
            smoothed = self._smooth(tracks, pts, t)
        return det.replace(landmarks=smoothed, track_ids=[tr.id for tr in tracks])

    def _follow(self, image: np.ndarray, t: float) -> Detections | None:
        """Boxes from the previous landmarks; None when a track is lost (detect now)."""
        tracks = self.tracker.tracks
        if self.landmarker is None:
            return Detections(np.stack([tr.box for tr in tracks]), [tr.score for tr in tracks],
                              names=FACE_NAMES, track_ids=[tr.id for tr in tracks])
        with self.profiler.stage("track + smooth"):
            boxes = np.stack([_points_box(tr.points, tr.ratio) for tr in tracks])
            h, w = image.shape[:2]
            if not all(_visible(b, w, h, self.detector.min_size) for b in boxes):
                return None
        pts = self.landmarker(image, boxes, self.profiler)
        with self.profiler.stage("track + smooth"):
            for tr, b in zip(tracks, boxes, strict=True):
                tr.box = b
            smoothed = self._smooth(tracks, pts, t)
        return Detections(boxes, [tr.score for tr in tracks], names=FACE_NAMES, landmarks=smoothed,
                     track_ids=[tr.id for tr in tracks])

    def _smooth(self, tracks: list[Track], pts: np.ndarray, t: float) -> np.ndarray:
        out = [self.tracker.smooth(tr, p, t) for tr, p in zip(tracks, pts, strict=True)]
        return np.stack(out) if out else np.zeros((0, 106, 2), np.float32)

    def profile_rows(self) -> list[tuple[str, float, float]]:
        """``(stage, ms per frame, share)`` for every stage of :data:`STAGES` that ran."""
        rows = {name: (ms, share) for name, ms, share in self.profiler.rows()}
        return [(name, *rows[name]) for name in STAGES if name in rows]

    def batch(self, images: list[np.ndarray], *,
              score_threshold: float | None | list[float | None] = None,
              max_faces: int | None | list[int | None] = None,
              landmarks: bool | None | list[bool | None] = None) -> list[Detections]:
        """Faces of several still images: detector calls shared by images of one input
        size and options, then the landmarks of all their faces in one batch
        (:func:`viewfinder.faces.landmarks.landmarks_many`). What the service runs for
        the images of concurrent requests.

        Args:
            images: BGR (gray/BGRA accepted) uint8 images.
            score_threshold, max_faces: The detector's filters (None: its own); one
                value for all images or a list with one per image.
            landmarks: Whether to add the 106 points (None: when the pipeline has a
                landmark model); one value or one per image.

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
        groups: dict[tuple[float | None, int | None], list[int]] = {}
        for i in range(n):
            groups.setdefault((thr[i], top[i]), []).append(i)
        faces: list[Detections | None] = [None] * n
        for (t, k), idx in groups.items():
            found = self.detector.detect_batch([bgr[i] for i in idx], score_threshold=t,
                                               max_faces=k, profiler=self.profiler)
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
