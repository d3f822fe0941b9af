"""Pixel formats, alignment profiles and the :class:`Frame` buffer type.

A :class:`Frame` is what an accelerator's decoder hands over: a flat byte buffer
whose rows are padded to an aligned *stride* and whose height is padded to an
aligned number of rows (a 1024×683 JPEG decodes into a 1024×688 buffer on DVPP's
JPEG decoder, which aligns width to 128 and height to 16). The padding is filled
with black *in the frame's own colour space* (Y = 0 full range or 16 limited,
U = V = 128), so an aligned buffer never shows green or pink bars when viewed.

Plane layout (``aw`` × ``ah`` = aligned width × height, chroma rounds up as FFmpeg does):

========  =========================================================
rgb24     one plane, ``ah`` rows of ``aw * 3`` bytes
bgr24     as rgb24
gray8     one plane, ``ah`` rows of ``aw`` bytes
nv12      Y (``ah`` × ``aw``), then interleaved UV (``ceil(ah/2)`` × ``2*ceil(aw/2)``)
nv21      as nv12 with VU order
i420      Y, then U, then V (each ``ceil(ah/2)`` × ``ceil(aw/2)``)
========  =========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from viewfinder.errors import FormatError, ShapeError, SizeError

__all__ = [
    "ALIGNMENTS",
    "FORMATS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "YUV_FORMATS",
    "Alignment",
    "Frame",
    "PlaneLayout",
    "check_size",
    "plane_layout",
    "resolve_alignment",
]

FORMATS = ("rgb24", "bgr24", "gray8", "nv12", "nv21", "i420")
YUV_FORMATS = ("nv12", "nv21", "i420")
PACKED_FORMATS = ("rgb24", "bgr24")
#: Largest width or height accepted anywhere (H.264 level 6.2 tops out at 8192×4320;
#: JPEG allows 65535). Anything above is treated as an absurd size, not a big image.
MAX_SIDE = 32768
#: Largest picture accepted (256 Mpixel, 768 MB as RGB): a guard against decompression bombs.
MAX_PIXELS = 1 << 28


@dataclass(frozen=True)
class Alignment:
    """Row (width) and column (height) alignment of a buffer, in pixels."""

    width: int = 1
    height: int = 1
    name: str = "none"

    def __post_init__(self) -> None:
        if not (1 <= self.width <= 4096 and 1 <= self.height <= 4096):
            raise SizeError(f"alignment {self.width}x{self.height}: each side must be "
                            "between 1 and 4096")

    def apply(self, width: int, height: int) -> tuple[int, int]:
        """Round ``width`` and ``height`` up to this alignment."""
        return _align_up(width, self.width), _align_up(height, self.height)

    def __str__(self) -> str:
        return self.name if self.name != "custom" else f"{self.width}x{self.height}"


ALIGNMENTS = {
    "none": Alignment(1, 1, "none"),
    "dvpp_jpegd": Alignment(128, 16, "dvpp_jpegd"),
    "dvpp_vpc": Alignment(16, 2, "dvpp_vpc"),
}


def resolve_alignment(spec: str | tuple[int, int] | Alignment | None) -> Alignment:
    """Turn ``"dvpp_jpegd"``, ``"dvpp_vpc"``, ``"none"``, ``"64x4"``, ``(64, 4)`` or None into an Alignment.

    Raises:
        FormatError: unknown profile name.
        SizeError: an alignment outside 1..4096.
    """
    if spec is None:
        return ALIGNMENTS["none"]
    if isinstance(spec, Alignment):
        return spec
    if isinstance(spec, tuple):
        return Alignment(int(spec[0]), int(spec[1]), "custom")
    key = str(spec).strip().lower()
    if key in ALIGNMENTS:
        return ALIGNMENTS[key]
    m = re.fullmatch(r"(\d+)[x,](\d+)", key)
    if m:
        return Alignment(int(m.group(1)), int(m.group(2)), "custom")
    raise FormatError(f"alignment {spec!r}: expected one of {', '.join(ALIGNMENTS)} or WxH")


def _align_up(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    """Return ``fmt`` lower-cased, or raise FormatError naming the allowed formats."""
    key = str(fmt).lower()
    if key not in allowed:
        raise FormatError(f"pixel format {fmt!r}: expected one of {', '.join(allowed)}")
    return key


def check_size(width: int, height: int, what: str = "image") -> None:
    """Reject zero, negative and absurd sizes with one line naming ``what``."""
    if width <= 0 or height <= 0:
        raise SizeError(f"{what}: size {width}x{height} must be positive")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise SizeError(f"{what}: size {width}x{height} is absurd (max side {MAX_SIDE})")
    if width * height > MAX_PIXELS:
        raise SizeError(f"{what}: size {width}x{height} is absurd (over {MAX_PIXELS >> 20} "
                        "Mpixel)")


@dataclass(frozen=True)
class PlaneLayout:
    """Where each plane of a format lives in a flat buffer."""

    rows: tuple[int, ...]
    strides: tuple[int, ...]
    offsets: tuple[int, ...]
    nbytes: int


def plane_layout(fmt: str, aligned_width: int, aligned_height: int) -> PlaneLayout:
    """The plane rows, strides (bytes) and offsets of ``fmt`` at an aligned size."""
    aw, ah = aligned_width, aligned_height
    cw, ch = (aw + 1) // 2, (ah + 1) // 2
    if fmt in PACKED_FORMATS:
        rows, strides = (ah,), (aw * 3,)
    elif fmt == "gray8":
        rows, strides = (ah,), (aw,)
    elif fmt in ("nv12", "nv21"):
        rows, strides = (ah, ch), (aw, 2 * cw)
    else:
        rows, strides = (ah, ch, ch), (aw, cw, cw)
    offsets, total = [], 0
    for r, s in zip(rows, strides, strict=True):
        offsets.append(total)
        total += r * s
    return PlaneLayout(rows, strides, tuple(offsets), total)


def black_levels(fmt: str, full_range: bool) -> tuple[int, ...]:
    """The fill value of each plane that shows as black."""
    if fmt in YUV_FORMATS:
        y = 0 if full_range else 16
        return (y, 128) if fmt in ("nv12", "nv21") else (y, 128, 128)
    return (0,)


@dataclass(frozen=True)
class Frame:
    """An image in one pixel format inside an aligned, padded buffer.

    Attributes:
        width: Visible width in pixels.
        height: Visible height in pixels.
        format: One of ``rgb24``, ``bgr24``, ``gray8``, ``nv12``, ``nv21``, ``i420``.
        data: The whole buffer, 1-D uint8 (planes one after another).
        strides: Bytes per row of each plane.
        aligned_width: Width the buffer was allocated for (``>= width``).
        aligned_height: Rows the buffer was allocated for (``>= height``).
        matrix: ``"bt601"`` or ``"bt709"``: the YUV matrix (meaningful for YUV formats).
        full_range: YUV range: True for JPEG-style 0..255, False for video 16..235.
    """

    width: int
    height: int
    format: str
    data: np.ndarray = field(repr=False)
    strides: tuple[int, ...]
    aligned_width: int
    aligned_height: int
    matrix: str = "bt601"
    full_range: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", check_format(self.format))
        object.__setattr__(self, "strides", tuple(int(v) for v in self.strides))
        check_size(self.width, self.height, f"{self.format} frame")
        if self.aligned_width < self.width or self.aligned_height < self.height:
            raise SizeError(f"{self.format} frame: aligned size {self.aligned_width}x"
                            f"{self.aligned_height} is smaller than {self.width}x{self.height}")
        if self.matrix not in ("bt601", "bt709"):
            raise FormatError(f"matrix {self.matrix!r}: expected bt601 or bt709")
        layout = plane_layout(self.format, self.aligned_width, self.aligned_height)
        if self.strides != layout.strides:
            raise ShapeError(f"{self.format} frame: strides {self.strides} do not match "
                             f"{self.aligned_width}x{self.aligned_height} ({layout.strides})")
        data = self.data
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
            raise ShapeError(f"{self.format} frame: data must be a 1-D uint8 array")
        if data.size != layout.nbytes:
            raise SizeError(f"{self.format} frame {self.aligned_width}x{self.aligned_height}: "
                            f"needs {layout.nbytes} bytes, got {data.size}")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def allocate(cls, width: int, height: int, fmt: str, align: object = None,
                 matrix: str = "bt601", full_range: bool = True, clear: bool = True) -> Frame:
        """A black frame of ``width`` × ``height`` in ``fmt``, aligned by ``align``.

        Args:
            clear: False leaves the visible picture uninitialised and blackens only
                the padding (for callers that overwrite the picture at once).
        """
        fmt = check_format(fmt)
        check_size(width, height, f"{fmt} frame")
        aw, ah = resolve_alignment(align).apply(width, height)  # type: ignore[arg-type]
        layout = plane_layout(fmt, aw, ah)
        data = np.empty(layout.nbytes, np.uint8)
        frame = cls(width, height, fmt, data, layout.strides, aw, ah, matrix, full_range)
        levels = black_levels(fmt, full_range)
        if clear:
            for off, rows, stride, level in zip(layout.offsets, layout.rows, layout.strides,
                                                levels, strict=True):
                data[off:off + rows * stride] = level
        else:
            frame._fill_padding(levels)
        return frame

    def _fill_padding(self, levels: tuple[int, ...]) -> None:
        """Blacken the bytes outside the visible picture of each plane."""
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        for i, (plane, level) in enumerate(zip(self.planes(), levels, strict=True)):
            w, h = (self.width, self.height) if i == 0 or self.format not in YUV_FORMATS \
                else (cw, ch)
            plane[h:] = level
            plane[:h, w:] = level

    @classmethod
    def from_array(cls, array: np.ndarray, fmt: str, align: object = None,
                   matrix: str = "bt601", full_range: bool = True) -> Frame:
        """Wrap a compact array into a (padded) frame.

        Args:
            array: ``(H, W, 3)`` for rgb24/bgr24, ``(H, W)`` for gray8,
                ``(H * 3 // 2, W)`` for nv12/nv21/i420 (even W and H).
            fmt: The array's pixel format.
            align: Alignment profile of the new buffer.
        """
        fmt = check_format(fmt)
        planes = _split_compact(np.asarray(array), fmt)
        h, w = planes[0].shape[:2]
        frame = cls.allocate(w, h, fmt, align, matrix, full_range)
        for dst, src in zip(frame.planes(), planes, strict=True):
            dst[:src.shape[0], :src.shape[1]] = src
        return frame

    @classmethod
    def from_planes(cls, planes: list[np.ndarray], fmt: str, width: int, height: int,
                    align: object = None, matrix: str = "bt601",
                    full_range: bool = True) -> Frame:
        """Build a frame from visible planes (Y, UV) or (Y, U, V) or one packed plane."""
        frame = cls.allocate(width, height, fmt, align, matrix, full_range)
        dsts = frame.planes()
        if len(planes) != len(dsts):
            raise ShapeError(f"{fmt}: expected {len(dsts)} planes, got {len(planes)}")
        for i, (dst, src) in enumerate(zip(dsts, planes, strict=True)):
            src = np.asarray(src)
            if src.shape[0] > dst.shape[0] or src.shape[1] > dst.shape[1]:
                raise ShapeError(f"{fmt} plane {i}: {src.shape} does not fit {dst.shape}")
            dst[:src.shape[0], :src.shape[1]] = src
        return frame

    # ----------------------------------------------------------------- views
    @property
    def layout(self) -> PlaneLayout:
        """Plane rows, strides and offsets of this frame's buffer."""
        return plane_layout(self.format, self.aligned_width, self.aligned_height)

    @property
    def alignment_padding(self) -> tuple[int, int]:
        """Padding columns and rows: ``(aligned_width - width, aligned_height - height)``."""
        return self.aligned_width - self.width, self.aligned_height - self.height

    def planes(self) -> list[np.ndarray]:
        """Views of each plane over the whole aligned buffer (padding included).

        rgb24/bgr24 give one ``(ah, aw, 3)`` view, gray8 one ``(ah, aw)``, nv12/nv21
        ``(ah, aw)`` and ``(ceil(ah/2), ceil(aw/2), 2)``, i420 three 2-D views.
        """
        lay = self.layout
        views = []
        for i, (off, rows, stride) in enumerate(zip(lay.offsets, lay.rows, lay.strides,
                                                    strict=True)):
            plane = self.data[off:off + rows * stride].reshape(rows, stride)
            if self.format in PACKED_FORMATS:
                plane = plane.reshape(rows, stride // 3, 3)
            elif self.format in ("nv12", "nv21") and i == 1:
                plane = plane.reshape(rows, stride // 2, 2)
            views.append(plane)
        return views

    def visible_planes(self) -> list[np.ndarray]:
        """Like :meth:`planes` but cropped to the visible picture (chroma rounded up)."""
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        out = []
        for i, p in enumerate(self.planes()):
            w, h = (self.width, self.height) if i == 0 else (cw, ch)
            out.append(p[:h, :w])
        return out

    def to_array(self, fmt: str | None = None) -> np.ndarray:
        """The visible picture as a compact array in ``fmt`` (default: own format).

        Padding is cropped away. YUV targets give ``(H * 3 // 2, W)`` arrays and
        need an even visible size.
        """
        from viewfinder.media.color import convert_frame_array

        return convert_frame_array(self, check_format(fmt or self.format))

    def to_bytes(self) -> bytes:
        """The whole buffer, padding included (what a ``.yuv`` file holds)."""
        return self.data.tobytes()

    @property
    def nbytes(self) -> int:
        """Size of the buffer in bytes."""
        return int(self.data.size)


def _split_compact(array: np.ndarray, fmt: str) -> list[np.ndarray]:
    """Split a compact array of ``fmt`` into visible planes."""
    if array.dtype != np.uint8:
        raise ShapeError(f"{fmt} array: expected dtype uint8, got {array.dtype}")
    if fmt in PACKED_FORMATS:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ShapeError(f"{fmt} array: expected shape (H, W, 3), got {array.shape}")
        return [array]
    if fmt == "gray8":
        if array.ndim != 2:
            raise ShapeError(f"gray8 array: expected shape (H, W), got {array.shape}")
        return [array]
    if array.ndim != 2 or array.shape[0] % 3 or array.shape[1] % 2:
        raise ShapeError(f"{fmt} array: expected shape (H * 3 // 2, W) with even H and W, "
                         f"got {array.shape}")
    h, w = array.shape[0] * 2 // 3, array.shape[1]
    y = array[:h]
    if fmt in ("nv12", "nv21"):
        return [y, array[h:].reshape(h // 2, w // 2, 2)]
    flat = array[h:].reshape(-1)
    q = (h // 2) * (w // 2)
    return [y, flat[:q].reshape(h // 2, w // 2), flat[q:].reshape(h // 2, w // 2)]
