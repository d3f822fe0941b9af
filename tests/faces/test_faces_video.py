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
from viewfinder.media.sources import open_source
from viewfinder.ops.boxes import box_iou
from viewfinder.runner import run
from viewfinder.sinks import open_sinks
from viewfinder.tasks import FacesTask


def run_pipe(pipe: FacePipeline, source, out=None, json_path=None, max_frames=None):
    """The face pipeline over a source through the runner (as ``viewfinder faces``)."""
    src = open_source(source, max_frames=max_frames)
    return run(FacesTask(pipe), src, open_sinks(src, out, json_path), profiler=pipe.profiler)


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline(backend="ort", threads=1, every=10)


def test_video_tracks_one_face_with_few_detections(shared: Path, pipe, tmp_path: Path) -> None:
    out = tmp_path / "faces.jsonl"
    report = run_pipe(pipe, shared / "video" / "one_face_640x480_h264.mp4", json_path=out,
                      max_frames=40)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.frames == len(lines) == 40 and report.failures == []
    assert 4 <= pipe.detections <= 8
    assert [ln["frame"] for ln in lines] == list(range(40))
    assert all(len(ln["detections"]) == 1 for ln in lines)
    assert {ln["detections"][0]["track_id"] for ln in lines} == {1}
    assert all(len(ln["detections"][0]["landmarks"]) == 106 for ln in lines)


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
    report = run_pipe(pipe, shared / "video" / "group_pan_640x480.h264", out=out, max_frames=12)
    assert report.frames == 12
    info = probe(out)
    assert (info.width, info.height, info.frames) == (640, 480, 12)


def test_folder_is_a_set_of_photos(shared: Path, pipe, tmp_path: Path) -> None:
    """Photos of different sizes, one corrupt: each is its own image, named in its record."""
    folder = tmp_path / "frames"
    folder.mkdir()
    shutil.copy(shared / "images" / "group_t1.jpg", folder / "a.jpg")
    data = (shared / "images" / "group_t1.jpg").read_bytes()
    (folder / "b.jpg").write_bytes(data[: len(data) // 3])       # truncated JPEG
    cv2.imwrite(str(folder / "c.png"), np.zeros((64, 48, 3), np.uint8))
    report = run_pipe(pipe, folder, out=tmp_path / "out", json_path=tmp_path / "r.jsonl")
    assert report.images == 2 and [f.where for f in report.failures] == [str(folder / "b.jpg")]
    lines = [json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(ln["image_id"], ln["frame"], ln["width"], ln["height"], len(ln["detections"]))
            for ln in lines] == [("a", None, 1280, 886, 6), ("c", None, 48, 64, 0)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "c.png"]
    assert cv2.imread(str(tmp_path / "out" / "c.png")).shape == (64, 48, 3)


@pytest.mark.parametrize(("source", "error", "match"), [
    ("missing.mp4", InputFileError, "no such video"),
    ("emptydir", InputFileError, "holds no images"),
])
def test_bad_sources_leave_no_output(pipe, tmp_path: Path, source, error, match) -> None:
    (tmp_path / "emptydir").mkdir()
    out = tmp_path / "r.jsonl"
    with pytest.raises(error, match=match):
        run_pipe(pipe, tmp_path / source, json_path=out)
    assert not out.exists() and list(tmp_path.iterdir()) == [tmp_path / "emptydir"]


def test_bad_interval() -> None:
    with pytest.raises(ConfigError, match="every 0"):
        FacePipeline(backend="ort", every=0)


def test_profile_rows_follow_the_call_flow(shared: Path) -> None:
    from viewfinder.faces import STAGES

    p = FacePipeline(backend="ort", threads=1, every=5, profile=True)
    run_pipe(p, shared / "video" / "one_face_640x480_h264.mp4", max_frames=10)
    rows = p.profile_rows()
    names = [r[0] for r in rows]
    assert names == [s for s in STAGES if s in names] and p.profiler.frames == 10
    assert {"decode", "detect infer", "landmark infer", "track + smooth"} <= set(names)
    assert sum(r[2] for r in rows) == pytest.approx(1.0)
    assert all(ms > 0 for _, ms, _ in rows)


def test_streams_stepped_together_equal_streams_stepped_alone(shared: Path) -> None:
    """step_many over two videos (one detector batch, one landmark batch) gives what two
    pipelines stepping each video alone give: same ids, boxes and points."""
    from viewfinder.media.video import VideoReader

    videos = [shared / "video" / "one_face_640x480_h264.mp4",
              shared / "video" / "group_pan_640x480_h264.mp4"]
    frames = [[f.image for f in VideoReader(v, max_frames=8)] for v in videos]
    together = FacePipeline(backend="ort", threads=1, every=3)
    states = [together.new_stream(), together.new_stream()]
    alone = [FacePipeline(backend="ort", threads=1, every=3) for _ in videos]
    for k in range(8):
        both = together.step_many(states, [frames[0][k], frames[1][k]], [k / 25, k / 25])
        for got, pipe, stream in zip(both, alone, frames, strict=True):
            want = pipe.step(stream[k], k / 25)
            assert got.track_ids.tolist() == want.track_ids.tolist(), f"frame {k}"
            np.testing.assert_allclose(got.boxes, want.boxes, atol=0.05)
            np.testing.assert_allclose(got.landmarks, want.landmarks, atol=0.05)
    assert [st.detections for st in states] == [p.detections for p in alone] == [3, 3]
