"""Darknet ``.cfg`` parsing: sections to validated layer specs, with shapes (no torch).

A Darknet cfg is an INI-like list of ``[section]`` blocks in network order. The
parser turns it into a :class:`NetSpec`: the ``[net]`` options plus one
:class:`LayerSpec` per layer, each knowing its output shape, so errors (a route to
a layer that does not exist, a shortcut between different shapes...) are found
before any weight is read. Supported layers are those of YOLOv3, YOLOv3-tiny and
YOLOv4-tiny: ``convolutional``, ``maxpool``, ``route``, ``shortcut``, ``upsample``
and ``yolo``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from viewfinder.errors import ConfigError
from viewfinder.fileio import check_readable

__all__ = [
    "ACTIVATIONS", "LayerSpec", "NetSpec", "YoloHead", "conv_param_counts", "parse_cfg",
    "parse_cfg_text", "read_names", "yolo_heads",
]

log = logging.getLogger(__name__)

ACTIVATIONS = ("leaky", "linear", "mish", "relu", "logistic", "swish")
_LAYER_TYPES = ("convolutional", "maxpool", "route", "shortcut", "upsample", "yolo")
#: Most anchors one [yolo] layer may declare (Darknet's configs have 3 to 9).
_MAX_ANCHORS = 1024


@dataclass(frozen=True)
class LayerSpec:
    """One Darknet layer.

    Attributes:
        index: Position in the network (0-based, ``[net]`` excluded).
        kind: Section name, e.g. ``"convolutional"``.
        options: The raw ``key=value`` options (strings).
        in_shape: ``(C, H, W)`` of the (first) input.
        out_shape: ``(C, H, W)`` of the output.
        inputs: Absolute indices of the layers this one reads (route/shortcut);
            ``(index - 1,)`` for sequential layers.
        line: Line number of the section header in the cfg, for messages.
    """

    index: int
    kind: str
    options: dict[str, str]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    inputs: tuple[int, ...]
    line: int

    def get_int(self, key: str, default: int | None = None) -> int:
        """An integer option (``ConfigError`` naming the layer when absent or malformed)."""
        return int(_number(self, key, default, int))

    def get_float(self, key: str, default: float | None = None) -> float:
        """A float option."""
        return float(_number(self, key, default, float))

    def get_ints(self, key: str, default: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """A comma-separated list of integers."""
        if key not in self.options:
            if default is None:
                raise ConfigError(f"{self.where}: missing option {key!r}")
            return default
        try:
            return tuple(int(v) for v in self.options[key].split(",") if v.strip())
        except ValueError:
            raise ConfigError(
                f"{self.where}: option {key}={self.options[key]!r} is not a list of integers"
            ) from None

    @property
    def where(self) -> str:
        """``layer 12 [route] (line 96)``: how messages name this layer."""
        return f"layer {self.index} [{self.kind}] (line {self.line})"


@dataclass(frozen=True)
class NetSpec:
    """A parsed cfg: ``[net]`` options and the layers, with ``source`` for messages."""

    net: dict[str, str]
    layers: tuple[LayerSpec, ...]
    source: str = "<cfg>"
    input_shape: tuple[int, int, int] = (3, 416, 416)
    yolo_indices: tuple[int, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        """Classes of the (first) yolo layer; 0 when there is none."""
        return self.layers[self.yolo_indices[0]].get_int("classes", 80) if self.yolo_indices else 0


def _number(layer: LayerSpec, key: str, default: float | None, kind: type) -> float:
    if key not in layer.options:
        if default is None:
            raise ConfigError(f"{layer.where}: missing option {key!r}")
        return default
    try:
        return kind(layer.options[key])
    except ValueError:
        raise ConfigError(
            f"{layer.where}: option {key}={layer.options[key]!r} is not a{'n int' if kind is int else ' number'}"
        ) from None


def parse_cfg(path: str | os.PathLike[str], size: int | tuple[int, int] | None = None) -> NetSpec:
    """Parse a Darknet ``.cfg`` file.

    Args:
        path: The cfg file.
        size: Input size overriding ``[net] width/height``: an int (square) or ``(h, w)``;
            multiples of 32 for YOLO cfgs.

    Raises:
        InputFileError: the file is missing or unreadable.
        ConfigError: unknown section, bad option, or inconsistent shapes (the message
            names the file, the layer and its line).
    """
    p = check_readable(path, "Darknet cfg")
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (expected a Darknet .cfg)") from None
    return parse_cfg_text(text, source=str(p), size=size)


def _sections(text: str, source: str) -> list[tuple[str, dict[str, str], int]]:
    sections: list[tuple[str, dict[str, str], int]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ConfigError(f"{source}:{lineno}: malformed section header {line!r}")
            sections.append((line[1:-1].strip().lower(), {}, lineno))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip().lower()] = value.strip()
        else:
            raise ConfigError(f"{source}:{lineno}: expected 'key=value' or '[section]', got {line!r}")
    return sections


def parse_cfg_text(text: str, source: str = "<cfg>",
                   size: int | tuple[int, int] | None = None) -> NetSpec:
    """Parse cfg text (see :func:`parse_cfg`); ``source`` names it in messages."""
    sections = _sections(text, source)
    if not sections or sections[0][0] not in ("net", "network"):
        raise ConfigError(f"{source}: expected the first section to be [net]")
    net = dict(sections[0][1])
    if size is not None:
        h, w = (size, size) if isinstance(size, int) else size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ConfigError(f"{source}: input size {w}x{h} must be positive multiples of 32")
        net["height"], net["width"] = str(h), str(w)
    try:
        shape = (int(net.get("channels", 3)), int(net.get("height", 416)), int(net.get("width", 416)))
    except ValueError:
        raise ConfigError(f"{source}: [net] width/height/channels must be integers") from None
    if min(shape) <= 0:
        raise ConfigError(f"{source}: [net] channels/height/width must be positive, got {shape}")
    layers: list[LayerSpec] = []
    for kind, options, lineno in sections[1:]:
        if kind not in _LAYER_TYPES:
            raise ConfigError(
                f"{source}:{lineno}: layer {len(layers)} [{kind}] is not supported "
                f"(supported: {', '.join(_LAYER_TYPES)})"
            )
        layers.append(_build(kind, options, lineno, len(layers), layers, shape, source))
    if not layers:
        raise ConfigError(f"{source}: no layers after [net]")
    yolo = tuple(i for i, spec in enumerate(layers) if spec.kind == "yolo")
    return NetSpec(net, tuple(layers), source, shape, yolo)


def _build(kind: str, options: dict[str, str], lineno: int, index: int,
           layers: list[LayerSpec], net_shape: tuple[int, int, int], source: str) -> LayerSpec:
    prev = layers[-1].out_shape if layers else net_shape
    spec = LayerSpec(index, kind, options, prev, prev, (index - 1,), lineno)
    try:
        out, inputs = _SHAPE_RULES[kind](spec, layers)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if min(out) <= 0:
        raise ConfigError(f"{source}: {spec.where}: output shape {out} is empty")
    first = layers[inputs[0]].out_shape if inputs[0] >= 0 else net_shape
    return LayerSpec(index, kind, options, first, out, inputs, lineno)


def _conv_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    c, h, w = spec.in_shape
    filters, size = spec.get_int("filters"), spec.get_int("size", 1)
    stride, groups = spec.get_int("stride", 1), spec.get_int("groups", 1)
    pad = size // 2 if spec.get_int("pad", 0) else spec.get_int("padding", 0)
    act = spec.options.get("activation", "logistic")
    if act not in ACTIVATIONS:
        raise ConfigError(f"{spec.where}: activation {act!r} is not supported "
                          f"(supported: {', '.join(ACTIVATIONS)})")
    if filters <= 0 or size <= 0 or stride <= 0 or groups <= 0 or c % groups or filters % groups:
        raise ConfigError(f"{spec.where}: filters={filters}, size={size}, stride={stride}, "
                          f"groups={groups} do not fit {c} input channels")
    out_h, out_w = (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
    return (filters, out_h, out_w), (spec.index - 1,)


def _maxpool_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    c, h, w = spec.in_shape
    size = spec.get_int("size", 1)
    stride = spec.get_int("stride", 1)
    padding = spec.get_int("padding", size - 1)  # Darknet's default: pad right/bottom
    if size <= 0 or stride <= 0 or padding < 0:
        raise ConfigError(f"{spec.where}: size={size}, stride={stride}, padding={padding} invalid")
    return (c, (h + padding - size) // stride + 1, (w + padding - size) // stride + 1), (
        spec.index - 1,)


def _resolve(spec: LayerSpec, ref: int, layers: list[LayerSpec]) -> int:
    target = spec.index + ref if ref < 0 else ref
    if not 0 <= target < spec.index:
        raise ConfigError(f"{spec.where}: refers to layer {ref} -> {target}, "
                          f"expected a layer in [0, {spec.index})")
    return target


def _route_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    refs = spec.get_ints("layers")
    if not refs:
        raise ConfigError(f"{spec.where}: 'layers' is empty")
    targets = tuple(_resolve(spec, r, layers) for r in refs)
    groups, group_id = spec.get_int("groups", 1), spec.get_int("group_id", 0)
    if groups <= 0 or not 0 <= group_id < groups:
        raise ConfigError(f"{spec.where}: group_id={group_id} must be in [0, groups={groups})")
    shapes = [layers[t].out_shape for t in targets]
    if len({s[1:] for s in shapes}) != 1:
        raise ConfigError(f"{spec.where}: cannot concatenate layers {list(targets)} with "
                          f"shapes {shapes} (height and width differ)")
    if any(s[0] % groups for s in shapes):
        raise ConfigError(f"{spec.where}: channels {[s[0] for s in shapes]} not divisible by "
                          f"groups={groups}")
    channels = sum(s[0] // groups for s in shapes)
    return (channels, shapes[0][1], shapes[0][2]), targets


def _shortcut_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    refs = spec.get_ints("from")
    if len(refs) != 1:
        raise ConfigError(f"{spec.where}: expected one 'from' layer, got {list(refs)}")
    src = _resolve(spec, refs[0], layers)
    act = spec.options.get("activation", "linear")
    if act not in ACTIVATIONS:
        raise ConfigError(f"{spec.where}: activation {act!r} is not supported")
    if layers[src].out_shape != spec.in_shape:
        raise ConfigError(f"{spec.where}: adds layer {src} of shape {layers[src].out_shape} "
                          f"to shape {spec.in_shape}; expected equal shapes")
    return spec.in_shape, (spec.index - 1, src)


def _upsample_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    stride = spec.get_int("stride", 2)
    if stride < 1:
        raise ConfigError(f"{spec.where}: stride={stride}; only upsampling (stride >= 1) "
                          "is supported")
    c, h, w = spec.in_shape
    return (c, h * stride, w * stride), (spec.index - 1,)


def _yolo_shape(spec: LayerSpec, layers: list[LayerSpec]) -> tuple[tuple[int, int, int], tuple]:
    classes = spec.get_int("classes", 20)
    anchors = spec.get_ints("anchors")
    num = spec.get_int("num", len(anchors) // 2)
    if not 0 < num <= _MAX_ANCHORS:
        raise ConfigError(f"{spec.where}: num={num} out of range (expected 1 to {_MAX_ANCHORS} "
                          "anchors)")
    if len(anchors) != 2 * num:
        raise ConfigError(f"{spec.where}: num={num} but {len(anchors)} anchor values "
                          f"(expected {2 * num})")
    mask = spec.get_ints("mask", tuple(range(num)))
    if any(not 0 <= m < num for m in mask):
        raise ConfigError(f"{spec.where}: mask {list(mask)} out of range [0, {num})")
    if spec.get_int("new_coords", 0):
        raise ConfigError(f"{spec.where}: new_coords=1 (scaled-YOLOv4) is not supported")
    want = len(mask) * (5 + classes)
    if spec.in_shape[0] != want:
        raise ConfigError(f"{spec.where}: input has {spec.in_shape[0]} channels, expected "
                          f"{len(mask)} anchors x (5 + {classes} classes) = {want}")
    return spec.in_shape, (spec.index - 1,)


_SHAPE_RULES = {
    "convolutional": _conv_shape,
    "maxpool": _maxpool_shape,
    "route": _route_shape,
    "shortcut": _shortcut_shape,
    "upsample": _upsample_shape,
    "yolo": _yolo_shape,
}


def read_names(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Read a Darknet ``.names`` file: one class name per non-empty line."""
    p = check_readable(path, "class names file")
    names = tuple(line.strip() for line in Path(p).read_text(encoding="utf-8").splitlines()
                  if line.strip())
    if not names:
        raise ConfigError(f"{p}: no class names")
    return names


@dataclass(frozen=True)
class YoloHead:
    """What decoding one ``[yolo]`` layer's output needs.

    Attributes:
        index: The layer index.
        anchors: ``(A, 2)`` anchor width/height in network-input pixels (masked ones).
        classes: Number of classes.
        grid: ``(H, W)`` of the output grid.
        stride: ``(sy, sx)`` input pixels per cell.
        scale_xy: Darknet's ``scale_x_y`` (1.0 for YOLOv3, 1.05 for YOLOv4-tiny).
        ignore_thresh: IoU above which an unmatched prediction is not penalised.
    """

    index: int
    anchors: tuple[tuple[float, float], ...]
    classes: int
    grid: tuple[int, int]
    stride: tuple[float, float]
    scale_xy: float = 1.0
    ignore_thresh: float = 0.7


def yolo_heads(spec: NetSpec) -> list[YoloHead]:
    """The decode parameters of every ``[yolo]`` layer, in network order."""
    heads = []
    _, net_h, net_w = spec.input_shape
    for i in spec.yolo_indices:
        layer = spec.layers[i]
        values = layer.get_ints("anchors")
        pairs = [(float(values[2 * k]), float(values[2 * k + 1])) for k in range(len(values) // 2)]
        mask = layer.get_ints("mask", tuple(range(len(pairs))))
        _, gh, gw = layer.out_shape
        heads.append(YoloHead(i, tuple(pairs[m] for m in mask), layer.get_int("classes", 20),
                              (gh, gw), (net_h / gh, net_w / gw),
                              layer.get_float("scale_x_y", 1.0),
                              layer.get_float("ignore_thresh", 0.7)))
    return heads


def conv_param_counts(layer: LayerSpec) -> list[tuple[str, int]]:
    """The tensors a convolutional layer stores in a ``.weights`` file, in file order."""
    filters, size = layer.get_int("filters"), layer.get_int("size", 1)
    per_filter = layer.in_shape[0] // layer.get_int("groups", 1) * size * size
    if layer.get_int("batch_normalize", 0):
        parts = [("bias", filters), ("bn_weight", filters), ("bn_mean", filters),
                 ("bn_var", filters)]
    else:
        parts = [("bias", filters)]
    return [*parts, ("weight", filters * per_filter)]
