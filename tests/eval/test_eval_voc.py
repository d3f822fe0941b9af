"""Devkit AP against hand-computed cases: ties, difficult objects, duplicates, empties."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.datasets.voc import Annotation, VOCObject
from viewfinder.errors import DatasetError, ShapeError
from viewfinder.eval.voc import VOCEvaluator, evaluate_class, voc_ap
from viewfinder.structures import Detections

GT_A = (np.array([[1, 1, 10, 10], [21, 21, 40, 40]], float), np.array([False, False]))


@pytest.mark.parametrize(("recall", "precision", "use_07", "expected"), [
    ([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], True, (6 * 1.0 + 5 * 2 / 3) / 11),
    ([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], False, 0.5 * 1.0 + 0.5 * 2 / 3),
    ([0.25, 0.5], [0.5, 1.0], False, 0.5),  # the envelope lifts the first point to 1
    ([0.25, 0.5], [0.5, 1.0], True, 6 / 11),
    ([], [], True, 0.0), ([], [], False, 0.0),
    ([1.0], [1.0], True, 1.0), ([1.0], [1.0], False, 1.0),
])
def test_voc_ap(recall: list, precision: list, use_07: bool, expected: float) -> None:
    assert voc_ap(np.array(recall), np.array(precision), use_07) == pytest.approx(expected)


def _eval(ids: list[str], scores: list[float], boxes: list[list[float]], gt: dict,
          use_07: bool = True):
    return evaluate_class("c", ids, np.array(scores), np.array(boxes, float).reshape(-1, 4), gt,
                          use_07)


def test_true_and_false_positives_in_score_order() -> None:
    r = _eval(["a", "a", "a"], [0.7, 0.9, 0.8],
              [[21, 21, 40, 40], [1, 1, 10, 10], [50, 50, 60, 60]], {"a": GT_A})
    np.testing.assert_allclose(r.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(r.precision, [1.0, 0.5, 2 / 3])
    assert r.ap == pytest.approx((6 + 5 * 2 / 3) / 11) and r.npos == 2 and r.ndet == 3


@pytest.mark.parametrize(("order", "expected"), [("fp_first", 0.5), ("tp_first", 1.0)])
def test_ties_keep_input_order(order: str, expected: float) -> None:
    tp, fp = [1, 1, 10, 10], [50, 50, 60, 60]
    boxes = [fp, tp] if order == "fp_first" else [tp, fp]
    gt = {"a": (np.array([[1, 1, 10, 10]], float), np.array([False]))}
    for use_07 in (True, False):
        assert _eval(["a", "a"], [0.5, 0.5], boxes, gt, use_07).ap == pytest.approx(expected)


def test_difficult_objects_are_ignored() -> None:
    gt = {"a": (GT_A[0], np.array([True, False]))}
    r = _eval(["a", "a"], [0.9, 0.8], [[1, 1, 10, 10], [21, 21, 40, 40]], gt)
    assert r.npos == 1 and r.ap == pytest.approx(1.0)
    np.testing.assert_allclose(r.precision, [1.0])  # the difficult match is not counted


def test_duplicates_are_false_positives() -> None:
    gt = {"a": (np.array([[1, 1, 10, 10]], float), np.array([False]))}
    r = _eval(["a", "a"], [0.9, 0.8], [[1, 1, 10, 10], [1, 1, 10, 9]], gt)
    np.testing.assert_allclose(r.precision, [1.0, 0.5])
    np.testing.assert_allclose(r.recall, [1.0, 1.0])


@pytest.mark.parametrize(("box", "tp"), [
    ([1, 1, 10, 5], True),    # IoU exactly 0.5 with +1 pixels (devkit: >= minoverlap)
    ([1, 1, 10, 4], False),   # 0.4
    ([11, 1, 20, 10], False),  # touching, no overlap
    ([1, 1, 10, 10], True),
])
def test_overlap_uses_plus_one_pixels(box: list[float], tp: bool) -> None:
    gt = {"a": (np.array([[1, 1, 10, 10]], float), np.array([False]))}
    assert (_eval(["a"], [1.0], [box], gt).ap == pytest.approx(1.0)) is tp


def test_detections_in_other_images_do_not_match() -> None:
    gt = {"a": GT_A, "b": (np.zeros((0, 4)), np.zeros(0, bool))}
    r = _eval(["b", "a"], [0.9, 0.5], [[1, 1, 10, 10], [1, 1, 10, 10]], gt)
    np.testing.assert_allclose(r.precision, [0.0, 0.5])


def test_no_detections_and_no_ground_truth() -> None:
    assert _eval([], [], [], {"a": GT_A}).ap == 0.0
    empty = {"a": (np.zeros((0, 4)), np.zeros(0, bool))}
    assert np.isnan(_eval(["a"], [1.0], [[1, 1, 5, 5]], empty).ap)


def test_mismatched_inputs_are_rejected() -> None:
    with pytest.raises(ShapeError):
        evaluate_class("c", ["a"], np.array([1.0, 2.0]), np.zeros((2, 4)), {})
    with pytest.raises(ShapeError):
        evaluate_class("c", ["a", "b"], np.array([1.0]), np.zeros((1, 4)), {})


def _annotations() -> dict[str, Annotation]:
    return {
        "1": Annotation(100, 100, (VOCObject("dog", (1, 1, 10, 10)),
                                   VOCObject("cat", (21, 21, 40, 40), difficult=True))),
        "2": Annotation(100, 100, (VOCObject("dog", (51, 51, 80, 80)),)),
        "3": Annotation(100, 100, ()),
    }


def test_evaluator_with_detections_and_map() -> None:
    ev = VOCEvaluator(use_07_metric=False)
    for image_id, ann in _annotations().items():
        ev.add_ground_truth(image_id, ann)
    names = ("dog", "cat", "bird")
    # Detections use continuous 0-based corners: [0, 0, 10, 10] is the devkit's [1, 1, 10, 10].
    ev.process("1", Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), [0.9, 0.8],
                               [0, 1], names))
    ev.process("3", Detections(np.array([[0, 0, 5, 5]]), [0.95], [0], names))
    res = ev.evaluate()
    assert res.ap["dog"] == pytest.approx(0.25)  # FP then TP, one of two dogs found
    assert np.isnan(res.ap["cat"])  # the only cat is difficult
    assert res.mean_ap == pytest.approx(0.25)
    assert res["dog"].npos == 2 and res["dog"].ndet == 2
    ev.reset()
    with pytest.raises(DatasetError, match="no ground truth"):
        ev.evaluate()


def test_evaluator_rejects_unknown_images_and_non_detections() -> None:
    ev = VOCEvaluator()
    ev.add_ground_truth("1", _annotations()["1"])
    ev.add_devkit("dog", "999", 1.0, (1, 1, 5, 5))
    with pytest.raises(DatasetError, match="image 999 is not in the evaluated set"):
        ev.evaluate()
    with pytest.raises(ShapeError):
        ev.process("1", [[0, 0, 1, 1]])  # type: ignore[arg-type]
