"""Opening video sources with PyAV, and turning FFmpeg errors into viewfinder errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viewfinder.errors import DecodeError, FormatError
from viewfinder.fileio import check_readable
from viewfinder.media.limits import check_pixels

__all__ = ["RAW_FORMATS", "VideoInfo", "open_input", "probe", "video_stream"]

#: Raw elementary-stream suffixes and the FFmpeg demuxer that reads them.
RAW_FORMATS = {".h264": "h264", ".264": "h264", ".avc": "h264",
               ".h265": "hevc", ".265": "hevc", ".hevc": "hevc"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds (``viewfinder media info``).

    Attributes:
        path: The file.
        container: FFmpeg's container name (``mov,mp4,...``, ``matroska,webm``, ``h264``).
        codec: Codec name (``h264``, ``hevc``, ...).
        width: Picture width.
        height: Picture height.
        fps: Frames per second (average), 0.0 when unknown.
        frames: Frame count (from the container, else counted from packets).
        duration: Seconds.
        pix_fmt: The decoder's pixel format (``yuv420p``...).
        bit_rate: Bits per second, 0 when unknown.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration: float
    pix_fmt: str = ""
    bit_rate: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON output)."""
        return dict(self.__dict__)


def ffmpeg_message(exc: BaseException) -> str:
    """A one-line, errno-free text for an FFmpeg error."""
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())


def open_input(source: str | os.PathLike[str]) -> Any:
    """Open ``source`` for reading with PyAV (raw .h264/.h265 by suffix).

    Raises:
        InputFileError: missing or unreadable.
        DecodeError: not a video FFmpeg can read.
    """
    import av

    path = check_readable(source, "video file")
    fmt = RAW_FORMATS.get(path.suffix.lower())
    try:
        return av.open(str(path), "r", format=fmt)
    except av.FFmpegError as exc:
        raise DecodeError(f"{path}: not a readable video ({ffmpeg_message(exc)})") from exc
    except UnicodeDecodeError as exc:  # PyAV decodes container/stream metadata as UTF-8
        raise DecodeError(f"{path}: not a readable video (metadata is not UTF-8: "
                          f"{ffmpeg_message(exc)})") from exc
    except ValueError as exc:  # PyAV's own checks while wrapping what FFmpeg found
        raise DecodeError(f"{path}: not a readable video ({ffmpeg_message(exc)})") from exc


def video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    """The first video stream of an open container, with a decoder available."""
    if not container.streams.video:
        raise FormatError(f"{path}: no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or not getattr(ctx, "name", None):
        raise FormatError(f"{path}: unsupported codec (no decoder in this FFmpeg build)")
    if not stream.width or not stream.height:
        raise DecodeError(f"{path}: {ctx.name} stream has no picture size (damaged header?)")
    check_pixels(int(stream.width), int(stream.height), f"{path}: {ctx.name} stream")
    return stream


def _count_packets(container: Any, stream: Any) -> int:
    count = 0
    for packet in container.demux(stream):
        if packet.size:
            count += 1
    return count


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video file: codec, size, fps, frame count, duration, container.

    Frame counts the container does not store (raw streams, some MKV/AVI files)
    are counted from packets, which reads the file but decodes nothing.
    """
    import av

    with open_input(path) as container:
        stream = video_stream(container, path)
        try:
            return _describe(container, stream, path)
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise DecodeError(f"{path}: probing the video stream failed "
                              f"({ffmpeg_message(exc)})") from exc


def _describe(container: Any, stream: Any, path: str | os.PathLike[str]) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    frames = int(stream.frames or 0)
    if frames <= 0:
        frames = _count_packets(container, stream)
    if container.duration:
        duration = container.duration / 1_000_000
    elif stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = frames / fps if fps else 0.0
    ctx = stream.codec_context
    return VideoInfo(
        path=str(Path(path)), container=container.format.name, codec=ctx.name,
        width=int(stream.width), height=int(stream.height), fps=fps, frames=frames,
        duration=round(duration, 6), pix_fmt=str(ctx.pix_fmt or ""),
        bit_rate=int(container.bit_rate or ctx.bit_rate or 0),
    )
