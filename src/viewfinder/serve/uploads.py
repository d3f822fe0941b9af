"""Request bodies and their images, checked before any pixel is decoded.

Order of checks, cheapest first: the body's declared and real size against the cap
(413 without reading the rest), the parts (raw body or multipart files), each
image's header size against the pixel cap (413: a JPEG that claims 60000x60000 is
refused from its first bytes), then decoding (400 with the decoder's one-line
message, the same the CLI prints after ``error:``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewfinder.errors import PixelLimitError, ViewfinderError

__all__ = ["Part", "RequestError", "decode_part", "read_body", "split_parts"]


class RequestError(Exception):
    """A request the service refuses: HTTP ``status``, a one-line ``message`` and the
    ``reason`` counted in ``viewfinder_rejections_total``."""

    def __init__(self, status: int, message: str, reason: str = "bad_request") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


@dataclass(frozen=True)
class Part:
    """One uploaded image: its file name (None for a raw body) and bytes."""

    name: str | None
    data: bytes


def _too_large(size: int | str, cap: int) -> RequestError:
    return RequestError(413, f"request body of {size} bytes is over the limit of {cap} bytes",
                        "body_too_large")


async def read_body(request: Any, cap: int) -> bytes:
    """The whole body, refused as soon as it is known to exceed ``cap`` bytes (from
    ``Content-Length`` before reading, else while reading a chunked body)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"Content-Length {declared!r}: expected a number of "
                                    "bytes") from None
        if size > cap:
            raise _too_large(size, cap)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise _too_large(f"more than {cap}", cap)
        chunks.append(chunk)
    return b"".join(chunks)


async def split_parts(request: Any, body: bytes) -> list[Part]:
    """The images of a request: a raw body is one; ``multipart/form-data`` holds one
    or several files (any field names, in order).

    Raises:
        RequestError: 400 for an empty body or a form without files.
    """
    if not body:
        raise RequestError(400, "empty request body: expected an image (the raw bytes, or "
                                "files in multipart/form-data)", "bad_image")
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        return [Part(None, body)]
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=256).parse()
    except MultiPartException as exc:
        raise RequestError(400, f"multipart body: {exc.message}") from None
    parts = []
    for _, value in form.multi_items():
        if hasattr(value, "read"):
            parts.append(Part(value.filename or None, await value.read()))
            await value.close()
    if not parts:
        raise RequestError(400, "multipart body: expected at least one file field",
                           "bad_image")
    return parts


def decode_part(part: Part, index: int, limit: int | None) -> np.ndarray:
    """Check the header against the pixel cap, then decode to BGR.

    Raises:
        RequestError: 413 over the pixel cap (nothing decoded), 400 for anything the
            decoder refuses (empty, not an image, truncated, corrupt).
    """
    from viewfinder.media.headers import image_header
    from viewfinder.media.image import decode_image
    from viewfinder.media.limits import check_pixels

    name = part.name or ("image" if index == 0 else f"image {index}")
    try:
        if not part.data:
            raise RequestError(400, f"{name}: empty file, not an image", "bad_image")
        header = image_header(part.data, name)
        check_pixels(header.width, header.height, name, limit)
        return decode_image(part.data, "bgr24", name)
    except PixelLimitError as exc:
        raise RequestError(413, str(exc), "too_many_pixels") from None
    except ViewfinderError as exc:
        raise RequestError(400, str(exc), "bad_image") from None
