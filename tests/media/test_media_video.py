"""Video probe, decode with selection, corrupt frames, demux and encode on shared/video."""

from __future__ import annotations

import numpy as np
import pytest

from viewfinder.errors import (
    ConfigError,
    DecodeError,
    EncodeError,
    FormatError,
    InputFileError,
    ShapeError,
    SizeError,
)
from viewfinder.media.video import VideoReader, VideoWriter, demux, probe

VIDEOS = [
    ("one_face_640x480_h264.mp4", "h264", 640, 480, 250, "mov,mp4,m4a,3gp,3g2,mj2"),
    ("group_pan_640x480_h264.mp4", "h264", 640, 480, 250, "mov,mp4,m4a,3gp,3g2,mj2"),
    ("group_pan_640x480_h265.mp4", "hevc", 640, 480, 125, "mov,mp4,m4a,3gp,3g2,mj2"),
    ("group_pan_640x480.h264", "h264", 640, 480, 250, "h264"),
    ("crowd_pan_1920x1080_h264.mp4", "h264", 1920, 1080, 100, "mov,mp4,m4a,3gp,3g2,mj2"),
]


@pytest.mark.parametrize(("name", "codec", "w", "h", "frames", "container"), VIDEOS)
def test_probe_real_videos(shared, name, codec, w, h, frames, container):
    info = probe(shared / "video" / name)
    assert (info.codec, info.width, info.height, info.frames, info.container) == (
        codec, w, h, frames, container)
    assert info.fps == 25.0
    assert info.duration == pytest.approx(frames / 25.0, abs=0.05)


@pytest.mark.parametrize(("fmt", "shape"), [("bgr24", (480, 640, 3)), ("rgb24", (480, 640, 3)),
                                            ("gray8", (480, 640)), ("nv12", (720, 640)),
                                            ("i420", (720, 640))])
def test_reader_formats(shared, fmt, shape):
    with VideoReader(shared / "video" / "group_pan_640x480_h265.mp4", fmt=fmt,
                     max_frames=2) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == [0, 1]
    assert all(f.image.shape == shape and f.image.dtype == np.uint8 for f in frames)


def test_nv12_and_bgr_agree(shared):
    path = shared / "video" / "one_face_640x480_h264.mp4"
    with VideoReader(path, fmt="nv12", max_frames=1) as r:
        nv12 = next(iter(r)).image
    with VideoReader(path, fmt="bgr24", max_frames=1) as r:
        bgr = next(iter(r)).image
    import cv2

    assert np.abs(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12).astype(int) - bgr).mean() < 2


@pytest.mark.parametrize("fmt", ["bgr24", "rgb24"])
def test_bgr_is_the_bt601_formula(shared, fmt):
    """BT.601 limited-range 4:2:0 frames go through OpenCV's exact conversion (libswscale's
    default one was off by up to 3 levels, 1.2 on average, on this file)."""
    from viewfinder.media.color import yuv444_to_rgb

    path = shared / "video" / "one_face_640x480_h264.mp4"
    with VideoReader(path, fmt="i420", every=50, max_frames=3) as r:
        planes = [f.image for f in r]
    with VideoReader(path, fmt=fmt, every=50, max_frames=3) as r:
        images = [f.image for f in r]
    for i420, got in zip(planes, images, strict=True):
        h, w = got.shape[:2]
        u = i420[h:h + h // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
        v = i420[h + h // 4:].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1)
        rgb = yuv444_to_rgb(np.stack([i420[:h], u, v], -1), "bt601", full_range=False)
        want = rgb if fmt == "rgb24" else rgb[..., ::-1]
        d = np.abs(got.astype(int) - want)
        assert d.max() <= 1 and d.mean() < 0.1


class _Frame:
    def __init__(self, fmt="yuv420p", w=640, h=480, colorspace=2, color_range=0):
        self.format = type("F", (), {"name": fmt})()
        self.width, self.height, self.colorspace, self.color_range = w, h, colorspace, color_range


@pytest.mark.parametrize(("frame", "fast"), [
    (_Frame(), True),
    (_Frame(colorspace=6, color_range=1), True),    # SMPTE 170M, limited
    (_Frame(colorspace=1), False),                  # BT.709: libswscale keeps it
    (_Frame(color_range=2), False),                 # full range
    (_Frame(fmt="yuvj420p"), False),
    (_Frame(fmt="yuv422p"), False),
    (_Frame(w=641), False),
])
def test_which_frames_take_the_opencv_conversion(frame, fast):
    from viewfinder.media.video.reader import _bt601_limited_i420

    assert _bt601_limited_i420(frame) is fast


@pytest.mark.parametrize("name", ["group_pan_640x480_h264.mp4", "group_pan_640x480.h264"])
@pytest.mark.parametrize(("kwargs", "indices"), [
    ({"every": 50}, [0, 50, 100, 150, 200]),
    ({"start": 2.0, "end": 3.0, "every": 10}, [50, 60, 70]),
    ({"start": 9.8}, [245, 246, 247, 248, 249]),
    ({"every": 3, "max_frames": 4}, [0, 3, 6, 9]),
    ({"start": 1.0, "max_frames": 2}, [25, 26]),
])
def test_frame_selection(shared, name, kwargs, indices):
    with VideoReader(shared / "video" / name, fmt="gray8", **kwargs) as reader:
        got = [(f.index, f.time) for f in reader]
        assert len(reader) == len(indices)
    assert [i for i, _ in got] == indices
    assert [t for _, t in got] == pytest.approx([i / 25 for i in indices])


def test_threaded_decoding_gives_the_same_frames(shared):
    path = shared / "video" / "group_pan_640x480_h264.mp4"
    with VideoReader(path, fmt="gray8", threads=1, max_frames=30) as a, \
            VideoReader(path, fmt="gray8", threads=2, max_frames=30) as b:
        for fa, fb in zip(a, b, strict=True):
            assert fa.index == fb.index and np.array_equal(fa.image, fb.image)


def test_corrupt_frame_reported_and_decoding_goes_on(corrupt_video):
    with VideoReader(corrupt_video, fmt="gray8") as reader:
        indices = [f.index for f in reader]
    assert len(indices) >= 240 and indices[-1] == 249   # went on to the end
    assert reader.errors, "the damaged frame must be reported"
    bad = [i for i, _ in reader.errors]
    assert all(50 < i < 200 for i in bad)                # in the middle, with its index
    assert all("corrupt" in m or "undecodable" in m for _, m in reader.errors)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"fmt": "yuyv422"}, FormatError, "video output format"),
    ({"every": 0}, ConfigError, "every=0"),
    ({"start": 3, "end": 2}, ConfigError, "end=2"),
    ({"start": -1}, ConfigError, "start=-1"),
    ({"max_frames": 0}, ConfigError, "max_frames=0"),
    ({"threads": -2}, ConfigError, "threads=-2"),
])
def test_reader_argument_errors(shared, kwargs, error, match):
    with pytest.raises(error, match=match):
        VideoReader(shared / "video" / "group_pan_640x480.h264", **kwargs)


def test_reader_file_errors(tmp_path, shared):
    with pytest.raises(InputFileError, match="no such video file"):
        VideoReader(tmp_path / "none.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(DecodeError, match=f"{junk}: not a readable video"):
        probe(junk)
    with pytest.raises(FormatError, match="no video stream"):
        probe(_audio_only(tmp_path / "sound.mkv"))


def _audio_only(path):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize(("name", "suffix"), [("group_pan_640x480_h264.mp4", ".h264"),
                                              ("group_pan_640x480_h265.mp4", ".h265")])
def test_demuxed_stream_decodes_to_the_same_frames(shared, tmp_path, name, suffix):
    src = shared / "video" / name
    out = tmp_path / f"stream{suffix}"
    count = demux(src, out)
    info = probe(out)
    assert count == info.frames == probe(src).frames
    assert out.read_bytes()[:4] == b"\x00\x00\x00\x01"  # Annex-B start code
    with VideoReader(src, fmt="i420") as a, VideoReader(out, fmt="i420") as b:
        pairs = list(zip(a, b, strict=True))
    assert len(pairs) == count
    assert all(np.array_equal(fa.image, fb.image) for fa, fb in pairs)


def test_demux_matches_the_shipped_elementary_stream(shared, tmp_path):
    out = tmp_path / "x.h264"
    demux(shared / "video" / "group_pan_640x480_h264.mp4", out)
    assert out.read_bytes() == (shared / "video" / "group_pan_640x480.h264").read_bytes()


def test_demux_errors(shared, tmp_path):
    with pytest.raises(FormatError, match="suffix .h265 is for hevc"):
        demux(shared / "video" / "group_pan_640x480_h264.mp4", tmp_path / "x.h265")
    mjpeg = tmp_path / "m.avi"
    import av

    with av.open(str(mjpeg), "w") as c:
        s = c.add_stream("mjpeg", rate=5)
        s.width, s.height, s.pix_fmt = 32, 32, "yuvj420p"
        c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), "rgb24")
                       .reformat(format="yuvj420p")))
        c.mux(s.encode(None))
    with pytest.raises(FormatError, match="codec mjpeg cannot be written as an Annex-B"):
        demux(mjpeg, tmp_path / "m.h264")
    assert not (tmp_path / "m.h264").exists()


@pytest.mark.parametrize(("codec", "suffix", "fmt"), [("h264", ".mp4", "bgr24"),
                                                     ("h264", ".mkv", "nv12"),
                                                     ("h264", ".avi", "i420"),
                                                     ("h265", ".mov", "rgb24")])
def test_writer_round_trip(tmp_path, make_image, codec, suffix, fmt):
    import cv2

    frames = [np.roll(make_image(96, 64), 4 * i, axis=1) for i in range(6)]
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, fps=12.5, codec=codec, crf=18, fmt=fmt) as w:
        for bgr in frames:
            if fmt == "nv12":
                w.write(_i420_to_nv12(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)))
            elif fmt == "i420":
                w.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))
            else:
                w.write(bgr if fmt == "bgr24" else np.ascontiguousarray(bgr[..., ::-1]))
    info = probe(out)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 6, 12.5)
    with VideoReader(out) as r:
        decoded = [f.image for f in r]
    assert len(decoded) == 6
    assert np.mean([np.abs(d.astype(int) - f).mean() for d, f in zip(decoded, frames,
                                                                      strict=True)]) < 4
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def _i420_to_nv12(i420: np.ndarray) -> np.ndarray:
    h = i420.shape[0] * 2 // 3
    w = i420.shape[1]
    u = i420[h:h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4:].reshape(h // 2, w // 2)
    return np.vstack([i420[:h], np.dstack([u, v]).reshape(h // 2, w)])


def test_writer_exception_leaves_nothing(tmp_path, make_image):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError), VideoWriter(out, fps=25) as w:
        w.write(make_image(64, 32))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("frames", "error", "match"), [
    ([np.zeros((33, 64, 3), np.uint8)], SizeError, "even sizes"),
    ([np.zeros((32, 64, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)], ShapeError,
     "frame 1 is 32x32, the video is 64x32"),
    ([np.zeros((32, 64), np.uint8)], ShapeError, "not a bgr24 image"),
    ([np.zeros((32, 64, 3), np.float32)], ShapeError, "uint8"),
])
def test_writer_frame_errors_leave_nothing(tmp_path, frames, error, match):
    with pytest.raises(error, match=match), VideoWriter(tmp_path / "x.mp4", fps=25) as w:
        for f in frames:
            w.write(f)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"codec": "vp9"}, FormatError, "video codec 'vp9'"),
    ({"fps": 0}, ConfigError, "fps=0"),
    ({"crf": 60}, ConfigError, "crf=60"),
    ({"fmt": "nv21"}, FormatError, "pixel format"),
    ({"preset": "turbo"}, ConfigError, "preset 'turbo'"),
])
def test_writer_argument_errors(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        VideoWriter(tmp_path / "x.mp4", **{"fps": 25, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_writer_output_errors(tmp_path):
    with pytest.raises(FormatError, match="expected .mp4"):
        VideoWriter(tmp_path / "x.gif", fps=25)
    with pytest.raises(InputFileError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "x.mp4", fps=25)
    with pytest.raises(EncodeError, match="no frames"), VideoWriter(tmp_path / "e.mp4", fps=25):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["nv12", "i420", "bgr24"])
def test_video_frame_to_frame_keeps_the_picture(shared, fmt):
    path = shared / "video" / "one_face_640x480_h264.mp4"
    with VideoReader(path, fmt=fmt, max_frames=1) as r:
        vf = next(iter(r))
    with VideoReader(path, fmt="bgr24", max_frames=1) as r:
        bgr = next(iter(r)).image
    assert (vf.format, vf.matrix, vf.full_range) == (fmt, "bt601", False)  # untagged stream
    frame = vf.to_frame("dvpp_jpegd")
    assert (frame.aligned_width, frame.aligned_height, frame.full_range) == (640, 480, False)
    assert np.abs(frame.to_array("bgr24").astype(int) - bgr).mean() < 2


@pytest.mark.parametrize(("suffix", "codec", "raw"), [(".mkv", "h264", ".h264"),
                                                     (".mov", "h265", ".h265")])
def test_demux_generated_containers(tmp_path, make_image, suffix, codec, raw):
    src = tmp_path / f"clip{suffix}"
    with VideoWriter(src, fps=10, codec=codec, preset="ultrafast") as w:
        for i in range(12):
            w.write(np.roll(make_image(64, 48), 3 * i, axis=0))
    out = tmp_path / f"clip{raw}"
    assert demux(src, out) == 12
    with VideoReader(src, fmt="i420") as a, VideoReader(out, fmt="i420") as b:
        assert all(np.array_equal(fa.image, fb.image) for fa, fb in zip(a, b, strict=True))


def test_truncated_video_reports_the_missing_frames(tmp_path, rng):
    path = tmp_path / "cut.mp4"
    with VideoWriter(path, fps=25, preset="ultrafast") as w:   # faststart: index first
        for _ in range(40):
            w.write(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    with VideoReader(path, fmt="gray8") as reader:
        decoded = sum(1 for _ in reader)
    assert 0 < decoded < 40
    assert reader.errors[-1] == (decoded, f"stream ended early: {decoded} of 40 frames decoded "
                                          "(damaged or truncated data)")
