"""``viewfinder media …``: exit codes, one-line errors, no partial output, API-identical bytes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from viewfinder.media import (
    letterbox_frame,
    read_frame,
    read_image,
    read_yuv,
    resize,
    write_image,
    write_yuv,
)
from viewfinder.media.video import VideoReader, probe


def test_help_lists_every_step(run_cli):
    code, out, _ = run_cli("media", "--help")
    assert code == 0
    for cmd in ("info", "to-yuv", "from-yuv", "resize", "demux", "frames", "encode"):
        assert cmd in out


@pytest.mark.parametrize(("name", "facts"), [
    ("images/dog.jpg", {"type": "image", "width": 768, "height": 576, "subsampling": "440"}),
    ("images/aligned_face_112.png", {"type": "image", "codec": "png", "width": 112}),
    ("video/group_pan_640x480.h264", {"type": "video", "codec": "h264", "frames": 250,
                                      "fps": 25.0, "duration": 10.0}),
    ("video/group_pan_640x480_h265.mp4", {"codec": "hevc", "frames": 125, "height": 480}),
])
def test_info(run_cli, shared, name, facts):
    code, out, _ = run_cli("media", "info", shared / name, "--json")
    assert code == 0
    got = json.loads(out)
    assert {k: got[k] for k in facts} == facts
    code, text, _ = run_cli("media", "info", shared / name)
    assert code == 0 and str(facts.get("width", facts.get("codec"))) in text


@pytest.mark.parametrize("align", ["none", "dvpp_jpegd", "dvpp_vpc", "64x4"])
@pytest.mark.parametrize("fmt", ["nv12", "i420"])
def test_to_yuv_gives_the_api_bytes(run_cli, shared, tmp_path, align, fmt):
    src = shared / "images" / "bus.jpg"
    out = tmp_path / "bus.yuv"
    code, msg, err = run_cli("media", "to-yuv", src, "-o", out, "--format", fmt, "--align", align)
    assert code == 0, err
    assert out.read_bytes() == read_frame(src, fmt, align).to_bytes()
    assert "810x1080" in msg


def test_yuv_round_trip_to_a_viewable_image(run_cli, shared, tmp_path):
    src = shared / "images" / "group_t1.jpg"
    yuv, png = tmp_path / "g.yuv", tmp_path / "g.png"
    assert run_cli("media", "to-yuv", src, "-o", yuv, "--align", "dvpp_jpegd")[0] == 0
    code, _, _ = run_cli("media", "from-yuv", yuv, "--size", "1280x886", "--align",
                         "dvpp_jpegd", "-o", png)
    assert code == 0
    api = read_yuv(yuv, 1280, 886, "nv12", "dvpp_jpegd")
    assert np.array_equal(read_image(png), api.to_array("bgr24"))
    assert np.abs(read_image(png).astype(int) - read_image(src)).mean() < 2.5


def test_yuv_size_mismatch_is_one_line_exit_2(run_cli, shared, tmp_path):
    yuv, png = tmp_path / "g.yuv", tmp_path / "g.png"
    run_cli("media", "to-yuv", shared / "images" / "bus.jpg", "-o", yuv, "--align", "dvpp_jpegd")
    code, out, err = run_cli("media", "from-yuv", yuv, "--size", "810x1080", "-o", png)
    assert code == 2
    assert err == (f"error: {yuv}: 810x1080 NV12 needs 1312200 bytes, the file has 1462272 = "
                   "896x1088 NV12 (width aligned to 128 and height aligned to 16)\n")
    assert not png.exists()


@pytest.mark.parametrize(("mode", "letterbox"), [("bilinear", False), ("area", True),
                                                 ("nearest", False)])
def test_resize_image_and_yuv_match_api(run_cli, shared, tmp_path, mode, letterbox):
    src = shared / "images" / "dog.jpg"
    flag = ["--letterbox"] if letterbox else []
    out_png = tmp_path / "r.png"
    assert run_cli("media", "resize", src, "-o", out_png, "--size", "320x320", "--mode",
                   mode, *flag)[0] == 0
    bgr = read_frame(src, "bgr24")
    api = letterbox_frame(bgr, 320, 320, mode)[0] if letterbox else resize(bgr, 320, 320, mode)
    assert np.array_equal(read_image(out_png), api.to_array())
    # the same on a raw NV12 buffer, plane by plane
    yuv, out_yuv = tmp_path / "d.yuv", tmp_path / "r.yuv"
    write_yuv(yuv, read_frame(src, "nv12", "dvpp_jpegd"))
    assert run_cli("media", "resize", yuv, "--in-size", "768x576", "--align", "dvpp_jpegd",
                   "-o", out_yuv, "--size", "320x320", "--mode", mode, "--out-align",
                   "dvpp_vpc", *flag)[0] == 0
    nv12 = read_yuv(yuv, 768, 576, "nv12", "dvpp_jpegd")
    api = (letterbox_frame(nv12, 320, 320, mode, align="dvpp_vpc")[0] if letterbox
           else resize(nv12, 320, 320, mode, align="dvpp_vpc"))
    assert out_yuv.read_bytes() == api.to_bytes()


@pytest.mark.parametrize(("args", "match"), [
    (["--size", "0x10"], "must be positive"),
    (["--size", "99999x99999"], "absurd"),
    (["--size", "31x20", "--format", "nv12"], "even"),
    (["--size", "big"], "WIDTHxHEIGHT"),
])
def test_resize_bad_sizes(run_cli, shared, tmp_path, args, match):
    out = tmp_path / ("r.yuv" if "--format" in args else "r.png")
    code, _, err = run_cli("media", "resize", shared / "images" / "dog.jpg", "-o", out, *args)
    assert code == 2 and match in err and err.startswith("error: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_usage_error_exit_2(run_cli, shared, tmp_path):
    code, _, err = run_cli("media", "resize", shared / "images" / "dog.jpg", "-o",
                           tmp_path / "r.png", "--size", "32x32", "--mode", "cubic")
    assert code == 2 and "Invalid value for '--mode'" in err
    assert list(tmp_path.iterdir()) == []


def test_demux_then_frames_from_the_stream(run_cli, shared, tmp_path):
    stream = tmp_path / "g.h264"
    code, out, _ = run_cli("media", "demux", shared / "video" / "group_pan_640x480_h264.mp4",
                           "-o", stream)
    assert code == 0 and "250 packets" in out
    frames = tmp_path / "frames"
    code, out, err = run_cli("media", "frames", stream, "-o", frames, "--format", "yuv",
                             "--every", "50")
    assert code == 0, err
    files = sorted(frames.iterdir())
    assert [f.name for f in files] == [f"frame_{i:06d}.yuv" for i in (0, 50, 100, 150, 200)]
    with VideoReader(shared / "video" / "group_pan_640x480_h264.mp4", fmt="nv12",
                     every=50) as r:
        for f, vf in zip(files, r, strict=True):
            assert f.read_bytes() == vf.image.tobytes()


def test_frames_jpg_and_encode_back(run_cli, shared, tmp_path):
    frames, video = tmp_path / "frames", tmp_path / "out.mp4"
    code, _, _ = run_cli("media", "frames", shared / "video" / "one_face_640x480_h264.mp4",
                         "-o", frames, "--start", "1", "--end", "2", "--every", "5")
    assert code == 0
    assert len(list(frames.iterdir())) == 5
    code, out, _ = run_cli("media", "encode", frames, "-o", video, "--fps", "5", "--preset",
                           "ultrafast")
    assert code == 0 and "5 frames" in out
    info = probe(video)
    assert (info.frames, info.fps, info.width) == (5, 5.0, 640)


def test_corrupt_video_exits_1_with_summary(run_cli, corrupt_video, tmp_path):
    out = tmp_path / "f"
    code, stdout, err = run_cli("media", "frames", corrupt_video, "-o", out, "--format", "yuv",
                                "--start", "4", "--end", "6")
    assert code == 1
    assert "corrupt frame(s)" in err and "decoding went on" in err
    assert any(line.startswith("frame ") for line in err.splitlines())
    assert len(list(out.iterdir())) == 50  # every frame of the range was still written


def test_encode_mixed_sizes_leaves_nothing(run_cli, tmp_path, make_image):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_image(a, make_image(64, 48))
    write_image(b, make_image(48, 64))
    out = tmp_path / "v.mp4"
    code, _, err = run_cli("media", "encode", a, b, "-o", out)
    assert code == 2 and f"{b}: image is 48x64, the first frame is 64x48" in err
    assert not out.exists() and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(("argv", "match"), [
    (["info", "{tmp}/missing.mp4"], "no such file"),
    (["info", "{tmp}/junk.bin"], "neither an image nor a video"),
    (["info", "{tmp}/raw.yuv"], "no header"),
    (["to-yuv", "{tmp}/junk.bin", "-o", "{tmp}/o.yuv"], "not an image"),
    (["to-yuv", "{tmp}/cut.jpg", "-o", "{tmp}/o.yuv"], "truncated JPEG"),
    (["to-yuv", "{shared}/images/dog.jpg", "-o", "{tmp}/nodir/o.yuv"], "does not exist"),
    (["to-yuv", "{shared}/images/dog.jpg", "-o", "{tmp}/empty"], "is a directory"),
    (["from-yuv", "{tmp}/raw.yuv", "--size", "4x4", "-o", "{tmp}/empty"], "is a directory"),
    (["demux", "{shared}/video/group_pan_640x480.h264", "-o", "{tmp}/empty"], "is a directory"),
    (["encode", "{shared}/images/dog.jpg", "-o", "{tmp}/nodir/o.mp4"], "does not exist"),
    (["demux", "{tmp}/junk.bin", "-o", "{tmp}/o.h264"], "not a readable video"),
    (["frames", "{tmp}/junk.bin", "-o", "{tmp}/fr"], "not a readable video"),
    (["encode", "{tmp}/empty", "-o", "{tmp}/o.mp4"], "no images"),
    (["encode", "{shared}/images/dog.jpg", "-o", "{tmp}/o.gif"], "expected .mp4"),
    (["from-yuv", "{tmp}/raw.yuv", "--size", "0x4", "-o", "{tmp}/o.png"], "must be positive"),
    (["frames", "{shared}/video/group_pan_640x480.h264", "-o", "{tmp}/fr", "--every", "0"],
     "every=0"),
])
def test_bad_input_is_one_line_exit_2_no_output(run_cli, shared, tmp_path, argv, match):
    (tmp_path / "junk.bin").write_bytes(b"hello world, not media" * 10)
    (tmp_path / "raw.yuv").write_bytes(bytes(24))
    (tmp_path / "empty").mkdir()
    data = (shared / "images" / "dog.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.format(tmp=tmp_path, shared=shared) for a in argv]
    code, out, err = run_cli("media", *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unsupported_codec_in_container(run_cli, tmp_path):
    import av

    path = tmp_path / "m.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mjpeg", rate=5)
        s.width, s.height, s.pix_fmt = 32, 32, "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), "rgb24")
        c.mux(s.encode(frame.reformat(format="yuvj420p")))
        c.mux(s.encode(None))
    code, _, err = run_cli("media", "demux", path, "-o", tmp_path / "o.h264")
    assert code == 2 and "codec mjpeg" in err



def test_frames_as_yuv_say_their_range_and_read_back_with_it(run_cli, shared, tmp_path):
    """Video frames are limited range; the hint printed gives the from-yuv options that turn
    them back into the picture the decoder shows (the full-range default would not)."""
    video = shared / "video" / "one_face_640x480_h264.mp4"
    code, out, err = run_cli("media", "frames", video, "-o", tmp_path / "f", "--format", "yuv",
                             "--max", "1")
    assert code == 0, err
    assert "bt601 limited range" in out and "--range limited --matrix bt601" in out
    with VideoReader(video, fmt="bgr24", max_frames=1) as r:
        truth = next(iter(r)).image.astype(np.int16)
    diffs = {}
    for rng in ("limited", "full"):
        png = tmp_path / f"{rng}.png"
        code, _, err = run_cli("media", "from-yuv", tmp_path / "f" / "frame_000000.yuv",
                               "--size", "640x480", "--range", rng, "--out", png)
        assert code == 0, err
        diffs[rng] = np.abs(cv2.imread(str(png)).astype(np.int16) - truth).mean()
    assert diffs["limited"] < 1.5 < 5 < diffs["full"]
