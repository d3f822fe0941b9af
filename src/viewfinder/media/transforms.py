"""Geometric transforms that know their inverse (detectron2's ``Transform`` idea).

A transform maps an image to the network's input and maps points back:
``t.apply_image(img)`` then ``t.inverse().apply_coords(points)`` takes points
found in the network input back to the original image. Coordinates are continuous
pixels (x right, y down, the top-left corner of the first pixel at 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewfinder.errors import SizeError

__all__ = ["AffineTransform", "letterbox", "resize_to"]


@dataclass(frozen=True)
class AffineTransform:
    """``x' = sx * x + tx``, ``y' = sy * y + ty``, onto an ``out_w`` × ``out_h`` canvas.

    Covers resize, crop, pad and letterbox. ``apply_image`` works on ``(H, W)`` or
    ``(H, W, C)`` uint8/float arrays; padding is filled with ``pad_value``. Resizing
    goes through :func:`viewfinder.media.resize.resize_array` (``interpolation`` is
    ``"nearest"``, ``"bilinear"`` or ``"area"``).
    """

    sx: float
    sy: float
    tx: float
    ty: float
    out_w: int
    out_h: int
    in_w: int
    in_h: int
    pad_value: float = 0.0
    interpolation: str = "bilinear"

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """Map ``(..., 2)`` xy points forward."""
        pts = np.asarray(coords, dtype=np.float32)
        out = np.empty_like(pts)
        out[..., 0] = pts[..., 0] * self.sx + self.tx
        out[..., 1] = pts[..., 1] * self.sy + self.ty
        return out

    def apply_box(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` xyxy boxes forward (scales are positive, so corners stay ordered)."""
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 2, 2)
        return self.apply_coords(b).reshape(-1, 4)

    def inverse(self) -> AffineTransform:
        """The transform mapping output coordinates back to input coordinates."""
        return AffineTransform(
            1.0 / self.sx, 1.0 / self.sy, -self.tx / self.sx, -self.ty / self.sy,
            self.in_w, self.in_h, self.out_w, self.out_h, self.pad_value, self.interpolation,
        )

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Warp an image onto the output canvas (resize + place, no rotation)."""
        h, w = image.shape[:2]
        if (w, h) != (self.in_w, self.in_h):
            raise SizeError(f"image is {w}x{h}, transform expects {self.in_w}x{self.in_h}")
        new_w, new_h = round(w * self.sx), round(h * self.sy)
        x0, y0 = round(self.tx), round(self.ty)
        from viewfinder.media.resize import resize_array

        if (x0, y0, new_w, new_h) == (0, 0, self.out_w, self.out_h):
            return resize_array(image, new_w, new_h, self.interpolation)
        canvas = np.full((self.out_h, self.out_w) + image.shape[2:], self.pad_value, image.dtype)
        resized = resize_array(image, new_w, new_h, self.interpolation)
        # paste the visible part (crop transforms have negative offsets)
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        cw = min(new_w - sx0, self.out_w - dx0)
        ch = min(new_h - sy0, self.out_h - dy0)
        if cw > 0 and ch > 0:
            canvas[dy0:dy0 + ch, dx0:dx0 + cw] = resized[sy0:sy0 + ch, sx0:sx0 + cw]
        return canvas


def resize_to(in_w: int, in_h: int, out_w: int, out_h: int,
              interpolation: str = "bilinear") -> AffineTransform:
    """Stretch ``in_w`` × ``in_h`` to exactly ``out_w`` × ``out_h``."""
    _check_sizes(in_w, in_h, out_w, out_h)
    return AffineTransform(out_w / in_w, out_h / in_h, 0.0, 0.0, out_w, out_h, in_w, in_h,
                           interpolation=interpolation)


def letterbox(in_w: int, in_h: int, out_w: int, out_h: int, *, center: bool = True,
              pad_value: float = 0.0, interpolation: str = "bilinear") -> AffineTransform:
    """Keep aspect ratio, fit inside ``out_w`` × ``out_h`` and pad the rest.

    Args:
        center: Pad equally on both sides (YOLO style); False pads right/bottom only
            (SCRFD/InsightFace style).
    """
    _check_sizes(in_w, in_h, out_w, out_h)
    scale = min(out_w / in_w, out_h / in_h)
    new_w, new_h = max(1, round(in_w * scale)), max(1, round(in_h * scale))
    sx, sy = new_w / in_w, new_h / in_h
    tx = (out_w - new_w) // 2 if center else 0
    ty = (out_h - new_h) // 2 if center else 0
    return AffineTransform(sx, sy, float(tx), float(ty), out_w, out_h, in_w, in_h,
                           pad_value=pad_value, interpolation=interpolation)


def _check_sizes(*sizes: int) -> None:
    if any(int(s) <= 0 for s in sizes):
        raise SizeError(f"sizes must be positive, got {sizes}")
