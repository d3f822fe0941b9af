"""Box ops against slow, obviously-correct references (torchvision's _reference_nms idea)."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import FormatError, ShapeError
from viewfinder.ops.boxes import batched_nms, box_area, box_convert, box_iou, clip_boxes, nms


def _iou_one(a, b, off=0.0):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + off)
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + off)
    inter = iw * ih
    ua = (a[2] - a[0] + off) * (a[3] - a[1] + off) + (b[2] - b[0] + off) * (b[3] - b[1] + off)
    return inter / (ua - inter) if ua - inter > 0 else 0.0


def _reference_nms(boxes, scores, thr):
    """Textbook greedy NMS with plain loops."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep, removed = [], set()
    for i in order:
        if i in removed:
            continue
        keep.append(i)
        for j in order:
            if j not in removed and j != i and _iou_one(boxes[i], boxes[j]) > thr:
                removed.add(j)
    return keep


def _random_boxes(rng, n, size=100.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 3, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_reference(seed, thr):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, 60)
    scores = rng.uniform(size=60)
    assert nms(boxes, scores, thr).tolist() == _reference_nms(boxes, scores, thr)


def test_nms_ties_are_stable_and_empty_input():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    assert nms(boxes, np.array([0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


@pytest.mark.parametrize("off", [0.0, 1.0])
def test_box_iou_matches_reference(off):
    rng = np.random.default_rng(1)
    a, b = _random_boxes(rng, 7), _random_boxes(rng, 5)
    got = box_iou(a, b, pixel_offset=off)
    ref = np.array([[_iou_one(x, y, off) for y in b] for x in a])
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_box_iou_degenerate_is_zero():
    z = np.array([[5, 5, 5, 5]], float)
    assert box_iou(z, z).item() == 0.0


def test_batched_nms_keeps_other_classes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 0, 1]), 0.5).tolist() == [0, 2]


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("xywh", [10, 20, 30, 20]), ("cxcywh", [25, 30, 30, 20]), ("xyxy", [10, 20, 40, 40])],
)
def test_box_convert_roundtrip(fmt, expected):
    xyxy = np.array([[10, 20, 40, 40]], float)
    out = box_convert(xyxy, "xyxy", fmt)
    np.testing.assert_allclose(out[0], expected)
    np.testing.assert_allclose(box_convert(out, fmt, "xyxy"), xyxy)


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: box_convert(np.zeros((2, 4)), "xyxy", "yolo"), FormatError, "'yolo'"),
        (lambda: box_iou(np.zeros((2, 5)), np.zeros((1, 4))), ShapeError, "got (2, 5)"),
        (lambda: nms(np.zeros((3, 4)), np.zeros(2), 0.5), ShapeError, "scores"),
        (lambda: box_area(np.zeros(4)), ShapeError, "(N, 4)"),
    ],
)
def test_box_ops_errors(call, error, text):
    with pytest.raises(error, match=None) as info:
        call()
    assert text in str(info.value)


def test_clip_and_area():
    b = clip_boxes(np.array([[-5, -5, 50, 50]], float), 20, 30)
    assert b.tolist() == [[0, 0, 20, 30]]
    assert box_area(b).tolist() == [600]
    assert box_area(np.array([[1, 1, 1, 1]]), pixel_offset=1).tolist() == [1]
