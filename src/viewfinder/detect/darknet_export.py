"""Darknet cfg + weights to ONNX, written directly with ``onnx.helper`` (no torch).

The graph is built layer by layer from the parsed cfg, with batch norm folded into
the convolutions. ``decode=True`` appends the YOLO decode (outputs ``boxes``
``(N, K, 4)`` xyxy in input pixels and ``scores`` ``(N, K, C)`` = objectness x class
probability); ``nms=True`` also appends ONNX ``NonMaxSuppression`` per class
(output ``detections`` ``(M, 7)``: batch, x1, y1, x2, y2, score, class), with
``iou_threshold``, ``score_threshold`` and ``max_output_boxes_per_class`` as
inputs that have defaults (initializers) and may be fed. The decode parameters,
input size and output kind are stored in the model's metadata under
``viewfinder.yolo`` so :class:`viewfinder.detect.yolo.YoloDetector` can use any
of the three forms.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from viewfinder.detect.darknet_cfg import LayerSpec, NetSpec, YoloHead, parse_cfg, yolo_heads
from viewfinder.detect.darknet_weights import read_weights
from viewfinder.errors import ConfigError
from viewfinder.fileio import atomic_path

__all__ = ["EXPORT_VERSION", "METADATA_KEY", "OPSET", "build_onnx", "export_onnx"]

OPSET = 17
METADATA_KEY = "viewfinder.yolo"
EXPORT_VERSION = 2  # part of the detector's cache key: bump when the graph changes (2: BN eps)
BN_EPS = 1e-6  # Darknet's normalize_cpu: (x - mean) / (sqrt(var) + .000001f)


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str | None = None, **attrs) -> str:
        from onnx import helper

        out = self.name(stem or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _fold_bn(parts: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fold batch norm into the convolution as Darknet's CPU inference computes it.

    Darknet adds its epsilon to the standard deviation, not to the variance
    (``sqrt(var) + 1e-6``, not ``sqrt(var + 1e-5)``); the difference reached 3.7e-4
    relative in yolov3-tiny's first layer and 2.4e-4 on its outputs.
    """
    if "bn_weight" not in parts:
        return parts["weight"], parts["bias"]
    k = parts["bn_weight"] / (np.sqrt(parts["bn_var"]) + np.float32(BN_EPS))
    return (parts["weight"] * k[:, None, None, None]).astype(np.float32), (
        parts["bias"] - parts["bn_mean"] * k).astype(np.float32)


def _activation(g: _Graph, x: str, name: str) -> str:
    if name == "leaky":
        return g.op("LeakyRelu", [x], alpha=0.1)
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])], "mish")
    if name == "swish":
        return g.op("Mul", [x, g.op("Sigmoid", [x])], "swish")
    if name in ("relu", "logistic"):
        return g.op({"relu": "Relu", "logistic": "Sigmoid"}[name], [x])
    return x


def _conv(g: _Graph, x: str, layer: LayerSpec, parts: dict[str, np.ndarray]) -> str:
    weight, bias = _fold_bn(parts)
    size = layer.get_int("size", 1)
    pad = size // 2 if layer.get_int("pad", 0) else layer.get_int("padding", 0)
    y = g.op("Conv", [x, g.const(weight, "w"), g.const(bias, "b")], "conv",
             kernel_shape=[size, size], strides=[layer.get_int("stride", 1)] * 2,
             pads=[pad] * 4, group=layer.get_int("groups", 1))
    return _activation(g, y, layer.options.get("activation", "logistic"))


def _maxpool(g: _Graph, x: str, layer: LayerSpec) -> str:
    size, stride = layer.get_int("size", 1), layer.get_int("stride", 1)
    padding = layer.get_int("padding", size - 1)
    before, after = padding // 2, padding - padding // 2
    return g.op("MaxPool", [x], "maxpool", kernel_shape=[size, size], strides=[stride, stride],
                pads=[before, before, after, after])


def _route(g: _Graph, layer: LayerSpec, saved: dict[int, str], spec: NetSpec) -> str:
    groups, gid = layer.get_int("groups", 1), layer.get_int("group_id", 0)
    parts = []
    for i in layer.inputs:
        x = saved[i]
        if groups > 1:
            part = spec.layers[i].out_shape[0] // groups
            x = g.op("Slice", [x, g.const(np.array([gid * part], np.int64)),
                               g.const(np.array([(gid + 1) * part], np.int64)),
                               g.const(np.array([1], np.int64))], "group")
        parts.append(x)
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, "route", axis=1)


def _layer(g: _Graph, x: str, layer: LayerSpec, saved: dict[int, str], spec: NetSpec,
           tensors: dict[int, dict[str, np.ndarray]]) -> str:
    if layer.kind == "convolutional":
        return _conv(g, x, layer, tensors[layer.index])
    if layer.kind == "maxpool":
        return _maxpool(g, x, layer)
    if layer.kind == "route":
        return _route(g, layer, saved, spec)
    if layer.kind == "shortcut":
        y = g.op("Add", [x, saved[layer.inputs[1]]], "shortcut")
        return _activation(g, y, layer.options.get("activation", "linear"))
    if layer.kind == "upsample":
        s = float(layer.get_int("stride", 2))
        return g.op("Resize", [x, "", g.const(np.array([1, 1, s, s], np.float32))], "upsample",
                    mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")
    return x  # yolo: identity; its input is a graph output


def _decode_head(g: _Graph, raw: str, head: YoloHead) -> tuple[str, str]:
    """Append the decode of one head: returns (boxes (N, K, 4), scores (N, K, C))."""
    a, (gh, gw), c = len(head.anchors), head.grid, head.classes
    x = g.op("Reshape", [raw, g.const(np.array([0, a, 5 + c, gh * gw], np.int64))])
    x = g.op("Transpose", [x], perm=[0, 1, 3, 2])  # N, A, HW, 5+C
    x = g.op("Reshape", [x, g.const(np.array([0, a * gh * gw, 5 + c], np.int64))])

    def part(lo: int, hi: int) -> str:
        return g.op("Slice", [x, g.const(np.array([lo], np.int64)),
                              g.const(np.array([hi], np.int64)), g.const(np.array([2], np.int64))])

    grid, anchors, stride = _grid_constants(head)
    s = head.scale_xy
    xy = g.op("Mul", [g.op("Sigmoid", [part(0, 2)]), g.const(np.float32([s]))])
    xy = g.op("Mul", [g.op("Add", [xy, g.const(grid, "grid")]), g.const(stride, "stride")])
    wh = g.op("Mul", [g.op("Exp", [part(2, 4)]), g.const(anchors, "anchors")])
    half = g.op("Mul", [wh, g.const(np.float32([0.5]))])
    boxes = g.op("Concat", [g.op("Sub", [xy, half]), g.op("Add", [xy, half])], "boxes", axis=2)
    scores = g.op("Mul", [g.op("Sigmoid", [part(4, 5)]), g.op("Sigmoid", [part(5, 5 + c)])])
    return boxes, scores


def _grid_constants(head: YoloHead) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prediction cell offsets (minus the scale_x_y shift), anchors and strides."""
    gh, gw = head.grid
    ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32),
                         indexing="ij")
    cells = np.stack([xs.ravel(), ys.ravel()], 1) - (head.scale_xy - 1) / 2
    a = len(head.anchors)
    grid = np.tile(cells, (a, 1))[None].astype(np.float32)
    anchors = np.repeat(np.float32(head.anchors), gh * gw, axis=0)[None]
    stride = np.float32([[head.stride[1], head.stride[0]]])
    return grid, anchors, stride


def _append_nms(g: _Graph, boxes: str, scores: str) -> tuple[str, list]:
    from onnx import TensorProto, helper, numpy_helper

    defaults = {"iou_threshold": np.float32([0.45]), "score_threshold": np.float32([0.25]),
                "max_output_boxes_per_class": np.int64([100])}
    inputs = []
    for name, value in defaults.items():
        g.inits.append(numpy_helper.from_array(value, name))
        dtype = TensorProto.FLOAT if value.dtype == np.float32 else TensorProto.INT64
        inputs.append(helper.make_tensor_value_info(name, dtype, [1]))
    scores_t = g.op("Transpose", [scores], perm=[0, 2, 1])
    sel = g.op("NonMaxSuppression", [boxes, scores_t, "max_output_boxes_per_class",
                                     "iou_threshold", "score_threshold"], "selected")
    picked = g.op("GatherND", [boxes, g.op("Gather", [sel, g.const(np.int64([0, 2]))], axis=1)])
    score = g.op("Unsqueeze", [g.op("GatherND", [scores_t, sel]), g.const(np.int64([1]))])
    as_float = g.op("Cast", [sel], to=TensorProto.FLOAT)

    def column(i: int) -> str:
        return g.op("Slice", [as_float, g.const(np.int64([i])), g.const(np.int64([i + 1])),
                              g.const(np.int64([1]))])

    dets = g.op("Concat", [column(0), picked, score, column(1)], "detections", axis=1)
    return dets, inputs


def build_onnx(spec: NetSpec, tensors: dict[int, dict[str, np.ndarray]], *, decode: bool = False,
               nms: bool = False, dynamic_batch: bool = False, names: tuple[str, ...] = ()):
    """Build the ``onnx.ModelProto`` of a parsed network and its weight tensors.

    See :func:`export_onnx`; ``tensors`` is what
    :func:`viewfinder.detect.darknet_weights.read_weights` returns.
    """
    from onnx import TensorProto, checker, helper

    if (decode or nms) and not spec.yolo_indices:
        raise ConfigError(f"{spec.source}: decode/nms need [yolo] layers, the cfg has none")
    g, saved, x = _Graph(), {}, "images"
    keep = {i for layer in spec.layers if layer.kind in ("route", "shortcut") for i in layer.inputs}
    raw = []
    for layer in spec.layers:
        x = _layer(g, x, layer, saved, spec, tensors)
        if layer.index in keep:
            saved[layer.index] = x
        if layer.kind == "yolo":
            raw.append(x)
    heads = yolo_heads(spec)
    batch = "batch" if dynamic_batch else 1
    outputs, extra_inputs, kind = _outputs(g, raw, heads, spec, decode, nms, batch)
    c, h, w = spec.input_shape
    graph = helper.make_graph(
        g.nodes, "darknet",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, c, h, w]),
         *extra_inputs], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="viewfinder")
    model.ir_version = 8
    meta = {"outputs": kind, "input_size": [h, w], "names": list(names), "heads": [
        {"anchors": [list(a) for a in hd.anchors], "classes": hd.classes, "grid": list(hd.grid),
         "stride": list(hd.stride), "scale_xy": hd.scale_xy} for hd in heads]}
    helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    checker.check_model(model)
    return model


def _outputs(g: _Graph, raw: list[str], heads: list[YoloHead], spec: NetSpec, decode: bool,
             nms: bool, batch) -> tuple[list, list, str]:
    from onnx import TensorProto, helper

    if not (decode or nms):
        outs = []
        for i, (name, head) in enumerate(zip(raw, heads, strict=True)):
            g.nodes.append(helper.make_node("Identity", [name], [f"raw{i}"]))
            c = spec.layers[head.index].out_shape[0]
            outs.append(helper.make_tensor_value_info(f"raw{i}", TensorProto.FLOAT,
                                                      [batch, c, *head.grid]))
        return outs, [], "raw"
    decoded = [_decode_head(g, r, hd) for r, hd in zip(raw, heads, strict=True)]
    boxes = g.op("Concat", [b for b, _ in decoded], axis=1)
    scores = g.op("Concat", [s for _, s in decoded], axis=1)
    if nms:
        dets, inputs = _append_nms(g, boxes, scores)
        g.nodes.append(helper.make_node("Identity", [dets], ["detections"]))
        return [helper.make_tensor_value_info("detections", TensorProto.FLOAT, ["M", 7])], \
            inputs, "nms"
    k, c = sum(len(h.anchors) * h.grid[0] * h.grid[1] for h in heads), heads[0].classes
    g.nodes.append(helper.make_node("Identity", [boxes], ["boxes"]))
    g.nodes.append(helper.make_node("Identity", [scores], ["scores"]))
    return [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [batch, k, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, k, c])], \
        [], "decoded"


def _names_beside(cfg: Path, classes: int) -> tuple[str, ...]:
    from viewfinder.detect.darknet_cfg import read_names

    for candidate in (cfg.with_suffix(".names"), cfg.with_name("coco.names")):
        if candidate.is_file():
            names = read_names(candidate)
            if len(names) == classes:
                return names
    return ()


def export_onnx(cfg: str | os.PathLike[str], weights: str | os.PathLike[str],
                out_path: str | os.PathLike[str], *, size: int = 416, decode: bool = False,
                nms: bool = False, dynamic_batch: bool = False,
                names: tuple[str, ...] = ()) -> Path:
    """Convert a Darknet cfg + weights to an ONNX file (atomically).

    Args:
        cfg: The ``.cfg`` file.
        weights: Its ``.weights`` file (its size must match the cfg exactly).
        out_path: The ``.onnx`` file to write.
        size: Square input size (a multiple of 32), overriding the cfg's ``[net]``.
        decode: Append the YOLO decode (outputs ``boxes``, ``scores``).
        nms: Also append class-wise NMS (output ``detections``); implies ``decode``.
        dynamic_batch: A symbolic batch dimension instead of 1.
        names: Class names to store in the metadata (default: ``<cfg>.names`` or
            ``coco.names`` beside the cfg, when its length matches the classes).

    Returns:
        ``out_path`` as a Path.

    Raises:
        ConfigError, ModelError: bad cfg or weights (the message names the layer).
    """
    spec = parse_cfg(cfg, size=size)
    _, tensors = read_weights(weights, spec)
    names = tuple(names) or _names_beside(Path(cfg), spec.num_classes)
    model = build_onnx(spec, tensors, decode=decode or nms, nms=nms,
                       dynamic_batch=dynamic_batch, names=tuple(names))
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    return Path(out_path)
