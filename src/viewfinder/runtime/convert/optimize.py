"""Graph rewrites that help ONNX Runtime's CPU kernels, and int8 layer selection.

``decompose_prelu``: ONNX Runtime's ``PRelu`` kernel broadcasts a per-channel slope
element by element and is slow (52 % of 2d106det's time on an AVX2 EPYC).
``PRelu(x, a) = (1 - a) * Relu(x) + a * x`` holds for every ``a`` and runs as
``Relu``/``Mul``/``Add``, which ORT vectorises and which int8 quantization can
quantize (``PRelu`` has no int8 kernel, so each one costs a Dequantize/Quantize pair).
"""

from __future__ import annotations

import copy
from collections import defaultdict

import onnx
from onnx import helper, numpy_helper

from viewfinder.runtime.convert.modelio import initializer_names

__all__ = ["QUANTIZABLE", "decompose_prelu", "edge_layers", "prelu_to_relu"]

QUANTIZABLE = ("Conv", "Gemm", "MatMul")


def decompose_prelu(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Rewrite each ``PRelu`` with a constant slope as ``(1-a)*Relu(x) + a*x``.

    Returns:
        The new model and how many ``PRelu`` nodes were rewritten.
    """
    out = copy.deepcopy(model)
    consts = {i.name: i for i in out.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in out.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in consts:
            nodes.append(node)
            continue
        x, slope, y = node.input[0], node.input[1], node.output[0]
        a = numpy_helper.to_array(consts[slope])
        keep = f"{slope}__one_minus"
        if keep not in consts:
            consts[keep] = numpy_helper.from_array((1.0 - a).astype(a.dtype), keep)
            out.graph.initializer.append(consts[keep])
        base = node.name or y
        nodes += [
            helper.make_node("Relu", [x], [f"{y}__relu"], name=f"{base}/relu"),
            helper.make_node("Mul", [f"{y}__relu", keep], [f"{y}__pos"], name=f"{base}/pos"),
            helper.make_node("Mul", [x, slope], [f"{y}__neg"], name=f"{base}/neg"),
            helper.make_node("Add", [f"{y}__pos", f"{y}__neg"], [y], name=f"{base}/add"),
        ]
        count += 1
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out, count


def prelu_to_relu(model: onnx.ModelProto, max_slope: float) -> tuple[onnx.ModelProto, int]:
    """Replace each ``PRelu`` whose constant slopes are all within ``max_slope`` of 0 by ``Relu``.

    Not exact: negative inputs lose ``a * x``. It lets ORT fuse the activation into the
    convolution before it. 2d106det's 28 slopes are all in 0.0004..0.0007: dropping them
    moves its landmarks by under 0.1 px (benchmarks/convert.py) and halves its time again
    after :func:`decompose_prelu`. Opt-in, and measured by the converter's check.

    Returns:
        The new model and how many ``PRelu`` nodes were replaced.
    """
    out = copy.deepcopy(model)
    consts = {i.name: i for i in out.graph.initializer}
    count = 0
    for node in out.graph.node:
        if node.op_type != "PRelu" or node.input[1] not in consts:
            continue
        if float(abs(numpy_helper.to_array(consts[node.input[1]])).max()) <= max_slope:
            node.op_type = "Relu"
            del node.input[1:]
            count += 1
    return out, count


def edge_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the first and last ``Conv``/``Gemm``/``MatMul`` layers and what follows them.

    The stem sees the raw input range and the heads write the outputs: keeping them in
    float costs little time and removes most of int8's error on regression outputs.
    Nodes without a name are skipped (the quantizer selects nodes by name).
    """
    inits = initializer_names(model)
    inputs = {i.name for i in model.graph.input if i.name not in inits}
    outputs = {o.name for o in model.graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    stem = _reach(inputs, consumers)
    heads = [n for n in model.graph.node if n.op_type in QUANTIZABLE
             and not _reach(set(n.output), consumers) and _feeds_output(n, consumers, outputs)]
    tails = _descendants(heads, consumers)  # e.g. the Sigmoid after a score head
    names = [n.name for n in stem + heads + tails]
    return sorted({name for name in names if name})


def _descendants(nodes: list[onnx.NodeProto],
                 consumers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto]:
    found, seen = [], {id(n) for n in nodes}
    todo = [name for n in nodes for name in n.output]
    while todo:
        for nxt in consumers.get(todo.pop(), []):
            if id(nxt) not in seen:
                seen.add(id(nxt))
                found.append(nxt)
                todo.extend(nxt.output)
    return found


def _reach(start: set[str], consumers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto]:
    """Quantizable nodes reached from ``start`` without passing another quantizable node."""
    found, seen, todo = [], set(), list(start)
    while todo:
        for node in consumers.get(todo.pop(), []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in QUANTIZABLE:
                found.append(node)
            else:
                todo.extend(node.output)
    return found


def _feeds_output(node: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]],
                  outputs: set[str]) -> bool:
    seen, todo = set(), list(node.output)
    while todo:
        name = todo.pop()
        if name in outputs:
            return True
        for nxt in consumers.get(name, []):
            if id(nxt) not in seen:
                seen.add(id(nxt))
                todo.extend(nxt.output)
    return False

