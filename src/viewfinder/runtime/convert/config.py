"""Conversion options and the TOML preprocessing config file (the AIPP cfg's analogue).

Example (every key optional; see docs/convert.md)::

    [preprocess]
    input = "nv12"            # float | rgb | bgr | bgra | rgba | nv12
    width = 640
    height = 480
    color_matrix = "bt601"    # bt601 | bt709   (nv12)
    color_range = "limited"   # limited | full  (nv12)
    model_channels = "rgb"    # the order the model expects
    mean = [127.5, 127.5, 127.5]
    std = [128.0, 128.0, 128.0]   # or: scale = 0.0078125
    crop = [0, 0, 640, 480]   # x, y, w, h
    resize = false

    [shape]
    batch = "dynamic"         # or an int
    size = [640, 480]         # fix the model's width, height

    [precision]
    dtype = "int8"            # f32 | fp16 | int8  (fp32 is accepted for f32)
    calibration = "calib/"    # relative to this file
    calibration_limit = 32
    quant_format = "qoperator"  # qoperator | qdq
    per_channel = true
    keep_edges_float = true   # first and last Conv/Gemm layers stay float
    calibrate_method = "minmax"  # minmax | percentile | entropy (YOLO default: percentile)

    [graph]
    optimize = true           # PRelu -> Relu/Mul/Add (2x faster on ORT CPU for 2d106det)
    prelu_to_relu = 0.001     # inexact: PRelu with all |slopes| <= this becomes Relu
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from viewfinder.errors import ConfigError
from viewfinder.fileio import check_readable
from viewfinder.runtime.convert.spec import PreprocessSpec
from viewfinder.runtime.specs import normalize_precision

__all__ = ["PRECISIONS", "ConvertOptions", "load_config", "merge", "parse_batch"]

#: What a converted file can hold (bf16 is a runtime precision: OpenVINO's inference hint).
PRECISIONS = ("f32", "fp16", "int8")
_SHAPE_KEYS = ("batch", "size")
_PRECISION_KEYS = ("dtype", "calibration", "calibration_limit", "quant_format", "per_channel",
                   "keep_edges_float", "calibrate_method")
_GRAPH_KEYS = ("optimize", "prelu_to_relu")
_SPEC_KEYS = tuple(f.name for f in fields(PreprocessSpec)) + ("scale",)


@dataclass(frozen=True)
class ConvertOptions:
    """Everything ``viewfinder convert`` does to a model.

    Attributes:
        preprocess: Preprocessing to fuse in front of the input (None: none).
        batch: ``None`` keeps the batch, ``"dynamic"`` makes it symbolic, an int fixes it.
        size: Fix the model input's (width, height) before anything else.
        precision: ``"f32"``, ``"fp16"`` or ``"int8"`` (``"fp32"`` is read as ``"f32"``).
        calibration: int8: a directory of images / ``.npy`` tensors, or a list of files.
        calibration_limit: Use at most this many calibration files (0: all).
        quant_format: int8: ``"qoperator"`` (QLinearConv...; measured faster on ORT CPU
            here) or ``"qdq"`` (Quantize/DequantizeLinear pairs, portable to other EPs).
        per_channel: int8: per-channel weight scales.
        keep_edges_float: int8: keep the first and last Conv/Gemm/MatMul layers float.
        calibrate_method: int8: ``"minmax"``, ``"percentile"`` or ``"entropy"``; None:
            minmax, or what the injected calibration loader prefers (YOLO: percentile).
        optimize: Rewrite ops ORT runs slowly (PRelu -> Relu/Mul/Add); exact to rounding.
        prelu_to_relu: Inexact, opt-in: ``PRelu`` whose slopes are all within this of 0
            becomes ``Relu`` (0: off). The output change is measured and printed.
        verify: Check the result against NumPy preprocessing + the original model.
    """

    preprocess: PreprocessSpec | None = None
    batch: int | str | None = None
    size: tuple[int, int] | None = None
    precision: str = "f32"
    calibration: str | Path | tuple[Path, ...] | None = None
    calibration_limit: int = 32
    quant_format: str = "qoperator"
    per_channel: bool = True
    keep_edges_float: bool = True
    calibrate_method: str | None = None
    optimize: bool = False
    prelu_to_relu: float = 0.0
    verify: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", normalize_precision(self.precision, PRECISIONS))
        if self.quant_format not in ("qdq", "qoperator"):
            raise ConfigError(f"quant_format {self.quant_format!r}: expected qdq or qoperator")
        if self.calibrate_method not in (None, "minmax", "percentile", "entropy"):
            raise ConfigError(f"calibrate_method {self.calibrate_method!r}: expected minmax, "
                              "percentile or entropy")
        object.__setattr__(self, "batch", parse_batch(self.batch))
        if self.size is not None:
            if len(self.size) != 2 or min(int(v) for v in self.size) < 1:
                raise ConfigError(f"size {list(self.size)}: expected [width, height] > 0")
            object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        if self.prelu_to_relu < 0:
            raise ConfigError(f"prelu_to_relu {self.prelu_to_relu}: expected a slope >= 0")
        if self.precision == "int8" and self.calibration is None:
            raise ConfigError("precision int8: a calibration set is required (--calib DIR)")


def parse_batch(value: int | str | None) -> int | str | None:
    """``None``, ``"dynamic"`` or a positive int (also from a string like ``"4"``)."""
    if value is None or value == "dynamic":
        return value
    try:
        batch = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"batch {value!r}: expected 'dynamic' or a positive int") from None
    if batch < 1:
        raise ConfigError(f"batch {value!r}: expected 'dynamic' or a positive int")
    return batch


def load_config(path: str | os.PathLike[str]) -> ConvertOptions:
    """Read a TOML conversion config.

    Raises:
        ConfigError: not TOML, an unknown section or key, or an invalid value (one line
            naming the file and the key).
    """
    p = check_readable(path, "config file")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not a valid TOML file ({exc})") from exc
    known = {"preprocess": _SPEC_KEYS, "shape": _SHAPE_KEYS, "precision": _PRECISION_KEYS,
             "graph": _GRAPH_KEYS}
    for section, table in data.items():
        if section not in known or not isinstance(table, dict):
            raise ConfigError(f"{p}: unknown section [{section}] (known: {', '.join(known)})")
        for key in table:
            if key not in known[section]:
                raise ConfigError(f"{p}: unknown key {key!r} in [{section}] "
                                  f"(known: {', '.join(known[section])})")
    try:
        return _options(data, p.parent)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{p}: invalid value ({exc})") from exc
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def _options(data: dict[str, Any], base: Path) -> ConvertOptions:
    pre = dict(data.get("preprocess", {}))
    if "scale" in pre:
        if "std" in pre:
            raise ConfigError("[preprocess] give std or scale, not both")
        scale = pre.pop("scale")
        scales = [float(s) for s in (scale if isinstance(scale, list) else [scale] * 3)]
        if not all(math.isfinite(s) and s != 0 for s in scales):
            raise ConfigError(f"[preprocess] scale {scale}: expected finite non-zero numbers")
        pre["std"] = [1.0 / s for s in scales]
    for key in ("mean", "std", "crop"):
        if key in pre:
            pre[key] = tuple(pre[key]) if isinstance(pre[key], list) else (pre[key],) * 3
    spec = PreprocessSpec(**pre) if pre else None
    shape = data.get("shape", {})
    prec = dict(data.get("precision", {}))
    if "calibration" in prec:
        prec["calibration"] = base / str(prec["calibration"])
    if "dtype" in prec:
        prec["precision"] = prec.pop("dtype")
    size = tuple(shape["size"]) if "size" in shape else None
    graph = data.get("graph", {})
    return ConvertOptions(preprocess=spec, batch=shape.get("batch"), size=size, **prec, **graph)


def merge(options: ConvertOptions, **overrides: Any) -> ConvertOptions:
    """``options`` with the non-None ``overrides`` applied (command-line flags win)."""
    return replace(options, **{k: v for k, v in overrides.items() if v is not None})
