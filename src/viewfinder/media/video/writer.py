"""Encoding frames to H.264 (or H.265) MP4 with PyAV, atomically."""

from __future__ import annotations

import contextlib
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.errors import (
    ConfigError,
    EncodeError,
    FormatError,
    ShapeError,
    SizeError,
)
from viewfinder.fileio import atomic_path
from viewfinder.media._output import check_output
from viewfinder.media.frame import MAX_SIDE
from viewfinder.media.video._open import ffmpeg_message

__all__ = ["ENCODERS", "PRESETS", "WRITER_FORMATS", "VideoWriter"]

log = logging.getLogger(__name__)

#: Codec names accepted by :class:`VideoWriter` and the FFmpeg encoder used.
ENCODERS = {"h264": "libx264", "libx264": "libx264", "h265": "libx265", "hevc": "libx265",
            "libx265": "libx265"}
#: x264/x265 speed presets, fastest first.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")
WRITER_FORMATS = {"bgr24": "bgr24", "rgb24": "rgb24", "gray8": "gray", "nv12": "nv12",
                  "i420": "yuv420p"}


class VideoWriter:
    """Write frames to a video file (MP4/MKV/MOV/AVI by suffix), all or nothing.

    The size is taken from the first frame. Output goes to a temporary name beside
    ``path`` and is renamed on a clean close; on an exception inside the ``with``
    block the temporary file is deleted and ``path`` is untouched.

    Example::

        with VideoWriter("out.mp4", fps=25) as writer:
            for image in images:          # (H, W, 3) uint8 BGR
                writer.write(image)

    Args:
        path: Output file (.mp4, .mkv, .mov or .avi).
        fps: Frames per second (may be fractional, e.g. 29.97).
        codec: ``"h264"`` (libx264) or ``"h265"`` (libx265).
        crf: Constant rate factor, 0..51 (lower is better quality).
        fmt: Pixel format of the arrays passed to :meth:`write` (see WRITER_FORMATS).
        preset: x264/x265 speed preset.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, codec: str = "h264",
                 crf: int = 23, fmt: str = "bgr24", preset: str = "medium") -> None:
        if codec not in ENCODERS:
            raise FormatError(f"video codec {codec!r}: expected one of {', '.join(ENCODERS)}")
        if fmt not in WRITER_FORMATS:
            raise FormatError(f"pixel format {fmt!r}: expected one of {', '.join(WRITER_FORMATS)}")
        if not 0 < float(fps) <= 1000:
            raise ConfigError(f"fps={fps}: must be in (0, 1000]")
        if not 0 <= int(crf) <= 51:
            raise ConfigError(f"crf={crf}: must be in 0..51")
        if preset not in PRESETS:
            raise ConfigError(f"preset {preset!r}: expected one of {', '.join(PRESETS)}")
        self.path = Path(path)
        self._muxer = _muxer(self.path)
        self.fps = Fraction(float(fps)).limit_denominator(1001)
        self.codec, self.crf, self.fmt, self.preset = ENCODERS[codec], int(crf), fmt, preset
        self.frames = 0
        check_output(self.path)
        self._stack: contextlib.ExitStack | None = contextlib.ExitStack()
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)

    def write(self, image: np.ndarray) -> None:
        """Encode one frame (same size as the first one)."""
        import av

        arr = np.ascontiguousarray(image)
        width, height = self._frame_size(arr)
        if self._stream is None:
            self._open(width, height)
        elif (width, height) != (self._stream.width, self._stream.height):
            raise ShapeError(f"{self.path}: frame {self.frames} is {width}x{height}, "
                             f"the video is {self._stream.width}x{self._stream.height}")
        frame = av.VideoFrame.from_ndarray(arr, format=WRITER_FORMATS[self.fmt])
        frame.pts = self.frames
        try:
            self._container.mux(self._stream.encode(frame))
        except av.FFmpegError as exc:
            raise EncodeError(f"{self.path}: encoding frame {self.frames} failed "
                              f"({ffmpeg_message(exc)})") from exc
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder, finish the file and move it into place."""
        import av

        if self._stack is None:
            return
        try:
            if self._stream is None:
                raise EncodeError(f"{self.path}: no frames were written")
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
        except av.FFmpegError as exc:
            self._abort(exc)
            raise EncodeError(f"{self.path}: finishing the video failed "
                              f"({ffmpeg_message(exc)})") from exc
        except BaseException as exc:
            self._abort(exc)
            raise
        stack, self._stack = self._stack, None
        stack.close()  # renames the temporary file onto the target
        log.info("wrote %s: %d frames", self.path, self.frames)

    def _abort(self, exc: BaseException) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.__exit__(type(exc), exc, exc.__traceback__)  # deletes the temporary file

    def _frame_size(self, arr: np.ndarray) -> tuple[int, int]:
        if arr.dtype != np.uint8:
            raise ShapeError(f"{self.path}: frames must be uint8, got {arr.dtype}")
        if self.fmt in ("bgr24", "rgb24"):
            ok = arr.ndim == 3 and arr.shape[2] == 3
            width, height = (arr.shape[1], arr.shape[0]) if ok else (0, 0)
        elif self.fmt == "gray8":
            ok = arr.ndim == 2
            width, height = (arr.shape[1], arr.shape[0]) if ok else (0, 0)
        else:
            ok = arr.ndim == 2 and arr.shape[0] % 3 == 0
            width, height = (arr.shape[1], arr.shape[0] * 2 // 3) if ok else (0, 0)
        if not ok:
            raise ShapeError(f"{self.path}: frame {self.frames} has shape {arr.shape}, "
                             f"not a {self.fmt} image")
        return width, height

    def _open(self, width: int, height: int) -> None:
        import av

        if width % 2 or height % 2 or width < 16 or height < 16:
            raise SizeError(f"{self.path}: frame size {width}x{height}: H.264/H.265 4:2:0 "
                            "needs even sizes of at least 16x16")
        if max(width, height) > MAX_SIDE:
            raise SizeError(f"{self.path}: frame size {width}x{height} is absurd")
        if self._stack is None:
            raise EncodeError(f"{self.path}: the writer is closed")
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            # MP4/MOV: index (moov) first, so players and readers can start before the end
            options = {"movflags": "+faststart"} if self._muxer in ("mp4", "mov") else {}
            self._container = av.open(str(tmp), "w", format=self._muxer, options=options)
            stream = self._container.add_stream(self.codec, rate=self.fps)
        except (av.FFmpegError, ValueError) as exc:
            self._abort(exc)
            raise EncodeError(f"{self.path}: cannot open the {self.codec} encoder "
                              f"({ffmpeg_message(exc)})") from exc
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1) / self.fps
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.codec == "libx265":  # x265 prints its banner to stderr unless told not to
            options["x265-params"] = "log-level=error"
        stream.options = options
        self._stream = stream


def _muxer(path: Path) -> str:
    suffix = path.suffix.lower()
    formats = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
    if suffix not in formats:
        raise FormatError(f"{path}: output suffix {suffix or '(none)'!r}: expected .mp4, "
                          ".mov, .mkv or .avi")
    return formats[suffix]
