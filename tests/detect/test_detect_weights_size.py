"""Darknet .weights refused from the file size alone, before any weight is read (issue 17)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from viewfinder.detect.darknet_cfg import parse_cfg_text
from viewfinder.detect.darknet_weights import expected_weights_size, read_weights
from viewfinder.errors import ModelError

CFG = """[net]
width=32
height=32
channels=3
[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky
"""  # 4 biases + 4*3*3*3 weights = 112 floats: 20 + 448 bytes


def _sparse(path, header: list[int], size: int) -> None:
    with open(path, "wb") as fh:
        fh.write(np.array(header[:3], "<i4").tobytes() + np.array([0], "<u8").tobytes())
        fh.truncate(size)


@pytest.mark.parametrize(("size", "message"), [
    (1 << 30, r"1073741356 bytes left over after the last convolutional layer; file has "
              r"1073741824 bytes, cfg <cfg> needs 468"),
    (467, r"ran out of data at layer 0 \[convolutional\] \(line 5\) reading weight \(108 "
          r"floats, 107 left\); file has 467 bytes, cfg <cfg> needs 468"),
])
def test_size_disagreeing_with_the_cfg_is_refused_by_size(tmp_path, size: int,
                                                         message: str) -> None:
    spec = parse_cfg_text(CFG)
    assert expected_weights_size(spec) == 468
    path = tmp_path / "w.weights"
    _sparse(path, [0, 2, 0], size)  # 1 GiB sparse: refused without reading it
    tracemalloc.start()
    try:
        with pytest.raises(ModelError, match=message):
            read_weights(path, spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes allocated: the file was read"


def test_too_long_not_strict_reads_only_what_the_cfg_needs(tmp_path) -> None:
    spec = parse_cfg_text(CFG)
    path = tmp_path / "w.weights"
    _sparse(path, [0, 2, 0], 64 << 20)
    _, tensors = read_weights(path, spec, strict=False)
    assert tensors[0]["weight"].shape == (4, 3, 3, 3) and tensors[0]["bias"].shape == (4,)
