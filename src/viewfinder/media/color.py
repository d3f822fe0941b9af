"""Colour conversion RGB ↔ YUV (BT.601 / BT.709, full / limited range) and format changes.

The conversion is one affine 3×4 matrix per direction, applied with OpenCV's
``cv2.transform`` (SIMD, saturating, rounding). The matrices come from the
standard definitions (``Kr``, ``Kb`` of each recommendation; limited range maps
Y to 16..235 and U, V to 16..240). 4:2:0 chroma is the mean of each 2×2 block
going down and nearest-neighbour (sample repeated) going up, as OpenCV and the
DVPP VPC do.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from viewfinder.errors import FormatError, ShapeError, SizeError
from viewfinder.media.frame import (
    PACKED_FORMATS,
    YUV_FORMATS,
    Frame,
    check_format,
)

__all__ = [
    "MATRICES",
    "convert",
    "rgb_to_yuv444",
    "yuv444_to_rgb",
    "yuv_matrix",
]

#: (Kr, Kb) of each supported recommendation.
MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def _check_matrix(matrix: str) -> str:
    key = str(matrix).lower().replace(".", "").replace("-", "")
    if key not in MATRICES:
        raise FormatError(f"colour matrix {matrix!r}: expected bt601 or bt709")
    return key


@lru_cache(maxsize=8)
def yuv_matrix(matrix: str = "bt601", full_range: bool = True) -> np.ndarray:
    """The 3×4 float matrix taking ``[R, G, B, 1]`` (0..255) to ``[Y, U, V]``.

    Args:
        matrix: ``"bt601"`` or ``"bt709"``.
        full_range: True for Y, U, V in 0..255 (JPEG/JFIF), False for limited
            range (Y 16..235, U/V 16..240; video).
    """
    kr, kb = MATRICES[_check_matrix(matrix)]
    kg = 1.0 - kr - kb
    ys, cs, yo = (1.0, 1.0, 0.0) if full_range else (219.0 / 255.0, 224.0 / 255.0, 16.0)
    y = np.array([kr, kg, kb])
    u = (np.array([0.0, 0.0, 1.0]) - y) / (2.0 * (1.0 - kb))
    v = (np.array([1.0, 0.0, 0.0]) - y) / (2.0 * (1.0 - kr))
    m = np.zeros((3, 4))
    m[0, :3], m[0, 3] = y * ys, yo
    m[1, :3], m[1, 3] = u * cs, 128.0
    m[2, :3], m[2, 3] = v * cs, 128.0
    m.setflags(write=False)
    return m


@lru_cache(maxsize=8)
def _inverse_matrix(matrix: str, full_range: bool) -> np.ndarray:
    fwd = yuv_matrix(matrix, full_range)
    inv = np.linalg.inv(fwd[:, :3])
    out = np.concatenate([inv, (-inv @ fwd[:, 3])[:, None]], axis=1)
    out.setflags(write=False)
    return out


def rgb_to_yuv444(rgb: np.ndarray, matrix: str = "bt601", full_range: bool = True,
                  bgr: bool = False) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (or BGR) to ``(H, W, 3)`` uint8 YUV (Y, U=Cb, V=Cr)."""
    _check_image3(rgb, "rgb image")
    m = yuv_matrix(_check_matrix(matrix), bool(full_range))
    if bgr:
        m = np.concatenate([m[:, 2::-1], m[:, 3:]], axis=1)
    return cv2.transform(rgb, m)


def yuv444_to_rgb(yuv: np.ndarray, matrix: str = "bt601", full_range: bool = True,
                  bgr: bool = False) -> np.ndarray:
    """``(H, W, 3)`` uint8 YUV to ``(H, W, 3)`` uint8 RGB (or BGR), saturated."""
    _check_image3(yuv, "yuv image")
    m = _inverse_matrix(_check_matrix(matrix), bool(full_range))
    if bgr:
        m = m[::-1]
    return cv2.transform(yuv, np.ascontiguousarray(m))


def _check_image3(image: np.ndarray, what: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"{what}: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")


# --------------------------------------------------------------------- 4:2:0 helpers
def subsample_chroma(uv: np.ndarray) -> np.ndarray:
    """Mean of each 2×2 block of an ``(H, W, C)`` chroma image (odd edges replicated)."""
    h, w = uv.shape[:2]
    if h % 2 or w % 2:
        uv = np.pad(uv, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return cv2.resize(uv, (uv.shape[1] // 2, uv.shape[0] // 2), interpolation=cv2.INTER_AREA)


def upsample_chroma(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Repeat each chroma sample over its 2×2 block and crop to ``width`` × ``height``."""
    up = cv2.resize(uv, (uv.shape[1] * 2, uv.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    return up[:height, :width]


def _yuv_planes_to_444(frame: Frame) -> np.ndarray:
    planes = frame.visible_planes()
    y = planes[0]
    if frame.format == "i420":
        uv = np.dstack([planes[1], planes[2]])
    else:
        uv = planes[1] if frame.format == "nv12" else planes[1][..., ::-1]
    up = upsample_chroma(np.ascontiguousarray(uv), frame.width, frame.height)
    return np.dstack([y, up])


def _planes_from_444(yuv: np.ndarray, fmt: str) -> list[np.ndarray]:
    y = np.ascontiguousarray(yuv[..., 0])
    uv = subsample_chroma(np.ascontiguousarray(yuv[..., 1:]))
    if fmt == "nv12":
        return [y, uv]
    if fmt == "nv21":
        return [y, uv[..., ::-1]]
    return [y, uv[..., 0], uv[..., 1]]


def _yuv_compact(planes: list[np.ndarray], fmt: str, width: int, height: int) -> np.ndarray:
    if width % 2 or height % 2:
        raise SizeError(f"{width}x{height} {fmt}: a compact {fmt} array needs an even size "
                        "(use the Frame for odd sizes)")
    out = np.empty((height * 3 // 2, width), np.uint8)
    out[:height] = planes[0]
    if fmt == "i420":
        flat = out[height:].reshape(-1)
        q = (height // 2) * (width // 2)
        flat[:q] = planes[1].reshape(-1)
        flat[q:] = planes[2].reshape(-1)
    else:
        out[height:].reshape(height // 2, width // 2, 2)[:] = planes[1]
    return out


def _yuv_to_yuv_planes(frame: Frame, fmt: str) -> list[np.ndarray]:
    p = frame.visible_planes()
    uv = np.dstack([p[1], p[2]]) if frame.format == "i420" else p[1]
    if frame.format == "nv21":
        uv = uv[..., ::-1]
    if fmt == "nv12":
        return [p[0], uv]
    if fmt == "nv21":
        return [p[0], uv[..., ::-1]]
    return [p[0], uv[..., 0], uv[..., 1]]


def _to_rgbish(frame: Frame, fmt: str) -> np.ndarray:
    """Visible picture of ``frame`` as rgb24, bgr24 or gray8."""
    src = frame.format
    if src in YUV_FORMATS:
        if fmt == "gray8":
            y = frame.visible_planes()[0]
            if frame.full_range:
                return np.ascontiguousarray(y)
            return cv2.convertScaleAbs(y, alpha=255.0 / 219.0, beta=-16.0 * 255.0 / 219.0)
        return yuv444_to_rgb(_yuv_planes_to_444(frame), frame.matrix, frame.full_range,
                             bgr=fmt == "bgr24")
    img = frame.visible_planes()[0]
    if src == fmt:
        return np.ascontiguousarray(img)
    codes = {("rgb24", "bgr24"): cv2.COLOR_RGB2BGR, ("bgr24", "rgb24"): cv2.COLOR_BGR2RGB,
             ("rgb24", "gray8"): cv2.COLOR_RGB2GRAY, ("bgr24", "gray8"): cv2.COLOR_BGR2GRAY,
             ("gray8", "rgb24"): cv2.COLOR_GRAY2RGB, ("gray8", "bgr24"): cv2.COLOR_GRAY2BGR}
    return cv2.cvtColor(np.ascontiguousarray(img), codes[(src, fmt)])


def _to_yuv_planes(frame: Frame, fmt: str, matrix: str,
                   full_range: bool) -> list[np.ndarray]:
    """Visible planes of ``frame`` converted to the YUV format ``fmt``."""
    if frame.format in YUV_FORMATS:
        if (frame.matrix, frame.full_range) != (matrix, full_range):
            rgb = _to_rgbish(frame, "rgb24")
            return _planes_from_444(rgb_to_yuv444(rgb, matrix, full_range), fmt)
        return _yuv_to_yuv_planes(frame, fmt)
    img = frame.visible_planes()[0]
    if frame.format == "gray8":
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_GRAY2RGB)
    yuv = rgb_to_yuv444(np.ascontiguousarray(img), matrix, full_range,
                        bgr=frame.format == "bgr24")
    return _planes_from_444(yuv, fmt)


def convert_frame_array(frame: Frame, fmt: str) -> np.ndarray:
    """The visible picture of ``frame`` as a compact array in ``fmt`` (see Frame.to_array)."""
    if fmt in YUV_FORMATS:
        planes = _to_yuv_planes(frame, fmt, frame.matrix, frame.full_range)
        return _yuv_compact(planes, fmt, frame.width, frame.height)
    return _to_rgbish(frame, fmt)


def convert(frame: Frame, fmt: str, align: object = None, matrix: str | None = None,
            full_range: bool | None = None) -> Frame:
    """Convert a frame to another pixel format, alignment or YUV matrix/range.

    Args:
        frame: The source frame.
        fmt: Target pixel format.
        align: Alignment of the new buffer (default: none).
        matrix: YUV matrix of the target (default: the source's).
        full_range: YUV range of the target (default: the source's).

    Returns:
        A new frame; the source is unchanged.
    """
    fmt = check_format(fmt)
    matrix = _check_matrix(matrix or frame.matrix)
    full = frame.full_range if full_range is None else bool(full_range)
    if fmt in YUV_FORMATS:
        planes = _to_yuv_planes(frame, fmt, matrix, full)
    elif fmt in PACKED_FORMATS or fmt == "gray8":
        planes = [_to_rgbish(frame, fmt)]
    return Frame.from_planes(planes, fmt, frame.width, frame.height, align, matrix, full)
