"""Image decode and encode: JPEG, PNG, BMP, WebP to any pixel format, and back.

JPEG to RGB/BGR/GRAY goes through libjpeg-turbo (simplejpeg, strict: a truncated
or damaged file is an error, not a grey half-picture). JPEG to NV12/NV21/I420 is
decoded by FFmpeg's JPEG decoder (through PyAV) straight into the file's own YUV
planes, with no RGB round trip: 4:2:0 files only need the chroma planes copied
(I420) or interleaved (NV12); 4:2:2, 4:4:0 and 4:4:4 files have their chroma
planes averaged down to 4:2:0. PNG, BMP and WebP go through OpenCV; grayscale,
palette, 16-bit and RGBA files are converted (alpha is dropped).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from viewfinder.errors import DecodeError, EncodeError, FormatError
from viewfinder.fileio import atomic_path, check_readable
from viewfinder.media._output import check_output
from viewfinder.media.color import convert
from viewfinder.media.frame import (
    FORMATS,
    YUV_FORMATS,
    Frame,
    check_format,
    check_size,
)
from viewfinder.media.headers import check_png_chunks, image_header
from viewfinder.media.headers import kind_of as image_kind_of
from viewfinder.media.limits import check_pixels

__all__ = [
    "decode_frame",
    "decode_image",
    "encode_image",
    "encode_jpeg",
    "image_kind",
    "read_frame",
    "read_image",
    "write_image",
]

log = logging.getLogger(__name__)
_LOCAL = threading.local()

_SUBSAMPLINGS = ("444", "422", "420", "440", "411", "Gray")
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
_IMAGE_SUFFIXES = _JPEG_SUFFIXES + (".png", ".bmp", ".webp")


def image_kind(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"bmp"``, ``"webp"`` from the first bytes, or None."""
    return image_kind_of(data)


def read_image(path: str | os.PathLike[str], fmt: str = "bgr24") -> np.ndarray:
    """Read an image file into a compact array.

    Args:
        path: A JPEG, PNG, BMP or WebP file.
        fmt: ``"bgr24"`` / ``"rgb24"`` give ``(H, W, 3)`` uint8, ``"gray8"`` ``(H, W)``;
            ``"nv12"``, ``"nv21"``, ``"i420"`` give ``(H * 3 // 2, W)`` (even sizes).

    Raises:
        InputFileError: the file is missing or unreadable.
        DecodeError: not an image, or corrupt or truncated.
    """
    p = check_readable(path, "image file")
    return decode_image(p.read_bytes(), fmt, name=str(p))


def decode_image(data: bytes, fmt: str = "bgr24", name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes into a compact array (see :func:`read_image`).

    Raises:
        DecodeError: not an image, or corrupt or truncated (the message names ``name``).
        SizeError: the header declares an absurd size.
        PixelLimitError: the header declares more pixels than the limit
            (:func:`viewfinder.media.limits.max_pixels`); nothing was decoded.
    """
    fmt = check_format(fmt)
    if fmt in YUV_FORMATS:
        return decode_frame(data, fmt, None, name).to_array()
    kind = _sniff(data, name)
    if kind == "jpeg":
        img = _decode_jpeg_turbo(data, fmt, name)
        if img is not None:
            return img
    return _to_format(_decode_cv(data, name), fmt)


def read_frame(path: str | os.PathLike[str], fmt: str = "nv12",
               align: object = None) -> Frame:
    """Read an image file into a :class:`Frame` of ``fmt``, padded to ``align``.

    JPEG to a YUV format takes the decoder's YUV planes directly (see module doc).
    """
    p = check_readable(path, "image file")
    return decode_frame(p.read_bytes(), fmt, align, name=str(p))


def decode_frame(data: bytes, fmt: str = "nv12", align: object = None,
                 name: str = "<bytes>") -> Frame:
    """Decode image bytes into a :class:`Frame` (JPEG → YUV without RGB).

    YUV frames are tagged BT.601 full range, the JPEG/JFIF convention.
    """
    fmt = check_format(fmt)
    kind = _sniff(data, name)
    if kind == "jpeg" and fmt in YUV_FORMATS:
        planes, width, height = _decode_jpeg_planes(data, name)
        return _frame_from_420(planes, fmt, width, height, align)
    if fmt not in YUV_FORMATS:
        img = decode_image(data, fmt, name)
        return Frame.from_planes([img], fmt, img.shape[1], img.shape[0], align)
    rgb = decode_image(data, "rgb24", name)  # PNG/BMP/WebP to YUV: JPEG's BT.601 full range
    h, w = rgb.shape[:2]
    return convert(Frame.from_planes([rgb], "rgb24", w, h), fmt, align, "bt601", True)


# ----------------------------------------------------------------------- decoding
def _sniff(data: bytes, name: str) -> str:
    """The kind of an image, after its header's size passed the size and pixel limits.

    Runs before any decoder sees the data, so nothing is allocated for a picture
    whose header claims too many pixels (:mod:`viewfinder.media.limits`).
    """
    if not len(data):
        raise DecodeError(f"{name}: empty file, not an image")
    header = image_header(data, name)
    if header.width > 0 and header.height > 0:
        check_pixels(header.width, header.height, name)
    check_size(header.width, header.height, name)
    if header.kind == "png":
        check_png_chunks(data, name)
    return header.kind


def _check_jpeg_complete(data: bytes, name: str) -> None:
    """A JPEG ends with EOI after its last scan; a truncated one does not."""
    sos = data.rfind(b"\xff\xda")
    if sos < 0 or data.find(b"\xff\xd9", sos) < 0:
        raise DecodeError(f"{name}: truncated JPEG (no end-of-image marker after the last scan)")


def _jpeg_header(data: bytes, name: str) -> tuple[int, int, str, str]:
    try:
        h, w, colorspace, sub = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise DecodeError(f"{name}: corrupt JPEG header ({_clean(exc)})") from exc
    check_size(w, h, name)
    return h, w, colorspace, sub


def _decode_jpeg_turbo(data: bytes, fmt: str, name: str) -> np.ndarray | None:
    """libjpeg-turbo decode; None for colour spaces it cannot convert (CMYK)."""
    _check_jpeg_complete(data, name)
    _h, _w, colorspace, _sub = _jpeg_header(data, name)
    if colorspace in ("CMYK", "YCCK"):
        return None
    space = {"rgb24": "RGB", "bgr24": "BGR", "gray8": "GRAY"}[fmt]
    try:
        img = simplejpeg.decode_jpeg(data, colorspace=space, strict=True)
    except ValueError as exc:
        raise DecodeError(f"{name}: corrupt JPEG ({_clean(exc)})") from exc
    return img[..., 0] if fmt == "gray8" else img


def _decode_jpeg_planes(data: bytes, name: str) -> tuple[list[np.ndarray], int, int]:
    """JPEG to 4:2:0 planes ``[Y, U, V]`` (full-range BT.601) without RGB."""
    import av

    _check_jpeg_complete(data, name)
    height, width, colorspace, _sub = _jpeg_header(data, name)
    if colorspace in ("CMYK", "YCCK", "RGB"):
        rgb = decode_image(data, "rgb24", name)
        frame = convert(Frame.from_planes([rgb], "rgb24", width, height), "i420")
        return frame.visible_planes(), width, height
    ctx = _mjpeg_decoder()
    try:
        frames = ctx.decode(av.Packet(bytes(data)))
    except (av.FFmpegError, ValueError) as exc:
        _LOCAL.__dict__.pop("mjpeg", None)  # never reuse a decoder after an error
        raise DecodeError(f"{name}: corrupt JPEG ({_clean(exc)})") from exc
    if not frames:
        raise DecodeError(f"{name}: corrupt JPEG (the decoder returned no picture)")
    if (frames[0].width, frames[0].height) != (width, height):
        raise DecodeError(f"{name}: corrupt JPEG (header says {width}x{height}, decoded "
                          f"{frames[0].width}x{frames[0].height})")
    return _planes_420(frames[0], width, height), width, height


def _mjpeg_decoder() -> object:
    """This thread's FFmpeg JPEG decoder (created once: creation costs ~0.2 ms)."""
    import av

    ctx = getattr(_LOCAL, "mjpeg", None)
    if ctx is None:
        ctx = av.CodecContext.create("mjpeg", "r")
        ctx.options = {"err_detect": "explode"}
        _LOCAL.mjpeg = ctx
    return ctx


def _planes_420(frame: object, width: int, height: int) -> list[np.ndarray]:
    """Y, U, V of a decoded PyAV frame as 4:2:0 planes (chroma averaged when finer)."""
    planes = frame.planes  # type: ignore[attr-defined]
    y = _plane_array(planes[0])[:height, :width]
    cw, ch = (width + 1) // 2, (height + 1) // 2
    if len(planes) < 3:  # grayscale JPEG
        grey = np.full((ch, cw), 128, np.uint8)
        return [y, grey, grey]
    u, v = (_plane_array(p) for p in planes[1:3])
    if u.shape == (ch, cw):
        return [y, u, v]
    return [y] + [_chroma_to_420(c, width, height) for c in (u, v)]


def _chroma_to_420(c: np.ndarray, width: int, height: int) -> np.ndarray:
    """A 4:4:4 / 4:2:2 / 4:4:0 / 4:1:1 chroma plane brought to 4:2:0.

    A full-resolution side of odd length is first extended by one edge sample, so the
    reduction is an exact 2x: bilinear at exactly 2x samples half way between two
    pixels, i.e. it is the pair (or 2x2) mean, at SIMD speed.
    """
    cw, ch = (width + 1) // 2, (height + 1) // 2
    pad_h = int(c.shape[0] == height and height % 2)
    pad_w = int(c.shape[1] == width and width % 2)
    if pad_h or pad_w:
        c = cv2.copyMakeBorder(c, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    return cv2.resize(c, (cw, ch), interpolation=cv2.INTER_LINEAR)


def _plane_array(plane: object) -> np.ndarray:
    arr = np.frombuffer(plane, np.uint8)  # type: ignore[call-overload]
    return arr.reshape(plane.height, plane.line_size)[:, :plane.width]  # type: ignore[attr-defined]


def _frame_from_420(planes: list[np.ndarray], fmt: str, width: int, height: int,
                    align: object) -> Frame:
    frame = Frame.allocate(width, height, fmt, align, "bt601", True, clear=False)
    dst = frame.visible_planes()
    y, u, v = planes
    dst[0][:] = y
    if fmt == "i420":
        dst[1][:] = u
        dst[2][:] = v
    else:
        pair = [u, v] if fmt == "nv12" else [v, u]
        if dst[1].flags.c_contiguous:
            cv2.merge(pair, dst=dst[1])
        else:
            dst[1][:] = cv2.merge(pair)
    return frame


def _decode_cv(data: bytes, name: str) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise DecodeError(f"{name}: corrupt or truncated image (decoder returned nothing)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DecodeError(f"{name}: unsupported sample type {img.dtype}")
    return img


def _to_format(img: np.ndarray, fmt: str, order: str = "bgr24") -> np.ndarray:
    """OpenCV-decoded (BGR, gray or BGRA) or ``order`` image to rgb24/bgr24/gray8."""
    if img.ndim == 2:
        if fmt == "gray8":
            return img
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if fmt == "rgb24" else cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR if order == "bgr24" else cv2.COLOR_RGBA2RGB)
    if fmt == "gray8":
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if order == "bgr24" else cv2.COLOR_RGB2GRAY)
    if fmt == order:
        return img
    return np.ascontiguousarray(img[..., ::-1])


# ----------------------------------------------------------------------- encoding
def encode_jpeg(image: np.ndarray | Frame, quality: int = 90, subsampling: str = "420",
                fmt: str = "bgr24") -> bytes:
    """Encode a picture as JPEG with libjpeg-turbo.

    Args:
        image: A compact ``(H, W, 3)``/``(H, W)`` array in ``fmt``, or a :class:`Frame`.
            A 4:2:0 YUV frame is encoded straight from its planes (no RGB) when
            ``subsampling`` is ``"420"``; a limited-range or BT.709 frame is first
            converted to JPEG's full-range BT.601.
        quality: 1..100.
        subsampling: ``"444"``, ``"422"``, ``"420"``, ``"440"``, ``"411"`` or ``"Gray"``.
        fmt: Pixel format of an array ``image`` (ignored for frames).

    Raises:
        EncodeError: bad quality or subsampling.
    """
    if not 1 <= int(quality) <= 100:
        raise EncodeError(f"JPEG quality {quality}: expected 1..100")
    if subsampling not in _SUBSAMPLINGS:
        raise EncodeError(f"JPEG subsampling {subsampling!r}: expected one of "
                          f"{', '.join(_SUBSAMPLINGS)}")
    if isinstance(image, Frame):
        if image.format in YUV_FORMATS and subsampling == "420":
            return _encode_yuv_frame(image, int(quality))
        image, fmt = image.to_array("rgb24"), "rgb24"
    fmt = check_format(fmt, ("rgb24", "bgr24", "gray8"))
    arr = np.ascontiguousarray(image)
    space = {"rgb24": "RGB", "bgr24": "BGR", "gray8": "GRAY"}[fmt]
    if fmt == "gray8":
        arr = arr.reshape(arr.shape[0], arr.shape[1], 1)
    elif arr.ndim != 3 or arr.shape[2] != 3:
        raise EncodeError(f"{fmt} image: expected shape (H, W, 3), got {arr.shape}")
    try:
        return simplejpeg.encode_jpeg(arr, quality=int(quality), colorspace=space,
                                      colorsubsampling=subsampling)
    except ValueError as exc:
        raise EncodeError(f"JPEG encode failed: {_clean(exc)}") from exc


def _encode_yuv_frame(frame: Frame, quality: int) -> bytes:
    if frame.matrix != "bt601" or not frame.full_range:
        frame = convert(frame, frame.format, matrix="bt601", full_range=True)
    p = frame.visible_planes()
    if frame.format == "i420":
        y, u, v = p
    else:
        y, u, v = (p[0], p[1][..., 0], p[1][..., 1]) if frame.format == "nv12" else \
            (p[0], p[1][..., 1], p[1][..., 0])
    planes = [np.ascontiguousarray(a) for a in (y, u, v)]
    try:
        return simplejpeg.encode_jpeg_yuv_planes(*planes, quality=quality)
    except ValueError as exc:
        raise EncodeError(f"JPEG encode from YUV planes failed: {_clean(exc)}") from exc


def encode_image(image: np.ndarray | Frame, suffix: str, fmt: str = "bgr24",
                 quality: int = 90) -> bytes:
    """Encode a picture for a file suffix (``.jpg``, ``.png``, ``.bmp``, ``.webp``)."""
    suffix = suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise FormatError(f"image suffix {suffix!r}: expected one of {', '.join(_IMAGE_SUFFIXES)}")
    if suffix in _JPEG_SUFFIXES:
        return encode_jpeg(image, quality=quality, fmt=fmt)
    if isinstance(image, Frame):
        bgr = image.to_array("bgr24")
    else:
        check_format(fmt, FORMATS)
        bgr = _to_format(np.asarray(image), "bgr24", fmt) if fmt != "gray8" else image
    params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)] if suffix == ".webp" else []
    ok, buf = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise EncodeError(f"encoding {suffix} failed for an image of shape {bgr.shape}")
    return buf.tobytes()


def write_image(path: str | os.PathLike[str], image: np.ndarray | Frame, fmt: str = "bgr24",
                quality: int = 90) -> Path:
    """Encode by the path's suffix and write atomically; returns the path."""
    target = check_output(path)
    data = encode_image(image, target.suffix, fmt, quality)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    log.debug("wrote %s (%d bytes)", target, len(data))
    return target


def _clean(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
