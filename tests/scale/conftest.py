"""Inputs shared by the scale tests: a few real photos, a corrupt one, a short video."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

PHOTOS = ("000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg",
          "000000000036.jpg")


@pytest.fixture(scope="session")
def inputs(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``photos/`` (5 real photos and ``broken.jpg``, a truncated JPEG), ``group.jpg``
    (faces) and ``clip.mp4`` (a face video; runs use ``--max-frames``)."""
    root = tmp_path_factory.mktemp("scale-inputs")
    photos = root / "photos"
    photos.mkdir()
    voc = shared / "data" / "coco256-voc" / "JPEGImages"
    for name in PHOTOS:
        shutil.copy(voc / name, photos / name)
    data = (voc / PHOTOS[0]).read_bytes()
    (photos / "broken.jpg").write_bytes(data[: len(data) // 3])
    shutil.copy(shared / "images" / "group_t1.jpg", root / "group.jpg")
    shutil.copy(shared / "video" / "group_pan_640x480_h264.mp4", root / "clip.mp4")
    return {"root": root, "photos": photos, "group": root / "group.jpg",
            "clip": root / "clip.mp4"}
