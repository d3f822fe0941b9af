"""Fixtures for the face tests: loaded models (once per session) and real images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def face_models(shared: Path) -> Path:
    """shared/models/face."""
    return shared / "models" / "face"


@pytest.fixture(scope="session")
def group_image(shared: Path) -> np.ndarray:
    """group_t1.jpg (1280x886, 6 faces), BGR."""
    return cv2.imread(str(shared / "images" / "group_t1.jpg"))


@pytest.fixture(scope="session")
def scrfd(face_models: Path):
    """SCRFD-500M on ONNX Runtime (the reference backend)."""
    from viewfinder.faces import load_detector

    return load_detector(face_models / "scrfd_500m_bnkps.onnx", backend="ort", threads=1)


@pytest.fixture(scope="session")
def landmarker(face_models: Path):
    """2d106det (dynamic batch copy) on ONNX Runtime."""
    from viewfinder.faces import load_landmarker

    return load_landmarker(face_models / "2d106det.onnx", backend="ort", threads=1)
