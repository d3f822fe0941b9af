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
    """

    def __init__(self, name: str, fps: float, frames: Iterator[tuple[int, float, np.ndarray]]
                 ) -> None:
        self.name, self.fps, self._frames = name, fps, frames
        self.errors: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        return self._frames


def open_stream(kind: str, location: str, max_frames: int | None = None,
                timeout: float = 10.0) -> FrameStream:
    """Open a ``"video"`` file, a ``"camera"`` index or a ``"url"``.

    Raises:
        InputFileError: a camera or URL that cannot be opened or does not answer within
            ``timeout`` seconds.
        DecodeError: a file that is not a video FFmpeg can read.
    """
    if kind == "video":
        return _video(location, max_frames)
    if kind == "camera":
        return _camera(int(location), max_frames)
    if kind == "url":
        return _url(location, max_frames, timeout)
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


def _camera(index: int, max_frames: int | None) -> FrameStream:
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

    return FrameStream(f"camera {index}", fps, gen())


def _open_url(url: str, timeout: float) -> Any:
    import av

    try:
        return av.open(url, "r", timeout=(timeout, timeout),
                       options={"rw_timeout": str(int(timeout * 1e6))})
    except av.ExitError as exc:  # the interrupt callback: the time-out passed
        raise InputFileError(f"{url}: no answer within {timeout:g} s") from exc
    except av.FFmpegError as exc:
        text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
        if "timed out" in text.lower() or "immediate exit" in text.lower():
            raise InputFileError(f"{url}: no answer within {timeout:g} s") from exc
        raise InputFileError(f"{url}: cannot open ({text})") from exc


def _url(url: str, max_frames: int | None, timeout: float) -> FrameStream:
    import av

    from viewfinder.media.video._open import video_stream

    container = _open_url(url, timeout)
    try:
        vstream = video_stream(container, url)
    except BaseException:
        container.close()
        raise
    rate = vstream.average_rate or vstream.guessed_rate
    fps = float(rate) if rate else 25.0

    def gen() -> Iterator[tuple[int, float, np.ndarray]]:
        i, t0 = 0, None
        try:
            for frame in container.decode(vstream):
                t = float(frame.time) if frame.time is not None else i / fps
                t0 = t if t0 is None else t0
                yield i, t - t0, frame.to_ndarray(format="bgr24")
                i += 1
                if max_frames is not None and i >= max_frames:
                    return
        except av.ExitError as exc:
            raise InputFileError(f"{url}: no frame within {timeout:g} s (after {i} frames)") \
                from exc
        except av.FFmpegError as exc:
            text = " ".join(str(getattr(exc, "strerror", None) or exc).split())
            raise DecodeError(f"{url}: stream failed after {i} frames ({text})") from exc
        finally:
            container.close()

    return FrameStream(url, fps, gen())
