"""YOLOv3-tiny against Darknet itself (pjreddie's C implementation), not against numbers
this implementation recorded: the shared reference detections through every float path
(raw, decoded and NMS graphs, an exported ONNX, ``viewfinder convert``), and the Darknet
definitions the agreement rests on, each re-implemented here from Darknet's C source
(``image.c`` letterbox_image/resize_image, ``yolo_layer.c`` correct_yolo_boxes,
``blas.c`` normalize_cpu, ``maxpool_layer.c``)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from darknet_reference import CONF, N_FOUND, agreement, load_reference

from viewfinder.detect.darknet_cfg import parse_cfg_text
from viewfinder.detect.darknet_export import build_onnx, export_onnx
from viewfinder.detect.yolo import darknet_fit, darknet_resize, load_yolo, preprocess

MIN_IOU, MAX_GAP = 0.97, 0.02  # issue 19's bound for the float paths


@pytest.fixture(scope="module")
def cases(shared):
    return load_reference(shared)


def _check(result) -> None:
    assert result.total == N_FOUND, result.summary()
    assert not result.missing, result.missing
    assert not result.outside(MIN_IOU, MAX_GAP), result.outside(MIN_IOU, MAX_GAP)
    assert not result.extras, result.extras


@pytest.mark.parametrize("graph", ["raw", "decoded", "nms"])
def test_detections_match_darknet(cases, graph) -> None:
    # measured: all 44 found, worst IoU 0.9972, worst score gap 0.0063 (the JPEG decoder:
    # with Darknet's own stb_image pixels the blob is bit-identical and the gap 0.0000)
    _check(agreement(load_yolo("yolov3-tiny", graph=graph, conf=CONF).detect, cases))


def test_exported_onnx_matches_darknet(shared, cases, tmp_path) -> None:
    d = shared / "models/detect/yolov3-tiny"
    path = export_onnx(d / "yolov3-tiny.cfg", d / "yolov3-tiny.weights", tmp_path / "t.onnx")
    _check(agreement(load_yolo(path, conf=CONF).detect, cases))


def test_convert_cfg_weights_matches_darknet(run_cli, shared, cases, tmp_path) -> None:
    d = shared / "models/detect/yolov3-tiny"
    code, _, err = run_cli("convert", d / "yolov3-tiny.cfg", "--weights",
                           d / "yolov3-tiny.weights", "-o", tmp_path / "c.onnx")
    assert code == 0, err
    _check(agreement(load_yolo(tmp_path / "c.onnx", conf=CONF).detect, cases))


def _resize_image_c(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """image.c resize_image, loop for loop, float32 scalars ((C, H, W) in and out)."""
    f = np.float32
    c_, ih, iw = im.shape
    part = np.zeros((c_, ih, w), f)
    out = np.zeros((c_, h, w), f)
    w_scale, h_scale = f(iw - 1) / f(w - 1), f(ih - 1) / f(h - 1)
    for k in range(c_):
        for r in range(ih):
            for c in range(w):
                if c == w - 1 or iw == 1:
                    part[k, r, c] = im[k, r, iw - 1]
                else:
                    sx = f(c) * w_scale
                    ix = int(sx)
                    dx = sx - f(ix)
                    part[k, r, c] = (f(1) - dx) * im[k, r, ix] + dx * im[k, r, ix + 1]
        for r in range(h):
            sy = f(r) * h_scale
            iy = int(sy)
            dy = sy - f(iy)
            for c in range(w):
                out[k, r, c] = (f(1) - dy) * part[k, iy, c]
            if r == h - 1 or ih == 1:
                continue
            for c in range(w):
                out[k, r, c] += dy * part[k, iy + 1, c]
    return out


@pytest.mark.parametrize(("src", "dst"), [((9, 7), (5, 4)), ((7, 9), (13, 11)), ((23, 5), (6, 2)),
                                          ((1, 6), (4, 3)), ((6, 1), (3, 5)), ((40, 31), (12, 29))])
def test_resize_is_darknets_bit_for_bit(src, dst) -> None:
    rng = np.random.default_rng(sum(src + dst))
    image = rng.integers(0, 256, (src[1], src[0], 3), dtype=np.uint8)
    unit = (image.astype(np.float64) / 255.0).astype(np.float32)  # load_image_stb
    expected = _resize_image_c(unit.transpose(2, 0, 1), *dst)
    np.testing.assert_array_equal(darknet_resize(image, *dst), expected)
    np.testing.assert_array_equal(darknet_resize(unit, *dst), expected)


@pytest.mark.parametrize(("w", "h", "fit", "offset"), [
    (640, 426, (416, 276), (0, 70)),      # truncated, not rounded (276.9)
    (640, 427, (416, 277), (0, 69)),      # odd padding: embedded at 69, boxes use 69.5
    (375, 500, (312, 416), (52, 0)),
    (586, 640, (380, 416), (18, 0)),
    (200, 100, (416, 208), (0, 104)),     # upscaling
    (416, 416, (416, 416), (0, 0)),
])
def test_letterbox_size_placement_pad_and_box_mapping(w, h, fit, offset) -> None:
    assert darknet_fit(w, h, 416, 416) == fit
    blob, t = preprocess(np.full((h, w, 3), (0, 128, 255), np.uint8), (416, 416))
    (x0, y0), (nw, nh) = offset, fit
    inside = np.zeros((416, 416), bool)
    inside[y0:y0 + nh, x0:x0 + nw] = True
    assert np.all(blob[0][:, ~inside] == np.float32(0.5))
    rgb = np.float32([255, 128, 0]) / np.float32(255)  # BGR in, RGB v / 255 out
    np.testing.assert_allclose(blob[0][:, inside], np.repeat(rgb[:, None], inside.sum(), 1),
                               atol=1e-6)  # (1 - dx) * v + dx * v is v to 1 ulp
    # correct_yolo_boxes: x = (x_net / netw - (netw - new_w) / 2. / netw) / (new_w / netw) * w
    net = np.array([[10.0, 20.0, 300.0, 400.0]])
    want = np.stack([(net[:, 0] - (416 - nw) / 2) * w / nw, (net[:, 1] - (416 - nh) / 2) * h / nh,
                     (net[:, 2] - (416 - nw) / 2) * w / nw, (net[:, 3] - (416 - nh) / 2) * h / nh],
                    1)
    np.testing.assert_allclose(t.inverse().apply_box(net), want, rtol=1e-6, atol=1e-3)


def _run(model, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": x})[0]


def test_batch_norm_is_darknets_epsilon_on_the_std() -> None:
    spec = parse_cfg_text("[net]\nwidth=4\nheight=4\nchannels=1\n[convolutional]\n"
                          "batch_normalize=1\nfilters=5\nsize=1\nstride=1\npad=0\n"
                          "activation=linear\n[yolo]\nmask=0\nanchors=1,1\nclasses=0\nnum=1\n")
    # a near-dead channel first: there sqrt(var + 1e-5) would be 31x sqrt(var) + 1e-6
    var = np.float32([1e-8, 4.0, 1e-2, 1.0, 1e-4])
    parts = {"bias": np.float32([0.5, -1, 0, 1, 2]), "bn_weight": np.float32([2, 3, 1, -1, 1]),
             "bn_mean": np.float32([0.1, 0.2, 0, -0.5, 0.3]), "bn_var": var,
             "weight": np.float32([1, 1, 2, 1, -1]).reshape(5, 1, 1, 1)}
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    got = _run(build_onnx(spec, {0: parts}), x)
    k = parts["bn_weight"] / (np.sqrt(var) + np.float32(1e-6))  # blas.c normalize_cpu
    conv = x * parts["weight"].reshape(1, 5, 1, 1)
    want = (conv - parts["bn_mean"][None, :, None, None]) * k[None, :, None, None] \
        + parts["bias"][None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize(("size", "stride"), [(2, 1), (2, 2), (3, 1), (3, 2)])
def test_maxpool_is_darknets(size, stride) -> None:
    spec = parse_cfg_text(f"[net]\nwidth=7\nheight=5\nchannels=5\n[maxpool]\nsize={size}\n"
                          f"stride={stride}\n[yolo]\nmask=0\nanchors=1,1\nclasses=0\nnum=1\n")
    x = np.random.default_rng(size * stride).normal(size=(1, 5, 5, 7)).astype(np.float32)
    got = _run(build_onnx(spec, {}), x)
    pad = size - 1  # maxpool_layer.c: offset -pad/2 (C division), -FLT_MAX outside
    oh, ow = (5 + pad - size) // stride + 1, (7 + pad - size) // stride + 1
    want = np.full((1, 5, oh, ow), -np.inf, np.float32)
    for i in range(oh):
        for j in range(ow):
            for n in range(size):
                for m in range(size):
                    y, xx = -(pad // 2) + i * stride + n, -(pad // 2) + j * stride + m
                    if 0 <= y < 5 and 0 <= xx < 7:
                        want[0, :, i, j] = np.maximum(want[0, :, i, j], x[0, :, y, xx])
    np.testing.assert_array_equal(got, want)
