"""Converted models cached on disk, keyed by the sha256 of the source model."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from viewfinder.config import cache_dir
from viewfinder.fileio import atomic_path, check_readable
from viewfinder.runtime.convert.modelio import load_model, save_model, sha256_file
from viewfinder.runtime.convert.optimize import decompose_prelu
from viewfinder.runtime.convert.shapes import check_batch_items, is_dynamic_batch, set_batch
from viewfinder.runtime.convert.spec import PreprocessSpec

__all__ = ["converted_dir", "dynamic_batch"]

log = logging.getLogger(__name__)


def converted_dir() -> Path:
    """``cache_dir()/converted``: where converted copies of models are kept."""
    return cache_dir() / "converted"


def dynamic_batch(path: str | os.PathLike[str], verify: bool = True,
                  optimize: bool = False, preprocess: PreprocessSpec | None = None) -> Path:
    """Return a copy of a model whose batch dimension is dynamic (cached).

    The copy lives at ``cache_dir()/converted/<sha256-of-input>-dynbatch.onnx`` and is
    made once; later calls return it without loading the model. Constant ``Reshape``
    targets that pin the old batch are rewritten too (see
    :func:`viewfinder.runtime.convert.shapes.set_batch`).

    Args:
        path: An ONNX model file.
        verify: Before publishing the copy, check that a batch of 3 distinct random
            items gives the same outputs as the items one by one.
        optimize: Also rewrite ``PRelu`` as ``Relu``/``Mul``/``Add`` (2d106det runs about
            2x faster on ONNX Runtime CPU, outputs equal to 1e-6); cached as
            ``<sha256>-dynbatch-opt.onnx``.
        preprocess: Also fuse this preprocessing in front of the input (e.g. uint8 BGRA
            crops straight from ``cv2.warpAffine``); cached as ``...-pre<spec hash>.onnx``
            and, with ``verify``, checked against NumPy preprocessing + the unfused copy.

    Returns:
        ``path`` itself when its batch is already dynamic (and no rewrite was asked
        for), else the cached copy.

    Raises:
        ModelError: not an ONNX model, or the batch dimension cannot be separated.
    """
    if preprocess is not None and not preprocess.is_identity:
        return _with_preprocessing(dynamic_batch(path, verify, optimize), preprocess, verify)
    src = check_readable(path, "model file")
    digest = sha256_file(src)
    target = converted_dir() / f"{digest}-dynbatch{'-opt' if optimize else ''}.onnx"
    if target.is_file():
        return target
    model = load_model(src)
    if is_dynamic_batch(model) and not optimize:
        return src
    converted, changes = set_batch(model, None)
    if optimize:
        converted, count = decompose_prelu(converted)
        changes.append(f"{count} PRelu rewritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".onnx") as tmp:
        save_model(converted, tmp)
        if verify:
            diff = check_batch_items(str(tmp))
            log.info("%s: batch of 3 matches per-item outputs (max |diff| %.3g)", src, diff)
    log.info("%s: dynamic batch copy at %s (%s)", src, target, "; ".join(changes))
    return target



def _with_preprocessing(src: Path, spec: PreprocessSpec, verify: bool) -> Path:
    """``src`` with ``spec`` fused in front of its input, cached beside the other copies."""
    from viewfinder.runtime.convert.pipeline import verify_against_reference
    from viewfinder.runtime.convert.preprocess import fuse_preprocessing

    tag = hashlib.sha256(repr(spec).encode()).hexdigest()[:12]
    target = converted_dir() / f"{sha256_file(src)}-pre{tag}.onnx"
    if target.is_file():
        return target
    fused, desc = fuse_preprocessing(load_model(src), spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".onnx") as tmp:
        save_model(fused, tmp)
        if verify:
            diff = verify_against_reference(tmp, src, spec)
            log.info("%s: fused preprocessing matches NumPy + the model (max |diff| %.3g)",
                     src, diff)
    log.info("%s: preprocessing fused (%s) at %s", src, desc, target)
    return target
