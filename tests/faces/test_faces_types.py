"""The Faces result type: validation, selection, JSON, drawing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from viewfinder.errors import ShapeError
from viewfinder.faces import Faces

B = [[0, 0, 10, 10], [5, 5, 20, 30]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"boxes": [[0, 0, 1]], "scores": [1]}, r"Faces.boxes: expected shape \(N, 4\)"),
    ({"boxes": B, "scores": [1]}, r"Faces.scores: expected shape \(2\)"),
    ({"boxes": B, "scores": [1, 1], "kps": np.zeros((2, 4, 2))}, "Faces.kps"),
    ({"boxes": B, "scores": [1, 1], "landmarks": np.zeros((1, 106, 2))}, "Faces.landmarks"),
    ({"boxes": B, "scores": [1, 1], "track_ids": [1]}, "Faces.track_ids"),
    ({"boxes": [[0, 0, np.nan, 1]], "scores": [1]}, "finite"),
])
def test_validation(kwargs, match) -> None:
    with pytest.raises(ShapeError, match=match):
        Faces(**kwargs)


def test_frozen_and_read_only() -> None:
    f = Faces(B, [0.9, 0.8])
    with pytest.raises(AttributeError):
        f.boxes = np.zeros((0, 4))  # type: ignore[misc]
    with pytest.raises(ValueError):
        f.boxes[0, 0] = 3


def test_select_and_json_roundtrip() -> None:
    rng = np.random.default_rng(1)
    f = Faces(B, [0.9, 0.8], rng.random((2, 5, 2)), rng.random((2, 106, 2)), [7, 9])
    one = f[1]
    assert len(one) == 1 and one.track_ids.tolist() == [9]
    assert len(f[f.scores > 0.85]) == 1
    d = json.loads(f.to_json())
    assert set(d["faces"][0]) == {"box", "score", "kps", "landmarks", "track_id"}
    back = Faces.from_dict(d)
    np.testing.assert_allclose(back.landmarks, f.landmarks, atol=5e-4)
    assert back.track_ids.tolist() == [7, 9]


def test_empty() -> None:
    f = Faces.empty(with_kps=True)
    assert len(f) == 0 and f.kps.shape == (0, 5, 2) and f.to_dict() == {"faces": []}
    assert len(Faces.from_dict({"faces": []})) == 0
    assert len(Faces([], [])) == 0


def test_draw_marks_boxes_and_points() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    f = Faces([[5, 5, 30, 30]], [0.9], landmarks=np.full((1, 106, 2), 17.0), track_ids=[3])
    out = f.draw(image)
    assert out is not image and not image.any()
    assert out[5, 15].any() and out[17, 17].any()
    assert Faces.empty().draw(image).shape == (40, 40, 3)
