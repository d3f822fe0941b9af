"""Sources, sinks and the decode-ahead thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from viewfinder.errors import DecodeError
from viewfinder.faces.io import JsonLinesSink, is_image_file, open_source, prefetch


def test_prefetch_keeps_order_and_ends() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch(iter([]), depth=1)) == []


def test_prefetch_reraises_in_the_consumer() -> None:
    def broken():
        yield 1
        raise DecodeError("clip.mp4: broken")

    got = []
    with pytest.raises(DecodeError, match="broken"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]


def test_prefetch_stops_its_thread_when_closed_early() -> None:
    before = threading.active_count()
    gen = prefetch(iter(range(10**9)), depth=2)
    assert next(gen) == 0
    gen.close()
    assert threading.active_count() == before


@pytest.mark.parametrize(("name", "image"), [("a.JPG", True), ("b.png", True), ("c.mp4", False),
                                             ("d.h264", False), ("0", False)])
def test_is_image_file(name: str, image: bool) -> None:
    assert is_image_file(name) is image


def test_video_source_reports_fps_and_frames(shared: Path) -> None:
    src = open_source(shared / "video" / "group_pan_640x480_h265.mp4", max_frames=5)
    frames = list(src)
    assert src.fps == 25.0 and [f[0] for f in frames] == list(range(5))
    assert frames[0][2].shape == (480, 640, 3) and src.errors == []


def test_camera_that_does_not_exist() -> None:
    from viewfinder.errors import InputFileError

    with pytest.raises(InputFileError, match="camera 97: cannot open"):
        open_source("97")


def test_json_lines_are_atomic(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with pytest.raises(RuntimeError), JsonLinesSink(path) as sink:
        sink.write(0, 0.0, {"faces": []})
        raise RuntimeError("boom")
    assert not path.exists() and list(tmp_path.iterdir()) == []
    with JsonLinesSink(path) as sink:
        sink.write(3, 0.12, {"faces": [{"box": list(np.zeros(4))}]})
    assert path.read_text() == '{"frame":3,"time":0.12,"faces":[{"box":[0.0,0.0,0.0,0.0]}]}\n'
