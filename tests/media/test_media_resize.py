"""Resize, crop and letterbox on RGB and directly on NV12 planes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from viewfinder.errors import ConfigError, ShapeError, SizeError
from viewfinder.media import (
    Frame,
    convert,
    crop,
    letterbox_frame,
    read_frame,
    resize,
    resize_array,
)


def _nv12(bgr: np.ndarray, align: object = None) -> Frame:
    return convert(Frame.from_array(bgr, "bgr24"), "nv12", align)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "area"])
@pytest.mark.parametrize(("w", "h"), [(48, 32), (200, 120), (96, 64)])
def test_nv12_resize_shows_the_same_as_rgb_resize(make_image, mode, w, h):
    bgr = make_image(96, 64)
    out = resize(_nv12(bgr, "dvpp_jpegd"), w, h, mode, align="dvpp_vpc")
    assert (out.width, out.height, out.format) == (w, h, "nv12")
    ref = cv2.resize(bgr, (w, h), interpolation={"nearest": cv2.INTER_NEAREST,
                                                 "bilinear": cv2.INTER_LINEAR,
                                                 "area": cv2.INTER_AREA}[mode])
    assert np.abs(out.to_array("bgr24").astype(int) - ref).mean() < 3


def test_nv12_resize_scales_planes_separately(rng):
    array = rng.integers(0, 256, (24, 16), dtype=np.uint8)  # 16x16 NV12
    out = resize(Frame.from_array(array, "nv12"), 8, 8, "area")
    y = cv2.resize(array[:16], (8, 8), interpolation=cv2.INTER_AREA)
    uv = cv2.resize(array[16:].reshape(8, 8, 2), (4, 4), interpolation=cv2.INTER_AREA)
    assert np.array_equal(out.visible_planes()[0], y)
    assert np.array_equal(out.visible_planes()[1], uv)


@pytest.mark.parametrize("fmt", ["rgb24", "gray8", "i420", "nv21"])
def test_resize_keeps_format(make_image, fmt):
    frame = convert(Frame.from_array(make_image(256, 192), "bgr24"), fmt)
    out = resize(frame, 128, 96, "area")
    assert out.format == fmt and (out.width, out.height) == (128, 96)
    via_rgb = resize(convert(frame, "rgb24"), 128, 96, "area").to_array("rgb24")
    assert np.abs(out.to_array("rgb24").astype(int) - via_rgb).mean() < 1.5


def test_resize_odd_source_from_real_jpeg(shared):
    frame = read_frame(shared / "images" / "bus.jpg", "nv12", "dvpp_jpegd")  # 810x1080
    out = resize(frame, 416, 416)
    assert out.to_array().shape == (624, 416)


@pytest.mark.parametrize(("fmt", "size", "error", "match"), [
    ("nv12", (31, 20), SizeError, "even"),
    ("i420", (0, 20), SizeError, "positive"),
    ("rgb24", (50000, 2), SizeError, "absurd"),
])
def test_resize_size_errors(fmt, size, error, match):
    with pytest.raises(error, match=match):
        resize(Frame.allocate(32, 32, fmt), *size)


def test_resize_mode_error():
    with pytest.raises(ConfigError, match="resize mode 'cubic'"):
        resize(Frame.allocate(8, 8, "nv12"), 4, 4, "cubic")


@pytest.mark.parametrize("fmt", ["nv12", "i420", "bgr24"])
def test_crop_matches_array_crop(rng, fmt):
    shape = (16, 20, 3) if fmt == "bgr24" else (24, 20)
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    frame = Frame.from_array(array, fmt, "dvpp_jpegd")
    part = crop(frame, 4, 2, 10, 8)
    full = frame.to_array("bgr24")
    assert np.array_equal(part.to_array("bgr24"), full[2:10, 4:14])


@pytest.mark.parametrize(("box", "match"), [((1, 0, 4, 4), "even"), ((0, 0, 4, 3), "even"),
                                            ((10, 0, 8, 4), "leaves"), ((0, 0, 0, 4), "positive")])
def test_crop_errors(box, match):
    with pytest.raises(SizeError, match=match):
        crop(Frame.allocate(16, 16, "nv12"), *box)


@pytest.mark.parametrize("fmt", ["nv12", "bgr24"])
@pytest.mark.parametrize("center", [True, False])
def test_letterbox_pads_black_and_maps_back(make_image, fmt, center):
    bgr = make_image(120, 60)
    frame = Frame.from_array(bgr, "bgr24") if fmt == "bgr24" else _nv12(bgr)
    out, t = letterbox_frame(frame, 64, 64, center=center)
    img = out.to_array("bgr24")
    x0, y0 = int(t.tx), int(t.ty)
    assert (x0, y0) == ((0, 16) if center else (0, 0))
    assert img[:y0].max(initial=0) <= 1 and img[y0 + 32:].max(initial=0) <= 1
    # a point maps back into the source
    pt = t.inverse().apply_coords(np.array([[32.0, y0 + 16.0]]))
    assert np.allclose(pt, [[60, 30]], atol=1)


def test_letterbox_on_limited_range_pads_with_y16(make_image):
    frame = convert(Frame.from_array(make_image(40, 20), "bgr24"), "nv12", full_range=False)
    out, _ = letterbox_frame(frame, 40, 40)
    y = out.visible_planes()[0]
    assert y[0, 0] == 16 and out.visible_planes()[1][0, 0].tolist() == [128, 128]


def test_resize_array():
    img = np.zeros((10, 20, 3), np.uint8)
    assert resize_array(img, 5, 4).shape == (4, 5, 3)
    with pytest.raises(ShapeError):
        resize_array(np.zeros((0, 4), np.uint8), 2, 2)
