"""Video: detect every N frames, follow faces by their landmarks, smooth, keep ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from viewfinder.errors import ConfigError, InputFileError
from viewfinder.faces import FacePipeline, OneEuroParams
from viewfinder.faces.pipeline import _visible
from viewfinder.ops.boxes import box_iou


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline(backend="ort", threads=1, every=10)


def test_video_tracks_one_face_with_few_detections(shared: Path, pipe, tmp_path: Path) -> None:
    out = tmp_path / "faces.jsonl"
    summary = pipe.run(shared / "video" / "one_face_640x480_h264.mp4", json_path=out,
                       max_frames=40)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary.frames == len(lines) == 40 and summary.errors == []
    assert 4 <= summary.detections <= 8
    assert [ln["frame"] for ln in lines] == list(range(40))
    assert all(len(ln["faces"]) == 1 for ln in lines)
    assert {ln["faces"][0]["track_id"] for ln in lines} == {1}
    assert all(len(ln["faces"][0]["landmarks"]) == 106 for ln in lines)


def test_boxes_between_detections_follow_the_face(shared: Path, pipe, scrfd) -> None:
    from viewfinder.media.video import VideoReader

    pipe.reset()
    for frame in VideoReader(shared / "video" / "one_face_640x480_h264.mp4", max_frames=20):
        faces = pipe.step(frame.image, frame.time)
        truth = scrfd.detect(frame.image).boxes
        assert box_iou(faces.boxes, truth).max() > 0.6, f"frame {frame.index}"


def test_smoothing_cuts_jitter(group_image) -> None:
    rng = np.random.default_rng(0)
    two = group_image[200:560, 400:900]   # two whole faces
    frames = [np.clip(two + rng.normal(0, 6, two.shape), 0, 255).astype(np.uint8)
              for _ in range(8)]
    jitter = {}
    for name, smoothing in (("raw", None), ("1euro", OneEuroParams(min_cutoff=0.5, beta=0.0))):
        p = FacePipeline(backend="ort", threads=1, every=1, smoothing=smoothing)
        steps = [p.step(f, i / 25) for i, f in enumerate(frames)]
        assert all(sorted(s.track_ids) == [1, 2] for s in steps)  # stable ids
        pts = np.stack([s.landmarks[np.argsort(s.track_ids)] for s in steps])
        jitter[name] = np.abs(np.diff(pts[2:], axis=0)).mean()
    assert jitter["1euro"] < jitter["raw"] / 2


def test_lost_track_triggers_detection(group_image) -> None:
    p = FacePipeline(backend="ort", threads=1, every=100)
    p.step(group_image, 0.0)
    p.step(group_image, 0.04)
    assert p.detections == 1          # second frame followed by landmarks
    p.tracker.tracks[0].points = p.tracker.tracks[0].points + 5000.0   # box leaves the frame
    faces = p.step(group_image, 0.08)
    assert p.detections == 2 and len(faces) == 6


@pytest.mark.parametrize(("box", "visible"), [
    ([10, 10, 50, 50], True), ([-30, 10, 10, 50], False), ([-10, 10, 30, 50], True),
    ([0, 0, 5, 5], False), ([90, 90, 200, 200], False),
])
def test_visible_rule(box, visible) -> None:
    assert _visible(np.array(box, np.float32), 100, 100, 0.0) is visible


def test_raw_h264_and_annotated_mp4(shared: Path, pipe, tmp_path: Path) -> None:
    from viewfinder.media.video import probe

    out = tmp_path / "out.mp4"
    summary = pipe.run(shared / "video" / "group_pan_640x480.h264", out=out, max_frames=12)
    assert summary.frames == 12
    info = probe(out)
    assert (info.width, info.height, info.frames) == (640, 480, 12)


def test_folder_with_a_corrupt_image(shared: Path, pipe, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(shared / "images" / "group_t1.jpg", folder / "a.jpg")
    data = (shared / "images" / "group_t1.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 3])       # truncated JPEG
    cv2.imwrite(str(folder / "c.png"), np.zeros((64, 64, 3), np.uint8))
    summary = pipe.run(folder, json_path=tmp_path / "r.jsonl")
    assert summary.frames == 2 and [e[0] for e in summary.errors] == [1]
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert [json.loads(ln)["frame"] for ln in lines] == [0, 2]


@pytest.mark.parametrize(("source", "error", "match"), [
    ("missing.mp4", InputFileError, "no such video"),
    ("emptydir", InputFileError, "holds no images"),
])
def test_bad_sources_leave_no_output(pipe, tmp_path: Path, source, error, match) -> None:
    (tmp_path / "emptydir").mkdir()
    out = tmp_path / "r.jsonl"
    with pytest.raises(error, match=match):
        pipe.run(tmp_path / source, json_path=out)
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "emptydir"]


def test_bad_interval() -> None:
    with pytest.raises(ConfigError, match="every 0"):
        FacePipeline(backend="ort", every=0)


def test_profile_rows_follow_the_call_flow(shared: Path) -> None:
    from viewfinder.faces import STAGES

    p = FacePipeline(backend="ort", threads=1, every=5, profile=True)
    p.run(shared / "video" / "one_face_640x480_h264.mp4", max_frames=10)
    rows = p.profile_rows()
    names = [r[0] for r in rows]
    assert names == [s for s in STAGES if s in names] and p.profiler.frames == 10
    assert {"decode", "detect infer", "landmark infer", "track + smooth"} <= set(names)
    assert sum(r[2] for r in rows) == pytest.approx(1.0)
    assert all(ms > 0 for _, ms, _ in rows)


@pytest.mark.parametrize("every", [1, 4])
def test_detection_ahead_gives_the_same_frames(shared: Path, pipe, every: int,
                                               tmp_path: Path) -> None:
    """The detector running one frame ahead in a thread changes nothing in the output."""
    video = shared / "video" / "one_face_640x480_h264.mp4"
    outs = []
    old = pipe.every
    pipe.every = every
    try:
        for ahead in (True, False):
            out = tmp_path / f"{ahead}.jsonl"
            summary = pipe.run(video, json_path=out, max_frames=12, detect_ahead=ahead)
            outs.append((out.read_text(), summary.detections))
    finally:
        pipe.every = old
    assert outs[0] == outs[1] and outs[0][1] == -(-12 // every)
