"""int8 static quantization with calibration images (onnxruntime.quantization).

Calibration images are read, resized to the model's input size and normalised with the
same :class:`~viewfinder.runtime.convert.spec.PreprocessSpec` the model is converted
with (its channel order and mean/std describe what the model expects), or given as
``.npy`` tensors already in the model's input layout.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from viewfinder.errors import ConfigError, DatasetError, ShapeError
from viewfinder.media.sources import IMAGE_SUFFIXES
from viewfinder.runtime.convert.modelio import opset_version
from viewfinder.runtime.convert.optimize import edge_layers
from viewfinder.runtime.convert.reference import bilinear_resize
from viewfinder.runtime.convert.spec import PreprocessSpec

__all__ = ["IMAGE_SUFFIXES", "OutputDiff", "calibration_files", "load_calibration",
           "output_diffs", "quantize_int8"]

log = logging.getLogger(__name__)

QUANT_FORMATS = ("qdq", "qoperator")


@dataclass(frozen=True)
class OutputDiff:
    """How far one output of a converted model is from the float32 original."""

    name: str
    max_abs: float
    mean_abs: float
    ref_max_abs: float

    def __str__(self) -> str:
        return (f"{self.name}: max |diff| {self.max_abs:.4g}, mean {self.mean_abs:.4g} "
                f"(outputs up to {self.ref_max_abs:.4g})")


def calibration_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                      limit: int = 0) -> list[Path]:
    """The image / ``.npy`` files of a calibration set (a directory or a list of files).

    Raises:
        DatasetError: the set is empty or a directory holds no usable file.
    """
    if isinstance(source, str | os.PathLike):
        root = Path(source)
        if not root.exists():
            raise DatasetError(f"calibration set {root}: no such file or directory")
        paths = sorted(root.iterdir()) if root.is_dir() else [root]
    else:
        paths = [Path(p) for p in source]
    usable = [p for p in paths if p.suffix.lower() in (*IMAGE_SUFFIXES, ".npy") and p.is_file()]
    if not usable:
        where = source if isinstance(source, str | os.PathLike) else f"{len(paths)} paths"
        raise DatasetError(f"calibration set {where}: empty (no {', '.join(IMAGE_SUFFIXES)} or "
                           ".npy files)")
    return usable[:limit] if limit > 0 else usable


def load_calibration(files: Sequence[Path], spec: PreprocessSpec,
                     model_hw: tuple[int, int]) -> list[np.ndarray]:
    """Calibration tensors, float32 ``[1, 3, h, w]`` each, for the model's float input.

    Images are decoded as RGB, resized bilinearly to ``model_hw`` (height, width), then
    put in ``spec.model_channels`` order and normalised with ``spec.mean``/``spec.std``.

    Raises:
        DatasetError: a file cannot be decoded.
        ShapeError: a ``.npy`` tensor does not have the model's shape.
    """
    import cv2

    from viewfinder.runtime.convert.reference import preprocess_numpy

    norm = PreprocessSpec(input="rgb", model_channels=spec.model_channels,
                          mean=spec.mean, std=spec.std)
    out = []
    for path in files:
        if path.suffix.lower() == ".npy":
            array = np.load(path).astype(np.float32)
            array = array[None] if array.ndim == 3 else array
            if array.shape[1:] != (3, *model_hw):
                raise ShapeError(f"{path}: expected shape (1, 3, {model_hw[0]}, {model_hw[1]}), "
                                 f"got {array.shape}")
            out.append(array[:1])
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"{path}: cannot decode calibration image")
        rgb = np.ascontiguousarray(bgr[None, :, :, ::-1].transpose(0, 3, 1, 2), np.float32)
        rgb = bilinear_resize(rgb, *model_hw)
        out.append(preprocess_numpy(rgb.transpose(0, 2, 3, 1), norm))
    return out


class _Reader:
    """An onnxruntime ``CalibrationDataReader`` over prepared tensors."""

    def __init__(self, name: str, tensors: Sequence[np.ndarray],
                 progress: Callable[[int, int], None] | None) -> None:
        self._name, self._tensors, self._progress = name, list(tensors), progress
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._tensors):
            return None
        self._i += 1
        if self._progress:
            self._progress(self._i, len(self._tensors))
        return {self._name: self._tensors[self._i - 1]}

    def rewind(self) -> None:
        self._i = 0


def has_vnni() -> bool:
    """True when the CPU has VNNI (AVX-512 or AVX) int8 dot products."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    return "avx512_vnni" in text or "avx_vnni" in text or "amx_int8" in text


def quantize_int8(
    model: onnx.ModelProto,
    input_name: str,
    tensors: Sequence[np.ndarray],
    quant_format: str = "qoperator",
    per_channel: bool = True,
    reduce_range: bool | None = None,
    keep_edges_float: bool = True,
    progress: Callable[[int, int], None] | None = None,
    calibrate_method: str = "minmax",
) -> onnx.ModelProto:
    """Quantize ``model`` statically to int8 (uint8 activations, int8 weights).

    Args:
        model: The float32 model.
        input_name: The input the calibration tensors feed.
        tensors: Calibration inputs (at least one).
        quant_format: ``"qoperator"`` (QLinearConv, QLinearMul...: faster on ORT's CPU
            provider here) or ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs that ORT
            fuses at load time; what TensorRT and other providers expect).
        per_channel: Per-output-channel weight scales.
        reduce_range: 7-bit weights, avoiding int16 saturation in AVX2's u8×s8 dot
            product; None: on when the CPU has no VNNI.
        keep_edges_float: Leave the first and last Conv/Gemm/MatMul layers in float
            (see :func:`~viewfinder.runtime.convert.optimize.edge_layers`).
        progress: Called with (done, total) per calibration tensor.
        calibrate_method: How activation ranges are set from the calibration outputs:
            ``"minmax"`` (the observed extremes), ``"percentile"`` (99.999th percentile of
            the absolute values, ignoring rare outliers) or ``"entropy"``.

    Raises:
        DatasetError: no calibration tensors.
        ConfigError: unknown ``quant_format``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not tensors:
        raise DatasetError("calibration set: empty (no tensors to calibrate int8 ranges)")
    if quant_format not in QUANT_FORMATS:
        raise ConfigError(f"quant_format {quant_format!r}: expected one of qdq, qoperator")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibrate_method not in methods:
        raise ConfigError(f"calibrate_method {calibrate_method!r}: expected one of "
                          f"{', '.join(methods)}")
    if reduce_range is None:
        reduce_range = not has_vnni()
    fmt = QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator
    if per_channel and opset_version(model) < 13:
        model = _upgrade_opset(model, 13)
        per_channel = opset_version(model) >= 13  # per-channel DequantizeLinear needs 13
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # the quantizer's sessions warn per tensor
    with tempfile.TemporaryDirectory(prefix="vf-quant-") as tmp, _quiet_quantizer():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _prepare(model, src)
        exclude = edge_layers(onnx.load(str(src))) if keep_edges_float else []
        quantize_static(
            str(src), str(dst), _Reader(input_name, tensors, progress), quant_format=fmt,
            per_channel=per_channel, reduce_range=reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=methods[calibrate_method], nodes_to_exclude=exclude,
        )
        return onnx.load(str(dst))


class _DropQuantizerWarnings(logging.Filter):
    """onnxruntime.quantization warns on the root logger once per non-float tensor."""

    def filter(self, record: logging.LogRecord) -> bool:
        noisy = "quantization" in record.pathname and "onnxruntime" in record.pathname
        if noisy and record.levelno < logging.ERROR:
            log.debug("onnxruntime.quantization: %s", record.getMessage().splitlines()[0])
            return False
        return True


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Route the quantizer's chatter to our debug log: root-logger warnings, and the
    histogram calibrators' ``print`` lines ("Finding optimal threshold ..."), which
    would otherwise land in a CLI's standard output."""
    root, drop = logging.getLogger(), _DropQuantizerWarnings()
    root.addFilter(drop)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        root.removeFilter(drop)
        for line in printed.getvalue().splitlines():
            log.debug("onnxruntime.quantization: %s", line)


def _upgrade_opset(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, target)
    except Exception as exc:  # the converter lacks some adapters: stay per-tensor
        log.warning("opset %d -> %d failed (%s): int8 weights per tensor",
                    opset_version(model), target, exc)
        return model


def _prepare(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` with ORT's pre-quantization pass (shape inference, folding)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    raw = path.with_name("raw.onnx")
    named = copy.deepcopy(model)
    for k, node in enumerate(named.graph.node):
        node.name = node.name or f"{node.op_type}_{k}"  # the quantizer selects nodes by name
    onnx.save(named, str(raw))
    try:
        quant_pre_process(str(raw), str(path), skip_symbolic_shape=True)
    except Exception as exc:  # the pre-pass is an optimisation: quantize the raw model
        log.info("quantization pre-process skipped: %s", exc)
        raw.replace(path)


def output_diffs(reference: Sequence[Sequence[np.ndarray]], candidate: Sequence[Sequence[np.ndarray]],
                 names: Sequence[str]) -> list[OutputDiff]:
    """Per output: max and mean absolute difference over all samples."""
    diffs = []
    for k, name in enumerate(names):
        ref = np.concatenate([np.ravel(r[k]) for r in reference]).astype(np.float64)
        got = np.concatenate([np.ravel(c[k]) for c in candidate]).astype(np.float64)
        if ref.shape != got.shape:
            raise ShapeError(f"output {name!r}: shapes differ ({ref.shape} vs {got.shape})")
        delta = np.abs(ref - got)
        diffs.append(OutputDiff(name, float(delta.max(initial=0.0)), float(delta.mean()),
                                float(np.abs(ref).max(initial=0.0))))
    return diffs
