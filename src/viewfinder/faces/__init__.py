"""Faces: detection (SCRFD, YuNet, UltraFace), 106-point landmarks, alignment, video tracking.

>>> from viewfinder.faces import FacePipeline
>>> faces = FacePipeline()(image_bgr)
>>> faces.boxes, faces.keypoints, faces.landmarks   # a viewfinder.structures.Detections

See ``docs/faces.md`` for the call flow, the CLI and the figures.
"""

from viewfinder.faces.detectors import FaceDetector, load_detector, to_bgr
from viewfinder.faces.landmarks import (
    ARCFACE_112,
    Landmarker106,
    align_face,
    load_landmarker,
    similarity_transform,
)
from viewfinder.faces.pipeline import STAGES, FacePipeline
from viewfinder.faces.tracking import FaceTracker, OneEuroFilter, OneEuroParams

__all__ = [
    "ARCFACE_112",
    "STAGES",
    "FaceDetector",
    "FacePipeline",
    "FaceTracker",
    "Landmarker106",
    "OneEuroFilter",
    "OneEuroParams",
    "align_face",
    "load_detector",
    "load_landmarker",
    "similarity_transform",
    "to_bgr",
]
