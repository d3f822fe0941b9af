"""Sources: every kind of input resolves to entries with their origin; bad inputs fail early."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.media.sources import Failure, Item, is_url, open_source


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """photos/a.jpg (64x48), photos/b.png (32x40), photos/sub/c.jpg, photos/sub/notes.md."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.jpg"), np.full((48, 64, 3), 90, np.uint8))
    cv2.imwrite(str(root / "b.png"), np.full((40, 32, 3), 30, np.uint8))
    cv2.imwrite(str(root / "sub" / "c.jpg"), np.full((20, 20, 3), 200, np.uint8))
    (root / "sub" / "notes.md").write_text("not an image")
    return root


@pytest.mark.parametrize(("spec", "recursive", "kinds", "relpaths"), [
    ("photos/a.jpg", False, ["image"], ["a.jpg"]),
    ("photos", False, ["image", "image"], ["a.jpg", "b.png"]),
    ("photos", True, ["image", "image", "image"], ["a.jpg", "b.png", "sub/c.jpg"]),
    ("photos/**/*.jpg", False, ["image", "image"], ["a.jpg", "sub/c.jpg"]),
    ("list.txt", False, ["image", "image", "camera"], ["photos/sub/c.jpg", "photos/a.jpg", None]),
    ("3", False, ["camera"], [None]),
    ("rtsp://127.0.0.1:8554/cam", False, ["url"], [None]),
])
def test_kinds_of_source(tree: Path, monkeypatch, spec, recursive, kinds, relpaths) -> None:
    monkeypatch.chdir(tree.parent)
    Path("list.txt").write_text("# shots\nphotos/sub/c.jpg\n\nphotos/a.jpg  # the first\n0\n")
    source = open_source(spec, recursive=recursive)
    assert [e.kind for e in source.entries] == kinds
    assert [e.relpath for e in source.entries] == relpaths


def test_items_carry_their_origin_and_a_corrupt_photo_fails_alone(tree: Path) -> None:
    (tree / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = list(open_source(tree, recursive=True))
    assert [type(o) for o in out] == [Item, Failure, Item]
    a, bad, c = out
    assert (a.origin.path, a.origin.width, a.origin.height, a.origin.frame) == \
        (str(tree / "a.jpg"), 64, 48, None)
    assert a.image.shape == (48, 64, 3) and a.origin.image_id == "a"
    assert bad.where == str(tree / "b.png") and "b.png" in bad.message
    assert c.origin.relpath == "sub/c.jpg" and c.origin.source == str(tree)


def test_video_frames_share_a_stream(shared: Path) -> None:
    video = shared / "video" / "one_face_640x480_h264.mp4"
    source = open_source([video, video], max_frames=3)
    assert source.total() == 6
    items = list(source)
    assert [(i.origin.stream, i.origin.frame) for i in items] == \
        [(str(video), f) for f in (0, 1, 2)] * 2
    assert items[1].origin.time == pytest.approx(0.04) and items[1].image.shape == (480, 640, 3)
    assert items[2].origin.image_id == "one_face_640x480_h264/000002"


@pytest.mark.parametrize(("spec", "error", "match"), [
    ("missing.jpg", InputFileError, "missing.jpg: no such image"),
    ("missing.mp4", InputFileError, "missing.mp4: no such video"),
    ("empty", InputFileError, "holds no images"),
    ("photos/*.gif", InputFileError, "matches no images"),
    ("notes.md", ConfigError, "unknown source type .md"),
    ("bad.txt", InputFileError, r"bad.txt:2: .*nope.jpg: no such image"),
    ("blank.txt", InputFileError, "the list of paths is empty"),
])
def test_bad_sources_fail_before_any_work(tree: Path, monkeypatch, spec, error, match) -> None:
    monkeypatch.chdir(tree.parent)
    Path("empty").mkdir()
    Path("notes.md").write_text("x")
    Path("bad.txt").write_text("photos/a.jpg\nnope.jpg\n")
    Path("blank.txt").write_text("# nothing\n\n")
    with pytest.raises(error, match=match):
        open_source(spec)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_frames": 0}, "max_frames 0"), ({"timeout": 0}, "timeout 0"), ({}, "no source"),
])
def test_bad_options(kwargs, match) -> None:
    with pytest.raises((ConfigError, InputFileError), match=match):
        open_source([], **kwargs) if not kwargs else open_source("x.jpg", **kwargs)


@pytest.mark.parametrize(("text", "url"), [
    ("rtsp://cam/1", True), ("HTTP://x/y.mp4", True), ("udp://@:1234", True),
    ("file://x", False), ("c:/x.jpg", False), ("photos", False),
])
def test_is_url(text, url) -> None:
    assert is_url(text) is url


def test_a_url_that_never_answers_fails_after_the_timeout() -> None:
    """A TCP server that accepts and then says nothing: one failure, after ~the time-out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()
    threading.Thread(target=lambda: stop.wait(10), daemon=True).start()
    url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        t0 = time.perf_counter()
        out = list(open_source(url, timeout=0.5))
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        server.close()
    assert len(out) == 1 and isinstance(out[0], Failure)
    assert out[0].message == f"{url}: no answer within 0.5 s"
    assert 0.4 < elapsed < 8
