"""Demuxing H.264/H.265 to an Annex-B elementary stream (``ffmpeg -vcodec copy x.h264``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viewfinder.errors import DecodeError, FormatError
from viewfinder.fileio import atomic_path
from viewfinder.media._output import check_output
from viewfinder.media.video._open import RAW_FORMATS, ffmpeg_message, open_input, video_stream

__all__ = ["ANNEXB_FILTERS", "demux"]

log = logging.getLogger(__name__)

#: Codec → FFmpeg bitstream filter that turns MP4-style (length-prefixed, parameter
#: sets in the extradata) packets into Annex-B (start codes, SPS/PPS in-band).
ANNEXB_FILTERS = {"h264": "h264_mp4toannexb", "hevc": "hevc_mp4toannexb"}


def demux(source: str | os.PathLike[str], output: str | os.PathLike[str],
          progress: Callable[[int], None] | None = None) -> int:
    """Copy the video stream of ``source`` to a raw Annex-B ``.h264``/``.h265`` file.

    The parameter sets (SPS/PPS, and VPS for HEVC) are written in-band before each
    keyframe, so the output plays and decodes on its own. Nothing is re-encoded.

    Args:
        source: A container (.mp4/.mkv/.mov/.avi) or a raw stream.
        output: The elementary stream to write (atomically).
        progress: Optional callback ``progress(packets_written)``.

    Returns:
        The number of packets (access units) written.

    Raises:
        FormatError: the codec is not H.264 or H.265.
        DecodeError: the stream's parameter sets or packets cannot be read.
    """
    out = check_output(output)
    with open_input(source) as container:
        stream = video_stream(container, source)
        codec = stream.codec_context.name
        if codec not in ANNEXB_FILTERS:
            raise FormatError(f"{source}: codec {codec} cannot be written as an Annex-B "
                              "stream (only h264 and hevc)")
        _check_suffix(out, codec)
        raw = container.format.name in RAW_FORMATS.values()
        bsf = None if raw else _annexb_filter(ANNEXB_FILTERS[codec], stream, source)
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            count = _copy_packets(container, stream, bsf, fh, progress, source)
    log.info("demuxed %s → %s: %d packets", source, out, count)
    return count


def _annexb_filter(name: str, stream: Any, source: object) -> Any:
    """The bitstream filter; it parses the stream's extradata (avcC/hvcC) on creation."""
    import av

    try:
        return av.bitstream.BitStreamFilterContext(name, stream)
    except (av.FFmpegError, ValueError) as exc:
        raise DecodeError(f"{source}: {name} rejected the stream's parameter sets "
                          f"({ffmpeg_message(exc)})") from exc


def _copy_packets(container: Any, stream: Any, bsf: Any, fh: Any,
                  progress: Callable[[int], None] | None, source: object) -> int:
    import av

    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and bsf is None:
                continue
            for out_packet in (bsf.filter(packet if packet.size else None)
                               if bsf is not None else [packet]):
                fh.write(bytes(out_packet))
                count += 1
                if progress is not None:
                    progress(count)
    except av.FFmpegError as exc:
        raise DecodeError(f"{source}: demuxing failed at packet {count} "
                          f"({ffmpeg_message(exc)})") from exc
    return count


def _check_suffix(out: Path, codec: str) -> None:
    want = "h264" if codec == "h264" else "hevc"
    got = RAW_FORMATS.get(out.suffix.lower())
    if got is not None and got != want:
        raise FormatError(f"{out}: suffix {out.suffix} is for {got}, the stream is {codec}")
