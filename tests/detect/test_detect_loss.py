"""YOLOv3 loss (assignment, ignore, perfect prediction) and augmentation (boxes follow pixels)."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.detect.darknet_cfg import parse_cfg_text
from viewfinder.detect.train.augment import Augment, Sample, collate, hsv_jitter

torch = pytest.importorskip("torch")

from viewfinder.detect.train.loss import YoloLoss  # noqa: E402

# Two heads: stride 16 (4x4) with the big anchors 3,4,5, stride 8 (8x8) with the small ones.
CFG = """[net]
width=64
height=64
channels=3
[convolutional]
filters=21
size=1
stride=8
pad=0
activation=linear
[convolutional]
filters=21
size=1
stride=2
pad=0
activation=linear
[yolo]
mask=3,4,5
anchors=4,4, 8,8, 12,12, 16,16, 24,24, 32,32
classes=2
num=6
ignore_thresh=.5
[route]
layers=-3
[yolo]
mask=0,1,2
anchors=4,4, 8,8, 12,12, 16,16, 24,24, 32,32
classes=2
num=6
ignore_thresh=.5
"""


@pytest.fixture(scope="module")
def loss_fn() -> YoloLoss:
    return YoloLoss(parse_cfg_text(CFG))


def _zeros(n: int = 1):
    return [torch.full((n, 21, 4, 4), -12.0), torch.full((n, 21, 8, 8), -12.0)]


def _perfect(target):
    """Raw outputs predicting ``target`` = (cls, cx, cy, w, h) exactly (anchor 32x32 -> head 0)."""
    cls, cx, cy, w, h = target
    outs = _zeros()
    gi, gj = int(cx // 16), int(cy // 16)
    v = outs[0][0].view(3, 7, 4, 4)
    tx, ty = cx / 16 - gi, cy / 16 - gj
    v[2, 0, gj, gi] = float(np.log(tx / (1 - tx)))
    v[2, 1, gj, gi] = float(np.log(ty / (1 - ty)))
    v[2, 2, gj, gi] = float(np.log(w / 32))
    v[2, 3, gj, gi] = float(np.log(h / 32))
    v[2, 4, gj, gi] = 12.0
    v[2, 5 + cls, gj, gi] = 12.0
    return outs


TARGET = (1, 40.0, 24.0, 30.0, 34.0)


def test_perfect_prediction_has_only_the_xy_entropy_floor(loss_fn) -> None:
    t = torch.tensor([[0, *TARGET]])
    terms = loss_fn(_perfect(TARGET), t)
    assert float(terms["loss_wh"]) < 1e-6
    assert float(terms["loss_cls"]) < 1e-3 and float(terms["loss_obj"]) < 1e-2
    tx, ty = TARGET[1] / 16 % 1, TARGET[2] / 16 % 1
    entropy = sum(-(p * np.log(p) + (1 - p) * np.log(1 - p)) for p in (tx, ty))
    scale = 2 - (30 / 64) * (34 / 64)
    assert float(terms["loss_xy"]) == pytest.approx(entropy * scale, rel=1e-3)


def test_wrong_predictions_cost_more(loss_fn) -> None:
    t = torch.tensor([[0, *TARGET]])
    good = sum(loss_fn(_perfect(TARGET), t).values())
    wrong_class = _perfect(TARGET)
    wrong_class[0][0].view(3, 7, 4, 4)[2, 5:7] *= -1  # class 1 -> 0
    bad = sum(loss_fn(wrong_class, t).values())
    assert float(bad) > float(good) + 10


@pytest.mark.parametrize(("size", "head", "slot"), [((30, 34), 0, 2), ((5, 4), 1, 0),
                                                    ((17, 15), 0, 0)])
def test_best_anchor_assignment(loss_fn, size, head, slot) -> None:
    outs = [o.requires_grad_() for o in _zeros()]
    t = torch.tensor([[0, 0, 20.0, 20.0, *size]])
    sum(loss_fn(outs, t)[k] for k in ("loss_xy", "loss_wh", "loss_cls")).backward()
    g = outs[head].grad[0].view(3, 7, *outs[head].shape[2:])
    nonzero = {int(a) for a in g.abs().sum((1, 2, 3)).nonzero()}
    assert nonzero == {slot}
    assert float(outs[1 - head].grad.abs().sum()) == 0.0


def test_ignore_thresh_spares_good_unassigned_predictions(loss_fn) -> None:
    t = torch.tensor([[0, *TARGET]])
    outs = _perfect(TARGET)
    # a confident second prediction of the same box from the neighbouring anchor slot
    v = outs[0][0].view(3, 7, 4, 4)
    gj, gi = int(TARGET[2] // 16), int(TARGET[1] // 16)
    v[1, :4, gj, gi] = v[2, :4, gj, gi] + torch.tensor([0, 0, np.log(32 / 24), np.log(32 / 24)])
    v[1, 4, gj, gi] = 12.0
    spared = float(loss_fn(outs, t)["loss_obj"])
    strict = YoloLoss(parse_cfg_text(CFG.replace("ignore_thresh=.5", "ignore_thresh=1")))
    assert spared < 1e-2 < 10 < float(strict(outs, t)["loss_obj"])


def test_no_targets_only_objectness(loss_fn) -> None:
    outs = [o.requires_grad_() for o in _zeros(2)]
    terms = loss_fn(outs, torch.zeros((0, 6)))
    assert float(terms["loss_xy"].detach()) == float(terms["loss_cls"].detach()) == 0.0
    sum(terms.values()).backward()
    assert all(torch.isfinite(o.grad).all() for o in outs)


def _red_box(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero((image[..., 2] > 200) & (image[..., 0] < 60) & (image[..., 1] < 60))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize(("jitter", "flip", "seed"), [(0.0, 0.0, 0), (0.0, 1.0, 0),
                                                      (0.3, 0.5, 1), (0.3, 0.5, 2), (0.3, 1, 3)])
def test_boxes_follow_the_pixels(jitter, flip, seed) -> None:
    img = np.full((120, 200, 3), 90, np.uint8)
    img[40:80, 60:130] = (0, 0, 255)
    sample = Sample(img, np.array([[60, 40, 130, 80]], np.float32), np.array([1]))
    out, boxes, classes = Augment(96, jitter=jitter, flip=flip, hsv=None, seed=seed)(sample)
    assert out.shape == (96, 96, 3) and list(classes) == [1]
    np.testing.assert_allclose(boxes[0], _red_box(out), atol=1.5)


def test_hsv_identity_and_change() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    same = hsv_jitter(img, rng, 0.0, 1.0, 1.0)
    assert np.abs(same.astype(int) - img).max() <= 8  # HSV round trip quantisation
    changed = hsv_jitter(img, np.random.default_rng(1), 0.1, 1.5, 1.5)
    assert changed.shape == img.shape and changed.dtype == np.uint8
    assert np.abs(changed.astype(int) - img).mean() > 3


def test_collate_targets() -> None:
    a = (np.zeros((8, 8, 3), np.uint8), np.array([[0, 0, 4, 2]], np.float32), np.array([3]))
    b = (np.full((8, 8, 3), 255, np.uint8), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    images, targets = collate([a, b])
    assert images.shape == (2, 3, 8, 8) and float(images[1].min()) == 1.0
    assert targets.tolist() == [[0, 3, 2, 1, 4, 2]]


@pytest.mark.parametrize(("image", "boxes", "classes"), [
    (np.zeros((8, 8), np.uint8), np.zeros((0, 4)), np.zeros(0)),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((2, 4)), np.zeros(1)),
])
def test_sample_validation(image, boxes, classes) -> None:
    from viewfinder.errors import ShapeError

    with pytest.raises(ShapeError):
        Sample(image, boxes, classes)
