"""RGB ↔ YUV conversion against the textbook formulas, OpenCV, and round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from viewfinder.errors import FormatError, ShapeError
from viewfinder.media import Frame, convert, rgb_to_yuv444, yuv444_to_rgb

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
CASES = [(m, full) for m in ("bt601", "bt709") for full in (True, False)]


def reference_yuv(rgb: np.ndarray, matrix: str, full: bool) -> np.ndarray:
    """The recommendation's equations, pixel by pixel in float64 (no shared code)."""
    kr, kb = KR_KB[matrix]
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    if full:
        out = np.stack([y, cb + 128, cr + 128], -1)
    else:
        out = np.stack([16 + 219 * y / 255, 128 + 224 * cb / 255, 128 + 224 * cr / 255], -1)
    return np.clip(np.round(out), 0, 255)


@pytest.mark.parametrize(("matrix", "full"), CASES)
def test_rgb_to_yuv_matches_reference_formula(matrix, full, rng):
    rgb = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    got = rgb_to_yuv444(rgb, matrix, full).astype(int)
    assert np.abs(got - reference_yuv(rgb, matrix, full)).max() <= 1


@pytest.mark.parametrize(("matrix", "full"), CASES)
@pytest.mark.parametrize(("rgb", "yuv_full", "yuv_limited"), [
    ((255, 255, 255), (255, 128, 128), (235, 128, 128)),
    ((0, 0, 0), (0, 128, 128), (16, 128, 128)),
    ((128, 128, 128), (128, 128, 128), (126, 128, 128)),
])
def test_grey_levels_are_exact(matrix, full, rgb, yuv_full, yuv_limited):
    px = np.array([[rgb]], np.uint8)
    want = yuv_full if full else yuv_limited
    assert tuple(rgb_to_yuv444(px, matrix, full)[0, 0]) == want
    assert tuple(yuv444_to_rgb(np.array([[want]], np.uint8), matrix, full)[0, 0]) == rgb


@pytest.mark.parametrize(("matrix", "full"), CASES)
def test_yuv444_round_trip(matrix, full, rng):
    rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    back = yuv444_to_rgb(rgb_to_yuv444(rgb, matrix, full), matrix, full)
    # limited range loses a little precision (219 levels for 256)
    assert np.abs(back.astype(int) - rgb).max() <= (2 if full else 3)


def test_bgr_flag_swaps_channels(rng):
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(rgb_to_yuv444(rgb), rgb_to_yuv444(rgb[..., ::-1].copy(), bgr=True))
    yuv = rgb_to_yuv444(rgb)
    assert np.array_equal(yuv444_to_rgb(yuv, bgr=True), yuv444_to_rgb(yuv)[..., ::-1])


@pytest.mark.parametrize(("code", "matrix", "full"), [
    (cv2.COLOR_YUV2RGB_NV12, "bt601", False),   # OpenCV's NV12 is BT.601 limited
])
def test_nv12_to_rgb_agrees_with_opencv(code, matrix, full, make_image):
    bgr = make_image(64, 48)
    nv12 = convert(Frame.from_array(bgr, "bgr24"), "nv12", matrix=matrix, full_range=full)
    ours = nv12.to_array("rgb24").astype(int)
    theirs = cv2.cvtColor(nv12.to_array(), code).astype(int)
    assert np.abs(ours - theirs).max() <= 2


def test_rgb_to_yuv_full_agrees_with_opencv_ycrcb(make_image):
    bgr = make_image(40, 30)
    ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb).astype(int)  # JPEG's BT.601 full range
    ours = rgb_to_yuv444(bgr, "bt601", True, bgr=True).astype(int)
    assert np.abs(ours - ycrcb[..., [0, 2, 1]]).max() <= 1


@pytest.mark.parametrize("fmt", ["nv12", "nv21", "i420"])
@pytest.mark.parametrize(("matrix", "full"), CASES)
def test_rgb_to_420_and_back_within_tolerance(fmt, matrix, full, make_image):
    bgr = make_image(96, 64)
    yuv = convert(Frame.from_array(bgr, "bgr24"), fmt, matrix=matrix, full_range=full)
    back = yuv.to_array("bgr24").astype(int)
    err = np.abs(back - bgr)
    assert err.mean() < 2.0 and np.percentile(err, 99) <= 8  # chroma is 2x2-subsampled


@pytest.mark.parametrize(("src", "dst"), [("nv12", "nv21"), ("nv21", "i420"), ("i420", "nv12")])
def test_yuv_to_yuv_is_a_lossless_reshuffle(src, dst, rng):
    array = rng.integers(0, 256, (12, 8), dtype=np.uint8)
    frame = Frame.from_array(array, src)
    there = convert(frame, dst, align="dvpp_vpc")
    back = convert(there, src)
    assert np.array_equal(back.to_array(), array)
    assert np.array_equal(there.visible_planes()[0], frame.visible_planes()[0])


def test_range_change_converts_values(make_image):
    frame = convert(Frame.from_array(make_image(32, 32), "bgr24"), "nv12", full_range=True)
    limited = convert(frame, "nv12", full_range=False)
    y_full, y_lim = frame.visible_planes()[0].astype(int), limited.visible_planes()[0].astype(int)
    assert y_lim.min() >= 16 and y_lim.max() <= 235
    assert np.abs(y_lim - (16 + y_full * 219 / 255)).max() <= 2


@pytest.mark.parametrize(("call", "error"), [
    (lambda: rgb_to_yuv444(np.zeros((4, 4), np.uint8)), ShapeError),
    (lambda: rgb_to_yuv444(np.zeros((4, 4, 3), np.uint8), "bt2020"), FormatError),
    (lambda: convert(Frame.allocate(4, 4, "nv12"), "yuyv"), FormatError),
])
def test_color_errors(call, error):
    with pytest.raises(error):
        call()
