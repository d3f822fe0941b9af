"""Media pipeline (the DVPP-equivalent): decode, colour, alignment, resize, encode.

Images: :func:`read_image` / :func:`decode_image` give compact NumPy arrays;
:func:`read_frame` / :func:`decode_frame` give a :class:`Frame` (an aligned, padded
buffer in RGB24, BGR24, GRAY8, NV12, NV21 or I420). Raw ``.yuv`` files:
:func:`read_yuv`, :func:`write_yuv`. Colour: :func:`convert`. Geometry:
:func:`resize`, :func:`crop`, :func:`letterbox_frame` (RGB and NV12 alike).
Video lives in :mod:`viewfinder.media.video`.

This package imports only the leaves of viewfinder (errors, fileio).
"""

from viewfinder.media.color import convert, rgb_to_yuv444, yuv444_to_rgb, yuv_matrix
from viewfinder.media.frame import (
    ALIGNMENTS,
    FORMATS,
    YUV_FORMATS,
    Alignment,
    Frame,
    resolve_alignment,
)
from viewfinder.media.image import (
    decode_frame,
    decode_image,
    encode_image,
    encode_jpeg,
    read_frame,
    read_image,
    write_image,
)
from viewfinder.media.resize import crop, letterbox_frame, resize, resize_array
from viewfinder.media.yuv import frame_bytes, parse_size, read_yuv, write_yuv

__all__ = [
    "ALIGNMENTS",
    "FORMATS",
    "YUV_FORMATS",
    "Alignment",
    "Frame",
    "convert",
    "crop",
    "decode_frame",
    "decode_image",
    "encode_image",
    "encode_jpeg",
    "frame_bytes",
    "letterbox_frame",
    "parse_size",
    "read_frame",
    "read_image",
    "read_yuv",
    "resize",
    "resize_array",
    "resolve_alignment",
    "rgb_to_yuv444",
    "write_image",
    "write_yuv",
    "yuv444_to_rgb",
    "yuv_matrix",
]
