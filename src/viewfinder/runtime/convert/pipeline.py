"""``convert_model``: shapes, precision, fused preprocessing, verification, atomic write.

Order matters: shapes first (Reshape constants are fixed on the float graph), then
precision (int8 calibrates the model's own float input, so the quantizer never sees
the preprocessing ops), then preprocessing in front (float32 ops feeding the model's
float32 input), then the check against NumPy preprocessing + the float model, done on
the temporary file before it is renamed into place.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

from viewfinder.errors import InputFileError, ModelError, ShapeError
from viewfinder.fileio import atomic_path
from viewfinder.runtime.convert.config import ConvertOptions
from viewfinder.runtime.convert.modelio import graph_input, load_model, save_model
from viewfinder.runtime.convert.optimize import decompose_prelu, prelu_to_relu
from viewfinder.runtime.convert.precision import to_fp16
from viewfinder.runtime.convert.preprocess import fuse_preprocessing
from viewfinder.runtime.convert.quantize import (
    OutputDiff,
    calibration_files,
    load_calibration,
    output_diffs,
    quantize_int8,
)
from viewfinder.runtime.convert.reference import preprocess_numpy
from viewfinder.runtime.convert.shapes import (
    check_batch_items,
    input_dims,
    random_feeds,
    set_batch,
    set_spatial,
)
from viewfinder.runtime.convert.spec import PreprocessSpec
from viewfinder.runtime.convert.summary import ConvertReport, summarize

__all__ = ["CalibrationLoader", "Importer", "Progress", "convert_model"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
# Turns a non-ONNX source into an ONNX file: (source, onnx_path_to_write) -> onnx_path.
# Injected by the caller (the CLI passes the Darknet exporter of viewfinder.detect), so
# the runtime layer never imports a task package.
Importer = Callable[[Path, Path], Path]
# Turns calibration files into the model's float input tensors: (files, (h, w)) -> tensors.
# Injected for models whose input is not described by a PreprocessSpec (a Darknet model
# expects letterboxed RGB in 0..1: the CLI passes viewfinder.detect's loader).
CalibrationLoader = Callable[[Sequence[Path], tuple[int, int]], list[np.ndarray]]
_VERIFY_RTOL = 1e-3


def convert_model(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    importer: Importer | None = None,
    calibration_loader: CalibrationLoader | None = None,
    progress: Progress | None = None,
) -> ConvertReport:
    """Convert a model and write it to exactly ``output`` (no suffix is ever appended).

    Args:
        source: An ONNX model, or any file ``importer`` turns into one.
        output: The file to write; written atomically, nothing left on failure.
        options: What to do (default: a plain copy after checking the model).
        importer: Converts a non-ONNX ``source`` (e.g. a Darknet ``.cfg``) to ONNX first.
        calibration_loader: int8: makes the calibration tensors instead of
            :func:`load_calibration` with ``options.preprocess`` (which resizes and
            normalises with the spec's mean/std).
        progress: Called with ``(stage, done, total)`` during long steps.

    Returns:
        A :class:`ConvertReport` (inputs/outputs before and after, sizes, ops added).

    Raises:
        ModelError: not an ONNX model, or the result differs from the reference.
        ConfigError, ShapeError, SizeError: options that do not fit the model.
        DatasetError: an empty or unreadable calibration set.
    """
    options = options or ConvertOptions()
    out = Path(output)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise InputFileError(f"{out}: output directory {out.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="vf-convert-") as tmp:
        src = Path(source)
        if importer is not None and src.suffix.lower() != ".onnx":
            src = importer(src, Path(tmp) / f"{src.stem}.onnx")
        model = load_model(src)
        before = summarize(model, src.stat().st_size)
        core, changes = _reshape(model, options)
        core_path = Path(tmp) / "core.onnx"
        onnx.save(core, str(core_path))
        work, more = _optimize(core, options)
        changes += more
        final, more, diffs = _precision(work, core_path, options, progress, calibration_loader)
        changes += more
        spec = options.preprocess
        if spec is not None and not spec.is_identity:
            final, desc = fuse_preprocessing(final, spec)
            changes.append(f"preprocessing fused, new input {desc}")
        verify = _write(final, out, core_path, options)
    after = summarize(final, out.stat().st_size)
    return ConvertReport(str(source), str(out), before, after, tuple(changes), verify,
                         tuple(diffs), options.precision)


def _optimize(model: onnx.ModelProto, options: ConvertOptions
              ) -> tuple[onnx.ModelProto, list[str]]:
    changes = []
    if options.prelu_to_relu > 0:
        model, count = prelu_to_relu(model, options.prelu_to_relu)
        changes.append(f"inexact: {count} PRelu with |slope| <= {options.prelu_to_relu:g} "
                       "replaced by Relu")
    if options.optimize:
        model, count = decompose_prelu(model)
        changes.append(f"optimize: {count} PRelu rewritten as Relu/Mul/Add")
    return model, changes


def _reshape(model: onnx.ModelProto, options: ConvertOptions) -> tuple[onnx.ModelProto, list[str]]:
    changes: list[str] = []
    if options.size is not None:
        name = graph_input(model, _input_name(options)).name
        model = set_spatial(model, name, options.size)
        changes.append(f"input {name}: size fixed to {options.size[0]}x{options.size[1]}")
    if options.batch is not None:
        batch = None if options.batch == "dynamic" else int(options.batch)
        model, more = set_batch(model, batch)
        changes += more
    return model, changes


def _precision(work: onnx.ModelProto, core_path: Path, options: ConvertOptions,
               progress: Progress | None, loader: CalibrationLoader | None = None
               ) -> tuple[onnx.ModelProto, list[str], list[OutputDiff]]:
    """fp16 or int8 of ``work``; int8 is compared with the float model at ``core_path``."""
    if options.precision == "fp16":
        return to_fp16(work), ["precision fp16 (float32 inputs and outputs kept)"], []
    if options.precision != "int8":
        return work, [], []
    name = graph_input(work, _input_name(options)).name
    hw = _fixed_hw(work, name)
    files = calibration_files(options.calibration, options.calibration_limit)
    if loader is not None:
        tensors = loader(files, hw)
    else:
        tensors = load_calibration(files, options.preprocess or PreprocessSpec(), hw)

    def tick(done: int, total: int) -> None:
        if progress:
            progress("calibrating", done, total)

    method = options.calibrate_method or getattr(loader, "calibrate_method", "minmax")
    quant = quantize_int8(work, name, tensors, options.quant_format, options.per_channel,
                          keep_edges_float=options.keep_edges_float, progress=tick,
                          calibrate_method=method)
    diffs = _compare(core_path, quant, name, tensors)
    note = (f"precision int8 ({options.quant_format}, per_channel={options.per_channel}, "
            f"{method} ranges), calibrated on {len(tensors)} inputs")
    return quant, [note], diffs


def _compare(core_path: Path, quant: onnx.ModelProto, name: str,
             tensors: list[np.ndarray]) -> list[OutputDiff]:
    from viewfinder.runtime.session import load_session

    quant_path = core_path.with_name("quant.onnx")
    onnx.save(quant, str(quant_path))
    ref_sess, q_sess = load_session(core_path), load_session(quant_path)
    ref = [ref_sess.run({name: t}) for t in tensors]
    got = [q_sess.run({name: t}) for t in tensors]
    return output_diffs(ref, got, [o.name for o in ref_sess.outputs])


def _input_name(options: ConvertOptions) -> str | None:
    return options.preprocess.input_name if options.preprocess else None


def _fixed_hw(model: onnx.ModelProto, name: str) -> tuple[int, int]:
    dims = input_dims(graph_input(model, name))
    if len(dims) != 4 or not all(isinstance(d, int) for d in dims[2:]):
        raise ShapeError(f"model input {name!r} has dynamic size {dims}: give a size "
                         "(--size WxH) to calibrate int8")
    return int(dims[2]), int(dims[3])


def _write(model: onnx.ModelProto, out: Path, core_path: Path,
           options: ConvertOptions) -> float | None:
    """Save atomically; verify the temporary file before it takes the final name."""
    with atomic_path(out, suffix=".tmp") as tmp:
        save_model(model, tmp)
        if not options.verify:
            return None
        exact = options.precision == "f32" and options.prelu_to_relu == 0
        diff = verify_against_reference(tmp, core_path, options.preprocess, strict=exact)
        if options.batch == "dynamic":
            check_batch_items(str(tmp))
    return diff


def verify_against_reference(converted: str | os.PathLike[str], original: str | os.PathLike[str],
                             spec: PreprocessSpec | None, strict: bool = True,
                             seed: int = 0) -> float:
    """Max |difference| between ``converted(x)`` and ``original(preprocess_numpy(x))``.

    Runs both on one random input (batch 2 when the batch is dynamic).

    Raises:
        ModelError: ``strict`` and the difference exceeds 1e-3 of the output scale.
    """
    from viewfinder.runtime.session import load_session

    conv, orig = load_session(converted), load_session(original)
    batch = conv.inputs[0].shape[0] if isinstance(conv.inputs[0].shape[0], int) else 2
    feeds = random_feeds(conv.inputs, batch, seed=seed)
    ref_feeds = dict(feeds)
    if spec is not None and not spec.is_identity:
        name = spec.input_name or orig.inputs[0].name
        hw = next(i.shape[2:] for i in orig.inputs if i.name == name)
        ref_feeds[name] = preprocess_numpy(feeds[name], spec, tuple(hw) if spec.resize else None)
    worst = 0.0
    for got, want, info in zip(conv.run(feeds), orig.run(ref_feeds), orig.outputs, strict=True):
        diff = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        if strict and diff > _VERIFY_RTOL * scale:
            raise ModelError(f"{converted}: output {info.name!r} differs from NumPy "
                             f"preprocessing + original model by {diff:.3g}")
        worst = max(worst, diff)
    return worst
