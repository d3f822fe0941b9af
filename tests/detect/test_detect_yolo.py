"""YOLO inference on ONNX Runtime: a Darknet run on dog.jpg, an
independent decoder, the three graph forms, and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viewfinder.detect.yolo import load_yolo, postprocess, preprocess
from viewfinder.errors import ConfigError, ModelError, ModelNotFoundError, ShapeError
from viewfinder.media import read_image
from viewfinder.ops.boxes import box_iou

# Darknet itself on dog.jpg: pjreddie/darknet f6afaab, CPU build (`make`, -Ofast),
# `detector test`-equivalent run (letterbox 416, thresh 0.5, NMS 0.45), boxes as
# correct_yolo_boxes gives them (unrounded, pixel corners). The vehicle is a car and a
# truck twice: Darknet labels one box with every class above the threshold.
DARKNET_DOG = [
    ("car", 0.615291, (465.022, 71.119, 679.377, 169.844)),
    ("bicycle", 0.585022, (206.243, 150.879, 575.645, 450.204)),
    ("dog", 0.570732, (129.170, 186.742, 369.020, 517.505)),
    ("truck", 0.557827, (533.223, 94.668, 621.644, 157.431)),
    ("car", 0.517267, (533.223, 94.668, 621.644, 157.431)),
]


@pytest.fixture(scope="module")
def dog(shared) -> np.ndarray:
    return read_image(shared / "images/dog.jpg")


@pytest.fixture(scope="module")
def detector(shared):
    return load_yolo("yolov3-tiny", conf=0.5)


def test_dog_matches_a_darknet_run(detector, dog) -> None:
    dets = detector.detect(dog)
    assert len(dets) == len(DARKNET_DOG) and np.all(np.diff(dets.scores) <= 0)
    for i, (label, score, box) in enumerate(DARKNET_DOG):
        assert dets.label(i) == label
        assert abs(float(dets.scores[i]) - score) < 0.01, (label, dets.scores[i])
        iou = box_iou(dets.boxes[i:i + 1], np.array([box], np.float32))[0, 0]
        assert iou > 0.99, (label, dets.boxes[i])


@pytest.mark.parametrize("graph", ["decoded", "nms"])
def test_graph_forms_agree(shared, dog, detector, graph) -> None:
    ref = detector.detect(dog)
    other = load_yolo("yolov3-tiny", graph=graph, conf=0.5).detect(dog)
    np.testing.assert_array_equal(other.class_ids, ref.class_ids)
    np.testing.assert_allclose(other.boxes, ref.boxes, atol=0.05)
    np.testing.assert_allclose(other.scores, ref.scores, atol=1e-5)


def _independent_decode(raw, anchors_per_head, size, classes, conf):
    """Darknet's get_yolo_detections, cell by cell, in plain Python."""
    out = []
    for tensor, anchors in zip(raw, anchors_per_head, strict=True):
        _, ch, gh, gw = tensor.shape
        per = ch // len(anchors)
        for a, (aw, ah) in enumerate(anchors):
            for j in range(gh):
                for i in range(gw):
                    v = tensor[0, a * per:(a + 1) * per, j, i].astype(np.float64)
                    sig = [1 / (1 + math.exp(-t)) for t in v[:5]]
                    if sig[4] <= conf:
                        continue
                    x, y = (i + sig[0]) / gw * size, (j + sig[1]) / gh * size
                    w, h = math.exp(v[2]) * aw, math.exp(v[3]) * ah
                    for c in range(classes):
                        p = sig[4] / (1 + math.exp(-v[5 + c]))
                        if p > conf:
                            out.append((c, p, x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    return out


def _independent_nms(cands, iou_thr):
    keep = []
    for cand in sorted(cands, key=lambda d: -d[1]):
        a = cand[2:]
        ok = True
        for k in keep:
            if k[0] != cand[0]:
                continue
            b = k[2:]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > iou_thr:
                ok = False
                break
        if ok:
            keep.append(cand)
    return keep


@pytest.mark.parametrize("conf", [0.1, 0.3])
def test_independent_decoder_agrees(detector, dog, conf) -> None:
    blob, _ = preprocess(dog, (416, 416))
    raw = detector.session.run(blob)
    anchors = [[(81, 82), (135, 169), (344, 319)], [(10, 14), (23, 27), (37, 58)]]
    ref = _independent_nms(_independent_decode(raw, anchors, 416, 80, conf), 0.45)
    from viewfinder.detect.yolo import decode_outputs

    boxes, scores = decode_outputs(raw, detector.info.heads)
    b, s, c = postprocess(boxes[0], scores[0], conf, 0.45)
    assert len(ref) == len(b) > 4
    np.testing.assert_array_equal(c, [r[0] for r in ref])
    np.testing.assert_allclose(s, [r[1] for r in ref], rtol=1e-5)
    np.testing.assert_allclose(b, [r[2:] for r in ref], atol=1e-2)


def test_classes_filter(shared, dog) -> None:
    dets = load_yolo("yolov3-tiny", conf=0.5, classes=["dog", 1]).detect(dog)
    assert sorted(dets.label(i) for i in range(len(dets))) == ["bicycle", "dog"]


@pytest.mark.parametrize("crop", [(576, 768), (427, 640), (500, 375), (300, 768)])
def test_boxes_are_in_source_pixels(detector, dog, crop) -> None:
    # Darknet's correct_yolo_boxes by hand: x = (x_net - (416 - new_w) / 2) * w / new_w,
    # including odd paddings (427 rows: embedded at row 69, boxes mapped with 69.5)
    image = np.ascontiguousarray(dog[:crop[0], :crop[1]])
    h, w = image.shape[:2]
    new_w, new_h = (416, h * 416 // w) if 416 / w < 416 / h else (w * 416 // h, 416)
    blob, _ = preprocess(image, (416, 416))
    anchors = [[(81, 82), (135, 169), (344, 319)], [(10, 14), (23, 27), (37, 58)]]
    ref = _independent_nms(_independent_decode(detector.session.run(blob), anchors, 416, 80,
                                               0.5), 0.45)
    scale = np.array([w / new_w, h / new_h] * 2)
    pad = np.array([(416 - new_w) / 2, (416 - new_h) / 2] * 2)
    want = np.array([(np.array(r[2:]) - pad) * scale for r in ref]).reshape(-1, 4)
    want[:, 0::2] = want[:, 0::2].clip(0, w)
    want[:, 1::2] = want[:, 1::2].clip(0, h)
    dets = detector.detect(image)
    assert len(dets) == len(ref) > 0
    np.testing.assert_array_equal(dets.class_ids, [r[0] for r in ref])
    np.testing.assert_allclose(dets.boxes, want, atol=0.02)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"conf": 1.5}, ConfigError, r"conf=1.5: expected a value in \[0, 1\]"),
    ({"iou": -0.1}, ConfigError, "iou=-0.1"),
    ({"classes": ["unicorn"]}, ConfigError, "class 'unicorn': not a class name"),
    ({"classes": [80]}, ConfigError, r"expected ids in \[0, 80\)"),
    ({"graph": "fused"}, ConfigError, "graph 'fused'"),
    ({"model": "yolov9-huge"}, ModelNotFoundError, "yolov9-huge"),
    ({"model": "missing.onnx"}, ModelNotFoundError, "missing.onnx: no such model file"),
])
def test_load_errors(shared, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        load_yolo(**kwargs)


def test_onnx_without_metadata(shared, tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelError, match="no 'viewfinder.yolo' metadata"):
        load_yolo(path)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_bad_image(detector, image) -> None:
    with pytest.raises(ShapeError, match="expected \\(H, W, 3\\) uint8"):
        detector.detect(image)


@pytest.mark.parametrize("conf", [0.01, 0.25, 0.5, 1.0])
def test_objectness_prefilter_changes_nothing(detector, dog, conf) -> None:
    from viewfinder.detect.yolo import decode_candidates, decode_outputs

    blob, _ = preprocess(dog, (416, 416))
    raw = detector.session.run(blob)
    boxes, scores = decode_outputs(raw, detector.info.heads)
    full = postprocess(boxes[0], scores[0], conf, 0.45)
    fast = postprocess(*decode_candidates(raw, detector.info.heads, conf), conf, 0.45)
    for a, b in zip(full, fast, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_inference_and_export_need_no_torch(shared, tmp_path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from viewfinder.detect import export_onnx, load_yolo\n"
        "from viewfinder.media import read_image\n"
        f"d = r'{shared}/models/detect/yolov3-tiny/'\n"
        f"p = export_onnx(d + 'yolov3-tiny.cfg', d + 'yolov3-tiny.weights', r'{tmp_path}/t.onnx')\n"
        f"dets = load_yolo(p, conf=0.5).detect(read_image(r'{shared}/images/dog.jpg'))\n"
        "print(sorted(dets.label(i) for i in range(len(dets))))\n"
        "from viewfinder.detect.darknet import build_darknet\n"
        "try:\n    build_darknet(d + 'yolov3-tiny.cfg')\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0] == "['bicycle', 'car', 'car', 'dog', 'truck']"  # as Darknet: DARKNET_DOG
    assert out[1] == ("torch is needed for building Darknet models but is not installed: "
                      "pip install 'viewfinder[train]'")
