"""Resource limits on outside data, in one place (decoders, the CLI and a service share them).

The pixel limit is checked against the size a file's *header* claims, before any
pixel buffer is allocated: a 60-byte PNG that claims 100000x100000 pixels is refused
in microseconds instead of asking the decoder for 40 GB.

Default: :data:`DEFAULT_MAX_PIXELS` = 2**27 (134,217,728 pixels, e.g. 11585x11585 or a
108 Mpixel 12032x9024 phone photo). Measured decode peaks (docs/media.md, "Limits"):
JPEG 2.9 MiB per Mpixel (3.2 to NV12), 8-bit PNG/WebP/BMP 5.7, 16-bit RGBA PNG 19.1
(the worst case), so one picture at the limit costs at most about 2.5 GiB, 0.4 GiB
for a JPEG.

Override with the environment variable ``VIEWFINDER_MAX_PIXELS`` (a positive integer,
read at every check, never at import time) or per call with ``limit=``.
"""

from __future__ import annotations

import os

from viewfinder.errors import ConfigError, PixelLimitError

__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "check_pixels", "max_pixels"]

#: Pixels a picture or video frame may have unless ``VIEWFINDER_MAX_PIXELS`` says otherwise.
DEFAULT_MAX_PIXELS = 1 << 27
#: The environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "VIEWFINDER_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``VIEWFINDER_MAX_PIXELS`` if set, else the default.

    Raises:
        ConfigError: the variable is set but is not a positive integer.
    """
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive integer "
                          "number of pixels, e.g. 134217728") from None
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={text!r}: expected a positive integer")
    return value


def check_pixels(width: int, height: int, what: str, limit: int | None = None) -> None:
    """Refuse a picture whose (header-declared) size exceeds the pixel limit.

    Args:
        width: Width the header claims.
        height: Height the header claims.
        what: The input, for the message (a file name, ``"<bytes>"``...).
        limit: Pixels allowed; None reads :func:`max_pixels`.

    Raises:
        PixelLimitError: ``width * height`` is over the limit; the message gives both
            numbers and the variable that raises the limit.
    """
    cap = max_pixels() if limit is None else int(limit)
    pixels = int(width) * int(height)
    if pixels > cap:
        raise PixelLimitError(
            f"{what}: {width}x{height} = {pixels} pixels ({pixels / 1e6:.1f} Mpixel) is over "
            f"the limit of {cap} pixels (refused before decoding; raise it with "
            f"{MAX_PIXELS_ENV})",
            int(width), int(height), cap)
