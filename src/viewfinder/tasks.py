"""The tasks the runner, the CLI and the service run, behind one interface.

Each task turns a BGR image into :class:`~viewfinder.structures.Detections`
(:class:`viewfinder.runner.Task`): :class:`FacesTask` (detector + 106 landmarks,
tracking and smoothing on video), :class:`DetectTask` (YOLO), :class:`DPMTask`
(Deformable Part Models, one or more classes). :func:`build_task` makes one from
the same option names the CLI and the service use::

    task = build_task("detect", model="yolov3-tiny", score=0.3)
    dets = task.image(cv2.imread("dog.jpg"))

Option names (one vocabulary everywhere): ``model``, ``score`` (a score
threshold), ``backend``, ``provider``, ``threads``, ``precision``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewfinder.errors import ConfigError
from viewfinder.structures import Detections

__all__ = ["TASKS", "DPMTask", "DetectTask", "FacesTask", "TaskSpec", "build_task"]

#: Task names.
TASKS = ("faces", "detect", "dpm")


class FacesTask:
    """Faces: boxes, 5 keypoints, 106 landmarks; tracked and smoothed on video.

    Args:
        pipeline: A :class:`viewfinder.faces.FacePipeline`.
    """

    name = "faces"

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self._runs = 0
        self._streams: dict[str, Any] = {}

    @property
    def detector_runs(self) -> int:
        """Frames on which the detector ran, over every stream so far."""
        together = sum(st.detections for st in self._streams.values())
        return self._runs + self.pipeline.detections + together

    def frames(self, batch: list[tuple[str, np.ndarray, float]]) -> list[Detections]:
        """The next frame of several streams: one detector and one landmark batch, tracks
        and smoothing per stream."""
        states = [self._streams.setdefault(s, self.pipeline.new_stream()) for s, _, _ in batch]
        return self.pipeline.step_many(states, [b[1] for b in batch], [b[2] for b in batch])

    @property
    def profiler(self) -> Any:
        """The pipeline's stage profiler."""
        return self.pipeline.profiler

    def image(self, image: np.ndarray) -> Detections:
        """Faces of one still image."""
        return self.pipeline(image)

    def frame(self, image: np.ndarray, time: float) -> Detections:
        """Faces of the next video frame (tracks and smoothing carry over)."""
        return self.pipeline.step(image, time)

    def reset(self) -> None:
        """Forget the tracks."""
        self._runs += self.pipeline.detections
        self.pipeline.reset()

    def describe(self) -> list[str]:
        """What runs each model."""
        return self.pipeline.describe()


class DetectTask:
    """YOLO detection (frames are independent).

    Args:
        detector: A :class:`viewfinder.detect.yolo.YoloDetector` (anything with
            ``detect(bgr) -> Detections``).
    """

    name = "detect"

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def image(self, image: np.ndarray) -> Detections:
        """Detections of one image."""
        return self.detector.detect(image)

    def frame(self, image: np.ndarray, time: float) -> Detections:
        """Detections of one frame."""
        return self.detector.detect(image)

    def frames(self, batch: list[tuple[str, np.ndarray, float]]) -> list[Detections]:
        """Detections of the next frame of several streams."""
        return [self.detector.detect(image) for _, image, _ in batch]

    def reset(self) -> None:
        """Nothing carries over between frames."""

    def describe(self) -> list[str]:
        """What runs the model."""
        session = getattr(self.detector, "session", None)
        return [f"detector: {session.describe()}"] if session is not None else []


class DPMTask:
    """Deformable Part Models: every model on every image, results merged.

    Args:
        models: :class:`viewfinder.dpm.model.Model` objects (one class each).
        score: Keep scores above this; None uses each model's own threshold.
        nms: voc-release NMS overlap.
    """

    name = "dpm"

    def __init__(self, models: Sequence[Any], score: float | None = None,
                 nms: float = 0.5) -> None:
        if not models:
            raise ConfigError("dpm: expected at least one model")
        self.models = list(models)
        self.score, self.nms = score, nms
        self.names = tuple(m.name for m in self.models)

    def image(self, image: np.ndarray) -> Detections:
        """Detections of every model on one BGR image (``data["component"]``, ``parts``)."""
        from viewfinder.dpm.detect import detect

        rgb = np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image
        parts = [detect(m, rgb, self.score, nms_overlap=self.nms).to_detections(self.names, k)
                 for k, m in enumerate(self.models)]
        return _concat(parts, self.names)

    def frame(self, image: np.ndarray, time: float) -> Detections:
        """Detections of one frame."""
        return self.image(image)

    def frames(self, batch: list[tuple[str, np.ndarray, float]]) -> list[Detections]:
        """Detections of the next frame of several streams."""
        return [self.image(image) for _, image, _ in batch]

    def reset(self) -> None:
        """Nothing carries over between frames."""

    def describe(self) -> list[str]:
        """One line per model."""
        return [m.describe() for m in self.models]


def _concat(parts: list[Detections], names: tuple[str, ...]) -> Detections:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Detections.empty(names)
    if len(parts) == 1:
        return parts[0]
    width = max(p.parts.shape[1] for p in parts if p.parts is not None)

    def padded(p: Detections) -> np.ndarray:
        pad = np.full((len(p), width - p.parts.shape[1], 4), np.nan, np.float32)
        return np.concatenate([p.parts, pad], axis=1)

    return Detections(np.concatenate([p.boxes for p in parts]),
                      np.concatenate([p.scores for p in parts]),
                      np.concatenate([p.class_ids for p in parts]), names,
                      parts=np.concatenate([padded(p) for p in parts]),
                      data={"component": np.concatenate([p.data["component"] for p in parts])})


def _faces(model: str | None, options: dict[str, Any]) -> FacesTask:
    from viewfinder.faces import FacePipeline, OneEuroParams

    smoothing = options.pop("smoothing", None)
    if isinstance(smoothing, dict):
        smoothing = OneEuroParams(**smoothing)
    landmarks = options.pop("landmarks", "2d106det")
    score = options.pop("score", None)
    kwargs = {"smoothing": smoothing} if smoothing is not None else {}
    pipe = FacePipeline(model or "scrfd_500m", landmarks, score_threshold=score, **options,
                        **kwargs)
    return FacesTask(pipe)


def _detect(model: str | None, options: dict[str, Any]) -> DetectTask:
    from viewfinder.detect.yolo import load_yolo

    score = options.pop("score", None)
    if score is not None:
        options["conf"] = score
    return DetectTask(load_yolo(model or "yolov3-tiny", **options))



def _dpm(model: str | Sequence[str] | None, options: dict[str, Any]) -> DPMTask:
    from viewfinder.dpm.zoo import load_model

    names = [model] if isinstance(model, str) else list(model or ["VOC2007_person"])
    unknown = set(options) - {"score", "nms", "threads"}
    if unknown:
        raise ConfigError(f"dpm: unknown option(s) {', '.join(sorted(unknown))}; "
                          "expected score, nms")
    return DPMTask([load_model(m) for m in names], options.get("score"),
                   options.get("nms", 0.5))


@dataclass(frozen=True)
class TaskSpec:
    """A task by name, model and options: picklable, so that a worker process (or a Ray
    actor) builds the same task as the caller (:meth:`build`).

    Attributes:
        name: One of :data:`TASKS`.
        model: Zoo name or path (DPM: a tuple of them); None for the task's default.
        options: Keyword options of :func:`build_task` (plain values only).
    """

    name: str
    model: str | tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """Load the models and return the task."""
        return build_task(self.name, self.model, **self.options)

    def with_options(self, **changes: Any) -> TaskSpec:
        """The same spec with some options replaced (e.g. ``threads`` in a worker)."""
        return TaskSpec(self.name, self.model, {**self.options, **changes})


def build_task(name: str, model: str | Sequence[str] | None = None, **options: Any) -> Any:
    """Load the models of task ``name`` (``faces``, ``detect``, ``dpm``).

    Args:
        name: One of :data:`TASKS`.
        model: Zoo name or path (DPM: one or a list); None for the task's default.
        options: The task's options (``score``, ``backend``, ``precision``...; see
            :class:`viewfinder.faces.FacePipeline`, :func:`viewfinder.detect.yolo.load_yolo`,
            :class:`DPMTask`). Faces also take ``landmarks`` (``"2d106det"`` or None) and
            ``smoothing`` (a dict of :class:`~viewfinder.faces.OneEuroParams` fields).

    Returns:
        The task, with ``task.spec`` (a :class:`TaskSpec`) to build it again elsewhere.

    Raises:
        ConfigError: an unknown task.
    """
    builders = {"faces": _faces, "detect": _detect, "dpm": _dpm}
    if name not in builders:
        raise ConfigError(f"task {name!r}: expected one of {', '.join(TASKS)}")
    task = builders[name](model, dict(options))
    # a progress callback is this process's; a worker builds without one
    plain = {k: v for k, v in options.items() if not callable(v)}
    task.spec = TaskSpec(name, tuple(model) if isinstance(model, list | tuple) else model, plain)
    return task
