"""A small client for ``viewfinder serve``, returning what the in-process API returns.

    >>> from viewfinder.client import Client
    >>> with Client("http://127.0.0.1:8000") as c:
    ...     faces = c.faces("group_t1.jpg")          # Detections, as FacesTask.image gives
    ...     boxes = c.detect(image_bgr, score=0.3)   # a NumPy image is sent as PNG (lossless)

Each method sends one request and rebuilds the answer's record with
:meth:`viewfinder.structures.Detections.from_dict`, with the class names the service
reports in ``/readyz``, so ``c.faces(img)`` equals ``build_task("faces").image(img)``
up to the record's rounding (1/1000 px, 6 decimals of a score). A refusal raises
:class:`viewfinder.errors.ServiceError` with the service's status and one-line message.
Needs ``httpx`` (the ``serve`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.errors import MissingDependencyError, ServiceError
from viewfinder.structures import Detections

__all__ = ["Client"]

ImageLike = str | os.PathLike | bytes | np.ndarray


def _encode(image: ImageLike, index: int = 0) -> tuple[str, bytes, str]:
    """``(file name, bytes, content type)`` of an image path, encoded bytes or array."""
    if isinstance(image, bytes | bytearray | memoryview):
        return f"image{index}", bytes(image), "application/octet-stream"
    if isinstance(image, np.ndarray):
        import cv2

        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ServiceError(f"image {index}: cannot encode an array of shape {image.shape}")
        return f"image{index}.png", buf.tobytes(), "image/png"
    path = Path(image)
    try:
        return path.name, path.read_bytes(), "application/octet-stream"
    except OSError as exc:
        from viewfinder.errors import InputFileError

        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from None


def _params(options: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in options.items():
        if value is not None:
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class Client:
    """The HTTP API of ``viewfinder serve`` as Python calls.

    Args:
        url: The service, e.g. ``http://127.0.0.1:8000``.
        timeout: Seconds per request.
        transport: An ``httpx`` transport (tests: ``httpx.ASGITransport(app)``).
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", timeout: float = 60.0,
                 transport: Any = None) -> None:
        try:
            import httpx
        except ImportError:
            raise MissingDependencyError("httpx", "serve", "viewfinder.client") from None
        self.url = url.rstrip("/")
        self._httpx = httpx
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._names: dict[str, tuple[str, ...]] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # ------------------------------------------------------------------ plumbing
    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise ServiceError(f"{self.url}{path}: no answer ({type(exc).__name__}: "
                               f"{exc})") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text.strip() or response.reason_phrase
            retry = response.headers.get("retry-after")
            raise ServiceError(f"{self.url}{path}: {response.status_code} {message}",
                               response.status_code, float(retry) if retry else None)
        return response

    def names(self, task: str) -> tuple[str, ...]:
        """The class names of a task's results (from ``/readyz``, asked once)."""
        if task not in self._names:
            tasks = self.ready().get("tasks", {})
            if task not in tasks:
                raise ServiceError(f"{self.url}: task {task!r} is not served; served: "
                                   f"{', '.join(tasks)}", 404)
            self._names[task] = tuple(tasks[task]["names"])
        return self._names[task]

    # ------------------------------------------------------------------ health
    def live(self) -> bool:
        """Whether the process answers ``/livez``."""
        try:
            return self._http.get("/livez").status_code == 200
        except self._httpx.HTTPError:
            return False

    def ready(self) -> dict[str, Any]:
        """``/readyz``: the models and what runs them.

        Raises:
            ServiceError: 503 while the models load (``status`` 503).
        """
        return self._send("GET", "/readyz").json()

    def metrics(self) -> str:
        """``/metrics`` (Prometheus text)."""
        return self._send("GET", "/metrics").text

    # ------------------------------------------------------------------ tasks
    def record(self, task: str, image: ImageLike, **options: Any) -> dict[str, Any]:
        """The JSON record of one image (what the CLI's ``--json`` writes)."""
        name, data, ctype = _encode(image)
        return self._send("POST", f"/v1/{task}", content=data, params=_params(options),
                          headers={"content-type": ctype}).json()

    def records(self, task: str, images: Sequence[ImageLike], **options: Any
                ) -> list[dict[str, Any]]:
        """The records of several images sent in one multipart request, in order."""
        files = [("image", _encode(im, i)) for i, im in enumerate(images)]
        return self._send("POST", f"/v1/{task}", files=files,
                          params=_params(options)).json()["records"]

    def run(self, task: str, image: ImageLike, **options: Any) -> Detections:
        """One image's :class:`Detections` (``options``: the task's query options)."""
        return Detections.from_dict(self.record(task, image, **options), self.names(task))

    def run_many(self, task: str, images: Sequence[ImageLike], **options: Any
                 ) -> list[Detections]:
        """Several images in one request; their :class:`Detections`, in order."""
        names = self.names(task)
        return [Detections.from_dict(r, names) for r in self.records(task, images, **options)]

    def annotate(self, task: str, image: ImageLike, **options: Any) -> bytes:
        """The annotated JPEG of one image (``draw=true``)."""
        name, data, ctype = _encode(image)
        params = {**_params(options), "draw": "true"}
        return self._send("POST", f"/v1/{task}", content=data, params=params,
                          headers={"content-type": ctype}).content

    def faces(self, image: ImageLike, *, score: float | None = None,
              max_faces: int | None = None, landmarks: bool | None = None) -> Detections:
        """Faces of one image: boxes, 5 keypoints, 106 landmarks."""
        return self.run("faces", image, score=score, max_faces=max_faces, landmarks=landmarks)

    def detect(self, image: ImageLike, *, score: float | None = None) -> Detections:
        """YOLO detections of one image."""
        return self.run("detect", image, score=score)

    def dpm(self, image: ImageLike, *, score: float | None = None) -> Detections:
        """DPM detections of one image (root and part boxes in ``parts``)."""
        return self.run("dpm", image, score=score)
