"""Video ↔ frame files (media.video.export): progress callbacks, naming, errors."""

from __future__ import annotations

import pytest

from viewfinder.errors import ConfigError, InputFileError, ShapeError
from viewfinder.media import write_image
from viewfinder.media.video import probe
from viewfinder.media.video.export import encode_images, export_frames, list_images


@pytest.mark.parametrize(("fmt", "kwargs", "names"), [
    ("yuv", {"every": 100}, ["frame_000000.yuv", "frame_000100.yuv", "frame_000200.yuv"]),
    ("png", {"start": 9.9}, ["frame_000247.png", "frame_000248.png", "frame_000249.png"]),
    ("jpg", {"max_frames": 2}, ["frame_000000.jpg", "frame_000001.jpg"]),
])
def test_export_frames_progress_and_names(shared, tmp_path, fmt, kwargs, names):
    calls = []
    result = export_frames(shared / "video" / "group_pan_640x480.h264", tmp_path / "out", fmt,
                           progress=lambda done, total: calls.append((done, total)), **kwargs)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names
    assert result.written == len(names) and not result.errors
    assert calls == [(i + 1, len(names)) for i in range(len(names))]
    if fmt == "yuv":
        assert all(p.stat().st_size == 640 * 480 * 3 // 2 for p in result.files)


def test_export_errors(shared, tmp_path):
    video = shared / "video" / "group_pan_640x480.h264"
    with pytest.raises(ConfigError, match="frame format 'gif'"):
        export_frames(video, tmp_path / "a", "gif")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InputFileError, match="not a directory"):
        export_frames(video, tmp_path / "file", "jpg")
    with pytest.raises(InputFileError, match="no such video file"):
        export_frames(tmp_path / "none.mp4", tmp_path / "b", "jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_encode_images_in_name_order(tmp_path, make_image):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (2, 0, 1):
        write_image(frames / f"f{i}.png", make_image(64, 48, seed=i))
    (frames / "notes.txt").write_text("ignored")
    files = list_images([frames])
    assert [f.name for f in files] == ["f0.png", "f1.png", "f2.png"]
    calls = []
    n = encode_images(files, tmp_path / "v.mp4", fps=10, preset="ultrafast",
                      progress=lambda d, t: calls.append((d, t)))
    assert n == 3 and calls == [(1, 3), (2, 3), (3, 3)]
    assert probe(tmp_path / "v.mp4").frames == 3


def test_encode_images_errors(tmp_path, make_image):
    with pytest.raises(InputFileError, match="no input images"):
        encode_images([], tmp_path / "v.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no images"):
        list_images([tmp_path / "empty"])
    with pytest.raises(InputFileError, match="no such image file"):
        list_images([tmp_path / "missing.png"])
    a, b = write_image(tmp_path / "a.png", make_image(64, 48)), tmp_path / "b.png"
    write_image(b, make_image(64, 32))
    with pytest.raises(ShapeError, match="b.png: image is 64x32, the first frame is 64x48"):
        encode_images([a, b], tmp_path / "v.mp4")
    assert not (tmp_path / "v.mp4").exists()
