"""fp16 and int8: the converted model stays close to float32 and says how close."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from viewfinder.errors import ConfigError, DatasetError, ShapeError
from viewfinder.runtime.convert import ConvertOptions, PreprocessSpec, convert_model
from viewfinder.runtime.convert.precision import to_fp16
from viewfinder.runtime.convert.quantize import (
    calibration_files,
    load_calibration,
    output_diffs,
    quantize_int8,
)
from viewfinder.runtime.session import load_session


def tiny_cnn(hw: int = 16) -> onnx.ModelProto:
    """x [N,3,hw,hw] -> Conv 3->8 -> Relu -> Conv 8->8 -> Relu -> Conv 8->4 (1x1) -> y."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (8, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "wm"),
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="stem"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wm"], ["cm"], pads=[1, 1, 1, 1], name="body"),
        helper.make_node("Relu", ["cm"], ["rm"], name="relu2"),
        helper.make_node("Conv", ["rm", "w2"], ["y"], name="head"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, hw, hw])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _calib_tensors(n: int, hw: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [rng.uniform(-1, 1, (1, 3, hw, hw)).astype(np.float32) for _ in range(n)]


def _run(model: onnx.ModelProto, path, x: np.ndarray) -> np.ndarray:
    onnx.save(model, str(path))
    return load_session(path).run(x)[0]


def test_fp16_keeps_float32_io_and_is_close(tmp_path):
    model = tiny_cnn()
    half = to_fp16(model)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert {i.data_type for i in half.graph.initializer} == {TensorProto.FLOAT16}
    x = _calib_tensors(1)[0]
    ref, got = _run(model, tmp_path / "f32.onnx", x), _run(half, tmp_path / "f16.onnx", x)
    assert 0 < np.abs(ref - got).max() < 1e-2  # changed (really fp16) but close


@pytest.mark.parametrize("quant_format", ["qdq", "qoperator"])
@pytest.mark.parametrize(("keep_edges", "n_float_convs"), [(False, 0), (True, 2)])
def test_int8_quantizes_and_stays_close(tmp_path, quant_format, keep_edges, n_float_convs):
    model, calib = tiny_cnn(), _calib_tensors(8)
    quant = quantize_int8(model, "x", calib, quant_format=quant_format,
                          keep_edges_float=keep_edges)
    ops = [n.op_type for n in quant.graph.node]
    assert "QuantizeLinear" in ops
    if quant_format == "qoperator":
        assert ops.count("QLinearConv") == 3 - n_float_convs
        assert ops.count("Conv") == n_float_convs
    x = calib[0]
    ref, got = _run(model, tmp_path / "f32.onnx", x), _run(quant, tmp_path / "q.onnx", x)
    assert 0 < np.abs(ref - got).max() < 0.05 * np.abs(ref).max()


def test_int8_empty_calibration_is_an_error():
    with pytest.raises(DatasetError, match="empty"):
        quantize_int8(tiny_cnn(), "x", [])


@pytest.mark.parametrize(
    ("files", "match"),
    [([], "empty"), (["notes.txt"], "empty"), ("missing_dir", "no such file or directory")],
)
def test_calibration_files_errors(tmp_path, files, match):
    (tmp_path / "notes.txt").write_text("not an image")
    source = tmp_path / files if isinstance(files, str) else [tmp_path / f for f in files]
    with pytest.raises(DatasetError, match=match):
        calibration_files(source)


def test_calibration_images_are_normalised_like_the_model_wants(tmp_path):
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 2] = 200  # red in BGR storage
    cv2.imwrite(str(tmp_path / "red.png"), img)
    np.save(tmp_path / "t.npy", np.ones((1, 3, 4, 4), np.float32))
    files = calibration_files(tmp_path)
    spec = PreprocessSpec(model_channels="bgr", mean=(0, 0, 100), std=(1, 1, 2))
    tensors = load_calibration(files, spec, (4, 4))
    red = tensors[0]
    assert red.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(red[0, :, 0, 0], [0.0, 0.0, 50.0])  # bgr order, (200-100)/2
    np.testing.assert_array_equal(tensors[1], 1.0)
    with pytest.raises(ShapeError, match="expected shape"):
        load_calibration(files, spec, (5, 5))


def test_calibration_undecodable_image(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg: cannot decode"):
        load_calibration(calibration_files(tmp_path), PreprocessSpec(), (4, 4))


def test_output_diffs():
    ref = [[np.array([1.0, -2.0])], [np.array([0.5, 0.5])]]
    got = [[np.array([1.5, -2.0])], [np.array([0.5, 0.0])]]
    (d,) = output_diffs(ref, got, ["y"])
    assert (d.max_abs, d.mean_abs, d.ref_max_abs) == (0.5, 0.25, 2.0)


def test_convert_int8_with_preprocessing_reports_diffs(tmp_path):
    """int8 calibrates the float core, preprocessing goes in front: raw uint8 in."""
    onnx.save(tiny_cnn(), str(tmp_path / "m.onnx"))
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(5)
    for k in range(4):
        cv2.imwrite(str(calib / f"{k}.png"), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    spec = PreprocessSpec(input="bgr", width=24, height=20, resize=True, mean=(127.5,) * 3,
                          std=(127.5,) * 3)
    opts = ConvertOptions(preprocess=spec, size=(16, 16), precision="int8", calibration=calib)
    report = convert_model(tmp_path / "m.onnx", tmp_path / "m.int8", opts)
    assert report.precision_diffs and report.precision_diffs[0].max_abs < 0.1
    assert report.ops_added.get("QuantizeLinear") and report.ops_added.get("Resize") == 1
    out = load_session(tmp_path / "m.int8").run(np.zeros((1, 20, 24, 3), np.uint8))[0]
    assert out.shape == (1, 4, 16, 16)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"precision": "int8"}, "calibration set is required"),
        ({"precision": "bf16"}, "precision 'bf16'"),
        ({"quant_format": "dynamic"}, "quant_format 'dynamic'"),
        ({"batch": "many"}, "batch 'many'"),
        ({"batch": 0}, "batch 0"),
        ({"size": (0, 5)}, "size"),
    ],
)
def test_convert_options_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ConvertOptions(**kwargs)


def test_int8_needs_a_fixed_size(tmp_path):
    onnx.save(tiny_cnn(), str(tmp_path / "m.onnx"))
    model = tiny_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    onnx.save(model, str(tmp_path / "dyn.onnx"))
    (tmp_path / "c").mkdir()
    np.save(tmp_path / "c" / "a.npy", np.zeros((1, 3, 16, 16), np.float32))
    opts = ConvertOptions(precision="int8", calibration=tmp_path / "c")
    with pytest.raises(ShapeError, match="dynamic size"):
        convert_model(tmp_path / "dyn.onnx", tmp_path / "out.onnx", opts)
    assert not (tmp_path / "out.onnx").exists()


def test_negative_prelu_threshold_is_rejected():
    with pytest.raises(ConfigError, match="prelu_to_relu -1"):
        ConvertOptions(prelu_to_relu=-1)
