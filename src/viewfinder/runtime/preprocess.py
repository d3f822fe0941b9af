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

__all__ = ["ModelInput", "Preprocessor", "SizeArg", "darknet_fit", "darknet_resize",
           "image_to_tensor", "input_transform"]

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
        """The image -> input transform for an image of this size (and box, for crops).

        Its inverse maps input coordinates back to the image (for ``"darknet"``, as
        Darknet's ``correct_yolo_boxes``: the offset ``(W - new_w) / 2`` unrounded).
        """
        spec = self.spec
        out_w, out_h = self.input_size(width, height)
        interp = "bilinear" if spec.interpolation == "darknet" else spec.interpolation
        if spec.resize == "crop" and box is not None:
            x1, y1, x2, y2 = (float(v) for v in np.asarray(box, np.float64).reshape(4))
            s = min(out_w, out_h) / (spec.crop_margin * max(x2 - x1, y2 - y1, 1e-6))
            return AffineTransform(s, s, out_w / 2 - (x1 + x2) / 2 * s,
                                   out_h / 2 - (y1 + y2) / 2 * s, out_w, out_h, width, height,
                                   pad_value=spec.pad_value, interpolation=interp)
        if spec.resize == "letterbox" and spec.interpolation == "darknet":
            new_w, new_h = darknet_fit(width, height, out_w, out_h)
            tx, ty = ((out_w - new_w) / 2, (out_h - new_h) / 2) if spec.center else (0.0, 0.0)
            return AffineTransform(new_w / width, new_h / height, tx, ty, out_w, out_h, width,
                                   height, pad_value=spec.pad_value, interpolation=interp)
        if spec.resize == "letterbox":
            return letterbox(width, height, out_w, out_h, center=spec.center,
                             pad_value=spec.pad_value, interpolation=interp)
        return resize_to(width, height, out_w, out_h, interpolation=interp)

    def __call__(self, image: np.ndarray, box: np.ndarray | None = None) -> ModelInput:
        """Preprocess one ``(H, W, 3)`` BGR uint8 image.

        Args:
            image: The image (what :func:`viewfinder.media.image.read_image` returns).
            box: ``resize="crop"`` models: the ``(x1, y1, x2, y2)`` box to crop around;
                None treats the image as the crop (resized to the input size).

        Raises:
            FormatError, ShapeError, SizeError: not a ``(H, W, 3)`` uint8 image.
        """
        _check_image(image)
        t = self.transform(image.shape[1], image.shape[0], box)
        planes = self._planes(image, t, box)
        spec = self.spec
        h, w = planes[0].shape
        x0, y0 = math.floor(t.tx), math.floor(t.ty)
        if spec.resize == "crop" and box is not None:
            x0 = y0 = 0  # the crop is the whole input
        pad = (np.float32(spec.pad_value) - np.asarray(spec.mean, np.float32)) \
            / np.asarray(spec.std, np.float32)
        full = (h, w) == (t.out_h, t.out_w)
        if spec.layout == "NCHW":
            x = np.empty((1, 3, t.out_h, t.out_w), np.float32)
            for c in range(3):
                if not full:
                    x[0, c] = pad[c]
                x[0, c, y0:y0 + h, x0:x0 + w] = planes[c]
        else:
            x = np.empty((1, t.out_h, t.out_w, 3), np.float32)
            x[0] = pad
            for c in range(3):
                x[0, y0:y0 + h, x0:x0 + w, c] = planes[c]
        if spec.dtype != "float32":
            x = x.astype(np.dtype(spec.dtype))
        return ModelInput(x, t.inverse())

    def _planes(self, image: np.ndarray, t: AffineTransform, box: np.ndarray | None
                ) -> list[np.ndarray]:
        """The placed picture as 3 normalised float32 planes in the model's channel order
        (the padding is added by the caller, as a float: 0.5 exactly for Darknet)."""
        import cv2

        spec = self.spec
        order = (2, 1, 0) if spec.color == "RGB" else (0, 1, 2)
        if spec.resize == "crop" and box is not None:
            from viewfinder.media.resize import INTERPOLATIONS

            m = np.array([[t.sx, 0.0, t.tx], [0.0, t.sy, t.ty]])
            placed = cv2.warpAffine(image, m, (t.out_w, t.out_h),
                                    flags=INTERPOLATIONS[t.interpolation],
                                    borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=(spec.pad_value,) * 3)
        elif spec.interpolation == "darknet":  # normalise, then Darknet's float resize
            bgr = cv2.split(image)
            norm = np.stack([cv2.LUT(bgr[src], self._lut[c]) for c, src in enumerate(order)])
            new_w, new_h = round(t.in_w * t.sx), round(t.in_h * t.sy)
            return list(darknet_resize(norm, new_w, new_h))
        else:
            placed = _resized(image, t)
        split = cv2.split(placed)  # contiguous planes: cv2.LUT is ~5x np.take
        return [cv2.LUT(split[src], self._lut[c]) for c, src in enumerate(order)]


def darknet_fit(in_w: int, in_h: int, net_w: int, net_h: int) -> tuple[int, int]:
    """``(new_w, new_h)`` inside a Darknet letterbox: ``letterbox_image`` compares the two
    scales in float32, fits the longer side exactly and truncates the other."""
    if np.float32(net_w) / np.float32(in_w) < np.float32(net_h) / np.float32(in_h):
        return net_w, max(1, in_h * net_w // in_w)
    return max(1, in_w * net_h // in_h), net_h


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and weight per output position: ``s = i * (float)(n_in - 1) /
    (n_out - 1)`` in float32, ``ix = (int)s``, ``dx = s - ix`` (corners aligned)."""
    if n_out == 1 or n_in == 1:
        return np.full(n_out, n_in - 1, np.int64), np.zeros(n_out, np.float32)
    s = np.arange(n_out, dtype=np.float32) * (np.float32(n_in - 1) / np.float32(n_out - 1))
    ix = np.minimum(s.astype(np.int64), n_in - 1)
    return ix, s - ix.astype(np.float32)


def darknet_resize(planes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's ``resize_image`` of ``(C, H, W)`` float32 planes -> ``(C, h, w)``.

    Bilinear with corners aligned, two float32 passes (across, then down; the last
    output row takes only ``(1 - dy)`` of its source row, as Darknet skips the second
    tap there), operation for operation, so the result is bit-identical to Darknet's.
    """
    _, in_h, in_w = planes.shape
    ix, dx = _taps(in_w, w)
    iy, dy = _taps(in_h, h)
    down = h > 1 and in_h > 1
    rows = np.unique(np.concatenate([iy, iy[:-1] + 1])) if down else np.unique(iy)
    src = np.ascontiguousarray(planes.take(rows, axis=1), np.float32)
    part = src.take(ix, axis=2)
    if w > 1 and in_w > 1:
        part *= np.float32(1) - dx
        right = src.take(np.minimum(ix + 1, in_w - 1), axis=2)
        right *= dx
        part += right
        part[:, :, -1] = src[:, :, -1]
    out = part.take(np.searchsorted(rows, iy), axis=1)
    if down:
        out *= (np.float32(1) - dy)[:, None]
        below = part.take(np.searchsorted(rows, iy[:-1] + 1), axis=1)
        below *= dy[:-1, None]
        out[:, :-1] += below
    return out


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
