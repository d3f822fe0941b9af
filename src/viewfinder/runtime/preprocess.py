"""Image to tensor, as a model's :class:`~viewfinder.runtime.specs.InputSpec` declares.

The NumPy reference of what every task package (and the fused-preprocessing
converter) does in front of a model: resize (letterbox, stretch or plain resize
for crops), channel order, ``(x - mean) / std``, layout.
"""

from __future__ import annotations

import numpy as np

from viewfinder.errors import ShapeError
from viewfinder.media.transforms import AffineTransform, letterbox, resize_to
from viewfinder.runtime.specs import InputSpec

__all__ = ["image_to_tensor", "input_transform"]


def input_transform(width: int, height: int, spec: InputSpec,
                    size: tuple[int, int] | None = None) -> AffineTransform:
    """The geometric transform from a ``width`` × ``height`` image to the model input.

    Args:
        width: Image width.
        height: Image height.
        spec: The model's input spec.
        size: ``(width, height)`` of the input for dynamic models (default: the spec's).
    """
    out_w, out_h = size or spec.image_size
    if spec.resize == "letterbox":
        return letterbox(width, height, out_w, out_h, center=False)
    return resize_to(width, height, out_w, out_h)


def image_to_tensor(image_bgr: np.ndarray, spec: InputSpec,
                    size: tuple[int, int] | None = None) -> np.ndarray:
    """Turn one BGR uint8 image into a ``(1, C, H, W)`` (or NHWC) float32 tensor.

    Args:
        image_bgr: ``(H, W, 3)`` uint8, BGR (what :func:`viewfinder.media.image.read_image`
            returns by default).
        spec: The model's input spec.
        size: ``(width, height)`` for dynamic models (default: the spec's default size).

    Raises:
        ShapeError: the image is not ``(H, W, 3)``.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ShapeError(f"image: expected shape (H, W, 3), got {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    placed = input_transform(w, h, spec, size).apply_image(image_bgr)
    if spec.color == "RGB":
        placed = placed[..., ::-1]
    x = placed.astype(np.float32)
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    if mean.any():
        x -= mean
    if (std != 1).any():
        x /= std
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.dtype(spec.dtype))
