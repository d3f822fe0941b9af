"""Deformable Part Models (Felzenszwalb, Girshick, McAllester, Ramanan), voc-release5 compatible.

Split as FFLD is: :mod:`~viewfinder.dpm.features` (HOG), :mod:`~viewfinder.dpm.pyramid`
(feature pyramid), :mod:`~viewfinder.dpm.model` (models and the ``.mat`` importer),
:mod:`~viewfinder.dpm.convolve` (filter responses: FFT patchwork or direct BLAS),
:mod:`~viewfinder.dpm.dt` (generalized distance transform), :mod:`~viewfinder.dpm.detect`
(scoring, box prediction, NMS) and :mod:`~viewfinder.dpm.visualize` (pictures).
Training lives in :mod:`viewfinder.dpm.train`.

Detection: ``from viewfinder.dpm.detect import detect`` (``viewfinder.dpm.detect`` is the
module, so that ``import viewfinder.dpm.detect as m`` keeps working).
"""

from viewfinder.dpm.detect import DPMDetections
from viewfinder.dpm.features import flip_features, hog
from viewfinder.dpm.model import Component, Model, Part, load_voc_release5
from viewfinder.dpm.pyramid import Pyramid, feature_pyramid
from viewfinder.dpm.zoo import load_model

__all__ = [
    "Component",
    "DPMDetections",
    "Model",
    "Part",
    "Pyramid",
    "feature_pyramid",
    "flip_features",
    "hog",
    "load_model",
    "load_voc_release5",
]
