"""The face pipeline: detect -> 106 landmarks, and for video: track + smooth.

Three lines:

    >>> from viewfinder.faces import FacePipeline
    >>> pipe = FacePipeline()                      # scrfd_500m + 2d106det from the zoo
    >>> faces = pipe(image_bgr)                    # Faces: boxes, scores, kps, landmarks

Video (``pipe.run(source, out=..., json_path=...)`` or frame by frame with
``pipe.step(frame, t)``): the detector runs every ``every`` frames, or at once
when a track is lost; in between, each face's box comes from its previous
landmarks (their extent times the box/extent ratio measured at the last
detection), so the landmark net alone follows the face. Points are smoothed by a
One-Euro filter per track; ids stay stable by IoU matching.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewfinder.errors import ConfigError
from viewfinder.faces._runtime import Profiler
from viewfinder.faces.detectors import load_detector, to_bgr
from viewfinder.faces.io import JsonLinesSink, VideoSink, open_source, prefetch
from viewfinder.faces.landmarks import load_landmarker
from viewfinder.faces.tracking import FaceTracker, OneEuroParams, Track
from viewfinder.faces.types import Faces

__all__ = ["STAGES", "FacePipeline", "RunSummary"]

# The call flow, in order (the rows of --profile).
STAGES = ("decode", "detect pre", "detect infer", "detect post", "detect wait", "crop",
          "landmark infer", "landmark post", "track + smooth", "draw / encode")


_DEFAULT_SMOOTHING = OneEuroParams()


@dataclass
class RunSummary:
    """What a video run did.

    Attributes:
        frames: Frames processed.
        detections: Frames on which the detector ran.
        seconds: Wall time of the whole run (decode and encode included).
        errors: ``(frame index, message)`` of frames that could not be decoded.
    """

    frames: int = 0
    detections: int = 0
    seconds: float = 0.0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second over the whole run."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


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
        self._ahead: dict[int, tuple[Future[Faces], Profiler]] = {}

    def describe(self) -> list[str]:
        """One line per model: what runs it (backend, device, precision, and for
        ``backend="auto"`` what was measured and picked)."""
        lines = [f"detector: {self.detector.session.describe()}"]
        if self.landmarker is not None:
            lines.append(f"landmarks: {self.landmarker.session.describe()}")
            if self.landmarker.batch_reason:
                lines.append(self.landmarker.batch_reason)
        return lines

    def __call__(self, image: np.ndarray) -> Faces:
        """Faces of one still image: detection, then landmarks for every face (one batch)."""
        image = to_bgr(image)
        self.profiler.frames += 1
        faces = self.detector.detect(image, profiler=self.profiler)
        if self.landmarker is None:
            return faces
        pts = self.landmarker(image, faces.boxes, self.profiler)
        return faces.replace(landmarks=pts)

    def step(self, image: np.ndarray, t: float | None = None) -> Faces:
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

    def _detect(self, image: np.ndarray, t: float) -> Faces:
        self.detections += 1
        det = self._detected_ahead()
        if det is None:
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

    def _detect_ahead(self, pool: ThreadPoolExecutor, index: int, image: np.ndarray) -> None:
        """Start the detector on frame ``index`` (a scheduled detection frame) in the
        background, so that it overlaps with the landmarks of the frame before."""
        prof = Profiler(enabled=self.profiler.enabled)
        future = pool.submit(self.detector.detect, to_bgr(image), profiler=prof)
        self._ahead[index] = (future, prof)

    def _detected_ahead(self) -> Faces | None:
        """The background detection of the current frame, if one was started; else
        None, once no background detection runs (the detector's session is not
        shared between threads)."""
        pending = self._ahead.pop(self._frame, None)
        if pending is None:
            for future, _ in self._ahead.values():
                future.result()
            return None
        with self.profiler.stage("detect wait"):
            det = pending[0].result()
        for name, spent in pending[1].totals.items():
            self.profiler.totals[name] = self.profiler.totals.get(name, 0.0) + spent
        return det

    def _follow(self, image: np.ndarray, t: float) -> Faces | None:
        """Boxes from the previous landmarks; None when a track is lost (detect now)."""
        tracks = self.tracker.tracks
        if self.landmarker is None:
            return Faces(np.stack([tr.box for tr in tracks]), [tr.score for tr in tracks],
                         track_ids=[tr.id for tr in tracks])
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
        return Faces(boxes, [tr.score for tr in tracks], landmarks=smoothed,
                     track_ids=[tr.id for tr in tracks])

    def _smooth(self, tracks: list[Track], pts: np.ndarray, t: float) -> np.ndarray:
        out = [self.tracker.smooth(tr, p, t) for tr, p in zip(tracks, pts, strict=True)]
        return np.stack(out) if out else np.zeros((0, 106, 2), np.float32)

    def run(self, source: str | int | Path, *, out: str | Path | None = None,
            json_path: str | Path | None = None, max_frames: int | None = None,
            progress: Callable[[int, Faces], None] | None = None,
            decode_ahead: int = 4, detect_ahead: bool = False) -> RunSummary:
        """Run over a video file, raw .h264, folder of images or camera index.

        Args:
            out: Annotated MP4 to write (atomically), or None.
            json_path: JSON lines to write (one line per frame), or None.
            max_frames: Stop after this many frames.
            progress: Called as ``progress(frames_done, faces)`` after each frame.
            decode_ahead: Frames decoded ahead in a background thread (0 = decode
                inline); the ``decode`` stage then shows only the time spent waiting.
            detect_ahead: Run the detector on each scheduled detection frame in a
                background thread while the frame before is landmarked (same outputs;
                ``detect wait`` is then the time the pipeline waited for it). Off by
                default: on the loaded 2-core host it did not pay (no idle core).

        Returns:
            A :class:`RunSummary`; frames that failed to decode are in ``errors``.
        """
        self.reset()
        prof = self.profiler
        src = open_source(source, max_frames)
        summary = RunSummary()
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            jsink = stack.enter_context(JsonLinesSink(json_path)) if json_path else None
            vsink = stack.enter_context(VideoSink(out, src.fps)) if out else None
            frames = prefetch(iter(src), decode_ahead) if decode_ahead > 0 else iter(src)
            stack.callback(getattr(frames, "close", lambda: None))
            pool = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="detect-ahead"))
            for index, t, image, upcoming in self._lookahead(frames):
                if detect_ahead and upcoming is not None and (self._frame + 1) % self.every == 0:
                    self._detect_ahead(pool, self._frame + 1, upcoming)
                faces = self.step(image, t)
                summary.frames += 1
                with prof.stage("draw / encode"):
                    if jsink is not None:
                        jsink.write(index, t, faces.to_dict())
                    if vsink is not None:
                        vsink.write(faces.draw(image))
                if progress is not None:
                    progress(summary.frames, faces)
        summary.seconds = time.perf_counter() - t0
        summary.detections = self.detections
        summary.errors = list(src.errors)
        return summary

    def _lookahead(self, frames: Iterator[tuple[int, float, np.ndarray]]
                   ) -> Iterator[tuple[int, float, np.ndarray, np.ndarray | None]]:
        """``(index, time, image, next image or None)``; the wait for each frame is
        the ``decode`` stage."""
        with self.profiler.stage("decode"):
            item = next(frames, None)
        while item is not None:
            with self.profiler.stage("decode"):
                upcoming = next(frames, None)
            yield (*item, upcoming[2] if upcoming is not None else None)
            item = upcoming

    def profile_rows(self) -> list[tuple[str, float, float]]:
        """``(stage, ms per frame, share)`` for every stage of :data:`STAGES` that ran."""
        rows = {name: (ms, share) for name, ms, share in self.profiler.rows()}
        return [(name, *rows[name]) for name in STAGES if name in rows]
