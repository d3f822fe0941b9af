"""Frame buffers: layouts, alignment profiles, black padding, compact round trips."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import FormatError, ShapeError, SizeError
from viewfinder.media import ALIGNMENTS, Frame, resolve_alignment
from viewfinder.media.frame import plane_layout


@pytest.mark.parametrize(
    ("spec", "size", "aligned"),
    [
        ("none", (1024, 683), (1024, 683)),
        ("dvpp_jpegd", (1024, 683), (1024, 688)),
        ("dvpp_jpegd", (1000, 683), (1024, 688)),
        ("dvpp_vpc", (1000, 683), (1008, 684)),
        ("64x4", (100, 10), (128, 12)),
        ((16, 16), (17, 1), (32, 16)),
        (None, (3, 5), (3, 5)),
    ],
)
def test_alignment_profiles(spec, size, aligned):
    assert resolve_alignment(spec).apply(*size) == aligned


@pytest.mark.parametrize(("spec", "error"), [("dvpp", FormatError), ("0x2", SizeError),
                                             ("8192x2", SizeError), ("fast", FormatError)])
def test_alignment_errors(spec, error):
    with pytest.raises(error, match="alignment"):
        resolve_alignment(spec)


@pytest.mark.parametrize(
    ("fmt", "aw", "ah", "strides", "nbytes"),
    [
        ("nv12", 1024, 688, (1024, 1024), 1024 * 688 * 3 // 2),
        ("nv12", 1024, 683, (1024, 1024), 1024 * 683 + 1024 * 342),  # FFmpeg: chroma rounds up
        ("nv21", 5, 3, (5, 6), 15 + 2 * 6),
        ("i420", 640, 480, (640, 320, 320), 640 * 480 * 3 // 2),
        ("rgb24", 7, 2, (21,), 42),
        ("gray8", 7, 2, (7,), 14),
    ],
)
def test_plane_layout(fmt, aw, ah, strides, nbytes):
    lay = plane_layout(fmt, aw, ah)
    assert lay.strides == strides and lay.nbytes == nbytes
    assert lay.offsets[0] == 0 and lay.offsets[-1] + lay.rows[-1] * lay.strides[-1] == nbytes


@pytest.mark.parametrize(
    ("fmt", "full_range", "levels"),
    [("nv12", True, (0, 128)), ("nv12", False, (16, 128)), ("i420", False, (16, 128, 128)),
     ("nv21", True, (0, 128)), ("rgb24", True, (0,)), ("gray8", False, (0,))],
)
def test_padding_is_black_in_own_colour_space(fmt, full_range, levels):
    frame = Frame.allocate(30, 21, fmt, "dvpp_vpc", full_range=full_range)
    assert (frame.aligned_width, frame.aligned_height) == (32, 22)
    for plane, level in zip(frame.planes(), levels, strict=True):
        assert np.all(plane == level)
    # and it *shows* black: the padded buffer converts to RGB 0 everywhere
    whole = Frame(32, 22, fmt, frame.data, frame.strides, 32, 22, full_range=full_range)
    assert whole.to_array("rgb24").max() <= 1


@pytest.mark.parametrize("fmt", ["rgb24", "bgr24", "gray8", "nv12", "nv21", "i420"])
@pytest.mark.parametrize("align", ["none", "dvpp_jpegd", "dvpp_vpc"])
def test_compact_round_trip_keeps_bytes(fmt, align, rng):
    h, w = 10, 14
    shape = {"rgb24": (h, w, 3), "bgr24": (h, w, 3), "gray8": (h, w)}.get(fmt, (h * 3 // 2, w))
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    frame = Frame.from_array(array, fmt, align)
    assert (frame.width, frame.height) == (w, h)
    assert np.array_equal(frame.to_array(), array)
    assert len(frame.to_bytes()) == frame.layout.nbytes


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0}, SizeError, "must be positive"),
        ({"width": 100_000}, SizeError, "absurd"),
        ({"width": 30000, "height": 30000}, SizeError, "Mpixel"),
        ({"format": "yuyv"}, FormatError, "pixel format"),
        ({"strides": (8, 4)}, ShapeError, "strides"),
        ({"data": np.zeros(10, np.uint8)}, SizeError, "needs 96 bytes"),
        ({"data": np.zeros(96, np.float32)}, ShapeError, "uint8"),
        ({"aligned_width": 4}, SizeError, "smaller"),
        ({"matrix": "bt2020"}, FormatError, "matrix"),
    ],
)
def test_frame_validation(kwargs, error, match):
    args = {"width": 8, "height": 8, "format": "nv12", "data": np.zeros(96, np.uint8),
            "strides": (8, 8), "aligned_width": 8, "aligned_height": 8}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Frame(**args)


@pytest.mark.parametrize(("shape", "fmt"), [((10, 8), "nv12"), ((12, 7), "i420"),
                                             ((4, 4), "rgb24"), ((4, 4, 3), "gray8")])
def test_from_array_rejects_bad_shapes(shape, fmt):
    with pytest.raises(ShapeError, match=fmt):
        Frame.from_array(np.zeros(shape, np.uint8), fmt)


def test_odd_frame_to_compact_yuv_is_refused():
    frame = Frame.allocate(5, 3, "nv12", "dvpp_vpc")
    assert frame.to_array("rgb24").shape == (3, 5, 3)
    with pytest.raises(SizeError, match="even size"):
        frame.to_array("nv12")


def test_alignment_table_is_the_documented_one():
    assert {k: (a.width, a.height) for k, a in ALIGNMENTS.items()} == {
        "none": (1, 1), "dvpp_jpegd": (128, 16), "dvpp_vpc": (16, 2)}
