"""Batch/spatial dims: fixed to dynamic with hard-coded Reshapes fixed, and the cache."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from viewfinder.errors import InputFileError, ModelError, ShapeError
from viewfinder.runtime.convert import check_batch_items, dynamic_batch, set_batch, set_spatial
from viewfinder.runtime.convert.shapes import input_dims, is_dynamic_batch
from viewfinder.runtime.session import load_session


def tiny_flatten_model(reshape_to: list[int], batch: int | str = 1, hw: int = 6,
                       opset: int = 13) -> onnx.ModelProto:
    """x [B,3,hw,hw] -> Conv(3->4, 3x3, pad 1) -> Relu -> Reshape(reshape_to) -> Gemm -> [B,5]."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    fc = rng.normal(size=(4 * hw * hw, 5)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "target"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc"], ["y"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(fc, "fc"),
         numpy_helper.from_array(np.array(reshape_to, dtype=np.int64), "target")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize(
    ("target", "rewritten"),
    [
        ([1, -1], True),      # the exporter baked batch 1 into the flatten
        ([1, 144], True),
        ([-1, 144], False),   # already batch-agnostic: left alone
        ([0, -1], False),
    ],
)
def test_set_batch_dynamic_rewrites_pinned_reshape(tmp_path, target, rewritten):
    model, changes = set_batch(tiny_flatten_model(target), None)
    assert any("Reshape flatten" in c for c in changes) == rewritten
    assert is_dynamic_batch(model)
    assert input_dims(model.graph.output[0])[0] == "batch"
    path = _save(model, tmp_path / "dyn.onnx")
    assert check_batch_items(path, batch=4) < 1e-4


def test_unfixed_model_fails_the_item_check(tmp_path):
    """Only the input made dynamic (the naive edit): the batch check must catch it."""
    model = tiny_flatten_model([1, -1])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    path = _save(model, tmp_path / "naive.onnx")
    with pytest.raises(ModelError, match="batch of 3"):
        check_batch_items(path, batch=3)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_set_batch_fixed(tmp_path, batch):
    model, _ = set_batch(tiny_flatten_model([1, -1]), batch)
    assert input_dims(model.graph.input[0])[0] == batch
    assert input_dims(model.graph.output[0])[0] == batch
    sess = load_session(_save(model, tmp_path / "fixed.onnx"))
    x = np.random.default_rng(0).normal(size=(batch, 3, 6, 6)).astype(np.float32)
    assert sess.run(x)[0].shape == (batch, 5)


@pytest.mark.parametrize("batch", [0, -3])
def test_set_batch_rejects_bad_size(batch):
    with pytest.raises(ShapeError, match=f"batch {batch}"):
        set_batch(tiny_flatten_model([1, -1]), batch)


def test_set_spatial_fixes_and_frees_dims():
    model = tiny_flatten_model([-1, 144])
    assert input_dims(set_spatial(model, "x", (6, 6)).graph.input[0]) == [1, 3, 6, 6]
    assert input_dims(set_spatial(model, "x", None).graph.input[0]) == [1, 3, "height", "width"]
    with pytest.raises(ShapeError, match="expected 4 dims"):
        set_spatial(_two_d_input_model(), "x", (6, 6))


def _two_d_input_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_dynamic_batch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path / "cache"))
    src = _save(tiny_flatten_model([1, -1]), tmp_path / "tiny.onnx")
    first = dynamic_batch(src)
    assert first.parent == tmp_path / "cache" / "converted"
    assert first.name.endswith("-dynbatch.onnx") and len(first.name) == 64 + len("-dynbatch.onnx")
    stamp = first.stat().st_mtime_ns
    assert dynamic_batch(src) == first and first.stat().st_mtime_ns == stamp  # cached
    dyn_src = _save(tiny_flatten_model([0, -1], batch="N"), tmp_path / "dyn.onnx")
    assert dynamic_batch(dyn_src) == tmp_path / "dyn.onnx"  # already dynamic: unchanged


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", ModelError), (b"not a model at all \x00\x01", ModelError), (None, InputFileError)],
)
def test_dynamic_batch_bad_input(tmp_path, content, error):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match="bad.onnx"):
        dynamic_batch(path)


def test_2d106det_dynamic_batch_per_item(shared, tmp_path, monkeypatch):
    """The shared landmark net is exported with batch 1: six faces must go in one call."""
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path))
    path = dynamic_batch(shared / "models/face/2d106det.onnx")
    sess = load_session(path)
    assert sess.inputs[0].shape[0] == "batch"
    assert check_batch_items(str(path), batch=6) < 1e-3
