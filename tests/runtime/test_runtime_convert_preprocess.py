"""Fused preprocessing = NumPy preprocessing + the original model, on tiny and real graphs."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from viewfinder.errors import ConfigError, ModelError, ShapeError, SizeError
from viewfinder.runtime.convert import (
    PreprocessSpec,
    fuse_preprocessing,
    nv12_to_rgb,
    preprocess_numpy,
    rgb_to_nv12,
    set_batch,
)
from viewfinder.runtime.convert.reference import bilinear_resize
from viewfinder.runtime.session import load_session


def tiny_conv_model(batch: int | str = 1, hw: tuple | None = (8, 8),
                    opset: int = 13) -> onnx.ModelProto:
    """x [B,3,H,W] -> Conv(3->2, 3x3, pad 1): every output pixel sees every channel."""
    h, w = hw if hw is not None else ("h", "w")
    weight = np.random.default_rng(2).normal(size=(2, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, h, w])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _image(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish random RGB uint8 images [n, h, w, 3] (like real content, unlike noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(n, h // 2 + 1, w // 2 + 1, 3)).astype(np.float32)
    big = np.stack([cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR) for s in small])
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


def _raw_input(spec: PreprocessSpec, n: int, h: int, w: int) -> np.ndarray:
    img = _image(n, h, w)
    if spec.input == "nv12":
        return np.stack([rgb_to_nv12(i, spec.color_matrix, spec.color_range) for i in img])
    if spec.input == "float":
        return img.transpose(0, 3, 1, 2).astype(np.float32)
    if spec.channels == 4:  # a random 4th channel: it must not leak into the model
        alpha = np.random.default_rng(7).integers(0, 256, img.shape[:3] + (1,), np.uint8)
        return np.concatenate([img, alpha], axis=3)
    return img


def _check_fused(tmp_path, model, spec, raw, model_hw=None, atol=2e-4):
    fused, _ = fuse_preprocessing(model, spec)
    onnx.save(fused, str(tmp_path / "fused.onnx"))
    onnx.save(model, str(tmp_path / "orig.onnx"))
    got = load_session(tmp_path / "fused.onnx").run(raw)[0]
    want = load_session(tmp_path / "orig.onnx").run(preprocess_numpy(raw, spec, model_hw))[0]
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=atol * scale)
    return fused


NORM = {"mean": (123.7, 116.3, 103.5), "std": (58.4, 57.1, 57.4)}


@pytest.mark.parametrize(
    "spec",
    [
        PreprocessSpec(input="rgb", model_channels="rgb"),
        PreprocessSpec(input="rgb", model_channels="bgr", **NORM),
        PreprocessSpec(input="bgr", model_channels="rgb", **NORM),
        PreprocessSpec(input="bgr", model_channels="bgr", mean=(127.5,) * 3, std=(128.0,) * 3),
        PreprocessSpec(input="bgra", model_channels="rgb", **NORM),
        PreprocessSpec(input="bgra", model_channels="bgr"),
        PreprocessSpec(input="rgba", model_channels="rgb"),
        PreprocessSpec(input="rgba", model_channels="bgr", **NORM),
        PreprocessSpec(input="float", **NORM),
        PreprocessSpec(input="nv12", width=8, height=8),
        PreprocessSpec(input="nv12", width=8, height=8, color_matrix="bt709", **NORM),
        PreprocessSpec(input="nv12", width=8, height=8, color_range="full",
                       model_channels="bgr"),
    ],
    ids=lambda s: f"{s.input}-{s.model_channels}-{s.color_matrix}-{s.color_range}",
)
@pytest.mark.parametrize("batch", [1, "N"])
def test_fused_equals_numpy_reference(tmp_path, spec, batch):
    model = tiny_conv_model(batch=batch)
    n = 1 if batch == 1 else 3
    _check_fused(tmp_path, model, spec, _raw_input(spec, n, 8, 8))


@pytest.mark.parametrize(
    ("spec", "image_hw"),
    [
        (PreprocessSpec(input="rgb", width=13, height=11, resize=True), (11, 13)),
        (PreprocessSpec(input="bgr", width=20, height=16, crop=(2, 4, 8, 8)), (16, 20)),
        (PreprocessSpec(input="bgra", width=20, height=16, crop=(2, 4, 8, 8)), (16, 20)),
        (PreprocessSpec(input="bgr", width=20, height=16, crop=(3, 1, 15, 13), resize=True,
                        **NORM), (16, 20)),
        (PreprocessSpec(input="nv12", width=24, height=18, resize=True, **NORM), (18, 24)),
        (PreprocessSpec(input="nv12", width=6, height=4, resize=True), (4, 6)),  # upscale
        (PreprocessSpec(input="rgb", resize=True), (30, 17)),  # dynamic image size
    ],
)
@pytest.mark.parametrize("batch", [1, "N"])
def test_crop_and_resize(tmp_path, spec, image_hw, batch):
    model = tiny_conv_model(batch=batch)
    raw = _raw_input(spec, 1 if batch == 1 else 2, *image_hw)
    fused = _check_fused(tmp_path, model, spec, raw, model_hw=(8, 8))
    assert [n.op_type for n in fused.graph.node].count("Resize") == int(spec.resize) + int(
        spec.input == "nv12")


def test_dynamic_spatial_model_keeps_dynamic_input(tmp_path):
    spec = PreprocessSpec(input="bgr", model_channels="rgb", **NORM)
    model = tiny_conv_model(batch="N", hw=None)
    for h, w in ((8, 8), (12, 20)):
        _check_fused(tmp_path, model, spec, _raw_input(spec, 2, h, w))


@pytest.mark.parametrize(("spec", "dims"), [
    (PreprocessSpec(input="nv12", width=8, height=8), ["N", 12, 8]),
    (PreprocessSpec(input="bgr"), ["N", 8, 8, 3]),
    (PreprocessSpec(input="bgra"), ["N", 8, 8, 4]),
    (PreprocessSpec(input="rgba", model_channels="bgr"), ["N", 8, 8, 4]),
])
def test_new_input_keeps_name_and_takes_decoder_layout(spec, dims):
    fused, desc = fuse_preprocessing(tiny_conv_model(batch="N"), spec)
    inp = fused.graph.input[0]
    assert inp.name == "x" and inp.type.tensor_type.elem_type == TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == dims
    assert desc == f"x: {spec.input} uint8 [{', '.join(map(str, dims))}]"


@pytest.mark.parametrize(("matrix", "code"), [("bt601", cv2.COLOR_YUV2RGB_NV12)])
def test_nv12_matches_opencv(matrix, code):
    """Our BT.601 limited-range NV12 decode agrees with OpenCV's to rounding."""
    nv12 = rgb_to_nv12(_image(1, 32, 48)[0], matrix, "limited")
    ours = nv12_to_rgb(nv12[None], matrix, "limited")[0].transpose(1, 2, 0)
    theirs = cv2.cvtColor(nv12, code).astype(np.float32)
    assert np.abs(ours - theirs).max() <= 1.0


@pytest.mark.parametrize(("size_in", "size_out"), [((11, 13), (8, 8)), ((4, 6), (9, 7)),
                                                   ((16, 16), (8, 8))])
def test_bilinear_reference_matches_opencv(size_in, size_out):
    img = _image(1, *size_in)[0].astype(np.float32)
    ours = bilinear_resize(img.transpose(2, 0, 1)[None], *size_out)[0].transpose(1, 2, 0)
    theirs = cv2.resize(img, size_out[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"input": "yuyv"}, ConfigError, "input 'yuyv'"),
        ({"input": "nv12", "width": 8}, SizeError, "width and height are required"),
        ({"input": "nv12", "width": 7, "height": 8}, SizeError, "must be even"),
        ({"mean": (1.0, 2.0)}, ConfigError, "mean: expected 3 values"),
        ({"std": (1.0, 0.0, 1.0)}, ConfigError, "std: must not be 0"),
        ({"mean": (float("nan"),) * 3}, ConfigError, r"mean: expected finite numbers, got \[nan"),
        ({"std": (float("inf"), 1.0, 1.0)}, ConfigError, "std: expected finite numbers"),
        ({"std": (1.0, 1e-320, 1.0)}, ConfigError, "whose inverse is finite"),
        ({"crop": (0, 0, 10, 10), "width": 8, "height": 8}, SizeError, "exceeds width"),
        ({"crop": (-1, 0, 4, 4)}, SizeError, "offsets must be >= 0"),
        ({"color_matrix": "bt2020"}, ConfigError, "color_matrix 'bt2020'"),
        ({"model_channels": "rgba"}, ConfigError, "model_channels 'rgba'"),
    ],
)
def test_spec_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        PreprocessSpec(**kwargs)


@pytest.mark.parametrize(
    ("model", "spec", "error", "match"),
    [
        (tiny_conv_model(), PreprocessSpec(input="rgb", width=10, height=8), ConfigError,
         "width 10 .* != model width 8"),
        (tiny_conv_model(hw=None), PreprocessSpec(input="rgb", resize=True), ConfigError,
         "not fixed"),
        (tiny_conv_model(opset=10), PreprocessSpec(input="rgb"), ModelError, "opset 10"),
        (tiny_conv_model(), PreprocessSpec(input="rgb", input_name="nope"), ModelError,
         "no such input"),
    ],
)
def test_fuse_rejects_misfits(model, spec, error, match):
    with pytest.raises(error, match=match):
        fuse_preprocessing(model, spec)


def test_fuse_rejects_non_image_input():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ShapeError, match=r"expected float32 \[N, 3, H, W\]"):
        fuse_preprocessing(model, PreprocessSpec(input="rgb"))


def _group_photo(shared) -> np.ndarray:
    bgr = cv2.imread(str(shared / "images/group_t1.jpg"))
    assert bgr is not None
    return bgr


def test_scrfd_nv12(shared, tmp_path):
    """SCRFD eats NV12 640x480 straight from a decoder: same outputs as NumPy + model."""
    model = onnx.load(str(shared / "models/face/scrfd_500m_bnkps.onnx"))
    spec = PreprocessSpec(input="nv12", width=640, height=480, model_channels="rgb",
                          mean=(127.5,) * 3, std=(128.0,) * 3)
    rgb = cv2.resize(_group_photo(shared), (640, 480))[:, :, ::-1]
    raw = rgb_to_nv12(np.ascontiguousarray(rgb))[None]
    fused, _ = fuse_preprocessing(model, spec)
    onnx.save(fused, str(tmp_path / "scrfd_nv12.onnx"))
    got = load_session(tmp_path / "scrfd_nv12.onnx").run(raw)
    want = load_session(shared / "models/face/scrfd_500m_bnkps.onnx").run(
        preprocess_numpy(raw, spec))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    assert max(float(w.max()) for w in want[:3]) > 0.5  # real faces: not compared on noise


def test_2d106det_uint8_nhwc_batched(shared, tmp_path):
    """2d106det takes uint8 RGB crops of any size, resized in-graph, 6 faces per call."""
    model, _ = set_batch(onnx.load(str(shared / "models/face/2d106det.onnx")), None)
    spec = PreprocessSpec(input="bgr", width=160, height=160, resize=True)
    img = _group_photo(shared)
    crops = np.stack([img[y:y + 160, x:x + 160] for x, y in
                      ((100, 100), (300, 150), (500, 200), (700, 100), (900, 250), (50, 400))])
    _check_fused(tmp_path, model, spec, np.ascontiguousarray(crops), model_hw=(192, 192),
                 atol=1e-4)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("color_range", ["limited", "full"])
def test_nv12_matches_media_colour_conversion(matrix, color_range):
    """Cross-check against viewfinder.media.color (OpenCV transform, rounded to uint8)."""
    from viewfinder.media.color import yuv444_to_rgb

    nv12 = rgb_to_nv12(_image(1, 16, 24)[0], matrix, color_range)
    ours = nv12_to_rgb(nv12[None], matrix, color_range)[0].transpose(1, 2, 0)
    uv = nv12[16:].reshape(8, 12, 2).repeat(2, axis=0).repeat(2, axis=1)
    yuv = np.ascontiguousarray(np.dstack([nv12[:16], uv]))
    theirs = yuv444_to_rgb(yuv, matrix, full_range=color_range == "full").astype(np.float32)
    assert np.abs(ours - theirs).max() < 1.0  # theirs is rounded (fixed-point transform)


@pytest.mark.parametrize("spec", [
    PreprocessSpec(input="nv12", width=8, height=8, **NORM),
    PreprocessSpec(input="bgr", width=13, height=11, resize=True, crop=(1, 1, 12, 10)),
])
def test_fused_model_runs_on_openvino_too(tmp_path, spec):
    """The fused ops are plain ONNX: OpenVINO gives ONNX Runtime's outputs."""
    pytest.importorskip("openvino")
    fused, _ = fuse_preprocessing(tiny_conv_model(batch="N"), spec)
    onnx.save(fused, str(tmp_path / "fused.onnx"))
    raw = _raw_input(spec, 2, spec.height, spec.width)
    ort_out = load_session(tmp_path / "fused.onnx").run(raw)[0]
    ov_out = load_session(tmp_path / "fused.onnx", backend="openvino").run(raw)[0]
    np.testing.assert_allclose(ov_out, ort_out, atol=1e-3 * max(1.0, np.abs(ort_out).max()))
