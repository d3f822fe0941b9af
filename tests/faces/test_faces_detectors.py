"""Detectors on real files: every family, bad input, filters, batches."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import (
    ConfigError,
    FormatError,
    ModelError,
    ModelNotFoundError,
    ShapeError,
    SizeError,
)
from viewfinder.faces import load_detector
from viewfinder.ops.boxes import box_iou


@pytest.mark.parametrize(("model", "family", "kps"), [
    ("scrfd_500m", "scrfd", True),
    ("scrfd_2.5g", "scrfd", True),
    ("scrfd_500m_kps_fixed640.onnx", "scrfd", True),
    ("yunet", "yunet", True),
    ("ultraface", "ultraface", False),
])
def test_every_detector_finds_the_six_faces(face_models: Path, group_image, scrfd, model: str,
                                            family: str, kps: bool) -> None:
    path = face_models / model if model.endswith(".onnx") else model
    det = load_detector(path, backend="ort", threads=1)
    faces = det.detect(group_image)
    assert det.family == family and len(faces) == 6
    assert (faces.keypoints is not None) == kps
    # the same six faces SCRFD-500M finds (boxes in image pixels, not network pixels)
    iou = box_iou(faces.boxes, scrfd.detect(group_image).boxes)
    assert (iou.max(axis=1) > 0.5).all()


@pytest.mark.parametrize(("make", "n"), [
    (lambda img: np.zeros((1, 1, 3), np.uint8), 0),
    (lambda img: np.full((480, 640, 3), 127, np.uint8), 0),
    (lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 6),
    (lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[..., None], 6),
    (lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2BGRA), 6),
    (lambda img: cv2.resize(img, (5120, 3544)), 6),   # very large: 18 MP
    (lambda img: img[:, :40], 0),                       # a 40-px sliver
])
def test_odd_images(scrfd, group_image, make, n: int) -> None:
    faces = scrfd.detect(make(group_image))
    assert len(faces) == n
    assert faces.boxes.shape == (n, 4) and faces.keypoints.shape == (n, 5, 2)


def test_large_image_boxes_scale(scrfd, group_image) -> None:
    small = scrfd.detect(group_image)
    big = scrfd.detect(cv2.resize(group_image, (2560, 1772)))
    np.testing.assert_allclose(big.boxes / 2, small.boxes, atol=3.0)


@pytest.mark.parametrize(("image", "error", "match"), [
    (np.zeros((0, 10, 3), np.uint8), SizeError, "empty image"),
    (np.zeros((10, 10, 3), np.float32), FormatError, "uint8"),
    (np.zeros((10, 10, 2), np.uint8), ShapeError, r"expected shape \(H, W\)"),
    (np.zeros((2, 10, 10, 3), np.uint8), ShapeError, "expected shape"),
    ([[0, 1], [2, 3]], FormatError, "NumPy"),
])
def test_bad_images(scrfd, image, error, match: str) -> None:
    with pytest.raises(error, match=match):
        scrfd.detect(image)


def test_model_that_is_not_a_face_detector(face_models: Path) -> None:
    with pytest.raises(ModelError, match=r"2d106det.*match no known face detector layout"):
        load_detector(face_models / "2d106det.onnx", backend="ort")


@pytest.mark.parametrize(("model", "kwargs", "error", "match"), [
    ("no_such.onnx", {}, ModelNotFoundError, "no such model file"),
    ("scrfd_9000", {}, ModelNotFoundError, "not in the zoo"),
    ("scrfd_500m", {"det_size": (500, 500)}, SizeError, "multiples of 32"),
    ("scrfd_500m_kps_fixed640.onnx", {"det_size": (320, 320)}, ConfigError, "fixed at 640x640"),
])
def test_bad_models_and_sizes(face_models: Path, model, kwargs, error, match) -> None:
    path = face_models / model if model.endswith(".onnx") else model
    with pytest.raises(error, match=match):
        load_detector(path, backend="ort", **kwargs)


def test_filters(scrfd, group_image) -> None:
    all_faces = scrfd.detect(group_image)
    top2 = scrfd.detect(group_image, max_faces=2)
    np.testing.assert_array_equal(top2.boxes, all_faces.boxes[:2])
    sizes = np.minimum(all_faces.boxes[:, 2] - all_faces.boxes[:, 0],
                       all_faces.boxes[:, 3] - all_faces.boxes[:, 1])
    cut = float(np.median(sizes))
    big = scrfd.detect(group_image, min_size=cut)
    assert len(big) == int((sizes >= cut).sum()) and 0 < len(big) < 6
    assert len(scrfd.detect(group_image, score_threshold=0.99)) == 0


def test_detect_batch_equals_single(scrfd, group_image) -> None:
    flipped = np.ascontiguousarray(group_image[:, ::-1])
    small = cv2.resize(group_image, (640, 443))
    batch = scrfd.detect_batch([group_image, flipped, small])
    for image, got in zip([group_image, flipped, small], batch, strict=True):
        one = scrfd.detect(image)
        np.testing.assert_allclose(got.boxes, one.boxes, atol=1e-3)
    # the mirror image's faces are the mirrored faces
    mirrored = batch[1].boxes.copy()
    mirrored[:, [0, 2]] = group_image.shape[1] - mirrored[:, [2, 0]]
    assert (box_iou(mirrored, batch[0].boxes).max(axis=1) > 0.8).all()


@pytest.mark.parametrize(("size", "expect"), [
    ((1280, 886), (640, 448)), ((640, 480), (640, 480)), ((1, 1), (640, 640)),
    ((2048, 1150), (640, 384)), ((100, 1000), (64, 640)),
])
def test_auto_input_size(scrfd, size, expect) -> None:
    assert scrfd.input_size(*size) == expect


@pytest.mark.parametrize(("model", "det_size", "want"), [
    ("scrfd_500m_bnkps.onnx", (1280, 736), {"input.1": (1, 3, 736, 1280)}),
    ("scrfd_500m_bnkps.onnx", None, None),          # adapts per image: zoo default trial
    ("scrfd_500m_bnkps.onnx", (100, 100), None),    # bad size: FaceDetector says why
    ("scrfd_500m_kps_fixed640.onnx", (640, 640), None),  # fixed input
])
def test_auto_trial_runs_at_the_det_size(face_models: Path, model: str, det_size, want) -> None:
    from viewfinder.faces.detectors import _trial_shapes

    assert _trial_shapes(face_models / model, det_size) == want
