"""Graph rewrites: PRelu decomposition is exact; int8 edge layers are found."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from viewfinder.runtime.convert import dynamic_batch
from viewfinder.runtime.convert.optimize import decompose_prelu, edge_layers, prelu_to_relu
from viewfinder.runtime.session import load_session


def prelu_model(slope: np.ndarray) -> onnx.ModelProto:
    """x [1,4,5,5] -> Conv 4->4 -> PRelu(slope) -> y."""
    w = np.random.default_rng(7).normal(size=(4, 4, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
         helper.make_node("PRelu", ["c", "a"], ["y"], name="act")], "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(slope.astype(np.float32), "a")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(
    "slope",
    [
        np.array([0.25, 0.0005, 0.1, 0.9]).reshape(4, 1, 1),  # per channel, as 2d106det
        np.array([0.2]),                                      # one slope
        np.array([-0.5, 1.5, 0.0, 1.0]).reshape(4, 1, 1),     # outside [0, 1]: still exact
    ],
)
def test_decompose_prelu_is_exact(tmp_path, slope):
    model = prelu_model(slope)
    new, count = decompose_prelu(model)
    assert count == 1
    assert [n.op_type for n in new.graph.node] == ["Conv", "Relu", "Mul", "Mul", "Add"]
    x = np.random.default_rng(8).normal(size=(1, 4, 5, 5)).astype(np.float32)
    onnx.save(model, str(tmp_path / "a.onnx"))
    onnx.save(new, str(tmp_path / "b.onnx"))
    want = load_session(tmp_path / "a.onnx").run(x)[0]
    got = load_session(tmp_path / "b.onnx").run(x)[0]
    assert (want < 0).any() and (want > 0).any()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_prelu_with_computed_slope_is_left_alone():
    model = prelu_model(np.array([0.1]))
    model.graph.initializer.pop()  # slope no longer a constant: a graph input
    model.graph.input.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, [1]))
    new, count = decompose_prelu(model)
    assert count == 0 and [n.op_type for n in new.graph.node] == ["Conv", "PRelu"]


def test_edge_layers_finds_stem_and_heads():
    rng = np.random.default_rng(9)
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in (("w0", (4, 3, 1, 1)), ("w1", (4, 4, 1, 1)), ("wa", (2, 4, 1, 1)),
                          ("wb", (1, 4, 1, 1)))]
    nodes = [
        helper.make_node("Sub", ["x", "w0"], ["xs"], name="norm"),  # not quantizable
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem"),
        helper.make_node("Relu", ["c0"], ["r0"], name="r0"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], name="body"),
        helper.make_node("Conv", ["c1", "wa"], ["ya"], name="head_a"),
        helper.make_node("Conv", ["c1", "wb"], ["s"], name="head_b"),
        helper.make_node("Sigmoid", ["s"], ["yb"], name="sig"),
    ]
    graph = helper.make_graph(
        nodes, "heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("ya", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("yb", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert edge_layers(model) == ["head_a", "head_b", "sig", "stem"]


def test_2d106det_optimized_dynamic_batch(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWFINDER_CACHE", str(tmp_path))
    src = shared / "models/face/2d106det.onnx"
    fast = dynamic_batch(src, optimize=True)
    assert fast.name.endswith("-dynbatch-opt.onnx")
    sess = load_session(fast)
    assert "PRelu" not in {n.op_type for n in onnx.load(str(fast)).graph.node}
    x = np.random.default_rng(10).uniform(0, 255, (4, 3, 192, 192)).astype(np.float32)
    orig = load_session(src)
    want = np.concatenate([orig.run(x[k:k + 1])[0] for k in range(4)])
    np.testing.assert_allclose(sess.run(x)[0], want, atol=1e-5)


@pytest.mark.parametrize(
    ("slope", "max_slope", "replaced"),
    [
        (np.array([0.0005, 0.0007, 0.0004, 0.0006]).reshape(4, 1, 1), 1e-3, 1),
        (np.array([0.0005, 0.2, 0.0004, 0.0006]).reshape(4, 1, 1), 1e-3, 0),  # one is real
        (np.array([-0.0009]), 1e-3, 1),
    ],
)
def test_prelu_to_relu_only_below_the_threshold(slope, max_slope, replaced):
    new, count = prelu_to_relu(prelu_model(slope), max_slope)
    assert count == replaced
    assert [n.op_type for n in new.graph.node][-1] == ("Relu" if replaced else "PRelu")


def test_prelu_to_relu_is_reported_as_inexact(run_cli, shared, tmp_path):
    code, out, err = run_cli("convert", shared / "models/face/2d106det.onnx", "-o",
                             tmp_path / "lm.onnx", "--prelu-to-relu", "0.001")
    assert code == 0, err
    assert "inexact: 28 PRelu with |slope| <= 0.001 replaced by Relu" in out
    assert "(inexact rewrite) against NumPy preprocessing" in out
