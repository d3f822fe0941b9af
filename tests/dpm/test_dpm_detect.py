"""Detection with the published models on real images, and the post-processing rules."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.dpm.detect import DPMDetections, detect
from viewfinder.dpm.model import Model
from viewfinder.dpm.postprocess import clip_voc_boxes, predict_boxes, voc_nms
from viewfinder.dpm.zoo import load_model
from viewfinder.errors import ShapeError
from viewfinder.ops.boxes import box_iou


@cache
def _model(name: str) -> Model:
    return load_model(name)


@cache
def _detect(model: str, image: str, root: str) -> DPMDetections:
    im = cv2.imread(str(Path(root) / "images" / image))[:, :, ::-1]
    return detect(_model(model), im)


# Hand-labelled boxes (devkit corners) of the objects each model must find.
CASES = [
    ("VOC2007_person", "person_horse_dog.jpg", [190, 97, 275, 375]),
    ("VOC2007_horse", "person_horse_dog.jpg", [400, 135, 602, 345]),
    ("VOC2007_person", "bus.jpg", [50, 400, 245, 905]),
    ("VOC2007_person", "bus.jpg", [222, 405, 345, 860]),
    ("VOC2007_dog", "dog.jpg", [125, 215, 325, 545]),
]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "image", "truth"), CASES)
def test_published_models_find_the_objects(shared: Path, model: str, image: str,
                                           truth: list[int]) -> None:
    dets = _detect(model, image, str(shared))
    assert len(dets) and (dets.scores > _model(model).thresh).all()
    assert np.all(np.diff(dets.scores) <= 0)
    iou = box_iou(dets.boxes, np.array([truth], float), pixel_offset=1)[:, 0]
    assert iou.max() >= 0.4, f"best IoU {iou.max():.2f}"


@pytest.mark.slow
def test_detections_carry_parts_and_convert(shared: Path) -> None:
    dets = _detect("VOC2007_person", "person_horse_dog.jpg", str(shared))
    assert dets.part_boxes.shape == (len(dets), 9, 4) and dets.name == "person"
    assert dets.scores[0] > 1.0  # the clearly visible person scores high
    root, window = dets.part_boxes[0, 0], dets.windows[0]
    np.testing.assert_allclose(root, window)  # root box = detection window for these models
    d = dets.to_detections()
    np.testing.assert_allclose(d.boxes[:, 2:], dets.boxes[:, 2:], atol=1e-4)
    np.testing.assert_allclose(d.boxes[:, :2], dets.boxes[:, :2] - 1, atol=1e-4)
    assert d.names == ("person",) and d.label(0) == "person"


def _small_scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (90, 70, 3)).astype(np.uint8)
    return cv2.GaussianBlur(im, (5, 5), 2)


def test_images_smaller_than_every_root_filter_give_no_detections() -> None:
    dets = detect(_model("VOC2007_person"), np.zeros((60, 30, 3), np.uint8), threshold=-100)
    assert len(dets) == 0 and dets.boxes.shape == (0, 4) and dets.part_boxes.shape[0] == 0


def test_gray_images_equal_replicated_rgb() -> None:
    gray = _small_scene()[:, :, 0]
    a = detect(_model("VOC2007_person"), gray, threshold=-3)
    b = detect(_model("VOC2007_person"), np.repeat(gray[:, :, None], 3, 2), threshold=-3)
    assert len(a) > 0
    np.testing.assert_array_equal(a.scores, b.scores)


def test_fft_and_direct_paths_agree_and_threshold_filters() -> None:
    im = _small_scene()
    fft = detect(_model("VOC2007_person"), im, threshold=-3, method="fft", nms_overlap=None)
    direct = detect(_model("VOC2007_person"), im, threshold=-3, method="direct",
                    nms_overlap=None)
    assert len(fft) == len(direct) > 0
    np.testing.assert_allclose(fft.scores, direct.scores, atol=1e-3)
    higher = detect(_model("VOC2007_person"), im, threshold=-2, method="direct",
                    nms_overlap=None)
    assert len(higher) == int((direct.scores > -2).sum())


@pytest.mark.parametrize(("boxes", "scores", "keep"), [
    # the small box lies inside the big one: covered fully -> suppressed (IoU would keep it)
    ([[1, 1, 100, 100], [10, 10, 29, 29]], [0.9, 0.8], [0]),
    # the big box is only 4% covered by the small one -> kept
    ([[1, 1, 100, 100], [10, 10, 29, 29]], [0.8, 0.9], [1, 0]),
    ([[1, 1, 10, 10], [11, 11, 20, 20]], [0.5, 0.6], [1, 0]),
    ([[1, 1, 10, 10], [1, 1, 10, 10]], [0.5, 0.5], [1]),  # ties: MATLAB's sort picks the later
    ([], [], []),
])
def test_voc_nms_uses_the_share_of_the_suppressed_box(boxes: list, scores: list,
                                                      keep: list) -> None:
    got = voc_nms(np.array(boxes, float).reshape(-1, 4), np.array(scores, float))
    assert got.tolist() == keep


def test_box_prediction_and_clipping() -> None:
    win = np.array([[11.0, 21.0, 50.0, 100.0]])
    fb = np.array([[[11.0, 21.0, 50.0, 100.0], [11.0, 21.0, 30.0, 60.0]]])
    reg = np.zeros((5, 4))
    reg[-1] = [0.1, 0.0, -0.1, 0.0]  # bias row: move x1 right, x2 left by 10% of the width
    np.testing.assert_allclose(predict_boxes(win, fb, reg), [[14.9, 21.0, 46.1, 100.0]])
    clipped, keep = clip_voc_boxes(np.array([[-5, -5, 500, 50], [600, 1, 700, 10]]), 320, 240)
    np.testing.assert_array_equal(clipped, [[1, 1, 320, 50]])
    assert keep.tolist() == [0]
    with pytest.raises(ShapeError):
        predict_boxes(win, fb, np.zeros((4, 4)))


@pytest.mark.parametrize(("field", "value"), [
    ("boxes", np.zeros((2, 4))), ("components", np.zeros(3)), ("part_boxes", np.zeros((1, 4))),
])
def test_detections_validate_shapes(field: str, value: np.ndarray) -> None:
    args = {"boxes": np.zeros((1, 4)), "scores": np.zeros(1), "components": np.zeros(1),
            "windows": np.zeros((1, 4)), "part_boxes": np.zeros((1, 2, 4)),
            "levels": np.zeros(1), "image_size": (10, 10)}
    args[field] = value
    with pytest.raises(ShapeError):
        DPMDetections(**args)
