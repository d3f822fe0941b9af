"""Media pipeline benchmarks, side by side with the strongest installed peers.

1. JPEG decode to NV12 (viewfinder: FFmpeg's JPEG decoder straight to YUV planes)
   against OpenCV ``imdecode`` + ``cvtColor(BGR2YUV_I420)`` and against plain
   libjpeg-turbo decode to RGB (simplejpeg). Target: within 1.2x of plain turbo.
2. 1080p H.264 decode fps of ``video/crowd_pan_1920x1080_h264.mp4``: a bare PyAV
   loop (decode only; PyAV *is* FFmpeg), the same with conversion to NumPy, the
   ``ffmpeg`` CLI when installed, and viewfinder's VideoReader. Target: >= 150 fps.
3. NV12 resize 1920x1080 -> 640x360 and -> 416x416 letterbox: viewfinder
   (plane by plane) against OpenCV's usual route (NV12 -> BGR -> resize -> I420)
   and against FFmpeg's swscale (PyAV ``reformat``), which scales NV12 directly.

Peers run interleaved in the same loop; medians are reported (the host is shared).
Run: ``.venv/bin/python benchmarks/media.py [--quick]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402
from viewfinder.config import shared_dir  # noqa: E402
from viewfinder.media import Frame, decode_frame, letterbox_frame, resize  # noqa: E402
from viewfinder.media.video import VideoReader  # noqa: E402

PACKAGES = ("numpy", "cv2", "av", "simplejpeg", "viewfinder")


def interleaved(cases: dict[str, Callable[[], object]], repeat: int,
                warmup: int = 1) -> dict[str, tuple[float, float, float]]:
    """Median wall, best wall and median CPU seconds per call, cases alternating in a loop.

    CPU time (all threads of this process) and the best wall time are less disturbed
    by other people's load on a shared host than the median wall time; all three are
    reported.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), min(wall[k]), statistics.median(cpu[k]))
            for k in cases}


def report(title: str, medians: dict[str, tuple[float, float, float]], base: str,
           unit: str = "ms", per: float = 1.0) -> None:
    print(f"\n## {title}")
    print(f"  {'':<44} {'wall median':>13} {'wall best':>13} {'cpu median':>13}   "
          f"median wall vs {base}")
    for name, (sec, best, cpu) in medians.items():
        ratio = sec / medians[base][0]
        if unit == "ms":
            value = f"{sec * 1e3:10.2f} ms {best * 1e3:10.2f} ms {cpu * 1e3:10.2f} ms"
        else:
            value = f"{per / sec:9.1f} fps {per / best:9.1f} fps {per / cpu:9.1f} fps"
        print(f"  {name:<44} {value}   {ratio:5.2f}x")


# ----------------------------------------------------------------------------- JPEG
def bench_jpeg(images: list[Path], repeat: int) -> None:
    import simplejpeg

    for path in images:
        data = path.read_bytes()
        h, w, _, sub = simplejpeg.decode_jpeg_header(data)
        buf = np.frombuffer(data, np.uint8)
        cases = {
            "libjpeg-turbo decode to RGB (simplejpeg)":
                lambda d=data: simplejpeg.decode_jpeg(d, "RGB"),
            "viewfinder decode_frame -> NV12":
                lambda d=data: decode_frame(d, "nv12"),
            "viewfinder decode_frame -> I420":
                lambda d=data: decode_frame(d, "i420"),
            "viewfinder decode_frame -> NV12 dvpp_jpegd":
                lambda d=data: decode_frame(d, "nv12", "dvpp_jpegd"),
            "OpenCV imdecode + cvtColor(BGR2YUV_I420)":
                lambda b=buf: cv2.cvtColor(cv2.imdecode(b, cv2.IMREAD_COLOR),
                                           cv2.COLOR_BGR2YUV_I420),
        }
        medians = interleaved(cases, repeat)
        report(f"JPEG -> NV12: {path.name} {w}x{h} {sub}", medians,
               "libjpeg-turbo decode to RGB (simplejpeg)")


# ----------------------------------------------------------------------------- video
def _pyav_loop(path: Path, fmt: str | None, threads: int = 0) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        n = 0
        for frame in container.decode(stream):
            if fmt is not None:
                frame.to_ndarray(format=fmt)
            n += 1
    return n


def _reader(path: Path, fmt: str) -> int:
    with VideoReader(path, fmt=fmt) as reader:
        return sum(1 for _ in reader)


def bench_video(path: Path, repeat: int) -> None:
    import av

    with av.open(str(path)) as c:
        frames = c.streams.video[0].frames
    cases: dict[str, Callable[[], object]] = {
        "PyAV bare decode loop (threads auto)": lambda: _pyav_loop(path, None),
        "PyAV bare decode loop (1 thread)": lambda: _pyav_loop(path, None, 1),
        "PyAV decode + to_ndarray yuv420p": lambda: _pyav_loop(path, "yuv420p"),
        "PyAV decode + to_ndarray bgr24": lambda: _pyav_loop(path, "bgr24"),
        "viewfinder VideoReader nv12": lambda: _reader(path, "nv12"),
        "viewfinder VideoReader i420": lambda: _reader(path, "i420"),
        "viewfinder VideoReader bgr24": lambda: _reader(path, "bgr24"),
    }
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg:
        cmd = [ffmpeg, "-v", "error", "-threads", "0", "-i", str(path), "-f", "null", "-"]
        cases["ffmpeg CLI -f null"] = lambda: subprocess.run(cmd, check=True)
    medians = interleaved(cases, repeat, warmup=1)
    report(f"1080p H.264 decode: {path.name} ({frames} frames)"
           + ("" if ffmpeg else "  [ffmpeg CLI not installed]"),
           medians, "PyAV bare decode loop (threads auto)", unit="fps", per=frames)


# ----------------------------------------------------------------------------- resize
def bench_resize(jpeg: Path, repeat: int) -> None:
    import av

    bgr = cv2.resize(cv2.imread(str(jpeg)), (1920, 1080), interpolation=cv2.INTER_AREA)
    frame = Frame.from_array(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), "i420")
    from viewfinder.media import convert

    nv12 = convert(frame, "nv12")
    compact = nv12.to_array()
    y, uv = compact[:1080], compact[1080:].reshape(540, 960, 2)
    av_frame = av.VideoFrame.from_ndarray(compact, format="nv12")

    def opencv_route() -> np.ndarray:
        small = cv2.resize(cv2.cvtColor(compact, cv2.COLOR_YUV2BGR_NV12), (640, 360),
                           interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(small, cv2.COLOR_BGR2YUV_I420)

    cases = {
        "viewfinder resize NV12 plane by plane": lambda: resize(nv12, 640, 360),
        "viewfinder letterbox NV12 -> 416x416": lambda: letterbox_frame(nv12, 416, 416),
        "OpenCV cv2.resize on Y and UV arrays": lambda: (
            cv2.resize(y, (640, 360)), cv2.resize(uv, (320, 180))),
        "OpenCV NV12->BGR, resize, BGR->I420": opencv_route,
        "FFmpeg swscale NV12->NV12 (PyAV reformat)": lambda: av_frame.reformat(
            640, 360, "nv12", interpolation="BILINEAR").to_ndarray(),
    }
    for mode in ("area", "nearest"):
        cases[f"viewfinder resize NV12 ({mode})"] = (
            lambda m=mode: resize(nv12, 640, 360, m))
    medians = interleaved(cases, repeat)
    report("NV12 resize 1920x1080 -> 640x360 (bilinear unless named)", medians,
           "OpenCV cv2.resize on Y and UV arrays")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=("jpeg", "video", "resize"), help="one section")
    args = parser.parse_args()
    root = shared_dir()
    print(describe_host(PACKAGES))
    print(f"ffmpeg CLI: {shutil.which('ffmpeg') or 'not installed'}; "
          f"OpenCV threads: {cv2.getNumThreads()}")
    rep = 5 if args.quick else 15
    if args.only in (None, "jpeg"):
        bench_jpeg([root / "images" / "crowd_selfie.jpg", root / "images" / "group_t1.jpg",
                    root / "images" / "dog.jpg"], repeat=rep * 2)
    if args.only in (None, "video"):
        bench_video(root / "video" / "crowd_pan_1920x1080_h264.mp4", repeat=max(3, rep // 2))
    if args.only in (None, "resize"):
        bench_resize(root / "images" / "crowd_selfie.jpg", repeat=rep * 2)


if __name__ == "__main__":
    main()
