"""Output layouts recognised by shape, strides and anchors derived, decoding by hand."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import ModelError
from viewfinder.faces.layouts import decode, identify_layout, levels_for

Q = "?"
SCRFD_NAMED = [(Q, Q, 1)] * 3 + [(Q, Q, 4)] * 3 + [(Q, Q, 10)] * 3
SCRFD_FIXED = [(1, 12800, 1), (1, 3200, 1), (1, 800, 1), (1, 12800, 4), (1, 3200, 4),
               (1, 800, 4), (1, 12800, 10), (1, 3200, 10), (1, 800, 10)]
SCRFD_NOBATCH = [(None, 1)] * 3 + [(None, 4)] * 3 + [(None, 10)] * 3
SCRFD_NOKPS = [(1, Q, 1)] * 3 + [(1, Q, 4)] * 3
SCRFD_SHUFFLED = [(1, Q, 4), (1, Q, 1), (1, Q, 10)] * 3
YUNET = [(1, Q, 1)] * 6 + [(1, Q, 4)] * 3 + [(1, Q, 10)] * 3
ULTRAFACE = [(1, 4420, 2), (1, 4420, 4)]


@pytest.mark.parametrize(("shapes", "family", "batched", "kps"), [
    (SCRFD_NAMED, "scrfd", True, 3),
    (SCRFD_FIXED, "scrfd", True, 3),
    (SCRFD_NOBATCH, "scrfd", False, 3),
    (SCRFD_NOKPS, "scrfd", True, 0),
    (SCRFD_SHUFFLED, "scrfd", True, 3),
    (YUNET, "yunet", True, 3),
    (ULTRAFACE, "ultraface", True, 0),
])
def test_identify_layout(shapes, family, batched, kps) -> None:
    layout = identify_layout(shapes, "m.onnx")
    assert (layout.family, layout.batched, len(layout.kps)) == (family, batched, kps)


@pytest.mark.parametrize("shapes", [
    [(1, 212)],                                  # 2d106det: a landmark net
    [(1, 2535, 85)],                             # a YOLO head
    [(1, 1000)],                                 # a classifier
    [(Q, Q, 1)] * 3 + [(Q, Q, 4)] * 2,           # a score without a box
    [(1, Q, 1), (Q, 4)],                         # mixed ranks
    [],
])
def test_not_a_face_detector(shapes) -> None:
    with pytest.raises(ModelError, match="match no known face detector layout"):
        identify_layout(shapes, "m.onnx")


@pytest.mark.parametrize(("w", "h", "anchors"), [(640, 640, 2), (640, 448, 2), (320, 224, 1)])
def test_levels_strides_and_anchors(w: int, h: int, anchors: int) -> None:
    layout = identify_layout(SCRFD_SHUFFLED, "m.onnx")
    counts = [0] * 9
    for level, stride in enumerate((8, 16, 32)):
        a = (w // stride) * (h // stride) * anchors
        counts[1 + 3 * level] = a   # score
        counts[0 + 3 * level] = a   # bbox
        counts[2 + 3 * level] = a   # kps
    levels = levels_for(layout, counts, w, h, "m.onnx")
    assert [lv.stride for lv in levels] == [8, 16, 32]
    assert {lv.anchors for lv in levels} == {anchors}
    assert levels[0].score == (1,) and levels[0].bbox == 0 and levels[0].kps == 2


def test_levels_reject_sizes_off_the_grid() -> None:
    layout = identify_layout(SCRFD_NOKPS, "m.onnx")
    with pytest.raises(ModelError, match="do not fit strides"):
        levels_for(layout, [101, 50, 25, 101, 50, 25], 640, 640, "m.onnx")


def _scrfd_outputs(w: int, h: int, hits: dict[tuple[int, int], tuple]) -> list[np.ndarray]:
    """Zero outputs in SCRFD_NAMED order with chosen (stride, anchor index) set."""
    outs = []
    for dim in (1, 4, 10):
        for stride in (8, 16, 32):
            outs.append(np.zeros(((w // stride) * (h // stride) * 2, dim), np.float32))
    for (level, idx), (score, dist) in hits.items():
        outs[level][idx, 0] = score
        outs[3 + level][idx] = dist
        outs[6 + level][idx] = np.arange(10) / 10
    return outs


def test_decode_scrfd_by_hand() -> None:
    w, h = 64, 32
    # stride 16 grid is 4 x 2, two anchors per cell: index 2*(row*4+col)+a
    idx = 2 * (1 * 4 + 3) + 1  # row 1, col 3, second anchor -> centre (48, 16)
    outs = _scrfd_outputs(w, h, {(1, idx): (0.9, [1, 2, 3, 4])})
    layout = identify_layout(SCRFD_NAMED, "m.onnx")
    levels = levels_for(layout, [len(o) for o in outs], w, h, "m.onnx")
    boxes, scores, kps = decode(layout, levels, outs, w, h, 0.5)
    np.testing.assert_allclose(boxes, [[48 - 16, 16 - 32, 48 + 48, 16 + 64]])
    np.testing.assert_allclose(scores, [0.9])
    np.testing.assert_allclose(kps[0, 2], [48 + 0.4 * 16, 16 + 0.5 * 16], rtol=1e-6)


def test_decode_yunet_by_hand() -> None:
    w, h = 64, 64
    outs = [np.zeros(((w // s) * (h // s), 1), np.float32) for s in (8, 16, 32)] * 2
    outs = [o.copy() for o in outs]
    outs += [np.zeros(((w // s) * (h // s), 4), np.float32) for s in (8, 16, 32)]
    outs += [np.zeros(((w // s) * (h // s), 10), np.float32) for s in (8, 16, 32)]
    cell = 1 * 2 + 0  # stride 32: 2 x 2 grid, row 1 col 0
    outs[2][cell] = 0.81   # cls
    outs[5][cell] = 1.0    # obj -> score sqrt(0.81) = 0.9
    outs[8][cell] = [0.5, 0.5, np.log(2.0), 0.0]
    layout = identify_layout(YUNET, "m.onnx")
    levels = levels_for(layout, [len(o) for o in outs], w, h, "m.onnx")
    boxes, scores, kps = decode(layout, levels, outs, w, h, 0.5)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    np.testing.assert_allclose(boxes, [[16 - 32, 48 - 16, 16 + 32, 48 + 16]], rtol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0, 32])


def test_decode_ultraface_by_hand() -> None:
    scores = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    boxes = np.array([[0, 0, 1, 1], [0.25, 0.5, 0.5, 1.0]], np.float32)
    layout = identify_layout([(1, 2, 2), (1, 2, 4)], "m.onnx")
    b, s, k = decode(layout, [], [scores, boxes], 320, 240, 0.7)
    np.testing.assert_allclose(b, [[80, 120, 160, 240]])
    assert s.tolist() == pytest.approx([0.8]) and k is None
