"""HOG glyph pictures, model pictures and drawn detections."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.dpm.detect import DPMDetections
from viewfinder.dpm.visualize import draw_detections, hog_picture, model_picture
from viewfinder.dpm.zoo import load_model
from viewfinder.errors import ShapeError


@pytest.mark.parametrize(("orientation", "vertical"), [(0, True), (4, False), (5, False)])
def test_glyph_orientation(orientation: int, vertical: bool) -> None:
    w = np.zeros((1, 1, 32), np.float32)
    w[0, 0, 18 + orientation] = 1.0  # contrast-insensitive bins are drawn
    pic = hog_picture(w, cell=21)
    assert pic.shape == (21, 21) and pic.max() == pytest.approx(1.0)
    ys, xs = np.nonzero(pic)
    # a horizontal gradient (bin 0) is a vertical edge; bins 4/5 (80°/100°) nearly horizontal
    assert bool(np.ptp(ys) > np.ptp(xs)) is vertical


def test_negative_weights_are_not_drawn_and_shapes_are_checked() -> None:
    assert hog_picture(-np.ones((2, 3, 32)), 10).max() == 0
    assert hog_picture(np.ones((2, 3, 9)), 10).shape == (20, 30)
    with pytest.raises(ShapeError):
        hog_picture(np.ones((2, 3, 31)))


def test_model_picture_has_one_row_per_unmirrored_component() -> None:
    m = load_model("VOC2007_person")
    pic = model_picture(m, cell=10)
    assert pic.ndim == 3 and pic.dtype == np.uint8
    one = model_picture(m, [0], cell=10)
    assert pic.shape[0] > 2.5 * one.shape[0]
    assert one[..., 0].std() > 10  # not blank
    with pytest.raises(ShapeError):
        model_picture(m, [6])


def test_draw_detections_marks_the_boxes() -> None:
    image = np.full((60, 80, 3), 255, np.uint8)
    dets = DPMDetections(np.array([[11, 11, 40, 50]]), [0.5], [0], np.array([[11, 11, 40, 50]]),
                         np.array([[[11, 11, 40, 50], [15, 15, 25, 25]]]), [10], (60, 80), "cat")
    out = draw_detections(image, dets, parts=True)
    assert out.shape == image.shape and (out != 255).any()
    none = DPMDetections(np.zeros((0, 4)), [], [], np.zeros((0, 4)), np.zeros((0, 2, 4)), [],
                         (60, 80))
    assert (draw_detections(image, none) == 255).all()
