"""Raw ``.yuv`` files: planes of one or more frames, no header (what ``ffplay -f rawvideo`` shows).

The size of a raw file is all there is to check it by, so a mismatch is reported
with the expected and actual byte counts and, where one fits, the aligned size
that would explain the file::

    1024x683 NV12 needs 1049600 bytes, the file has 1056768 = 1024x688 NV12 (height aligned to 16)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from viewfinder.errors import SizeError
from viewfinder.fileio import atomic_path, check_readable
from viewfinder.media._output import check_output
from viewfinder.media.frame import (
    FORMATS,
    Alignment,
    Frame,
    check_format,
    check_size,
    plane_layout,
    resolve_alignment,
)
from viewfinder.media.limits import check_pixels

__all__ = ["frame_bytes", "guess_layout", "parse_size", "read_yuv", "write_yuv"]

_ALIGN_STEPS = (1, 2, 16, 32, 64, 128, 256)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"1920x1080"`` → ``(1920, 1080)``; zero, negative, absurd or malformed sizes raise."""
    parts = str(text).lower().replace("*", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError as exc:
        raise SizeError(f"{what} {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from exc
    check_size(width, height, f"{what} {text}")
    return width, height


def frame_bytes(width: int, height: int, fmt: str, align: object = None) -> int:
    """Bytes of one ``fmt`` frame of ``width`` × ``height`` padded to ``align``."""
    aw, ah = resolve_alignment(align).apply(width, height)  # type: ignore[arg-type]
    return plane_layout(check_format(fmt), aw, ah).nbytes


def _describe_alignment(width: int, height: int, aw: int, ah: int) -> str:
    parts = []
    if aw != width:
        parts.append(f"width aligned to {_alignment_of(width, aw)}")
    if ah != height:
        parts.append(f"height aligned to {_alignment_of(height, ah)}")
    return " and ".join(parts) if parts else "no alignment"


def _alignment_of(value: int, aligned: int) -> int:
    return next(a for a in _ALIGN_STEPS if (value + a - 1) // a * a == aligned)


def guess_layout(nbytes: int, width: int, height: int, fmt: str) -> str | None:
    """Explain a file of ``nbytes`` for a ``width`` × ``height`` picture, or None.

    Tries the common alignments of the same format first, then other formats at
    the plain size, then whole multiples (a file of several frames).
    """
    seen = set()
    for a_w in _ALIGN_STEPS:
        for a_h in _ALIGN_STEPS:
            aw, ah = Alignment(a_w, a_h, "custom").apply(width, height)
            if (aw, ah) in seen:
                continue
            seen.add((aw, ah))
            if (aw, ah) != (width, height) and plane_layout(fmt, aw, ah).nbytes == nbytes:
                return (f"{aw}x{ah} {fmt.upper()} "
                        f"({_describe_alignment(width, height, aw, ah)})")
    for other in FORMATS:
        if other != fmt and plane_layout(other, width, height).nbytes == nbytes:
            return f"{width}x{height} {other.upper()}"
    one = plane_layout(fmt, width, height).nbytes
    if nbytes > one and nbytes % one == 0:
        return f"{nbytes // one} frames of {width}x{height} {fmt.upper()}"
    return None


def _size_error(path: Path, width: int, height: int, fmt: str, align: Alignment,
                need: int, have: int) -> SizeError:
    aligned = "" if align.name == "none" else f" aligned {align}"
    msg = (f"{path}: {width}x{height} {fmt.upper()}{aligned} needs {need} bytes, "
           f"the file has {have}")
    guess = guess_layout(have, width, height, fmt)
    return SizeError(msg + (f" = {guess}" if guess else ""))


def read_yuv(path: str | os.PathLike[str], width: int, height: int, fmt: str = "nv12",
             align: object = None, index: int = 0, matrix: str = "bt601",
             full_range: bool = True) -> Frame:
    """Read frame ``index`` of a raw file into a :class:`Frame`.

    Args:
        path: The raw file (one frame, or several back to back).
        width: Visible width of the picture.
        height: Visible height.
        fmt: Pixel format of the file (nv12, nv21, i420, rgb24, bgr24, gray8).
        align: Alignment the file was written with (its strides and rows).
        index: Which frame of a multi-frame file.
        matrix: YUV matrix to tag the frame with.
        full_range: YUV range to tag the frame with (JPEG: True, video: False).

    Raises:
        SizeError: the file size is not a whole number of such frames; the message
            gives both byte counts and the layout that would fit, if any.
    """
    p = check_readable(path, "yuv file")
    fmt = check_format(fmt)
    if width > 0 and height > 0:
        check_pixels(width, height, str(p))
    check_size(width, height, str(p))
    alignment = resolve_alignment(align)  # type: ignore[arg-type]
    need = frame_bytes(width, height, fmt, alignment)
    have = p.stat().st_size
    if have == 0 or have % need:
        raise _size_error(p, width, height, fmt, alignment, need, have)
    count = have // need
    if not 0 <= index < count:
        raise SizeError(f"{p}: frame {index} requested, the file holds {count} frame(s) "
                        f"of {width}x{height} {fmt.upper()}")
    with open(p, "rb") as fh:
        fh.seek(index * need)
        data = np.frombuffer(fh.read(need), np.uint8).copy()
    aw, ah = alignment.apply(width, height)
    return Frame(width, height, fmt, data, plane_layout(fmt, aw, ah).strides, aw, ah,
                 matrix, full_range)


def write_yuv(path: str | os.PathLike[str], frames: Frame | list[Frame]) -> Path:
    """Write one frame or a sequence (same layout) as a raw file, atomically.

    The buffer is written as it is, padding included: a reader needs the same
    size, format and alignment to read it back.
    """
    target = check_output(path)
    items = [frames] if isinstance(frames, Frame) else list(frames)
    if not items:
        raise SizeError(f"{path}: no frames to write")
    first = items[0]
    for i, f in enumerate(items[1:], 1):
        if (f.format, f.width, f.height, f.aligned_width, f.aligned_height) != (
                first.format, first.width, first.height, first.aligned_width,
                first.aligned_height):
            raise SizeError(f"{path}: frame {i} is {f.width}x{f.height} {f.format}, "
                            f"frame 0 is {first.width}x{first.height} {first.format}")
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        for f in items:
            fh.write(f.data.data)
    return target
