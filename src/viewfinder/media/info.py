"""``viewfinder media info``: what an image or video file holds."""

from __future__ import annotations

import os
from typing import Any

from viewfinder.errors import DecodeError, FormatError
from viewfinder.fileio import check_readable

__all__ = ["describe"]

_RAW_SUFFIXES = (".yuv", ".nv12", ".nv21", ".i420", ".raw")


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Facts about an image (kind, size, JPEG subsampling) or a video (probe fields).

    Raises:
        FormatError: a raw .yuv file (it has no header to describe).
        DecodeError: neither an image nor a video.
    """
    p = check_readable(path)
    if p.suffix.lower() in _RAW_SUFFIXES:
        raise FormatError(f"{p}: a raw .yuv file has no header; view it with "
                          "'viewfinder media from-yuv --size WxH --format FMT'")
    with open(p, "rb") as fh:
        head = fh.read(16)
    from viewfinder.media.image import image_kind

    kind = image_kind(head)
    if kind is not None:
        return _image_facts(p, kind)
    from viewfinder.media.video import probe

    try:
        info = probe(p)
    except DecodeError as exc:
        raise DecodeError(f"{p}: neither an image nor a video FFmpeg can read") from exc
    return {"file": str(p), "type": "video", **{k: v for k, v in info.as_dict().items()
                                                if k != "path"}}


def _image_facts(p: Any, kind: str) -> dict[str, Any]:
    from viewfinder.media.image import _jpeg_header, decode_image

    data = p.read_bytes()
    facts: dict[str, Any] = {"file": str(p), "type": "image", "codec": kind}
    if kind == "jpeg":
        height, width, colorspace, subsampling = _jpeg_header(data, str(p))
        facts.update(width=width, height=height, colorspace=colorspace,
                     subsampling=subsampling)
    else:
        img = decode_image(data, "bgr24", str(p))
        facts.update(width=img.shape[1], height=img.shape[0])
    facts["bytes"] = len(data)
    return facts
