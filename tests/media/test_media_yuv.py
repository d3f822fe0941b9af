"""Raw .yuv files: round trips, multi-frame files, and the size-mismatch message."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import InputFileError, SizeError
from viewfinder.media import Frame, frame_bytes, parse_size, read_yuv, write_yuv
from viewfinder.media.yuv import guess_layout


@pytest.mark.parametrize("fmt", ["nv12", "nv21", "i420", "rgb24", "gray8"])
@pytest.mark.parametrize("align", ["none", "dvpp_jpegd", "dvpp_vpc"])
def test_write_read_round_trip(tmp_path, rng, fmt, align):
    frame = Frame.allocate(50, 30, fmt, align)
    frame.data[:] = rng.integers(0, 256, frame.data.size, dtype=np.uint8)
    path = write_yuv(tmp_path / "f.yuv", frame)
    assert path.stat().st_size == frame_bytes(50, 30, fmt, align) == frame.nbytes
    back = read_yuv(path, 50, 30, fmt, align)
    assert back.strides == frame.strides and np.array_equal(back.data, frame.data)


def test_the_issue_example_message(tmp_path):
    """A 1024x683 JPEG decoded with DVPP JPEGD alignment sits in a 1024x688 buffer."""
    path = write_yuv(tmp_path / "dec.yuv", Frame.allocate(1024, 683, "nv12", "dvpp_jpegd"))
    assert path.stat().st_size == 1056768
    with pytest.raises(SizeError) as info:
        read_yuv(path, 1024, 683, "nv12")
    assert str(info.value) == (
        f"{path}: 1024x683 NV12 needs 1049600 bytes, the file has 1056768 = "
        "1024x688 NV12 (height aligned to 16)")
    assert read_yuv(path, 1024, 683, "nv12", "dvpp_jpegd").height == 683


@pytest.mark.parametrize(("nbytes", "size", "fmt", "guess"), [
    (1056768, (1024, 683), "nv12", "1024x688 NV12 (height aligned to 16)"),
    (896 * 1088 * 3 // 2, (810, 1080), "nv12", "896x1088 NV12 (width aligned to 128 and "
                                                 "height aligned to 16)"),
    (640 * 480 * 3, (640, 480), "nv12", "640x480 RGB24"),
    (640 * 480 * 3 // 2 * 4, (640, 480), "nv12", "4 frames of 640x480 NV12"),
    (12345, (640, 480), "nv12", None),
])
def test_guess_layout(nbytes, size, fmt, guess):
    assert guess_layout(nbytes, *size, fmt) == guess


def test_multi_frame_file(tmp_path):
    frames = [Frame.allocate(16, 8, "i420") for _ in range(3)]
    for i, f in enumerate(frames):
        f.planes()[0][:] = i * 50
    path = write_yuv(tmp_path / "seq.yuv", frames)
    assert read_yuv(path, 16, 8, "i420", index=2).planes()[0][0, 0] == 100
    with pytest.raises(SizeError, match="frame 3 requested, the file holds 3 frame"):
        read_yuv(path, 16, 8, "i420", index=3)


def test_write_mixed_sizes_refused(tmp_path):
    with pytest.raises(SizeError, match="frame 1 is 8x8"):
        write_yuv(tmp_path / "x.yuv", [Frame.allocate(16, 8, "nv12"), Frame.allocate(8, 8, "nv12")])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("text", "size"), [("1920x1080", (1920, 1080)), ("64X48", (64, 48)),
                                            ("3*5", (3, 5))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "match"), [("0x10", "positive"), ("10x-1", "positive"),
                                             ("99999x10", "absurd"), ("abc", "WIDTHxHEIGHT"),
                                             ("10x10x3", "WIDTHxHEIGHT")])
def test_parse_size_errors(text, match):
    with pytest.raises(SizeError, match=match):
        parse_size(text)


def test_read_yuv_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such yuv file"):
        read_yuv(tmp_path / "missing.yuv", 4, 4)
    empty = tmp_path / "empty.yuv"
    empty.write_bytes(b"")
    with pytest.raises(SizeError, match="needs 24 bytes, the file has 0"):
        read_yuv(empty, 4, 4)
    with pytest.raises(SizeError, match="absurd"):
        read_yuv(empty, 40000, 4)
