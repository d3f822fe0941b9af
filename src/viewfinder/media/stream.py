"""Frame streams: video files, cameras and URLs as ``(index, time_s, bgr)`` iterables.

:func:`open_stream` is what :mod:`viewfinder.media.sources` reads every non-still
input with. Files decode through :class:`viewfinder.media.video.VideoReader`
(corrupt frames are recorded in ``errors`` and decoding goes on); cameras through
OpenCV; URLs through FFmpeg (PyAV) with an open and a read time-out, so a camera
that does not answer gives one clear error instead of a hang.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from viewfinder.errors import DecodeError, InputFileError

__all__ = ["FrameStream", "open_stream"]

log = logging.getLogger(__name__)


class FrameStream:
    """Iterable of ``(frame index, time in seconds, (H, W, 3) uint8 BGR)``.

    Attributes:
        name: The file, camera index or URL.
        fps: Frames per second (25 where the stream does not say).
        errors: ``(frame index, message)`` of frames that failed to decode.
        reader: The :class:`~viewfinder.media.live.LiveReader` of a camera or URL.
        captured: ``time.monotonic()`` when the last frame yielded was decoded (live).
    """

    def __init__(self, name: str, fps: float, frames: Iterator[tuple[int, float, np.ndarray]]
                 ) -> None:
        self.name, self.fps, self._frames = name, fps, frames
        self.errors: list[tuple[int, str]] = []
        self.reader: Any = None
        self.captured: float | None = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self._frames


def open_stream(kind: str, location: str, max_frames: int | None = None,
                timeout: float = 10.0, *, live: str = "latest", reconnect: int = 5
                ) -> FrameStream:
    """Open a ``"video"`` file, a ``"camera"`` index or a ``"url"``.

    Files yield every frame. Cameras and URLs are read by a
    :class:`viewfinder.media.live.LiveReader` (``live`` = ``"latest"`` or ``"all"``,
    ``reconnect`` attempts per outage); the stream's ``reader`` then holds its
    :class:`~viewfinder.media.live.LiveStats`, and each frame's capture time is in
    ``captured`` (``time.monotonic()``), by frame index.

    Raises:
        InputFileError: a camera or URL that cannot be opened or does not answer within
            ``timeout`` seconds.
        DecodeError: a file that is not a video FFmpeg can read.
    """
    if kind == "video":
        return _video(location, max_frames)
    if kind in ("camera", "url"):
        return _live(kind, location, max_frames, timeout, live, reconnect)
    raise InputFileError(f"{location}: not a stream ({kind})")


def _video(path: str, max_frames: int | None) -> FrameStream:
    from viewfinder.media.video import VideoReader

    reader = VideoReader(path, fmt="bgr24", max_frames=max_frames)
    stream = FrameStream(path, reader.info.fps or 25.0, iter(()))

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        with reader:
            for frame in reader:
                yield frame.index, frame.time, frame.image
        stream.errors.extend(reader.errors)

    stream._frames = gen()
    return stream


def _live(kind: str, location: str, max_frames: int | None, timeout: float, mode: str,
          reconnect: int) -> FrameStream:
    from viewfinder.media.live import LiveReader

    reader = LiveReader(kind, location, mode=mode, timeout=timeout, reconnect=reconnect,
                        max_frames=max_frames)
    stream = FrameStream(location, 25.0, iter(()))
    stream.reader = reader

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        for frame in reader:
            stream.fps = reader.fps
            stream.captured = frame.captured
            yield frame.index, frame.time, frame.image

    stream._frames = gen()
    return stream


def open_camera(index: int) -> tuple[Any, float]:
    """An opened ``cv2.VideoCapture`` and its frame rate.

    Raises:
        InputFileError: the camera cannot be opened.
    """
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
    return cap, float(cap.get(cv2.CAP_PROP_FPS) or 30.0)


def _ffmpeg_text(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc).split())


# Live inputs start at once: probe at most 0.5 s / 500 kB of the stream (FFmpeg's
# defaults, 5 s / 5 MB, are seconds before the first frame of a camera). The probed
# packets are kept (no "nobuffer"): a "latest" reader skips them anyway, an "all" one
# needs them.
_LIVE_OPTIONS = {"analyzeduration": "500000", "probesize": "500000"}


def _open_url(url: str, timeout: float) -> Any:
    """An opened PyAV container; one-line errors, time-outs included."""
    import av

    try:
        return av.open(url, "r", timeout=(timeout, timeout), options=_LIVE_OPTIONS | {
            "rw_timeout": str(int(timeout * 1e6))})
    except av.ExitError as exc:  # the interrupt callback: the time-out passed
        raise InputFileError(f"{url}: no answer within {timeout:g} s") from exc
    except av.FFmpegError as exc:
        text = _ffmpeg_text(exc)
        if "timed out" in text.lower() or "immediate exit" in text.lower():
            raise InputFileError(f"{url}: no answer within {timeout:g} s") from exc
        raise InputFileError(f"{url}: cannot open ({text})") from exc


def _url_frames(container: Any, vstream: Any, url: str, timeout: float
                ) -> Iterator[np.ndarray]:
    """BGR frames of an open container; closes it at the end.

    Raises:
        InputFileError: no frame within ``timeout`` seconds.
        DecodeError: the stream broke.
    """
    import av

    try:
        for frame in container.decode(vstream):
            yield frame.to_ndarray(format="bgr24")
    except av.ExitError as exc:
        raise InputFileError(f"{url}: no frame within {timeout:g} s") from exc
    except av.FFmpegError as exc:
        raise DecodeError(f"{url}: the stream broke ({_ffmpeg_text(exc)})") from exc
    finally:
        container.close()
