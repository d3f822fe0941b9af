"""int8 YOLO: static quantization of the float32 ONNX model, calibrated and cached.

Calibration tensors are made exactly like inference inputs, by
:func:`viewfinder.detect.yolo.preprocess` (Darknet letterbox, RGB, /255), so the
activation ranges the quantizer records are the ones the model sees at run time. ::

    det = load_yolo("yolov3-tiny", precision="int8", calib="calib_images/")

The int8 model is written once into ``cache_dir()/"detect"`` under a key that covers
the float32 file, the calibration files (paths, sizes, modification times), the
quantization options and the onnxruntime version, and is reused while they hold.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from viewfinder.config import cache_dir
from viewfinder.detect.darknet_export import METADATA_KEY
from viewfinder.detect.yolo import preprocess
from viewfinder.errors import ConfigError, DatasetError, DecodeError, InputFileError, ShapeError
from viewfinder.fileio import atomic_path
from viewfinder.runtime.convert.quantize import calibration_files, has_vnni, quantize_int8

__all__ = ["INT8_OPTIONS", "PRECISIONS", "YoloCalibration", "cached_int8",
           "calibration_loader_for", "calibration_tensors", "check_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("f32", "int8")
# Measured on yolov3-tiny at 416 (AVX2, no VNNI), 64 coco256-voc train images: 24 ms vs
# 37-41 ms f32. Activation ranges at the 99.999th percentile: person AP 27.5 vs f32 26.8,
# dog.jpg boxes within 14 px of f32's; min/max ranges: AP 26.4 and the dog box 40 px off
# (rare large activations stretch the range and cost the rest their resolution); entropy
# 26.4. Keeping the first and last convolutions float costs 9 ms for no AP gain;
# per-tensor weight scales lose 1.7 AP.
INT8_OPTIONS = {"quant_format": "qoperator", "per_channel": True, "keep_edges_float": False,
                "calibrate_method": "percentile"}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def check_precision(precision: str, calib: object, graph: str) -> None:
    """Fail early (before any conversion) on a precision request that cannot work.

    Raises:
        ConfigError: unknown precision, int8 without a calibration set, or int8 with
            decode/NMS in the graph (those must stay float).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected f32 or int8")
    if precision != "int8":
        return
    if calib is None:
        raise ConfigError("precision int8: a calibration image set is required (--calib DIR)")
    if graph != "raw":
        raise ConfigError(f"precision int8: needs graph 'raw' (decode and NMS stay float), "
                          f"got {graph!r}")


def calibration_tensors(files: Sequence[Path], size: tuple[int, int],
                        progress: Callable[[int, int], None] | None = None) -> list[np.ndarray]:
    """``(1, 3, H, W)`` float32 inputs: images through :func:`preprocess`, ``.npy`` as is.

    Raises:
        DatasetError: an image cannot be read or decoded.
        ShapeError: a ``.npy`` tensor is not ``(1, 3, H, W)``.
    """
    from viewfinder.media import read_image

    out = []
    for k, path in enumerate(files):
        if path.suffix.lower() == ".npy":
            array = np.load(path).astype(np.float32)
            array = array[None] if array.ndim == 3 else array
            if array.shape != (1, 3, *size):
                raise ShapeError(f"{path}: expected shape (1, 3, {size[0]}, {size[1]}), "
                                 f"got {array.shape}")
            out.append(array)
        else:
            try:
                image = read_image(path)
            except (DecodeError, InputFileError) as exc:
                raise DatasetError(f"calibration image {path}: {exc}") from exc
            out.append(preprocess(image, size)[0])
        if progress:
            progress(k + 1, len(files))
    return out


def calibration_loader_for(model: str | os.PathLike[str]
                           ) -> Callable[[Sequence[Path], tuple[int, int]], list[np.ndarray]] | None:
    """The calibration loader for ``viewfinder convert --int8`` of a YOLO model.

    A Darknet ``.cfg``, or an ``.onnx`` carrying the YOLO metadata, expects letterboxed
    RGB in 0..1: returns a loader doing exactly that; None for any other model (the
    converter's own spec-driven loader applies).
    """
    p = Path(model)
    if p.suffix.lower() == ".cfg":
        return YoloCalibration()
    if p.suffix.lower() == ".onnx" and p.is_file():
        try:
            props = onnx.load(str(p), load_external_data=False).metadata_props
        except Exception:  # not loadable: the converter reports it
            return None
        if any(prop.key == METADATA_KEY for prop in props):
            return YoloCalibration()
    return None


class YoloCalibration:
    """The converter's calibration loader for YOLO: :func:`calibration_tensors`, and the
    activation-range method that measured best for YOLO (``calibrate_method``, used
    by ``viewfinder convert`` unless ``--calib-method`` is given)."""

    calibrate_method = INT8_OPTIONS["calibrate_method"]

    def __call__(self, files: Sequence[Path], size: tuple[int, int]) -> list[np.ndarray]:
        return calibration_tensors(files, size)


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _cache_key(f32: Path, files: Sequence[Path], options: dict[str, object]) -> str:
    import onnxruntime

    parts = [_stamp(f32), *(_stamp(f) for f in files),
             ",".join(f"{k}={v}" for k, v in sorted(options.items())),
             f"onnxruntime={onnxruntime.__version__}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def cached_int8(f32: str | os.PathLike[str], size: tuple[int, int],
                calib: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                calib_limit: int = 64, progress: Progress | None = None,
                quant_format: str = "qoperator") -> Path:
    """The int8 version of the float32 YOLO ONNX ``f32`` (quantized once, then cached).

    Args:
        f32: A raw-output YOLO ONNX model (from ``export_onnx``).
        size: Its ``(height, width)`` input size.
        calib: A directory of calibration images (or ``.npy`` tensors), or a list of files.
        calib_limit: Use the first N files in sorted order (0: all).
        progress: Called with ``(stage, done, total)`` while quantizing.
        quant_format: ``"qoperator"`` (ONNX Runtime's QLinear ops: the faster there) or
            ``"qdq"`` (Quantize/DequantizeLinear pairs, which OpenVINO reads; measured
            on a par with ONNX Runtime's int8 here, 32 vs 33 ms detect).

    Returns:
        The cached int8 ``.onnx``; it carries ``f32``'s metadata (decode parameters).

    Raises:
        DatasetError: an empty calibration set or an unreadable image.
    """
    src = Path(f32)
    files = calibration_files(calib, calib_limit)
    options = dict(INT8_OPTIONS, reduce_range=not has_vnni(), quant_format=quant_format)
    out = cache_dir() / "detect" / f"{src.stem}-int8-{_cache_key(src, files, options)}.onnx"
    if out.is_file():
        log.debug("int8 model from cache: %s", out)
        return out
    log.info("quantizing %s to int8 on %d calibration files", src, len(files))
    tensors = calibration_tensors(
        files, size, (lambda d, t: progress("reading calibration images", d, t)) if progress else None)
    model = onnx.load(str(src))
    quant = quantize_int8(model, model.graph.input[0].name, tensors, **options,
                          progress=(lambda d, t: progress("calibrating", d, t)) if progress else None)
    _copy_metadata(model, quant)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        onnx.save(quant, str(tmp))
    return out


def _copy_metadata(src: onnx.ModelProto, dst: onnx.ModelProto) -> None:
    """Put ``src``'s metadata_props into ``dst``, replacing keys it already has."""
    keys = {p.key for p in src.metadata_props}
    kept = [(p.key, p.value) for p in dst.metadata_props if p.key not in keys]
    del dst.metadata_props[:]
    for key, value in kept + [(p.key, p.value) for p in src.metadata_props]:
        dst.metadata_props.add(key=key, value=value)
