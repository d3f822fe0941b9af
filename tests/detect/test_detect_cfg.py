"""Darknet cfg parser: every layer type, shapes, and the errors (no torch needed)."""

from __future__ import annotations

import pytest

from viewfinder.detect.darknet_cfg import conv_param_counts, parse_cfg, parse_cfg_text, yolo_heads
from viewfinder.errors import ConfigError, InputFileError

NET = "[net]\nwidth=64\nheight=64\nchannels=3\n"


def conv(filters: int, size: int = 3, stride: int = 1, act: str = "leaky", bn: int = 1,
         extra: str = "") -> str:
    return (f"[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\n"
            f"stride={stride}\npad=1\nactivation={act}\n{extra}")


YOLO = "[yolo]\nmask=0,1,2\nanchors=8,8, 16,16, 32,32\nclasses=2\nnum=3\n"

# (name, layer sections after [net], expected out_shape of the last layer, its inputs)
LAYER_CASES = [
    ("conv leaky bn", conv(8), (8, 64, 64), (-1,)),
    ("conv linear no bn stride 2", conv(4, 3, 2, "linear", 0), (4, 32, 32), (-1,)),
    ("conv mish 1x1", conv(5, 1, 1, "mish"), (5, 64, 64), (-1,)),
    ("conv grouped", conv(8) + conv(8, extra="groups=4\n"), (8, 64, 64), (0,)),
    ("maxpool 2/2", conv(8) + "[maxpool]\nsize=2\nstride=2\n", (8, 32, 32), (0,)),
    ("maxpool tiny quirk 2/1 keeps size", conv(8) + "[maxpool]\nsize=2\nstride=1\n",
     (8, 64, 64), (0,)),
    ("maxpool odd input 2/2 rounds up", conv(8, 3, 2) * 1 + conv(8, 3, 2) + conv(8, 3, 2)
     + conv(8, 3, 2) + conv(8, 3, 2) + conv(8, 3, 2) + "[maxpool]\nsize=2\nstride=2\n",
     (8, 1, 1), (5,)),
    ("route one layer", conv(8) + conv(4) + "[route]\nlayers=-2\n", (8, 64, 64), (0,)),
    ("route concat absolute+relative", conv(8) + conv(4) + "[route]\nlayers=-1, 0\n",
     (12, 64, 64), (1, 0)),
    ("route groups/group_id (v4-tiny)", conv(8) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n",
     (4, 64, 64), (0,)),
    ("shortcut", conv(8) + conv(8) + "[shortcut]\nfrom=-2\nactivation=linear\n",
     (8, 64, 64), (1, 0)),
    ("upsample", conv(8, 3, 2) + "[upsample]\nstride=2\n", (8, 64, 64), (0,)),
    ("yolo", conv(21, 1, 1, "linear", 0) + YOLO, (21, 64, 64), (0,)),
]


@pytest.mark.parametrize(("name", "body", "shape", "inputs"), LAYER_CASES,
                         ids=[c[0] for c in LAYER_CASES])
def test_layer_shapes(name: str, body: str, shape: tuple, inputs: tuple) -> None:
    spec = parse_cfg_text(NET + body)
    last = spec.layers[-1]
    assert last.out_shape == shape
    assert last.inputs == (inputs if inputs != (-1,) else (last.index - 1,))


ERROR_CASES = [
    ("no net", conv(8), "first section to be [net]"),
    ("unknown layer", NET + "[reorg]\nstride=2\n", "layer 0 [reorg] is not supported"),
    ("missing filters", NET + "[convolutional]\nsize=3\n", "missing option 'filters'"),
    ("bad int", NET + conv(8).replace("size=3", "size=x"), "size='x' is not an int"),
    ("bad activation", NET + conv(8, act="gelu"), "activation 'gelu' is not supported"),
    ("route out of range", NET + conv(8) + "[route]\nlayers=-3\n", "expected a layer in [0, 1)"),
    ("route forward ref", NET + conv(8) + "[route]\nlayers=5\n", "refers to layer 5"),
    ("route shape mismatch", NET + conv(8) + conv(8, 3, 2) + "[route]\nlayers=-1,-2\n",
     "height and width differ"),
    ("route bad group_id", NET + conv(8) + "[route]\nlayers=-1\ngroups=2\ngroup_id=2\n",
     "group_id=2 must be in [0, groups=2)"),
    ("shortcut shape", NET + conv(8) + conv(4) + "[shortcut]\nfrom=-2\n", "expected equal shapes"),
    ("yolo channels", NET + conv(20, 1, 1, "linear", 0) + YOLO,
     "input has 20 channels, expected 3 anchors x (5 + 2 classes) = 21"),
    ("yolo mask", NET + conv(21, 1, 1, "linear", 0) + YOLO.replace("mask=0,1,2", "mask=0,1,7"),
     "mask [0, 1, 7] out of range"),
    ("yolo anchors count", NET + conv(21, 1, 1, "linear", 0) + YOLO.replace("num=3", "num=4"),
     "num=4 but 6 anchor values"),
    ("yolo num huge", NET + conv(21, 1, 1, "linear", 0) + YOLO.replace("num=3", "num=2147483648"),
     "num=2147483648 out of range (expected 1 to 1024 anchors)"),
    ("yolo num zero", NET + conv(21, 1, 1, "linear", 0)
     + YOLO.replace("num=3", "num=0").replace("mask=0,1,2\n", ""), "num=0 out of range"),
    ("garbage line", NET + "hello\n", "expected 'key=value'"),
    ("empty", NET, "no layers after [net]"),
    ("downsample", NET + conv(8) + "[upsample]\nstride=-2\n", "only upsampling"),
]


@pytest.mark.parametrize(("name", "text", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors_name_the_layer(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_cfg_text(text, source="t.cfg")
    assert message in str(info.value)
    assert str(info.value).startswith("t.cfg")


def test_error_gives_line_number() -> None:
    text = NET + conv(8) + "[route]\nlayers=-3\n"
    with pytest.raises(ConfigError, match=r"layer 1 \[route\] \(line 12\)"):
        parse_cfg_text(text, source="t.cfg")


@pytest.mark.parametrize(("size", "ok"), [(320, True), (608, True), (300, False), (0, False)])
def test_size_override(size: int, ok: bool) -> None:
    text = NET + conv(21, 1, 1, "linear", 0) + YOLO
    if ok:
        assert parse_cfg_text(text, size=size).layers[-1].out_shape == (21, size, size)
    else:
        with pytest.raises(ConfigError, match="multiples of 32"):
            parse_cfg_text(text, size=size)


def test_real_yolov3_tiny(shared) -> None:
    spec = parse_cfg(shared / "models/detect/yolov3-tiny/yolov3-tiny.cfg")
    assert len(spec.layers) == 24
    assert spec.layers[11].out_shape == (512, 13, 13)  # stride-1 maxpool keeps 13x13
    assert spec.layers[20].inputs == (19, 8) and spec.layers[20].out_shape == (384, 26, 26)
    heads = yolo_heads(spec)
    assert [h.grid for h in heads] == [(13, 13), (26, 26)]
    assert heads[0].anchors == ((81, 82), (135, 169), (344, 319)) and heads[0].stride == (32, 32)
    # 8,858,734 parameters: the published size of yolov3-tiny
    total = sum(n for layer in spec.layers if layer.kind == "convolutional"
                for _, n in conv_param_counts(layer))
    assert total == 8858734


def test_missing_file(tmp_path) -> None:
    with pytest.raises(InputFileError, match="no such Darknet cfg"):
        parse_cfg(tmp_path / "nope.cfg")


@pytest.mark.parametrize(("layout", "layers", "grids", "weights_bytes"), [
    # sizes of the published yolov3.weights and yolov4-tiny.weights files
    ("yolov3", 107, [(13, 13), (26, 26), (52, 52)], 248_007_048),
    ("yolov4_tiny", 38, [(13, 13), (26, 26)], 24_251_276),
])
def test_published_layouts_match_their_weights_files(layout, layers, grids, weights_bytes) -> None:
    import darknet_layouts

    from viewfinder.detect.darknet_weights import expected_weights_size

    spec = parse_cfg_text(getattr(darknet_layouts, layout)())
    assert len(spec.layers) == layers
    assert [h.grid for h in yolo_heads(spec)] == grids
    assert expected_weights_size(spec) == weights_bytes
