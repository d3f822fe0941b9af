"""Darknet .weights: header, round trip, and files of the wrong size."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from viewfinder.detect.darknet_cfg import parse_cfg, parse_cfg_text
from viewfinder.detect.darknet_weights import (
    expected_weights_size,
    read_weights,
    write_weights,
)
from viewfinder.errors import ModelError

CFG = """[net]
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
# floats: layer 0 = 4*4 (bias, bn scale/mean/var) + 4*3*3*3 = 124; layer 1 = 6 + 6*4 = 30
FLOATS = 124 + 30


def _write(path, header: list[int], seen_dtype: str, floats: int) -> None:
    data = np.array(header, "<i4").tobytes() + np.array([7], seen_dtype).tobytes()
    path.write_bytes(data + np.arange(floats, dtype="<f4").tobytes())


@pytest.mark.parametrize(("header", "seen_dtype", "seen_64"), [
    ([0, 2, 0], "<u8", True),     # Darknet >= 0.2: 64-bit seen
    ([0, 1, 0], "<i4", False),    # old files: 32-bit seen
    ([1, 0, 0], "<u8", True),
])
def test_header_versions(tmp_path, header, seen_dtype, seen_64) -> None:
    spec = parse_cfg_text(CFG)
    path = tmp_path / "w.weights"
    _write(path, header, seen_dtype, FLOATS)
    head, tensors = read_weights(path, spec)
    assert (head.major, head.minor, head.revision, head.seen) == (*header, 7)
    assert head.seen_is_64bit == seen_64
    # file order: bias, bn scales, means, variances, then weights
    np.testing.assert_array_equal(tensors[0]["bias"], np.arange(4))
    np.testing.assert_array_equal(tensors[0]["bn_var"], np.arange(12, 16))
    assert tensors[0]["weight"].shape == (4, 3, 3, 3)
    assert tensors[1]["weight"].shape == (6, 4, 1, 1) and tensors[1]["bias"][0] == 124


@pytest.mark.parametrize(("floats", "message"), [
    (FLOATS - 1, r"ran out of data at layer 1 \[convolutional\] \(line 12\) reading weight "
                 r"\(24 floats, 23 left\)"),
    (100, r"ran out of data at layer 0 \[convolutional\] \(line 5\) reading weight"),
    (3, r"ran out of data at layer 0 \[convolutional\] \(line 5\) reading bias \(4 floats, 3"),
    (FLOATS + 2, "8 bytes left over after the last convolutional layer"),
])
def test_wrong_size_fails_naming_the_layer(tmp_path, floats: int, message: str) -> None:
    spec = parse_cfg_text(CFG, source="small.cfg")
    path = tmp_path / "w.weights"
    _write(path, [0, 2, 0], "<u8", floats)
    with pytest.raises(ModelError, match=message) as info:
        read_weights(path, spec)
    assert f"needs {expected_weights_size(spec)}" in str(info.value)


def test_too_long_is_a_warning_when_not_strict(tmp_path, caplog) -> None:
    spec = parse_cfg_text(CFG)
    path = tmp_path / "w.weights"
    _write(path, [0, 2, 0], "<u8", FLOATS + 1)
    with caplog.at_level(logging.WARNING):
        read_weights(path, spec, strict=False)
    assert "4 bytes left over" in caplog.text


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, np.array([0, 2, 0, 0], "<i4").tobytes()])
def test_truncated_header(tmp_path, data: bytes) -> None:
    path = tmp_path / "w.weights"
    path.write_bytes(data)
    with pytest.raises(ModelError, match="too short for a Darknet weights header"):
        read_weights(path, parse_cfg_text(CFG))


def test_round_trip(tmp_path) -> None:
    spec = parse_cfg_text(CFG)
    src = tmp_path / "a.weights"
    _write(src, [0, 2, 0], "<u8", FLOATS)
    _, tensors = read_weights(src, spec)
    out = write_weights(tmp_path / "b.weights", spec, tensors, seen=7)
    assert out.read_bytes() == src.read_bytes()


def test_real_file_truncated_names_layer(shared, tmp_path) -> None:
    d = shared / "models/detect/yolov3-tiny"
    spec = parse_cfg(d / "yolov3-tiny.cfg")
    data = (d / "yolov3-tiny.weights").read_bytes()
    assert len(data) == expected_weights_size(spec) == 35434956
    cut = tmp_path / "cut.weights"
    cut.write_bytes(data[:20_000_000])  # ends inside layer 12 (1024 filters, 3x3x512)
    with pytest.raises(ModelError, match=r"ran out of data at layer 12 \[convolutional\]"):
        read_weights(cut, spec)
    long = tmp_path / "long.weights"
    long.write_bytes(data + b"\0" * 8)
    with pytest.raises(ModelError, match="8 bytes left over"):
        read_weights(long, spec)
