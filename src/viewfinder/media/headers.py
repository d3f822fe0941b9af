"""Picture sizes read from the headers of JPEG, PNG, WebP and BMP files, without decoding.

Decoders allocate the whole picture from what the header claims, so the size is
checked (:func:`viewfinder.media.limits.check_pixels`) from these few bytes first:

======  =====================================================================
JPEG    the first SOF0..SOF15 frame header (markers walked by their lengths)
PNG     IHDR, the first chunk (bytes 16..24, big-endian)
WebP    ``VP8 `` (key frame, 14-bit sizes), ``VP8L`` (14-bit sizes - 1) or
        ``VP8X`` (24-bit canvas sizes - 1)
BMP     BITMAPCOREHEADER (16-bit) or BITMAPINFOHEADER and later (32-bit; a
        negative height is a top-down bitmap)
======  =====================================================================
"""

from __future__ import annotations

from typing import NamedTuple

from viewfinder.errors import DecodeError

__all__ = ["ImageHeader", "check_png_chunks", "image_header", "kind_of"]

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"RIFF", "webp"),
)
# SOF markers: C0..CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0..7, SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


class ImageHeader(NamedTuple):
    """What a picture's header claims: its kind and size."""

    kind: str
    width: int
    height: int


def kind_of(data: bytes | memoryview) -> str | None:
    """``"jpeg"``, ``"png"``, ``"bmp"``, ``"webp"`` from the first bytes, or None."""
    head = bytes(data[:16])
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind == "webp" and head[8:12] != b"WEBP":
                return None
            return kind
    return None


def image_header(data: bytes | memoryview, name: str = "<bytes>") -> ImageHeader:
    """The kind and size an encoded picture's header declares.

    Args:
        data: The file's bytes (only the header is read).
        name: The input, for messages.

    Raises:
        DecodeError: not a JPEG/PNG/WebP/BMP, or the header is truncated or malformed.
    """
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    kind = kind_of(mv)
    if kind is None:
        raise DecodeError(f"{name}: not an image (expected JPEG, PNG, BMP or WebP data)")
    width, height = _READERS[kind](mv, name)
    return ImageHeader(kind, width, height)


def _u(data: bytes | memoryview, pos: int, size: int, order: str = "big",
       signed: bool = False) -> int:
    return int.from_bytes(bytes(data[pos:pos + size]), order, signed=signed)  # type: ignore[arg-type]


def _need(data: bytes | memoryview, size: int, name: str, what: str) -> None:
    if len(data) < size:
        raise DecodeError(f"{name}: truncated {what} header ({len(data)} bytes, "
                          f"the size fields end at byte {size})")


def _next_marker(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """``(marker, position after it)`` of the next marker at or after ``pos``.

    Bytes before a marker's 0xFF are skipped, as libjpeg does (it warns about them).
    """
    n = len(data)
    while pos < n and data[pos] != 0xFF:
        pos += 1
    while pos < n and data[pos] == 0xFF:
        pos += 1
    return (data[pos], pos + 1) if pos < n else (-1, n)


def _jpeg_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    pos = 2
    while True:
        marker, pos = _next_marker(data, pos)
        if marker < 0:
            raise DecodeError(f"{name}: truncated JPEG header (no frame header before the "
                              "end of the data)")
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise DecodeError(f"{name}: corrupt JPEG header (no frame header before the "
                              "first scan)")
        _need(data, pos + 2, name, "JPEG")
        length = _u(data, pos, 2)
        if length < 2:
            raise DecodeError(f"{name}: corrupt JPEG header (marker 0x{marker:02X} has "
                              f"length {length}, at least 2 expected)")
        if marker in _SOF:
            _need(data, pos + 7, name, "JPEG")
            height, width = _u(data, pos + 3, 2), _u(data, pos + 5, 2)
            if height == 0:
                raise DecodeError(f"{name}: corrupt JPEG header (frame height 0: a height "
                                  "defined later by a DNL marker is not supported)")
            return width, height
        pos += length


def _png_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    _need(data, 24, name, "PNG")
    if bytes(data[12:16]) != b"IHDR":
        raise DecodeError(f"{name}: corrupt PNG header (first chunk is "
                          f"{bytes(data[12:16])!r}, expected b'IHDR')")
    return _u(data, 16, 4), _u(data, 20, 4)


def _webp_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    _need(data, 16, name, "WebP")
    chunk = bytes(data[12:16])
    if chunk == b"VP8 ":
        _need(data, 30, name, "WebP")
        if bytes(data[23:26]) != b"\x9d\x01\x2a":
            raise DecodeError(f"{name}: corrupt WebP header (no VP8 key frame start code)")
        return _u(data, 26, 2, "little") & 0x3FFF, _u(data, 28, 2, "little") & 0x3FFF
    if chunk == b"VP8L":
        _need(data, 25, name, "WebP")
        if data[20] != 0x2F:
            raise DecodeError(f"{name}: corrupt WebP header (no VP8L signature byte)")
        bits = _u(data, 21, 4, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        _need(data, 30, name, "WebP")
        return _u(data, 24, 3, "little") + 1, _u(data, 27, 3, "little") + 1
    raise DecodeError(f"{name}: corrupt WebP header (first chunk {chunk!r}, expected "
                      "VP8, VP8L or VP8X)")


def _bmp_size(data: bytes | memoryview, name: str) -> tuple[int, int]:
    _need(data, 18, name, "BMP")
    header = _u(data, 14, 4, "little")
    if header == 12:  # BITMAPCOREHEADER
        _need(data, 22, name, "BMP")
        return _u(data, 18, 2, "little"), _u(data, 20, 2, "little")
    if header < 40:
        raise DecodeError(f"{name}: corrupt BMP header (info header of {header} bytes, "
                          "expected 12 or at least 40)")
    _need(data, 26, name, "BMP")
    width = _u(data, 18, 4, "little", signed=True)
    height = _u(data, 22, 4, "little", signed=True)
    return width, abs(height)


def check_png_chunks(data: bytes | memoryview, name: str = "<bytes>") -> None:
    """Refuse a PNG whose chunk lengths run past the end of the data.

    OpenCV's PNG reader allocates what a chunk's length field claims before it finds
    the data short: a 2.5 kB file claiming a 2 GiB IDAT chunk cost 2 GB of memory and
    3.5 s per decode (found by tests/fuzz, OpenCV 5.0). The whole file is in memory, so
    a chunk that does not fit is truncated or corrupt, whatever its size.

    Raises:
        DecodeError: a chunk length over 2**31 - 1 or past the end of the data.
    """
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length = _u(data, pos, 4)
        kind = bytes(data[pos + 4:pos + 8]).decode("latin-1")
        if length > 0x7FFFFFFF:
            raise DecodeError(f"{name}: corrupt PNG (chunk {kind!r} at byte {pos} claims "
                              f"{length} bytes, over the PNG maximum of 2**31 - 1)")
        if pos + 12 + length > n:
            raise DecodeError(f"{name}: truncated PNG (chunk {kind!r} at byte {pos} claims "
                              f"{length} bytes, {max(0, n - pos - 12)} are left)")
        if kind == "IEND":
            return
        pos += 12 + length


_READERS = {"jpeg": _jpeg_size, "png": _png_size, "webp": _webp_size, "bmp": _bmp_size}
