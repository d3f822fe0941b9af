"""Fuse preprocessing into an ONNX model as ONNX ops in front of its input (AIPP-like).

The new model takes what a decoder produces (uint8 NHWC RGB/BGR, BGRA/RGBA with the
4th channel ignored, or NV12) under the
original input's name and does, inside the graph: NV12 to RGB (slice Y and the
interleaved UV plane, the colour matrix, upsample UV ×2, clip), NHWC to NCHW, crop
(Slice), bilinear resize (Resize), channel swap (Gather) and ``(x - mean) / std``
(Mul, Add with per-channel constants).

The ops are chosen by measurement on ONNX Runtime's CPU provider: a 3→3 1×1 ``Conv``
for the colour matrix or the normalisation costs 5× a ``Gather``+``Mul``+``Add``
(ORT reorders such thin convolutions into its blocked layout and back). For NV12 the
channel order, mean and std are folded into the colour conversion, whose chroma part
runs at quarter resolution.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from viewfinder.errors import ConfigError, ModelError, ShapeError
from viewfinder.runtime.convert.modelio import graph_input, opset_version
from viewfinder.runtime.convert.shapes import BATCH, Dim, input_dims
from viewfinder.runtime.convert.spec import PACKED_FORMATS, PreprocessSpec, yuv_to_rgb_affine

__all__ = ["channel_affine", "fuse_preprocessing"]

_PREFIX = "vf_pre"


class _Builder:
    """Collects nodes and constants with unique names under one prefix."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []

    def const(self, label: str, array: np.ndarray) -> str:
        name = f"{_PREFIX}/{label}_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = f"{_PREFIX}/{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def ints(self, label: str, values: list[int]) -> str:
        return self.const(label, np.array(values, dtype=np.int64))


def fuse_preprocessing(
    model: onnx.ModelProto, spec: PreprocessSpec
) -> tuple[onnx.ModelProto, str]:
    """Return a copy of ``model`` with ``spec`` as ONNX ops in front of its input.

    The new input keeps the original input's name; its dtype and shape follow
    ``spec.input``. The batch dimension is kept as it is (fixed or dynamic).

    Args:
        model: A model whose input is float NCHW with 3 channels.
        spec: What to fuse.

    Returns:
        The new model and a one-line description of the new input.

    Raises:
        ShapeError: the model input is not ``[N, 3, H, W]`` float.
        ConfigError: resize or crop do not fit the model's size.
        ModelError: the model's opset is below 11.
    """
    out = copy.deepcopy(model)
    inp = graph_input(out, spec.input_name)
    dims = _model_dims(inp)
    if opset_version(out) < 11:
        raise ModelError(f"model opset {opset_version(out)}: fused preprocessing needs opset >= 11")
    image_hw = _image_size(spec, dims)
    _check_geometry(spec, image_hw, (dims[2], dims[3]))
    internal = f"{inp.name}__{_PREFIX}"
    _rename_uses(out.graph, inp.name, internal)
    new_input = _new_input(inp.name, spec, dims[0], image_hw)
    build = _Builder()
    _build(build, inp.name, spec, image_hw, dims)
    build.nodes[-1].output[0] = internal
    position = list(out.graph.input).index(inp)
    out.graph.input.remove(inp)
    out.graph.input.insert(position, new_input)
    nodes = build.nodes + list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(build.inits)
    shape = ", ".join(str(d) for d in input_dims(new_input))
    dtype = "float32" if spec.input == "float" else "uint8"
    return out, f"{inp.name}: {spec.input} {dtype} [{shape}]"


def _model_dims(inp: onnx.ValueInfoProto) -> list[Dim]:
    dims = input_dims(inp)
    elem = inp.type.tensor_type.elem_type
    if len(dims) != 4 or dims[1] != 3 or elem != TensorProto.FLOAT:
        dtype = helper.tensor_dtype_to_np_dtype(elem) if elem else "unknown"
        raise ShapeError(f"model input {inp.name!r}: expected float32 [N, 3, H, W], got "
                         f"{dtype} {dims}")
    return dims


def _image_size(spec: PreprocessSpec, dims: list[Dim]) -> tuple[Dim, Dim]:
    """(height, width) of the image the new input takes."""
    if spec.height is not None and spec.width is not None:
        return spec.height, spec.width
    if spec.resize or spec.crop is not None:
        return spec.height or "height", spec.width or "width"
    return spec.height or dims[2], spec.width or dims[3]


def _check_geometry(spec: PreprocessSpec, image_hw: tuple[Dim, Dim],
                    model_hw: tuple[Dim, Dim]) -> None:
    if spec.resize:
        if not all(isinstance(d, int) for d in model_hw):
            raise ConfigError(f"preprocess resize: the model's size {model_hw} is not fixed; "
                              "fix it first (shape size = [w, h])")
        return
    after = (spec.crop[3], spec.crop[2]) if spec.crop else image_hw
    for got, want, what in zip(after, model_hw, ("height", "width"), strict=True):
        if isinstance(got, int) and isinstance(want, int) and got != want:
            raise ConfigError(f"preprocess: image {what} {got} (after crop) != model {what} "
                              f"{want}; set resize or change the size")


def _rename_uses(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_uses(attr.g, old, new)
    for out in graph.output:
        if out.name == old:
            raise ModelError(f"model input {old!r} is also an output: cannot fuse preprocessing")


def _new_input(name: str, spec: PreprocessSpec, batch: Dim,
               image_hw: tuple[Dim, Dim]) -> onnx.ValueInfoProto:
    h, w = image_hw
    batch = batch if batch is not None else BATCH
    if spec.input == "nv12":
        return helper.make_tensor_value_info(name, TensorProto.UINT8, [batch, h * 3 // 2, w])
    if spec.input == "float":
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 3, h, w])
    return helper.make_tensor_value_info(name, TensorProto.UINT8, [batch, h, w, spec.channels])


def _build(b: _Builder, x: str, spec: PreprocessSpec, image_hw: tuple[Dim, Dim],
           dims: list[Dim]) -> str:
    scale, offset = channel_affine(spec)
    if spec.input == "nv12":
        x = _nv12_normalized(b, x, spec, int(image_hw[0]), int(image_hw[1]))
        scale, offset = np.ones(3), np.zeros(3)  # folded into the colour conversion
    elif spec.input in PACKED_FORMATS:
        if spec.crop is not None:  # crop the uint8 NHWC image: less to transpose and cast
            x = _crop(b, x, spec.crop, axes=(1, 2))
        x = b.op("Transpose", [x], perm=[0, 3, 1, 2])
        if spec.swaps_channels or spec.channels != 3:  # one Gather swaps and drops alpha
            order = [2, 1, 0] if spec.swaps_channels else [0, 1, 2]
            x = b.op("Gather", [x, b.ints("swap", order)], axis=1)
        x = b.op("Cast", [x], to=TensorProto.FLOAT)
    if spec.crop is not None and spec.input in ("nv12", "float"):
        x = _crop(b, x, spec.crop, axes=(2, 3))
    if spec.resize:
        x = _resize(b, x, dims)
    if np.any(scale != 1.0):
        x = b.op("Mul", [x, b.const("scale", _per_channel(scale))])
    if np.any(offset != 0.0):
        x = b.op("Add", [x, b.const("offset", _per_channel(offset))])
    if not b.nodes:
        x = b.op("Identity", [x])
    return x


def channel_affine(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per model channel ``(scale, offset)``: ``out = scale * decoded + offset`` (float64)."""
    scale = 1.0 / np.asarray(spec.std, dtype=np.float64)
    return scale, -np.asarray(spec.mean, dtype=np.float64) * scale


def _per_channel(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(1, 3, 1, 1)


def _crop(b: _Builder, x: str, crop: tuple[int, int, int, int], axes: tuple[int, int]) -> str:
    cx, cy, cw, ch = crop
    return b.op("Slice", [x, b.ints("starts", [cy, cx]), b.ints("ends", [cy + ch, cx + cw]),
                          b.ints("axes", list(axes))])


def _nv12_normalized(b: _Builder, x: str, spec: PreprocessSpec, h: int, w: int) -> str:
    """NV12 ``[N, H*3/2, W]`` uint8 -> the model's normalised float ``[N, 3, H, W]``.

    Every channel of RGB is ``ys * Y + (chroma term)`` with the same luma weight ``ys``,
    so the chroma term (with the channel order, mean and std folded in) is computed at
    quarter resolution by a 2->3 1x1 Conv, upsampled x2 (nearest, as decoders do), and
    added to ``Y`` times a per-channel vector. The 0..255 clip of RGB becomes a clip to
    the normalised bounds: exact, since the normalisation is per channel and affine.
    """
    axis1 = b.ints("axis", [1])
    y = b.op("Slice", [x, b.ints("y_start", [0]), b.ints("y_end", [h]), axis1])
    y = b.op("Reshape", [y, b.ints("y_shape", [-1, 1, h, w])])
    uv = b.op("Slice", [x, b.ints("uv_start", [h]), b.ints("uv_end", [h * 3 // 2]), axis1])
    uv = b.op("Reshape", [uv, b.ints("uv_shape", [-1, h // 2, w // 2, 2])])
    uv = b.op("Cast", [b.op("Transpose", [uv], perm=[0, 3, 1, 2])], to=TensorProto.FLOAT)
    luma, chroma, bias, lo, hi = _nv12_coefficients(spec)
    u = b.op("Slice", [uv, b.ints("u0", [0]), b.ints("u1", [1]), axis1])
    v = b.op("Slice", [uv, b.ints("v0", [1]), b.ints("v1", [2]), axis1])
    u = b.op("Mul", [u, b.const("u_w", _per_channel(chroma[:, 0]))])
    v = b.op("Mul", [v, b.const("v_w", _per_channel(chroma[:, 1]))])
    uv = b.op("Add", [b.op("Add", [u, v]), b.const("chroma_b", _per_channel(bias))])
    empty = b.const("empty", np.zeros(0, dtype=np.float32))
    uv = b.op("Resize", [uv, empty, b.const("x2", np.array([1, 1, 2, 2], dtype=np.float32))],
              mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    y = b.op("Mul", [b.op("Cast", [y], to=TensorProto.FLOAT), b.const("luma", _per_channel(luma))])
    x = b.op("Add", [y, uv])
    if np.all(lo == lo[0]) and np.all(hi == hi[0]):
        return b.op("Clip", [x, b.const("lo", np.float32(lo[0])), b.const("hi", np.float32(hi[0]))])
    x = b.op("Max", [x, b.const("lo", _per_channel(lo))])
    return b.op("Min", [x, b.const("hi", _per_channel(hi))])


def _nv12_coefficients(spec: PreprocessSpec) -> tuple[np.ndarray, ...]:
    """Per model channel: luma weight, chroma weights (3, 2), bias, clip bounds."""
    matrix, offset = yuv_to_rgb_affine(spec.color_matrix, spec.color_range)
    order = [2, 1, 0] if spec.swaps_channels else [0, 1, 2]
    scale, shift = channel_affine(spec)
    rows = matrix[order] * scale[:, None]
    ends = np.stack([shift, 255.0 * scale + shift])
    return (rows[:, 0], rows[:, 1:], offset[order] * scale + shift, ends.min(0), ends.max(0))


def _resize(b: _Builder, x: str, dims: list[Dim]) -> str:
    empty = b.const("empty", np.zeros(0, dtype=np.float32))
    if isinstance(dims[0], int):
        sizes = b.ints("sizes", [dims[0], 3, int(dims[2]), int(dims[3])])
    else:
        lead = b.op("Slice", [b.op("Shape", [x]), b.ints("s0", [0]), b.ints("s2", [2]),
                              b.ints("axis0", [0])])
        sizes = b.op("Concat", [lead, b.ints("hw", [int(dims[2]), int(dims[3])])], axis=0)
    return b.op("Resize", [x, empty, empty, sizes], mode="linear",
                coordinate_transformation_mode="half_pixel")
