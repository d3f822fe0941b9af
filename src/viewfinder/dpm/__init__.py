"""Deformable Part Models (Felzenszwalb, Girshick, McAllester, Ramanan), voc-release5 compatible.

Split as FFLD is: :mod:`~viewfinder.dpm.features` (HOG), :mod:`~viewfinder.dpm.pyramid`
(feature pyramid), :mod:`~viewfinder.dpm.model` (models and the ``.mat`` importer),
:mod:`~viewfinder.dpm.convolve` (filter responses: FFT patchwork or direct BLAS),
:mod:`~viewfinder.dpm.dt` (generalized distance transform), :mod:`~viewfinder.dpm.detect`
(scoring, box prediction, NMS) and :mod:`~viewfinder.dpm.visualize` (pictures).
Training lives in :mod:`viewfinder.dpm.train`.

Submodules are imported lazily, so ``import viewfinder.dpm`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "hog": "features",
    "flip_features": "features",
    "Pyramid": "pyramid",
    "feature_pyramid": "pyramid",
    "Model": "model",
    "Component": "model",
    "Part": "model",
    "load_voc_release5": "model",
    "load_model": "zoo",
    "DPMDetections": "detect",
    "detect": "detect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"viewfinder.dpm.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'viewfinder.dpm' has no attribute {name!r}")
