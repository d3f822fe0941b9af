"""``viewfinder detect``: image, folder and video sources; errors exit 2 with no output."""

from __future__ import annotations

import json
import shutil

import pytest

from viewfinder.media import read_image


def test_image_prints_darknet_result_and_writes_outputs(run_cli, shared, tmp_path) -> None:
    code, out, err = run_cli("detect", shared / "images/dog.jpg", "--score", 0.5,
                             "--out", tmp_path / "dog.png", "--json", tmp_path / "dog.jsonl")
    assert code == 0, err
    labels = [line.split(":")[0] for line in out.splitlines()[:-1]]  # then the summary
    assert set(labels) == {"bicycle", "car", "dog", "truck"}
    assert read_image(tmp_path / "dog.png").shape == (576, 768, 3)
    records = [json.loads(ln) for ln in (tmp_path / "dog.jsonl").read_text().splitlines()]
    assert len(records) == 1 and len(records[0]["detections"]) == len(labels)
    assert (records[0]["image_id"], records[0]["width"], records[0]["height"]) == ("dog", 768, 576)


def test_folder_with_a_corrupt_image_exits_1(run_cli, shared, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("dog.jpg", "bus.jpg"):
        shutil.copy(shared / "images" / name, src / name)
    (src / "broken.jpg").write_bytes((shared / "images/dog.jpg").read_bytes()[:300])
    code, out, err = run_cli("detect", src, "--classes", "dog,bus", "--out", tmp_path / "out",
                             "--graph", "nms")
    assert code == 1
    assert "2 images" in out and "1 failed" in out and "failed: " in err and "broken.jpg" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bus.jpg", "dog.jpg"]


def test_video_writes_annotated_mp4(run_cli, shared, tmp_path) -> None:
    from viewfinder.media.video import probe

    code, out, err = run_cli("detect", shared / "video/group_pan_640x480_h264.mp4",
                             "--max-frames", 5, "--out", tmp_path / "v.mp4",
                             "--json", tmp_path / "v.jsonl")
    assert code == 0, err
    assert out.startswith("5 frames of 1 stream")
    assert probe(tmp_path / "v.mp4").frames == 5
    lines = (tmp_path / "v.jsonl").read_text().splitlines()
    assert [json.loads(ln)["frame"] for ln in lines] == list(range(5))


@pytest.mark.parametrize(("args", "message"), [
    (("{tmp}/missing.jpg",), "missing.jpg: no such image"),
    (("{tmp}/notes.doc",), "unknown source type .doc"),
    (("{tmp}/notes.txt",), "notes.txt:1: {tmp}/x: no such"),
    (("{dog}", "--out", "{tmp}/out.txt"), "--out {tmp}/out.txt: expected an image file"),
    (("{dog}", "--out", "{tmp}/nodir/out.png"), "output directory {tmp}/nodir does not exist"),
    (("{dog}", "--classes", "unicorn"), "class 'unicorn': not a class name"),
    (("{dog}", "--model", "yolov9"), "model 'yolov9'"),
    (("{dog}", "--provider", "tensorrt"), "provider 'tensorrt' is not available"),
])
def test_bad_input_exits_2_with_one_line(run_cli, shared, tmp_path, args, message) -> None:
    (tmp_path / "notes.txt").write_text("x\n")
    (tmp_path / "notes.doc").write_text("x")
    fill = {"tmp": tmp_path, "dog": shared / "images/dog.jpg"}
    code, out, err = run_cli("detect", *(a.format(**fill) for a in args),
                             "--json", tmp_path / "r.json")
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message.format(**fill) in err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "out.txt").exists()


def test_convert_cfg_then_detect_with_the_onnx(run_cli, shared, tmp_path) -> None:
    d = shared / "models/detect/yolov3-tiny"
    code, _, err = run_cli("convert", d / "yolov3-tiny.cfg", "--weights", d / "yolov3-tiny.weights",
                           "-o", tmp_path / "tiny.onnx")
    assert code == 0, err
    code, out, err = run_cli("detect", shared / "images/dog.jpg", "--model", tmp_path / "tiny.onnx",
                             "--score", 0.5)
    assert code == 0, err
    # class names travel in the ONNX metadata (coco.names found beside the cfg)
    assert {line.split(":")[0] for line in out.splitlines()[:-1]} == {
        "bicycle", "car", "dog", "truck"}
