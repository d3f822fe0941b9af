"""Image to tensor, as a model's :class:`~viewfinder.runtime.specs.InputSpec` declares.

The spec owns its preprocessing (torchvision's ``weights.transforms()`` idea)::

    pre = zoo.get_model("scrfd_500m").preprocess("auto")
    tensor, inverse = pre(image_bgr)          # (1, 3, H, W) float32, input -> image
    boxes_in_image = inverse.apply_box(boxes_in_input)

Stages: geometry (letterbox top-left or centred with the spec's pad value, stretch,
or a square crop around a box), channel order, ``(x - mean) / std`` through a
256-entry table per channel (exact to float32 rounding), layout. This is the NumPy
reference of what the task packages feed their models; ``tests/runtime/
test_runtime_spec_preprocess.py`` holds every zoo spec against its detector.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from viewfinder.errors import ConfigError, FormatError, ShapeError, SizeError
from viewfinder.media.transforms import AffineTransform, letterbox, resize_to
from viewfinder.runtime.specs import InputSpec

__all__ = ["ModelInput", "Preprocessor", "SizeArg", "image_to_tensor", "input_transform"]

#: ``(width, height)``, ``"auto"`` or None: see :meth:`InputSpec.preprocess`.
SizeArg = tuple[int, int] | str | None


class ModelInput(NamedTuple):
    """What a :class:`Preprocessor` returns for one image.

    Attributes:
        tensor: ``(1, C, H, W)`` (or NHWC) in the spec's dtype.
        inverse: Maps input-tensor coordinates back to image coordinates
            (``inverse.apply_box(boxes)``, ``inverse.apply_coords(points)``).
    """

    tensor: np.ndarray
    inverse: AffineTransform

    @property
    def transform(self) -> AffineTransform:
        """The forward transform, image -> input."""
        return self.inverse.inverse()


class Preprocessor:
    """A BGR uint8 image (and, for crop models, a box) -> :class:`ModelInput`.

    Args:
        spec: The model's input spec.
        size: See :meth:`InputSpec.preprocess`.

    Raises:
        ConfigError: ``size`` given for a fixed-size model that differs from it, or an
            unknown size text. SizeError: a size that is not positive or not a multiple of
            the spec's ``multiple``.
    """

    def __init__(self, spec: InputSpec, size: SizeArg = None) -> None:
        self.spec = spec
        self.size = self._check_size(size)
        lut = np.arange(256, dtype=np.float32)[None, :].repeat(3, 0)
        lut -= np.asarray(spec.mean, np.float32)[:, None]
        lut /= np.asarray(spec.std, np.float32)[:, None]
        self._lut = lut  # one row per model channel

    def _check_size(self, size: SizeArg) -> tuple[int, int] | str | None:
        spec = self.spec
        if size is None:
            return None
        if isinstance(size, str):
            if size != "auto":
                raise ConfigError(f"input {spec.name}: size {size!r}, expected (w, h) or 'auto'")
            return None if spec.size is not None else "auto"
        w, h = (int(v) for v in size)
        if spec.size is not None and (w, h) != spec.size:
            raise ConfigError(f"input {spec.name}: fixed at {spec.size[0]}x{spec.size[1]}, "
                              f"cannot run at {w}x{h}")
        if w <= 0 or h <= 0 or w % spec.multiple or h % spec.multiple:
            raise SizeError(f"input {spec.name}: size {w}x{h}, expected positive multiples "
                            f"of {spec.multiple}")
        return (w, h)

    def __repr__(self) -> str:
        s = self.spec
        return (f"Preprocessor({s.name}: {s.resize} to {self.size or s.image_size}, "
                f"{s.color}, mean {s.mean}, std {s.std}, {s.layout})")

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """The input ``(width, height)`` used for a ``width`` x ``height`` image."""
        if self.size == "auto":
            m = self.spec.multiple
            side = max(self.spec.default_size)
            s = side / max(width, height)
            return (max(m, math.ceil(width * s / m) * m), max(m, math.ceil(height * s / m) * m))
        if isinstance(self.size, tuple):
            return self.size
        return self.spec.image_size

    def transform(self, width: int, height: int,
                  box: np.ndarray | None = None) -> AffineTransform:
        """The image -> input transform for an image of this size (and box, for crops)."""
        spec = self.spec
        out_w, out_h = self.input_size(width, height)
        if spec.resize == "crop" and box is not None:
            x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
            s = min(out_w, out_h) / (spec.crop_margin * max(x2 - x1, y2 - y1, 1e-6))
            return AffineTransform(s, s, out_w / 2 - (x1 + x2) / 2 * s,
                                   out_h / 2 - (y1 + y2) / 2 * s, out_w, out_h, width, height,
                                   pad_value=spec.pad_value)
        if spec.resize == "letterbox":
            return letterbox(width, height, out_w, out_h, center=spec.center,
                             pad_value=spec.pad_value)
        return resize_to(width, height, out_w, out_h)

    def place(self, image: np.ndarray, box: np.ndarray | None = None
              ) -> tuple[np.ndarray, AffineTransform]:
        """The geometric stage alone: the placed uint8 BGR image and its transform."""
        _check_image(image)
        t = self.transform(image.shape[1], image.shape[0], box)
        if self.spec.resize == "crop" and box is not None:
            import cv2

            m = np.array([[t.sx, 0.0, t.tx], [0.0, t.sy, t.ty]])
            placed = cv2.warpAffine(image, m, (t.out_w, t.out_h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=(self.spec.pad_value,) * 3)
            return placed, t
        return t.apply_image(image), t

    def __call__(self, image: np.ndarray, box: np.ndarray | None = None) -> ModelInput:
        """Preprocess one ``(H, W, 3)`` BGR uint8 image.

        Args:
            image: The image (what :func:`viewfinder.media.image.read_image` returns).
            box: ``resize="crop"`` models: the ``(x1, y1, x2, y2)`` box to crop around;
                None treats the image as the crop (resized to the input size).

        Raises:
            FormatError, ShapeError: not a ``(H, W, 3)`` uint8 image.
        """
        spec = self.spec
        if spec.resize == "crop" and box is not None:
            placed, t = self.place(image, box)
            x0 = y0 = 0
        else:  # resize only; the padding is written as a float (0.5 for Darknet's 127.5)
            _check_image(image)
            t = self.transform(image.shape[1], image.shape[0])
            placed = _resized(image, t)
            x0, y0 = round(t.tx), round(t.ty)
        import cv2

        order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
        h, w = placed.shape[:2]
        pad = (np.float32(spec.pad_value) - np.asarray(spec.mean, np.float32)) \
            / np.asarray(spec.std, np.float32)
        planes = cv2.split(placed)  # contiguous planes: cv2.LUT is ~5x np.take
        if spec.layout == "NCHW":
            x = np.empty((1, 3, t.out_h, t.out_w), np.float32)
            for c, src in enumerate(order):
                if (h, w) != (t.out_h, t.out_w):
                    x[0, c] = pad[c]
                cv2.LUT(planes[src], self._lut[c], dst=x[0, c, y0:y0 + h, x0:x0 + w])
        else:
            x = np.empty((1, t.out_h, t.out_w, 3), np.float32)
            x[0] = pad
            for c, src in enumerate(order):
                x[0, y0:y0 + h, x0:x0 + w, c] = cv2.LUT(planes[src], self._lut[c])
        if spec.dtype != "float32":
            x = x.astype(np.dtype(spec.dtype))
        return ModelInput(x, t.inverse())


def _resized(image: np.ndarray, t: AffineTransform) -> np.ndarray:
    """The image resized to its placed size (the transform's scale), not yet placed."""
    from viewfinder.media.resize import resize_array

    new_w, new_h = round(t.in_w * t.sx), round(t.in_h * t.sy)
    if (new_w, new_h) == (t.in_w, t.in_h):
        return image
    return resize_array(image, new_w, new_h, t.interpolation)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = getattr(image, "dtype", type(image).__name__)
        raise FormatError(f"image: expected a uint8 NumPy image, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ShapeError(f"image: expected shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise SizeError(f"image: empty image of shape {image.shape}")


def input_transform(width: int, height: int, spec: InputSpec,
                    size: tuple[int, int] | None = None) -> AffineTransform:
    """The geometric transform from a ``width`` × ``height`` image to the model input.

    Args:
        width: Image width.
        height: Image height.
        spec: The model's input spec.
        size: ``(width, height)`` of the input for dynamic models (default: the spec's).
    """
    return Preprocessor(spec, size).transform(width, height)


def image_to_tensor(image_bgr: np.ndarray, spec: InputSpec,
                    size: tuple[int, int] | None = None) -> np.ndarray:
    """Turn one BGR uint8 image into a ``(1, C, H, W)`` (or NHWC) tensor.

    Same as ``spec.preprocess(size)(image_bgr).tensor``.

    Raises:
        FormatError, ShapeError: the image is not ``(H, W, 3)`` uint8.
    """
    return Preprocessor(spec, size)(image_bgr).tensor
