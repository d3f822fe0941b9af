"""Fixtures for the media tests: a seeded RNG, a smooth synthetic photo, JPEG bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def smooth_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful BGR picture (gradients and discs): JPEG- and resize-friendly."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.random.default_rng(seed).uniform(0.5, 2.0, 3)
    img = np.stack([
        127 + 120 * np.sin(x / (width / 3) * r[0] + y / height),
        127 + 120 * np.cos(y / (height / 2.5) * r[1]),
        127 + 120 * np.sin((x + y) / ((width + height) / 4) * r[2]),
    ], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture()
def photo() -> np.ndarray:
    return smooth_image(96, 64)


@pytest.fixture()
def group_jpg(shared: Path) -> Path:
    return shared / "images" / "group_t1.jpg"


@pytest.fixture(scope="session")
def corrupt_video(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """group_pan_640x480_h264.mp4 with bytes in the middle of the file flipped."""
    data = bytearray((shared / "video" / "group_pan_640x480_h264.mp4").read_bytes())
    for off in range(len(data) // 2, len(data) // 2 + 4000, 97):
        data[off] ^= 0xFF
    out = tmp_path_factory.mktemp("media") / "damaged.mp4"
    out.write_bytes(bytes(data))
    return out


@pytest.fixture()
def make_image():
    """``make_image(width, height, seed=0)``: a smooth BGR picture of any size."""
    return smooth_image
