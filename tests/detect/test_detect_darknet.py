"""Torch module from a cfg vs the ONNX export, on every layer type and on yolov3-tiny."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from viewfinder.detect.darknet_cfg import parse_cfg, parse_cfg_text, yolo_heads
from viewfinder.detect.darknet_export import build_onnx, export_onnx
from viewfinder.detect.darknet_weights import read_weights, write_weights
from viewfinder.detect.yolo import decode_outputs, postprocess

torch = pytest.importorskip("torch")

from viewfinder.detect.darknet import build_darknet, save_weights  # noqa: E402

ANCHORS = "anchors=4,5, 8,9, 12,10, 16,20, 30,24, 40,44\nclasses=2\nnum=6\n"


def _conv(f, size=3, stride=1, act="leaky", bn=1):
    return (f"[convolutional]\nbatch_normalize={bn}\nfilters={f}\nsize={size}\nstride={stride}\n"
            f"pad=1\nactivation={act}\n")


# Every supported layer type, including the v4-tiny route groups, mish, tiny's stride-1
# maxpool, a shortcut and scale_x_y.
ALL_LAYERS = ("[net]\nwidth=64\nheight=64\nchannels=3\n" + _conv(16)
              + "[maxpool]\nsize=2\nstride=2\n" + _conv(16, act="mish")
              + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n" + _conv(8)
              + "[shortcut]\nfrom=-2\nactivation=linear\n" + "[route]\nlayers=-1,-4\n"
              + "[maxpool]\nsize=2\nstride=1\n" + _conv(16, stride=2)
              + _conv(21, 1, 1, "linear", 0) + "[yolo]\nmask=3,4,5\nscale_x_y=1.05\n" + ANCHORS
              + "[route]\nlayers=-3\n" + "[upsample]\nstride=2\n" + "[route]\nlayers=-1,6\n"
              + _conv(21, 1, 1, "linear", 0) + "[yolo]\nmask=0,1,2\n" + ANCHORS)


def _random_weights(spec, path, seed=0):
    rng = np.random.default_rng(seed)
    from viewfinder.detect.darknet_cfg import conv_param_counts

    tensors = {}
    for layer in spec.layers:
        if layer.kind == "convolutional":
            parts = {name: rng.normal(0, 0.3, n).astype(np.float32)
                     for name, n in conv_param_counts(layer)}
            if "bn_var" in parts:
                parts["bn_var"] = rng.uniform(0.5, 2.0, parts["bn_var"].size).astype(np.float32)
            tensors[layer.index] = parts
    return write_weights(path, spec, tensors, seen=123)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = parse_cfg_text(ALL_LAYERS)
    path = _random_weights(spec, tmp_path_factory.mktemp("w") / "all.weights")
    return spec, path


def _session(model):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def test_every_layer_type_torch_matches_onnx(small) -> None:
    spec, path = small
    assert [layer.out_shape for layer in spec.layers][7] == (24, 32, 32)
    model = build_darknet(spec, path)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    _, tensors = read_weights(path, spec)
    out = _session(build_onnx(spec, tensors, dynamic_batch=True)).run(None, {"images": x.numpy()})
    assert [o.shape for o in out] == [(2, 21, 16, 16), (2, 21, 32, 32)]
    for r, o in zip(ref, out, strict=True):
        np.testing.assert_allclose(o, r, atol=1e-4, rtol=1e-4)


def test_decoded_graph_matches_numpy_decode(small) -> None:
    spec, path = small
    _, tensors = read_weights(path, spec)
    x = np.random.default_rng(1).random((1, 3, 64, 64), dtype=np.float32)
    raw = _session(build_onnx(spec, tensors)).run(None, {"images": x})
    boxes, scores = _session(build_onnx(spec, tensors, decode=True)).run(None, {"images": x})
    nb, ns = decode_outputs(raw, yolo_heads(spec))
    np.testing.assert_allclose(boxes, nb, atol=1e-3, rtol=1e-5)
    np.testing.assert_allclose(scores, ns, atol=1e-6)


def test_nms_graph_matches_numpy_postprocess(small) -> None:
    spec, path = small
    _, tensors = read_weights(path, spec)
    x = np.random.default_rng(2).random((1, 3, 64, 64), dtype=np.float32)
    boxes, scores = _session(build_onnx(spec, tensors, decode=True)).run(None, {"images": x})
    sess = _session(build_onnx(spec, tensors, nms=True))
    conf, iou = 0.4, 0.5
    dets = sess.run(None, {"images": x, "score_threshold": np.float32([conf]),
                           "iou_threshold": np.float32([iou]),
                           "max_output_boxes_per_class": np.int64([10_000])})[0]
    b, s, c = postprocess(boxes[0], scores[0], conf, iou, max_det=100_000)
    assert len(b) > 3  # the test means something
    order = np.lexsort((dets[:, 1], -dets[:, 5]))
    ref = np.lexsort((b[:, 0], -s))
    np.testing.assert_allclose(dets[order, 1:5], b[ref], atol=1e-3)
    np.testing.assert_array_equal(dets[order, 6].astype(int), c[ref])


def test_save_weights_round_trip(small, tmp_path) -> None:
    spec, path = small
    model = build_darknet(spec, path)
    out = save_weights(model, tmp_path / "again.weights", seen=123)
    assert out.read_bytes() == path.read_bytes()


@pytest.fixture(scope="module")
def tiny(shared):
    d = shared / "models/detect/yolov3-tiny"
    return d / "yolov3-tiny.cfg", d / "yolov3-tiny.weights"


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_yolov3_tiny_torch_vs_onnx_within_1e4(tiny, tmp_path, dynamic_batch) -> None:
    cfg, weights = tiny
    model = build_darknet(cfg, weights)
    assert (model.header.major, model.header.minor, model.header.seen) == (0, 2, 32013312)
    onnx_path = export_onnx(cfg, weights, tmp_path / "t.onnx", dynamic_batch=dynamic_batch)
    batch = 2 if dynamic_batch else 1
    x = torch.rand(batch, 3, 416, 416, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"images": x.numpy()})
    for r, o in zip(ref, out, strict=True):
        assert o.shape == r.shape
        assert float(np.abs(o - r).max()) < 1e-4


def test_export_size_override(tiny, tmp_path) -> None:
    cfg, weights = tiny
    path = export_onnx(cfg, weights, tmp_path / "t320.onnx", size=320, decode=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    boxes, scores = sess.run(None, {"images": np.zeros((1, 3, 320, 320), np.float32)})
    assert boxes.shape == (1, 3 * (10 * 10 + 20 * 20), 4) and scores.shape[2] == 80


def test_export_failure_leaves_no_file(tiny, tmp_path) -> None:
    from viewfinder.errors import ModelError

    cfg, weights = tiny
    cut = tmp_path / "cut.weights"
    cut.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="ran out of data"):
        export_onnx(cfg, cut, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    assert not list(tmp_path.glob(".x.onnx*"))


def test_yolov3_tiny_parse_shapes(tiny) -> None:
    assert parse_cfg(tiny[0]).layers[-1].out_shape == (255, 26, 26)


def test_yolov4_tiny_layout_torch_matches_onnx(tmp_path) -> None:
    import darknet_layouts

    spec = parse_cfg_text(darknet_layouts.yolov4_tiny(), size=128)
    path = _random_weights(spec, tmp_path / "v4t.weights", seed=3)
    model = build_darknet(spec, path)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [t.numpy() for t in model(x)]
    _, tensors = read_weights(path, spec)
    out = _session(build_onnx(spec, tensors)).run(None, {"images": x.numpy()})
    assert [o.shape for o in out] == [(1, 255, 4, 4), (1, 255, 8, 8)]
    for r, o in zip(ref, out, strict=True):  # random weights: activations grow to ~1e3
        assert float(np.abs(o - r).max()) < 1e-5 * float(np.abs(r).max())


def test_eval_batch_norm_is_darknets_like_the_export(tmp_path) -> None:
    # Darknet normalises with (x - mean) / (sqrt(var) + 1e-6); a near-dead channel
    # (var 1e-8) is where torch's usual sqrt(var + 1e-5) would be 31x off
    spec = parse_cfg_text("[net]\nwidth=4\nheight=4\nchannels=1\n" + _conv(5, 1, 1, "linear")
                          + "[yolo]\nmask=0\nanchors=1,1\nclasses=0\nnum=1\n")
    parts = {"bias": np.float32([0.5, -1, 0, 1, 2]), "bn_weight": np.float32([2, 3, 1, -1, 1]),
             "bn_mean": np.float32([0.1, 0.2, 0, -0.5, 0.3]),
             "bn_var": np.float32([1e-8, 4.0, 1e-2, 1.0, 1e-4]),
             "weight": np.float32([1, 1, 2, 1, -1]).reshape(5, 1, 1, 1)}
    path = write_weights(tmp_path / "bn.weights", spec, {0: parts})
    x = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    with torch.no_grad():
        got = build_darknet(spec, path)(x)[0].numpy()
    want = _session(build_onnx(spec, {0: parts})).run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    k = parts["bn_weight"] / (np.sqrt(parts["bn_var"]) + np.float32(1e-6))
    assert abs(got[0, 0, 0, 0] - ((-1 - 0.1) * k[0] + 0.5)) < 1e-3 * abs(k[0])
