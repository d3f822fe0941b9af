"""Model conversion: fused preprocessing, batch/spatial dims, fp16 and int8 (ATC/AIPP-like).

Entry points:

* :func:`convert_model` — shapes, precision, preprocessing fused as ONNX ops, verified
  against NumPy preprocessing + the original model, written atomically.
* :func:`dynamic_batch` — a cached dynamic-batch copy of a model (for batched inference).
* :class:`PreprocessSpec`, :class:`ConvertOptions`, :func:`load_config` — what to do,
  in code or from a TOML file.
* :func:`preprocess_numpy` — the same preprocessing in NumPy (the reference).
"""

from __future__ import annotations

from viewfinder.runtime.convert.cached import converted_dir, dynamic_batch
from viewfinder.runtime.convert.config import ConvertOptions, load_config, merge
from viewfinder.runtime.convert.pipeline import convert_model, verify_against_reference
from viewfinder.runtime.convert.preprocess import fuse_preprocessing
from viewfinder.runtime.convert.reference import nv12_to_rgb, preprocess_numpy, rgb_to_nv12
from viewfinder.runtime.convert.shapes import check_batch_items, set_batch, set_spatial
from viewfinder.runtime.convert.spec import PreprocessSpec
from viewfinder.runtime.convert.summary import ConvertReport, format_report

__all__ = [
    "ConvertOptions",
    "ConvertReport",
    "PreprocessSpec",
    "check_batch_items",
    "convert_model",
    "converted_dir",
    "dynamic_batch",
    "format_report",
    "fuse_preprocessing",
    "load_config",
    "merge",
    "nv12_to_rgb",
    "preprocess_numpy",
    "rgb_to_nv12",
    "set_batch",
    "set_spatial",
    "verify_against_reference",
]
