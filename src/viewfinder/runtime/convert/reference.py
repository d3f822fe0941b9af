"""The same preprocessing in NumPy: the reference the fused ONNX ops are tested against.

Also used to feed calibration images to int8 quantization, and by the benchmark as
the "preprocess in NumPy, then run the original model" baseline. It shares no code
with the graph builder (:mod:`viewfinder.runtime.convert.preprocess`) but the colour
matrix definition, so a mistake in one shows up as a difference in the tests.
"""

from __future__ import annotations

import numpy as np

from viewfinder.errors import ShapeError
from viewfinder.runtime.convert.spec import PreprocessSpec, yuv_to_rgb_affine

__all__ = ["bilinear_resize", "normalize_affine", "nv12_to_rgb", "preprocess_numpy",
           "rgb_to_nv12"]


def normalize_affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)``: model input = ``W @ decoded + b`` per pixel (channel swap and mean/std)."""
    order = [2, 1, 0] if spec.swaps_channels else [0, 1, 2]
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float64)
    weight = np.zeros((3, 3))
    weight[np.arange(3), order] = inv_std
    return weight, -np.asarray(spec.mean, dtype=np.float64) * inv_std


def nv12_to_rgb(nv12: np.ndarray, matrix: str = "bt601", color_range: str = "limited"
                ) -> np.ndarray:
    """``[N, H*3/2, W]`` uint8 NV12 -> ``[N, 3, H, W]`` float32 RGB in 0..255 (not rounded)."""
    n, rows, w = nv12.shape
    h = rows * 2 // 3
    y = nv12[:, :h].astype(np.float64)
    uv = nv12[:, h:].reshape(n, h // 2, w // 2, 2).astype(np.float64)
    uv = uv.repeat(2, axis=1).repeat(2, axis=2)
    yuv = np.stack([y, uv[..., 0], uv[..., 1]], axis=1)
    m, b = yuv_to_rgb_affine(matrix, color_range)
    rgb = np.einsum("ij,njhw->nihw", m, yuv) + b[None, :, None, None]
    return np.clip(rgb, 0.0, 255.0).astype(np.float32)


def rgb_to_nv12(rgb: np.ndarray, matrix: str = "bt601", color_range: str = "limited"
                ) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[H*3/2, W]`` uint8 NV12 (chroma: 2×2 mean), as encoders do."""
    h, w, _ = rgb.shape
    if h % 2 or w % 2:
        raise ShapeError(f"image: NV12 needs even height and width, got {w}x{h}")
    m, b = yuv_to_rgb_affine(matrix, color_range)
    yuv = np.einsum("ij,hwj->hwi", np.linalg.inv(m), rgb.astype(np.float64) - b)
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([yuv[..., 0], chroma.reshape(h // 2, w)], axis=0)
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def bilinear_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Resize ``[N, C, H, W]`` float with half-pixel centres, edge-clamped, no antialias.

    This is ONNX ``Resize(mode=linear, coordinate_transformation_mode=half_pixel)`` and
    OpenCV's ``INTER_LINEAR`` on float images.
    """
    x = _resize_axis(x.astype(np.float64), out_h, axis=2)
    return _resize_axis(x, out_w, axis=3).astype(np.float32)


def _resize_axis(x: np.ndarray, out: int, axis: int) -> np.ndarray:
    size = x.shape[axis]
    src = (np.arange(out) + 0.5) * (size / out) - 0.5
    src = np.clip(src, 0.0, size - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size - 1)
    frac = src - lo
    shape = [1] * x.ndim
    shape[axis] = out
    frac = frac.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac


def preprocess_numpy(image: np.ndarray, spec: PreprocessSpec,
                     model_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Apply ``spec`` in NumPy: decoded input -> the original model's float NCHW input.

    Args:
        image: What the fused model takes: ``[N, H, W, 3]`` uint8 for RGB/BGR
            (``[N, H, W, 4]`` for BGRA/RGBA, the 4th channel ignored),
            ``[N, H*3/2, W]`` uint8 for NV12, ``[N, 3, H, W]`` float for ``"float"``.
        spec: The preprocessing.
        model_hw: The model's (height, width); required when ``spec.resize``.

    Returns:
        float32 ``[N, 3, h, w]``.
    """
    if spec.input == "nv12":
        x = nv12_to_rgb(image, spec.color_matrix, spec.color_range)
    elif spec.input in ("rgb", "bgr", "bgra", "rgba"):
        x = np.ascontiguousarray(image[..., :3].transpose(0, 3, 1, 2)).astype(np.float32)
    else:
        x = image.astype(np.float32)
    if spec.crop is not None:
        cx, cy, cw, ch = spec.crop
        x = x[:, :, cy:cy + ch, cx:cx + cw]
    if spec.resize:
        if model_hw is None:
            raise ShapeError("preprocess_numpy: resize needs the model's (height, width)")
        x = bilinear_resize(x, *model_hw)
    weight, bias = normalize_affine(spec)
    out = np.einsum("ij,njhw->nihw", weight, x.astype(np.float64)) + bias[None, :, None, None]
    return out.astype(np.float32)
