"""Frame sources (video file, raw .h264, folder of images, camera) and result sinks.

Video files and raw ``.h264``/``.h265`` streams decode through
:class:`viewfinder.media.video.VideoReader`, images through
:mod:`viewfinder.media`, cameras through OpenCV. A frame that cannot be decoded
(or that the decoder had to conceal) is recorded in ``source.errors`` as
``(index, message)`` and the run goes on.

Sinks write atomically (:func:`viewfinder.fileio.atomic_path`): on any failure
no partial output is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.errors import InputFileError, ViewfinderError
from viewfinder.fileio import atomic_path, check_readable

__all__ = ["IMAGE_SUFFIXES", "FrameSource", "JsonLinesSink", "VideoSink", "is_image_file",
           "open_source", "prefetch", "read_image"]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".jfif")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image (by suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to BGR uint8 via :mod:`viewfinder.media`."""
    try:
        from viewfinder.media import read_image as media_read  # type: ignore[attr-defined]
    except ImportError:
        from viewfinder.media.image import read_image as media_read
    return media_read(path, fmt="bgr24")


@dataclass
class FrameSource:
    """An iterable of ``(index, time_s, bgr_image)`` with decode errors collected.

    Attributes:
        name: The source as given.
        fps: Frames per second (25 where the source does not say).
        errors: ``(frame index, message)`` for every frame that failed to decode.
    """

    name: str
    fps: float
    frames: Iterator[tuple[int, float, np.ndarray]]
    errors: list[tuple[int, str]] = field(default_factory=list)
    close: Any = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self.frames


def open_source(source: str | int | os.PathLike[str], max_frames: int | None = None) -> FrameSource:
    """Open a video file, raw ``.h264`` stream, folder of images or camera index.

    Raises:
        InputFileError: missing or unreadable source.
        DecodeError: not a video the decoder can open.
    """
    text = str(source)
    if isinstance(source, int) or text.isdigit():
        return _camera(int(text), max_frames)
    path = Path(text)
    if path.is_dir():
        return _folder(path, max_frames)
    check_readable(path, "video")
    return _video(path, max_frames)


def _folder(path: Path, max_frames: int | None, fps: float = 25.0) -> FrameSource:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputFileError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    files = files[:max_frames] if max_frames else files
    src = FrameSource(str(path), fps, iter(()))

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        for i, f in enumerate(files):
            try:
                image = read_image(f)
            except ViewfinderError as exc:
                src.errors.append((i, str(exc)))
                continue
            yield i, i / fps, image

    src.frames = gen()
    return src


def _camera(index: int, max_frames: int | None) -> FrameSource:
    import cv2

    quiet = getattr(getattr(cv2, "utils", None), "logging", None)
    level = quiet.getLogLevel() if quiet else None
    if quiet:  # OpenCV's own warnings would add lines to our one-line error
        quiet.setLogLevel(quiet.LOG_LEVEL_ERROR)
    try:
        cap = cv2.VideoCapture(index)
    finally:
        if quiet:
            quiet.setLogLevel(level)
    if not cap.isOpened():
        raise InputFileError(f"camera {index}: cannot open")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    src = FrameSource(f"camera {index}", fps, iter(()), close=cap.release)

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        i = 0
        try:
            while max_frames is None or i < max_frames:
                ok, frame = cap.read()
                if not ok:
                    return
                yield i, i / fps, frame
                i += 1
        finally:
            cap.release()

    src.frames = gen()
    return src


def _video(path: Path, max_frames: int | None) -> FrameSource:
    from viewfinder.media.video import VideoReader

    reader = VideoReader(path, fmt="bgr24", max_frames=max_frames)
    src = FrameSource(str(path), reader.info.fps or 25.0, iter(()), close=reader.close)

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        with reader:
            for frame in reader:
                yield frame.index, frame.time, frame.image
        src.errors.extend(reader.errors)

    src.frames = gen()
    return src


_DONE = object()


def prefetch(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """Run an iterator (a decoder) in a background thread, ``depth`` items ahead.

    FFmpeg decoding and the inference backends release the GIL, so decoding the
    next frames overlaps with inference on the current one. Exceptions raised by
    the iterator are re-raised here; closing this generator stops the thread.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="viewfinder-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=2.0)


class JsonLinesSink:
    """One JSON object per frame: ``{"frame", "time", "faces": [...]}``, written atomically.

    Use as a context manager; the file appears only when the block ends without error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self._file: Any = None

    def __enter__(self) -> JsonLinesSink:
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(open(tmp, "w", encoding="utf-8"))
        return self

    def write(self, index: int, time: float, record: dict[str, Any]) -> None:
        """Append one frame's record."""
        line = {"frame": index, "time": round(time, 6), **record}
        self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)


class VideoSink:
    """Annotated frames to an H.264 MP4 through :class:`viewfinder.media.video.VideoWriter`
    (all or nothing: the file appears only when the block ends without error)."""

    def __init__(self, path: str | os.PathLike[str], fps: float, crf: int = 23) -> None:
        from viewfinder.media.video import VideoWriter

        self._writer = VideoWriter(path, fps, codec="h264", crf=crf, preset="veryfast")

    def __enter__(self) -> VideoSink:
        return self

    def write(self, image: np.ndarray) -> None:
        """Encode one BGR frame (the first frame fixes the size)."""
        self._writer.write(image)

    def __exit__(self, *exc: object) -> None:
        self._writer.__exit__(*exc)
