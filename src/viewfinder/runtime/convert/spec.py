"""What the fused preprocessing does: a validated description (the AIPP config's content)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewfinder.errors import ConfigError, SizeError

__all__ = ["COLOR_MATRICES", "INPUT_FORMATS", "PACKED_FORMATS", "PreprocessSpec", "yuv_to_rgb_affine"]

#: ``bgra``/``rgba``: 4-channel uint8 NHWC whose 4th channel is ignored (AIPP's
#: XRGB/RGBX-style inputs; OpenCV crops 4-channel images faster than 3-channel ones).
INPUT_FORMATS = ("float", "rgb", "bgr", "bgra", "rgba", "nv12")
PACKED_FORMATS = ("rgb", "bgr", "bgra", "rgba")
# (Kr, Kb) luma coefficients of the colour standards.
COLOR_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
COLOR_RANGES = ("limited", "full")


@dataclass(frozen=True)
class PreprocessSpec:
    """Preprocessing fused in front of a model whose input is float NCHW, 3 channels.

    Stages, in order: decode layout (uint8 NHWC RGB/BGR, or NV12 to RGB), crop,
    resize to the model's size, channel order, then ``(x - mean) / std``.

    Attributes:
        input: ``"float"`` (keep the model's input), ``"rgb"``/``"bgr"`` (uint8 NHWC),
            ``"bgra"``/``"rgba"`` (uint8 NHWC, 4 channels, the 4th ignored),
            or ``"nv12"`` (uint8 ``[N, H*3/2, W]``: Y plane then interleaved UV).
        width: Input image width (required for NV12; optional for RGB/BGR, where
            None keeps the model's width, or a dynamic width when resizing).
        height: Input image height, as ``width``.
        color_matrix: NV12 only: ``"bt601"`` or ``"bt709"``.
        color_range: NV12 only: ``"limited"`` (Y 16..235) or ``"full"`` (0..255).
        model_channels: Channel order the model expects, ``"rgb"`` or ``"bgr"``.
        mean: Per model channel, subtracted after the channel swap.
        std: Per model channel, divided by after subtracting ``mean``.
        crop: ``(x, y, w, h)`` in input pixels, applied before resizing.
        resize: Bilinear resize (half-pixel centres) to the model's fixed height/width.
        input_name: Which model input to preprocess (None: the only one).
    """

    input: str = "float"
    width: int | None = None
    height: int | None = None
    color_matrix: str = "bt601"
    color_range: str = "limited"
    model_channels: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    crop: tuple[int, int, int, int] | None = None
    resize: bool = False
    input_name: str | None = None

    def __post_init__(self) -> None:
        _choice("input", self.input, INPUT_FORMATS)
        _choice("color_matrix", self.color_matrix, tuple(COLOR_MATRICES))
        _choice("color_range", self.color_range, COLOR_RANGES)
        _choice("model_channels", self.model_channels, ("rgb", "bgr"))
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3:
                raise ConfigError(f"preprocess {name}: expected 3 values, got {len(values)}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if not all(math.isfinite(v) for v in self.mean):
            raise ConfigError(f"preprocess mean: expected finite numbers, got {list(self.mean)}")
        if any(s == 0 for s in self.std):
            raise ConfigError(f"preprocess std: must not be 0, got {list(self.std)}")
        if not all(math.isfinite(s) and math.isfinite(1.0 / s) for s in self.std):
            raise ConfigError(f"preprocess std: expected finite numbers whose inverse is "
                              f"finite, got {list(self.std)}")
        self._check_sizes()

    def _check_sizes(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SizeError(f"preprocess {name}: expected a positive size, got {value}")
        if self.input == "nv12":
            if self.width is None or self.height is None:
                raise SizeError("preprocess input nv12: width and height are required")
            if self.width % 2 or self.height % 2:
                raise SizeError(f"preprocess input nv12: width and height must be even, got "
                                f"{self.width}x{self.height}")
        if self.crop is not None:
            self._check_crop()

    def _check_crop(self) -> None:
        if len(self.crop) != 4:
            raise ConfigError(f"preprocess crop: expected [x, y, w, h], got {list(self.crop)}")
        x, y, w, h = (int(v) for v in self.crop)
        object.__setattr__(self, "crop", (x, y, w, h))
        if x < 0 or y < 0 or w < 1 or h < 1:
            raise SizeError(f"preprocess crop {[x, y, w, h]}: offsets must be >= 0, sizes > 0")
        if self.width is not None and x + w > self.width:
            raise SizeError(f"preprocess crop {[x, y, w, h]}: x + w = {x + w} exceeds width "
                            f"{self.width}")
        if self.height is not None and y + h > self.height:
            raise SizeError(f"preprocess crop {[x, y, w, h]}: y + h = {y + h} exceeds height "
                            f"{self.height}")

    @property
    def input_channels(self) -> str:
        """Channel order of the decoded image: ``"bgr"`` for BGR input, else ``"rgb"``."""
        return "bgr" if self.input in ("bgr", "bgra") else "rgb"

    @property
    def channels(self) -> int:
        """Channels of a packed (NHWC) input: 4 for ``bgra``/``rgba``, else 3."""
        return 4 if self.input in ("bgra", "rgba") else 3

    @property
    def swaps_channels(self) -> bool:
        """True when the decoded order differs from the model's (float input: never)."""
        return self.input != "float" and self.input_channels != self.model_channels

    @property
    def normalizes(self) -> bool:
        """True unless mean is 0 and std is 1."""
        return self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0)

    @property
    def is_identity(self) -> bool:
        """True when the spec changes nothing about the model's input."""
        return (self.input == "float" and not self.normalizes and self.crop is None
                and not self.resize)


def yuv_to_rgb_affine(matrix: str, color_range: str) -> tuple[np.ndarray, np.ndarray]:
    """``(M, b)`` with ``rgb = M @ [y, u, v] + b`` for 8-bit YUV (float64).

    Args:
        matrix: ``"bt601"`` or ``"bt709"``.
        color_range: ``"limited"`` (Y 16..235, chroma 16..240) or ``"full"``.
    """
    kr, kb = COLOR_MATRICES[matrix]
    kg = 1.0 - kr - kb
    base = np.array([
        [1.0, 0.0, 2.0 * (1.0 - kr)],
        [1.0, -2.0 * kb * (1.0 - kb) / kg, -2.0 * kr * (1.0 - kr) / kg],
        [1.0, 2.0 * (1.0 - kb), 0.0],
    ])
    if color_range == "limited":
        scale = np.diag([255.0 / 219.0, 255.0 / 224.0, 255.0 / 224.0])
        offset = np.array([16.0, 128.0, 128.0])
    else:
        scale = np.eye(3)
        offset = np.array([0.0, 128.0, 128.0])
    m = base @ scale
    return m, -m @ offset


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"preprocess {name} {value!r}: expected one of {', '.join(allowed)}")
