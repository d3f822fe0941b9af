"""What the service runs per task: the batch function, the warm-up, the model report.

:func:`batch_function` turns a task from :func:`viewfinder.tasks.build_task` into
the function a :class:`~viewfinder.serve.batcher.Batcher` calls: faces go through
:meth:`viewfinder.faces.FacePipeline.batch` (one detector call per input size and
options, the landmarks of every image's faces in one batch); YOLO and DPM run image
by image with each request's score threshold. Per-request options are plain dicts
(``score``, ``max_faces``, ``landmarks``) checked by :mod:`viewfinder.serve.app`.

:func:`describe_models` reads back from the loaded sessions what really runs each
model (backend, device or execution provider, precision, threads): what ``/readyz``
reports, so a GPU provider that fell back to the CPU shows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.serve.batcher import BatchFunction
from viewfinder.structures import Detections

__all__ = ["batch_function", "class_names", "describe_models", "warm_up"]

log = logging.getLogger(__name__)


def batch_function(task: Any) -> BatchFunction:
    """The batch function of a faces, detect or dpm task."""
    if task.name == "faces":
        return _faces(task)
    if task.name == "detect":
        return _one_by_one(task, task.detector, "conf")
    return _one_by_one(task, task, "score")


def _faces(task: Any) -> BatchFunction:
    pipe = task.pipeline

    def run(images: Sequence[np.ndarray], options: Sequence[dict[str, Any]]) -> list[Detections]:
        return pipe.batch(list(images), score_threshold=[o.get("score") for o in options],
                          max_faces=[o.get("max_faces") for o in options],
                          landmarks=[o.get("landmarks") for o in options])

    return run


@contextlib.contextmanager
def _setting(owner: Any, attr: str, value: Any) -> Iterator[None]:
    """``owner.attr = value`` for the block (the batch worker is the only caller)."""
    if value is None:
        yield
        return
    old = getattr(owner, attr)
    setattr(owner, attr, value)
    try:
        yield
    finally:
        setattr(owner, attr, old)


def _one_by_one(task: Any, owner: Any, attr: str) -> BatchFunction:
    def run(images: Sequence[np.ndarray], options: Sequence[dict[str, Any]]) -> list[Detections]:
        out = []
        for image, opts in zip(images, options, strict=True):
            with _setting(owner, attr, opts.get("score")):
                out.append(task.image(image))
        return out

    return run


def class_names(task: Any) -> list[str]:
    """The class names of the task's results (faces: ``["face"]``)."""
    if task.name == "faces":
        from viewfinder.structures import FACE_NAMES

        return list(FACE_NAMES)
    if task.name == "detect":
        return list(task.detector.names)
    return list(task.names)


def _session_info(role: str, session: Any, provider: str | None) -> dict[str, Any]:
    return {"role": role, "model": Path(str(session.path)).name, "path": str(session.path),
            "backend": session.backend, "device": session.device,
            "provider": provider or session.device, "precision": session.precision,
            "threads": int(getattr(session, "threads", 0)),
            "choice": getattr(session, "choice_reason", "")}


def describe_models(task: Any) -> list[dict[str, Any]]:
    """One entry per loaded model: what runs it, read back from its session.

    ``provider`` is ONNX Runtime's first execution provider of the live session
    (``CPUExecutionProvider``, ``CUDAExecutionProvider``...) or OpenVINO's device.
    """
    if task.name == "faces":
        pipe = task.pipeline
        out = [_session_info("detector", pipe.detector.session, _provider(pipe.detector.session))]
        if pipe.landmarker is not None:
            s = pipe.landmarker.session
            out.append(_session_info("landmarks", s, _provider(s)))
        return out
    if task.name == "detect":
        s = task.detector.session
        return [_session_info("detector", s, _provider(s))]
    import numba

    return [{"role": "model", "model": m.name, "backend": "numba", "device": "CPU",
             "provider": "CPU", "precision": "f32", "threads": int(numba.get_num_threads())}
            for m in task.models]


def _provider(session: Any) -> str | None:
    inner = getattr(session, "_sess", None)
    get = getattr(inner, "get_providers", None)
    return get()[0] if get is not None else None


def warm_up(task: Any, fn: BatchFunction) -> None:
    """Run the task once on a synthetic picture (the first calls compile and allocate),
    and make the face landmark net ready for every batch size a request mix can give
    (1 to ``max_chunk`` faces: OpenVINO compiles each shape; ONNX Runtime needs nothing),
    so that no request pays a compile."""
    image = np.full((480, 640, 3), 127, np.uint8)
    image[120:360, 220:420] = 200
    fn([image], [{}])
    lm = task.pipeline.landmarker if task.name == "faces" else None
    if lm is None:
        return
    lm(image, np.array([[220, 120, 420, 360]], np.float32))
    if lm.batched:
        info = lm.session.inputs[0]
        for n in range(1, lm.max_chunk + 1):
            lm.session.reshape({info.name: (n, *info.shape[1:])})
