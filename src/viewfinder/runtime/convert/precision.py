"""fp16 conversion (weights and compute in half precision, float32 I/O kept by default)."""

from __future__ import annotations

import warnings

import onnx

from viewfinder.errors import MissingDependencyError

__all__ = ["to_fp16"]


def to_fp16(model: onnx.ModelProto, keep_io_types: bool = True) -> onnx.ModelProto:
    """Convert a float32 model to float16 with ``onnxconverter-common``.

    Ops without a half-precision definition (``Resize``, ``TopK``, ...) stay float32
    behind inserted ``Cast`` nodes.

    Args:
        model: The float32 model.
        keep_io_types: Keep float32 inputs and outputs (Cast at the edges), so callers
            and fused preprocessing do not change.

    Raises:
        MissingDependencyError: onnxconverter-common is not installed (extra ``convert``).
    """
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependencyError("onnxconverter-common", "convert", "fp16 conversion") from exc
    with warnings.catch_warnings():  # it warns once per weight clipped to the fp16 range
        warnings.simplefilter("ignore", UserWarning)
        return float16.convert_float_to_float16(model, keep_io_types=keep_io_types)
