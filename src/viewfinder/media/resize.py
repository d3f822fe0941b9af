"""Resize, crop and letterbox on RGB/BGR/GRAY arrays and on YUV frames directly.

YUV 4:2:0 frames (NV12, NV21, I420) are scaled plane by plane, as a VPC does: the
Y plane to ``W`` × ``H`` and the chroma plane(s) to ``W/2`` × ``H/2`` (NV12's UV
plane as one two-channel image), with no RGB round trip. A 4:2:0 output needs an
even size and crops need even offsets, since each chroma sample covers 2×2 pixels.
Padding (letterbox borders) is black in the frame's own colour space.
"""

from __future__ import annotations

import cv2
import numpy as np

from viewfinder.errors import ConfigError, ShapeError, SizeError
from viewfinder.media.frame import YUV_FORMATS, Frame, check_size
from viewfinder.media.transforms import AffineTransform, letterbox

__all__ = ["INTERPOLATIONS", "crop", "letterbox_frame", "resize", "resize_array"]

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR,
                  "area": cv2.INTER_AREA}


def _interp(mode: str) -> int:
    if mode not in INTERPOLATIONS:
        raise ConfigError(f"resize mode {mode!r}: expected one of {', '.join(INTERPOLATIONS)}")
    return INTERPOLATIONS[mode]


def resize_array(image: np.ndarray, width: int, height: int,
                 mode: str = "bilinear") -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` array to ``width`` × ``height``."""
    check_size(width, height, "resize target")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ShapeError(f"image: expected shape (H, W) or (H, W, C), got {image.shape}")
    if (image.shape[1], image.shape[0]) == (width, height):
        return image.copy()
    return cv2.resize(image, (width, height), interpolation=_interp(mode))


def _check_even(fmt: str, what: str, *values: int) -> None:
    if fmt in YUV_FORMATS and any(v % 2 for v in values):
        raise SizeError(f"{fmt} {what} {values}: must be even (a 4:2:0 chroma sample "
                        "covers 2x2 pixels)")


def _chroma_sources(frame: Frame) -> list[np.ndarray]:
    return [np.ascontiguousarray(p) for p in frame.visible_planes()[1:]]


def _fill_planes(dst: Frame, src: Frame, x: int, y: int, w: int, h: int, mode: str) -> None:
    """Resize ``src``'s visible picture into ``dst`` at ``(x, y)`` with size ``w`` × ``h``."""
    planes = dst.planes()
    interp = _interp(mode)
    src_planes = src.visible_planes()
    if src.format not in YUV_FORMATS:
        img = np.ascontiguousarray(src_planes[0])
        planes[0][y:y + h, x:x + w] = cv2.resize(img, (w, h), interpolation=interp)
        return
    y_src = np.ascontiguousarray(src_planes[0])
    planes[0][y:y + h, x:x + w] = cv2.resize(y_src, (w, h), interpolation=interp)
    cx, cy, cw, ch = x // 2, y // 2, w // 2, h // 2
    for dplane, splane in zip(planes[1:], _chroma_sources(src), strict=True):
        dplane[cy:cy + ch, cx:cx + cw] = cv2.resize(splane, (cw, ch), interpolation=interp)


def resize(frame: Frame, width: int, height: int, mode: str = "bilinear",
           align: object = None) -> Frame:
    """Resize a frame to ``width`` × ``height`` in its own format.

    Args:
        frame: Any format; YUV frames are scaled plane by plane.
        width: Target width (even for YUV formats).
        height: Target height (even for YUV formats).
        mode: ``"nearest"``, ``"bilinear"`` or ``"area"``.
        align: Alignment of the output buffer.
    """
    check_size(width, height, "resize target")
    _check_even(frame.format, "output size", width, height)
    _interp(mode)
    out = Frame.allocate(width, height, frame.format, align, frame.matrix, frame.full_range)
    _fill_planes(out, frame, 0, 0, width, height, mode)
    return out


def crop(frame: Frame, x: int, y: int, width: int, height: int, align: object = None) -> Frame:
    """Cut the ``width`` × ``height`` region at ``(x, y)`` out of a frame (a copy).

    Raises:
        SizeError: the region leaves the picture, or is odd for a YUV frame.
    """
    check_size(width, height, "crop size")
    if x < 0 or y < 0 or x + width > frame.width or y + height > frame.height:
        raise SizeError(f"crop {width}x{height} at ({x}, {y}) leaves the "
                        f"{frame.width}x{frame.height} picture")
    _check_even(frame.format, "crop offset and size", x, y, width, height)
    out = Frame.allocate(width, height, frame.format, align, frame.matrix, frame.full_range)
    for i, (dst, src) in enumerate(zip(out.planes(), frame.planes(), strict=True)):
        d = 2 if (i > 0 and frame.format in YUV_FORMATS) else 1
        dst[:height // d, :width // d] = src[y // d:(y + height) // d, x // d:(x + width) // d]
    return out


def letterbox_frame(frame: Frame, width: int, height: int, mode: str = "bilinear",
                    center: bool = True, align: object = None) -> tuple[Frame, AffineTransform]:
    """Fit a frame inside ``width`` × ``height`` keeping its aspect ratio; pad with black.

    Returns:
        The new frame and the :class:`AffineTransform` from source to output
        coordinates (its ``inverse()`` maps detections back).
    """
    check_size(width, height, "letterbox target")
    _check_even(frame.format, "output size", width, height)
    t = letterbox(frame.width, frame.height, width, height, center=center, interpolation=mode)
    new_w, new_h = round(frame.width * t.sx), round(frame.height * t.sy)
    x0, y0 = int(t.tx), int(t.ty)
    if frame.format in YUV_FORMATS:  # keep the picture on the 2×2 chroma grid
        new_w, new_h = max(2, new_w - new_w % 2), max(2, new_h - new_h % 2)
        x0, y0 = x0 - x0 % 2, y0 - y0 % 2
        t = AffineTransform(new_w / frame.width, new_h / frame.height, float(x0), float(y0),
                            width, height, frame.width, frame.height, interpolation=mode)
    out = Frame.allocate(width, height, frame.format, align, frame.matrix, frame.full_range)
    _fill_planes(out, frame, x0, y0, new_w, new_h, mode)
    return out, t
