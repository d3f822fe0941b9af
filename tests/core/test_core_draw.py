"""Drawing: new images, labels sized to their boxes, dots sized per point set."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.draw import draw_boxes, draw_points
from viewfinder.errors import ShapeError

RED = (0, 0, 255)


def _changed(a: np.ndarray, b: np.ndarray, region: tuple[slice, slice]) -> int:
    return int((a[region] != b[region]).any(axis=-1).sum())


def test_input_is_never_modified_and_gray_becomes_bgr() -> None:
    gray = np.zeros((50, 60), np.uint8)
    out = draw_boxes(gray, np.array([[5, 5, 40, 40]]), ["x"], [RED])
    assert out.shape == (50, 60, 3) and not gray.any() and out.any()


@pytest.mark.parametrize(("box", "labelled"), [
    ([400, 300, 700, 600], True),   # a big face: label drawn above it
    ([400, 300, 408, 308], False),  # an 8 px face in a 2000 px image: no label
])
def test_labels_fit_their_box(box, labelled) -> None:
    img = np.zeros((1200, 2000, 3), np.uint8)
    out = draw_boxes(img, np.array([box]), ["0.87"], [RED])
    above = (slice(max(box[1] - 60, 0), box[1] - 3), slice(box[0], box[0] + 400))  # not the line
    assert (_changed(img, out, above) > 0) == labelled
    if labelled:  # no wider than the box (plus the 2 px frame)
        cols = np.nonzero((out[above] != 0).any(axis=(0, 2)))[0]
        assert cols.max() <= box[2] - box[0] + 2


@pytest.mark.parametrize(("side", "lo", "hi"), [(300, 3, 6), (20, 1, 2)])
def test_line_thickness_shrinks_with_the_box(side, lo, hi) -> None:
    img = np.zeros((1200, 2000, 3), np.uint8)  # thickness 4 for the image's size
    out = draw_boxes(img, np.array([[500, 500, 500 + side, 500 + side]]), colors=[RED])
    across = out[500 + side // 2, 494:507, 2]  # across the left edge, mid-height
    assert lo <= int((across > 128).sum()) <= hi  # solid pixels (antialiasing aside)


def test_points_radius_per_set() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    pts = np.array([[[30.0, 50.0]], [[150.0, 50.0]]])  # two sets of one point
    out = draw_points(img, pts, (0, 255, 0), [1, 6])
    small = _changed(img, out, (slice(40, 60), slice(20, 40)))
    big = _changed(img, out, (slice(40, 60), slice(140, 160)))
    assert 0 < small < big
    with pytest.raises(ShapeError, match="one per point set"):
        draw_points(img, pts, radius=[1, 2, 3])
