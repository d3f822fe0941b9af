"""The runner and the sinks: records in input order, failures that do not stop the run,
outputs that mirror the inputs, and nothing partial when a run fails."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import ConfigError, InputFileError, ShapeError
from viewfinder.media.sources import open_source
from viewfinder.runner import run
from viewfinder.sinks import check_outputs, open_sinks
from viewfinder.structures import Detections


class Brightness:
    """A plain task: one box over the whole image, scored by its mean brightness; refuses
    images narrower than 10 px; counts stream resets."""

    name = "brightness"

    def __init__(self, explode_on: int | None = None) -> None:
        self.resets, self.calls, self.explode_on = 0, 0, explode_on

    def image(self, image: np.ndarray) -> Detections:
        self.calls += 1
        if self.calls == self.explode_on:
            raise RuntimeError("a bug in the task")
        h, w = image.shape[:2]
        if w < 10:
            raise ShapeError(f"image {w}x{h}: expected at least 10 px wide")
        return Detections([[0, 0, w, h]], [image.mean() / 255], [0], ("bright",))

    def frame(self, image: np.ndarray, time: float) -> Detections:
        return self.image(image)

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.jpg"), np.full((48, 64, 3), 51, np.uint8))
    (root / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cv2.imwrite(str(root / "sub" / "c.png"), np.full((30, 20, 3), 102, np.uint8))
    cv2.imwrite(str(root / "sub" / "d.png"), np.full((30, 5, 3), 0, np.uint8))  # too narrow
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_a_folder_of_mixed_photos(photos: Path, tmp_path: Path) -> None:
    source = open_source(photos, recursive=True)
    out, js = tmp_path / "out", tmp_path / "r.jsonl"
    report = run(Brightness(), source, open_sinks(source, out, js))
    assert (report.images, report.frames, report.detections) == (2, 0, 2)
    assert [(f.where, "truncated" in f.message or "10 px" in f.message)
            for f in report.failures] == [(str(photos / "b.jpg"), True),
                                          (str(photos / "sub" / "d.png"), True)]
    records = _lines(js)
    assert [(r["image_id"], r["width"], r["height"]) for r in records] == \
        [("a", 64, 48), ("c", 20, 30)]
    assert [r["detections"][0]["score"] for r in records] == pytest.approx([0.2, 0.4], abs=0.01)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == \
        ["a.jpg", "sub/c.png"]
    assert cv2.imread(str(out / "sub" / "c.png")).shape == (30, 20, 3)


def test_streams_reset_the_task_and_get_one_video_each(shared: Path, tmp_path: Path) -> None:
    from viewfinder.media.video import probe

    vid, raw = shared / "video" / "one_face_640x480_h264.mp4", \
        shared / "video" / "group_pan_640x480.h264"
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), np.zeros((16, 16, 3), np.uint8))
    source = open_source([vid, still, raw], max_frames=4)
    task, out = Brightness(), tmp_path / "out"
    report = run(task, source, open_sinks(source, out, tmp_path / "r.jsonl"))
    assert (report.frames, report.images, task.resets) == (8, 1, 2)
    assert report.streams == {str(vid): 4, str(raw): 4}
    assert sorted(p.name for p in out.iterdir()) == ["group_pan_640x480.mp4",
                                                      "one_face_640x480_h264.mp4", "still.png"]
    assert probe(out / "group_pan_640x480.mp4").frames == 4
    frames = [r["frame"] for r in _lines(tmp_path / "r.jsonl")]
    assert frames == [0, 1, 2, 3, None, 0, 1, 2, 3]


def test_an_error_that_is_not_the_inputs_leaves_nothing(shared: Path, tmp_path: Path) -> None:
    source = open_source(shared / "video" / "one_face_640x480_h264.mp4", max_frames=6)
    out, js = tmp_path / "v.mp4", tmp_path / "r.jsonl"
    with pytest.raises(RuntimeError, match="a bug"):
        run(Brightness(explode_on=4), source, open_sinks(source, out, js))
    assert list(tmp_path.iterdir()) == []


def test_a_run_where_everything_failed_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jpg").write_bytes(b"not a jpeg")
    source = open_source(tmp_path / "in")
    report = run(Brightness(), source, open_sinks(source, tmp_path / "out", tmp_path / "r.jsonl"))
    assert report.items == 0 and len(report.failures) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_json_lines_to_stdout(photos: Path, capsys) -> None:
    source = open_source(photos / "a.jpg")
    run(Brightness(), source, open_sinks(source, None, "-"))
    record = json.loads(capsys.readouterr().out)
    assert record["path"] == str(photos / "a.jpg") and record["frame"] is None


@pytest.mark.parametrize(("sources", "out", "error", "match"), [
    (["in/a.jpg"], "x.mp4", ConfigError, "a video file holds one stream"),
    (["in"], "x.jpg", ConfigError, "an image file holds one picture"),
    (["vid"], "x.png", ConfigError, "an image file holds one picture"),
    (["vid", "vid"], "x.mp4", ConfigError, "a video file holds one stream"),
    (["in/a.jpg"], "x.txt", ConfigError, "expected an image file"),
    (["in/a.jpg"], "no/such/x.png", InputFileError, "output directory no/such does not exist"),
    (["in", "in2"], "out", ConfigError, "would both be written to out/a.jpg"),
    (["in"], "in", ConfigError, "would overwrite the input"),
    (["in/a.jpg"], "file", ConfigError, "exists and is not a folder"),
])
def test_outputs_are_checked_before_work(photos: Path, shared: Path, monkeypatch, sources, out,
                                         error, match) -> None:
    monkeypatch.chdir(photos.parent)
    (photos.parent / "in2").mkdir()
    cv2.imwrite("in2/a.jpg", np.zeros((8, 8, 3), np.uint8))
    Path("file").write_text("x")
    vid = str(shared / "video" / "one_face_640x480_h264.mp4")
    source = open_source([vid if s == "vid" else s for s in sources])
    with pytest.raises(error, match=match):
        check_outputs(source, out, None)


@pytest.mark.parametrize(("json_path", "match"), [
    ("no/such/r.jsonl", "output directory no/such does not exist"), (".", "is a folder"),
])
def test_json_location_is_checked(photos: Path, monkeypatch, json_path, match) -> None:
    monkeypatch.chdir(photos.parent)
    with pytest.raises(InputFileError, match=match):
        check_outputs(open_source("in/a.jpg"), None, json_path)
