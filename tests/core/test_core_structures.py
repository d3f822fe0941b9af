"""The one result type: validation of every field, selection, JSON round trip, drawing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from viewfinder.draw import color_for
from viewfinder.errors import ShapeError
from viewfinder.structures import FACE_NAMES, Detections

B = np.array([[0, 0, 10, 10], [5, 5, 20, 20]], np.float32)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"boxes": [[0, 0, 1]], "scores": [1]}, r"Detections.boxes: expected shape \(N, 4\)"),
    ({"boxes": B, "scores": [1]}, r"Detections.scores: expected shape \(2\)"),
    ({"boxes": B, "scores": [1, np.nan]}, "NaN"),
    ({"boxes": [[0, 0, np.inf, 1]], "scores": [1]}, "NaN or inf"),
    ({"boxes": B, "scores": [1, 1], "class_ids": [0, 2], "names": ("a", "b")}, r"\[0, 2\)"),
    ({"boxes": B, "scores": [1, 1], "keypoints": np.zeros((2, 4))}, "Detections.keypoints"),
    ({"boxes": B, "scores": [1, 1], "landmarks": np.zeros((1, 106, 2))}, "Detections.landmarks"),
    ({"boxes": B, "scores": [1, 1], "track_ids": [1]}, "Detections.track_ids"),
    ({"boxes": B, "scores": [1, 1], "parts": np.zeros((2, 3, 2))}, "Detections.parts"),
    ({"boxes": B, "scores": [1, 1], "data": {"component": [1, 2, 3]}}, "component"),
])
def test_validation(kwargs, match) -> None:
    with pytest.raises(ShapeError, match=match):
        Detections(**kwargs)


def test_frozen_and_read_only() -> None:
    d = Detections(B, [0.9, 0.8], landmarks=np.zeros((2, 106, 2)))
    with pytest.raises(AttributeError):
        d.boxes = np.zeros((0, 4))  # type: ignore[misc]
    for arr in (d.boxes, d.scores, d.class_ids, d.landmarks):
        with pytest.raises(ValueError):
            arr.flat[0] = 3


def test_select_keeps_every_field() -> None:
    rng = np.random.default_rng(1)
    d = Detections(B, [0.9, 0.8], [0, 1], ("a", "b"), rng.random((2, 5, 2)),
                   rng.random((2, 106, 2)), [7, 9], rng.random((2, 3, 4)),
                   {"component": [4, 5]})
    one = d[1]
    assert (len(one), one.track_ids.tolist(), one.label(0), one.data["component"].tolist()) \
        == (1, [9], "b", [5])
    np.testing.assert_array_equal(one.parts[0], d.parts[1])
    assert len(d[d.scores > 0.85]) == 1 and d[d.scores > 0.85].keypoints.shape == (1, 5, 2)


def test_json_round_trip_with_every_extra() -> None:
    rng = np.random.default_rng(2)
    parts = rng.random((2, 3, 4)).astype(np.float32) * 50
    parts[1, 2] = np.nan  # a component with fewer parts
    d = Detections(B, [0.9, -0.25], [1, 0], ("dog", "person"), rng.random((2, 5, 2)),
                   rng.random((2, 106, 2)), [7, 9], parts, {"component": [3, 1]})
    record = json.loads(json.dumps(d.to_dict()))
    first = record["detections"][0]
    assert set(first) == {"box", "score", "label", "class_id", "track_id", "keypoints",
                          "landmarks", "parts", "component"}
    assert (first["label"], first["class_id"], first["component"]) == ("person", 1, 3)
    assert [len(r["parts"]) for r in record["detections"]] == [3, 2]
    back = Detections.from_dict(record, ("dog", "person"))
    np.testing.assert_allclose(back.landmarks, d.landmarks, atol=5e-4)
    np.testing.assert_allclose(back.boxes, d.boxes, atol=5e-4)
    np.testing.assert_allclose(back.parts[0], d.parts[0], atol=5e-4)
    assert np.isnan(back.parts[1, 2]).all()
    assert back.track_ids.tolist() == [7, 9] and back.data["component"].tolist() == [3, 1]
    # names recovered from the labels when not given
    assert Detections.from_dict(record).names == ("dog", "person")


def test_empty() -> None:
    d = Detections.empty(FACE_NAMES, keypoints=5)
    assert len(d) == 0 and d.keypoints.shape == (0, 5, 2) and d.to_dict() == {"detections": []}
    assert len(Detections.from_dict({"detections": []})) == 0
    assert len(Detections([], [])) == 0


def test_draw_marks_boxes_and_points() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    d = Detections([[5, 5, 30, 30]], [0.9], names=FACE_NAMES,
                   landmarks=np.full((1, 106, 2), 17.0), track_ids=[3])
    out = d.draw(image)
    assert out is not image and not image.any()
    assert out[5, 15].any() and out[17, 17].any()
    assert Detections.empty().draw(image).shape == (40, 40, 3)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_the_higher_score_label_is_drawn_on_top(order) -> None:
    """Two classes on the same box: the label left readable is the better one's, whatever
    the order of the detections (YOLO's car 0.64 under truck 0.40 on dog.jpg)."""
    boxes = np.array([[100, 100, 300, 300]] * 2, np.float32)
    scores, ids = np.array([0.64, 0.40])[order], np.array([0, 1])[order]
    d = Detections(boxes, scores, ids, ("car", "truck"))
    out = d.draw(np.zeros((400, 400, 3), np.uint8))
    label = out[80:100, 100:130].reshape(-1, 3)  # the filled label above the box's corner
    car = (label == color_for(0)).all(axis=1).sum()
    truck = (label == color_for(1)).all(axis=1).sum()
    assert car > 100 and truck == 0
