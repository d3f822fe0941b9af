"""Fixtures of the runtime tests: tiny ONNX graphs built with ``onnx.helper``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TinyFactory = Callable[..., Path]


@pytest.fixture()
def tiny_model(tmp_path: Path) -> TinyFactory:
    """``tiny_model(shape=("N", 3, "H", "W"), scale=2.0, name="tiny.onnx") -> path``.

    The graph computes ``y = x * scale + 1`` and ``s = ReduceSum(x)`` (keepdims), so
    every output is checkable by hand.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def make(shape=("N", 3, "H", "W"), scale: float = 2.0, name: str = "tiny.onnx",
             op: str | None = None) -> Path:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
        s = helper.make_tensor_value_info("s", TensorProto.FLOAT, None)
        inits = [numpy_helper.from_array(np.array(scale, np.float32), "scale"),
                 numpy_helper.from_array(np.array(1.0, np.float32), "one")]
        nodes = [helper.make_node("Mul", ["x", "scale"], ["xs"]),
                 helper.make_node("Add", ["xs", "one"], ["y"]),
                 helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)]
        opsets = [helper.make_opsetid("", 17)]
        if op is not None:  # an operator no backend implements
            nodes = [helper.make_node(op, ["x"], ["y"], domain="com.example"),
                     helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1)]
            opsets.append(helper.make_opsetid("com.example", 1))
        graph = helper.make_graph(nodes, "tiny", [x], [y, s], initializer=inits)
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 8
        path = tmp_path / name
        onnx.save(model, str(path))
        return path

    return make


@pytest.fixture()
def has_openvino() -> bool:
    """Skip the test when the optional OpenVINO backend is not installed."""
    pytest.importorskip("openvino")
    return True


@pytest.fixture()
def int8_model(tmp_path: Path) -> tuple[Path, Path]:
    """``(f32 path, int8 QDQ path)`` of a tiny Conv+Relu net, statically quantized."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    f32, q = tmp_path / "conv.onnx", tmp_path / "conv.int8.onnx"
    onnx.save(model, str(f32))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.data = iter([{"x": rng.random((1, 3, 8, 8), dtype=np.float32)}
                              for _ in range(4)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(str(f32), str(q), Reader(), quant_format=QuantFormat.QDQ)
    return f32, q
