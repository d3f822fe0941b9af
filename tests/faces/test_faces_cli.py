"""``viewfinder faces``: images, video, profile, exit codes, no partial outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ORT = ("--backend", "ort", "--threads", "1")


def test_image_to_json_and_annotated_png(shared: Path, run_cli, tmp_path: Path) -> None:
    out, js = tmp_path / "a.png", tmp_path / "a.json"
    code, stdout, _ = run_cli("faces", shared / "images" / "group_t1.jpg", "--out", out,
                              "--json", js, *ORT)
    assert code == 0 and "6 faces" in stdout
    data = json.loads(js.read_text())
    assert (data["width"], data["height"], len(data["detections"])) == (1280, 886, 6)
    assert (data["image_id"], data["frame"]) == ("group_t1", None)
    assert np.array(data["detections"][0]["landmarks"]).shape == (106, 2)
    assert out.read_bytes().startswith(b"\x89PNG")


def test_json_to_stdout_without_landmarks(shared: Path, run_cli) -> None:
    code, stdout, stderr = run_cli("faces", shared / "images" / "group_t1.jpg", "--json", "-",
                                   "--landmarks", "none", "--model", "yunet", *ORT)
    assert code == 0 and "6 faces" in stderr
    faces = json.loads(stdout)["detections"]
    assert len(faces) == 6 and "landmarks" not in faces[0] and len(faces[0]["keypoints"]) == 5


def test_profile_prints_the_call_flow(shared: Path, run_cli) -> None:
    code, stdout, _ = run_cli("faces", shared / "video" / "one_face_640x480_h264.mp4",
                              "--every", "5", "--max-frames", "6", "--profile")
    assert code == 0 and "6 frames of 1 stream" in stdout and "detector ran on 2" in stdout
    for stage in ("decode", "detect infer", "crop", "landmark infer", "track + smooth", "total"):
        assert stage in stdout
    assert "detector:" in stdout and "landmarks:" in stdout and "auto:" in stdout


def test_corrupt_frame_mid_video_exits_1_with_summary(shared: Path, run_cli,
                                                      tmp_path: Path) -> None:
    data = bytearray((shared / "video" / "group_pan_640x480.h264").read_bytes())
    nal = [i for i in range(len(data) - 4) if data[i:i + 4] == b"\x00\x00\x00\x01"]
    a, b = nal[len(nal) // 20], nal[len(nal) // 20 + 1]
    data[a + 5:b] = np.random.default_rng(0).integers(0, 256, b - a - 5, np.uint8).tobytes()
    bad = tmp_path / "bad.h264"
    bad.write_bytes(bytes(data))
    js = tmp_path / "r.jsonl"
    code, stdout, stderr = run_cli("faces", bad, "--max-frames", "30", "--every", "10",
                                   "--landmarks", "none", "--json", js, *ORT)
    assert code == 1 and "30 frames" in stdout and "failed" in stdout
    assert f"failed: {bad}#frame " in stderr and "corrupt" in stderr
    assert len(js.read_text().splitlines()) == 30


@pytest.mark.parametrize(("args", "message"), [
    (("nope.jpg",), "no such image"),
    (("nope.mp4",), "no such video"),
    (("{img}", "--det-size", "640by480"), "expected WxH"),
    (("{img}", "--det-size", "600x400"), "multiples of 32"),
    (("{img}", "--every", "0"), "0"),
    (("{img}", "--model", "{models}/2d106det.onnx"), "match no known face detector layout"),
    (("{img}", "--model", "scrfd_9000"), "not in the zoo"),
    (("{img}", "--out", "{tmp}/x.mp4"), "a video file holds one stream"),
    (("{vid}", "--out", "{tmp}/x.png"), "an image file holds one picture"),
    (("{img}", "{vid}", "--out", "{tmp}/x.mp4"), "give a folder"),
    (("{img}", "--out", "{tmp}/no/such/x.png"), "does not exist"),
    (("http://127.0.0.1:9/none",), "cannot open"),
    (("{img}", "--backend", "tensorflow"), "tensorflow"),
])
def test_bad_input_exits_2_without_output(shared: Path, run_cli, tmp_path: Path, args,
                                          message) -> None:
    fill = {"img": shared / "images" / "group_t1.jpg", "models": shared / "models" / "face",
            "vid": shared / "video" / "one_face_640x480_h264.mp4", "tmp": tmp_path}
    argv = [a.format(**fill) for a in args]
    code, stdout, stderr = run_cli("faces", *ORT, *argv, "--json", tmp_path / "r.json")
    assert code == 2 and message in stderr
    # one clear line (click's usage errors add a usage hint above it)
    assert len([ln for ln in stderr.splitlines() if ln.lower().startswith("error")]) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_camera_url_that_never_answers_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as server:  # accepts, then says nothing
        server.bind(("127.0.0.1", 0))
        server.listen(2)
        url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        code, _, stderr = run_cli("faces", url, "--timeout", "0.5", "--json",
                                  tmp_path / "r.jsonl", *ORT)
    assert code == 2 and stderr.strip() == f"error: {url}: no answer within 0.5 s"
    assert list(tmp_path.iterdir()) == []
