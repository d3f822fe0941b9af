"""Fuzz targets of model files: Darknet .cfg / .weights, voc-release5 .mat, ONNX."""

from __future__ import annotations

import functools
import io
import struct
from pathlib import Path

import numpy as np
from fuzz_core import (
    GENERIC,
    NUMBERS,
    Chooser,
    Field,
    PropertyViolation,
    Target,
    field_op,
    line_shuffle_op,
    lines_op,
)

# --------------------------------------------------------------------------- Darknet .cfg
SMALL_CFG = """[net]
width=32
height=32
channels=3
[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky
[convolutional]
filters=6
size=1
stride=1
pad=1
activation=linear
"""
HEADS_CFG = """[net]
width=64
height=64
channels=3
[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky
[maxpool]
size=2
stride=2
[convolutional]
filters=8
size=3
stride=1
pad=1
groups=2
activation=mish
[shortcut]
from=-2
activation=linear
[route]
layers=-1,-3
groups=2
group_id=1
[upsample]
stride=2
[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear
[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319
classes=2
num=6
"""
_CFG_SECTIONS = ["[convolutional]", "[maxpool]", "[route]", "[shortcut]", "[upsample]",
                 "[yolo]", "[net]", "[dropout]", "[", "[]", "[route", "layers=-100",
                 "from=5", "mask=9", "anchors=1", "filters=0", "size=0", "stride=0",
                 "groups=0", "pad=-5", "activation=bogus", "classes=-1", "num=0",
                 "new_coords=1", "key", "=", "#x", ";y"]


def cfg_seeds(shared: Path | None) -> list[bytes]:
    seeds = [SMALL_CFG.encode(), HEADS_CFG.encode()]
    if shared is not None:
        cfg = shared / "models/detect/yolov3-tiny/yolov3-tiny.cfg"
        if cfg.is_file():
            seeds.append(cfg.read_bytes())
    return seeds


def _cfg_insert_op(ch: Chooser, data: bytes) -> bytes:
    lines = data.split(b"\n")
    lines.insert(ch.int(0, len(lines)), ch.choice(_CFG_SECTIONS).encode())
    return b"\n".join(lines)


def _check_spec(spec: object) -> None:
    from viewfinder.detect.darknet_cfg import conv_param_counts, yolo_heads
    from viewfinder.detect.darknet_weights import expected_weights_size

    for layer in spec.layers:  # type: ignore[attr-defined]
        if len(layer.out_shape) != 3 or min(layer.out_shape) < 1:
            raise PropertyViolation(f"{layer.where}: output shape {layer.out_shape}")
        if layer.kind == "convolutional" and min(n for _, n in conv_param_counts(layer)) < 0:
            raise PropertyViolation(f"{layer.where}: negative parameter count")
    yolo_heads(spec)  # type: ignore[arg-type]
    expected_weights_size(spec)  # type: ignore[arg-type]


def cfg_run(data: bytes, workdir: Path) -> None:
    from viewfinder.detect.darknet_cfg import parse_cfg

    path = workdir / "net.cfg"
    path.write_bytes(data)
    _check_spec(parse_cfg(path))


DARKNET_CFG = Target(
    "darknet_cfg", cfg_seeds, cfg_run,
    ops=[lines_op(NUMBERS + ["leaky", "mish", "-1,-3", "-1,1000", "0,1,2", "1,2,3,4,5,6"])] * 5
    + [line_shuffle_op] * 2 + [_cfg_insert_op] * 2 + GENERIC,
    modules=("viewfinder.detect.darknet_cfg", "viewfinder.detect.darknet_weights"),
)


# --------------------------------------------------------------------------- Darknet .weights
# Input: cfg choice, strict flag, a 20-byte header, the length of a zero-filled body,
# then literal bytes appended: the file is header + zeros + tail (big files stay small).
_WHEAD = struct.Struct("<BBiiiQI")


def _weights_cfgs(shared: Path | None) -> list[str]:
    cfgs = [SMALL_CFG, HEADS_CFG]
    if shared is not None:
        cfg = shared / "models/detect/yolov3-tiny/yolov3-tiny.cfg"
        if cfg.is_file():
            cfgs.append(cfg.read_text())
    return cfgs


@functools.lru_cache(maxsize=1)
def _cfg_texts() -> tuple[str, ...]:
    from fuzz_registry import shared_or_none

    return tuple(_weights_cfgs(shared_or_none()))


def weights_seeds(shared: Path | None) -> list[bytes]:
    from viewfinder.detect.darknet_cfg import parse_cfg_text
    from viewfinder.detect.darknet_weights import expected_weights_size

    seeds = []
    for i, text in enumerate(_weights_cfgs(shared)):
        need = expected_weights_size(parse_cfg_text(text))
        seeds.append(_WHEAD.pack(i, 1, 0, 2, 0, 32013312, need - 20))
        seeds.append(_WHEAD.pack(i, 0, 0, 1, 0, 0, need - 20) + b"\0" * 4)
    if shared is not None:
        w = shared / "models/detect/yolov3-tiny/yolov3-tiny.weights"
        if w.is_file() and len(seeds) == 6:  # the real header, on its own cfg
            head = w.open("rb").read(20)
            seeds.append(seeds[4][:2] + head + seeds[4][22:])
    return seeds


def _weights_size_op(ch: Chooser, data: bytes) -> bytes:
    from viewfinder.detect.darknet_cfg import parse_cfg_text
    from viewfinder.detect.darknet_weights import expected_weights_size

    if not data:
        return data
    cfgs = _cfg_texts()
    need = expected_weights_size(parse_cfg_text(cfgs[data[0] % len(cfgs)])) - 20
    body = max(0, need + ch.choice([0, 1, -1, 4, -4, 3, -need, 1 << 20]))
    return data[:22] + body.to_bytes(4, "little") + data[26:]


def weights_run(data: bytes, workdir: Path) -> None:
    from viewfinder.detect.darknet_cfg import conv_param_counts, parse_cfg_text
    from viewfinder.detect.darknet_weights import read_weights

    data = data.ljust(_WHEAD.size, b"\0")
    cfgs = _cfg_texts()
    spec = parse_cfg_text(cfgs[data[0] % len(cfgs)])
    body = int.from_bytes(data[22:26], "little") % (64 << 20)
    path = workdir / "net.weights"
    with open(path, "wb") as fh:
        fh.write(data[2:22])
        fh.truncate(20 + body)
        fh.seek(20 + body)
        fh.write(data[26:])
    _header, tensors = read_weights(path, spec, strict=bool(data[1] & 1))
    for layer in spec.layers:
        if layer.kind == "convolutional":
            got = {k: v.size for k, v in tensors[layer.index].items()}
            if got != dict(conv_param_counts(layer)):
                raise PropertyViolation(f"{layer.where}: tensors {got}")


DARKNET_WEIGHTS = Target(
    "darknet_weights", weights_seeds, weights_run,
    ops=[field_op(lambda d: [Field(0, 1), Field(1, 1), Field(2, 4, "little"),
                             Field(6, 4, "little"), Field(10, 4, "little"),
                             Field(14, 8, "little"), Field(22, 4, "little")])] * 4
    + [_weights_size_op] * 3 + GENERIC,
    modules=("viewfinder.detect.darknet_weights",),
)


# --------------------------------------------------------------------------- DPM .mat
def mat_seeds(shared: Path | None) -> list[bytes]:
    """Real voc-release5 models: INRIA as shipped (compressed) and re-saved uncompressed,
    so that byte mutations hit the MAT tags, sizes and dimensions."""
    import scipy.io

    if shared is None:
        return []
    root = shared / "models/dpm/voc-release5"
    seeds = []
    for name in ("INRIA_inriaperson_final.mat", "VOC2007_person_grammar_final.mat"):
        if (root / name).is_file():
            seeds.append((root / name).read_bytes())
    if seeds:
        buf = io.BytesIO()
        scipy.io.savemat(buf, scipy.io.loadmat(io.BytesIO(seeds[0])), do_compression=False)
        seeds.append(buf.getvalue())
    return seeds


def _leaf(ch: Chooser, value: object) -> object:
    arr = np.asarray(value)
    how = ch.int(0, 7)
    if how == 0:
        return np.zeros((0, 0))
    if how == 1:
        return "T" if ch.int(0, 1) else "x"
    if how == 2 and arr.size:
        return arr.reshape(-1)[: ch.int(0, arr.size - 1)]
    if how == 3 and arr.dtype.kind in "fiu" and arr.size:
        out = arr.astype(np.float64).copy()
        out.reshape(-1)[ch.int(0, out.size - 1)] = ch.choice(
            [0, -1, 1e30, np.nan, np.inf, 2.0 ** 31, 1e6, 33, -1e30])
        return out
    if how == 4:
        return np.array([[ch.choice([0, 1, -1, 1000, 2 ** 31 - 1])]], dtype=np.float64)
    if how == 5 and arr.ndim >= 2:
        return arr.T
    if how == 6:
        return np.ones((ch.int(1, 3), ch.int(1, 3)))
    return value


def _walk(ch: Chooser, node: object, depth: int) -> object:
    if depth > 12 or not isinstance(node, np.ndarray) or node.size == 0:
        return _leaf(ch, node)
    flat = node.reshape(-1)
    i = ch.int(0, flat.size - 1)
    if node.dtype.names:
        name = ch.choice(node.dtype.names)
        if ch.int(0, 4) == 0:
            return _leaf(ch, node)
        flat[i][name] = _walk(ch, flat[i][name], depth + 1)
        return node
    if node.dtype == object:
        flat[i] = _walk(ch, flat[i], depth + 1)
        return node
    return _leaf(ch, node) if ch.int(0, 2) else node


def _mat_struct_op(ch: Chooser, data: bytes) -> bytes:
    """Change one value deep in the model struct (or drop a field), then save the file."""
    import numpy.lib.recfunctions as rfn
    import scipy.io

    try:
        mat = scipy.io.loadmat(io.BytesIO(data))
    except Exception:
        return data
    model = mat.get("model")
    if not isinstance(model, np.ndarray) or not model.dtype.names:
        return data
    if ch.int(0, 5) == 0:
        mat["model"] = rfn.drop_fields(model, ch.choice(model.dtype.names), usemask=False)
    else:
        mat["model"] = _walk(ch, model, 0)
    buf = io.BytesIO()
    try:
        scipy.io.savemat(buf, {k: v for k, v in mat.items() if not k.startswith("__")},
                         do_compression=False)
    except Exception:
        return data
    return buf.getvalue()


def mat_run(data: bytes, workdir: Path) -> None:
    from viewfinder.dpm.model import load_voc_release5

    path = workdir / "model.mat"
    path.write_bytes(data)
    model = load_voc_release5(path)
    model.describe()
    for f in model.filters:
        if f.ndim != 3 or not np.isfinite(f).all():
            raise PropertyViolation(f"filter {f.shape} with non-finite weights")


DPM_MAT = Target(
    "dpm_mat", mat_seeds, mat_run,
    ops=[_mat_struct_op] * 6 + GENERIC,
    modules=("viewfinder.dpm.model",),
    input_seconds=20.0,
    isolate=True,  # scipy.io.loadmat can segfault (test_fuzz_regressions)
)


# --------------------------------------------------------------------------- ONNX
def _tiny_models() -> list[bytes]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
         helper.make_node("Relu", ["c"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    m = numpy_helper.from_array(np.ones((6, 2), np.float32), "m")
    b = numpy_helper.from_array(np.zeros((2,), np.float16), "b")
    mm = helper.make_graph(
        [helper.make_node("MatMul", ["x", "m"], ["t"]),
         helper.make_node("Cast", ["t"], ["h"], to=TensorProto.FLOAT16),
         helper.make_node("Add", ["h", "b"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 2])], [m, b])
    out = []
    for graph in (conv, mm):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        out.append(model.SerializeToString())
    _ = onnx  # the import checks onnx is there
    return out


def onnx_seeds(shared: Path | None) -> list[bytes]:
    seeds = _tiny_models()
    if shared is not None and (shared / "models/face/yunet_s.onnx").is_file():
        seeds.append((shared / "models/face/yunet_s.onnx").read_bytes())
    return seeds


_OPS = ["Conv", "Relu", "Add", "MatMul", "Reshape", "Gather", "Loop", "If", "Resize", "Foo", "",
        "QLinearConv", "Cast", "Concat", "Slice", "Expand", "Tile", "ConstantOfShape"]


def _onnx_op(ch: Chooser, data: bytes) -> bytes:  # noqa: C901 - one branch per field kind
    """Change one field of the model proto: ops, names, attributes, dims, types, versions."""
    import onnx

    model = onnx.ModelProto.FromString(data)
    g = model.graph
    how = ch.int(0, 10)
    big = [0, -1, 1, 2 ** 31, 2 ** 40, -(2 ** 62), 3, 1000000]
    if how == 0 and g.node:
        ch.choice(g.node).op_type = ch.choice(_OPS)
    elif how == 1 and g.node:
        node = ch.choice(g.node)
        names = [i.name for i in g.input] + [t.name for t in g.initializer] + ["", "nope"]
        if node.input:
            node.input[ch.int(0, len(node.input) - 1)] = ch.choice(names)
    elif how == 2 and g.node and any(n.attribute for n in g.node):
        attr = ch.choice([a for n in g.node for a in n.attribute])
        if attr.ints:
            attr.ints[ch.int(0, len(attr.ints) - 1)] = ch.choice(big)
        else:
            attr.i = ch.choice(big)
    elif how == 3 and g.initializer:
        t = ch.choice(g.initializer)
        if t.dims:
            t.dims[ch.int(0, len(t.dims) - 1)] = ch.choice(big)
    elif how == 4 and g.initializer:
        ch.choice(g.initializer).data_type = ch.int(0, 25)
    elif how == 5 and g.initializer:
        t = ch.choice(g.initializer)
        t.raw_data = t.raw_data[: ch.int(0, len(t.raw_data))]
    elif how == 6 and g.input:
        dims = ch.choice(g.input).type.tensor_type.shape.dim
        if dims:
            d = dims[ch.int(0, len(dims) - 1)]
            if ch.int(0, 1):
                d.dim_value = ch.choice(big[:4] + [0])
            else:
                d.dim_param = ch.choice(["N", "", "?"])
    elif how == 7:
        model.opset_import[0].version = ch.choice([0, 1, 7, 13, 99, 2 ** 31])
    elif how == 8:
        model.ir_version = ch.choice([0, 1, 3, 8, 99])
    elif how == 9 and g.node:
        del g.node[ch.int(0, len(g.node) - 1)]
    elif how == 10 and g.initializer:
        t = ch.choice(g.initializer)
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", ch.choice(["/dev/zero", "../../etc/passwd", "w.bin",
                                                   "/proc/self/mem"])),
                           ("length", str(ch.choice([4, 2 ** 40, 0]))), ("offset", "0")):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    return model.SerializeToString()


def onnx_run(data: bytes, workdir: Path) -> None:
    from viewfinder.runtime.session import load_session

    path = workdir / "model.onnx"
    path.write_bytes(data)
    session = load_session(path, "ort", threads=1)
    for info in (*session.inputs, *session.outputs):
        if not isinstance(info.name, str) or not isinstance(info.shape, tuple):
            raise PropertyViolation(f"tensor info {info}")
    session.describe()


ONNX_MODEL = Target(
    "onnx_model", onnx_seeds, onnx_run,
    ops=[_onnx_op] * 6 + GENERIC,
    modules=("viewfinder.runtime.session", "viewfinder.runtime.ort", "viewfinder.runtime.base"),
    input_seconds=20.0,
)
