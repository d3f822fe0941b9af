"""Live sources against a real MPEG-TS server on loopback: reconnect after the server
goes away, resolution changes, several streams at different rates in one batch, and
the ``latest`` mode's drops."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from viewfinder.media.live import LiveReader
from viewfinder.media.sources import open_source
from viewfinder.media.tsserver import encode_ts
from viewfinder.media.video import probe
from viewfinder.runner import run
from viewfinder.sinks import open_sinks
from viewfinder.structures import Detections

pytestmark = pytest.mark.xdist_group("live")


@pytest.fixture(scope="module")
def clips(shared: Path, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ts")
    video = shared / "video" / "one_face_640x480_h264.mp4"
    small = d / "small.ts"
    encode_ts(video, small, size=(96, 64), frames=20, fps=25)
    out = {"a": d / "a.ts", "b": d / "b.ts", "sizes": d / "sizes.ts"}
    encode_ts(video, out["a"], size=(160, 120), frames=50, fps=25)
    encode_ts(shared / "video" / "group_pan_640x480_h264.mp4", out["b"], size=(160, 120),
              frames=20, fps=10)
    encode_ts(video, out["sizes"], size=(160, 120), frames=20, fps=25)
    with open(out["sizes"], "ab") as f:  # a second stream of another size, joined on
        f.write(small.read_bytes())
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(path: Path, port: int, fps: float, loop: bool = True) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "viewfinder.media.tsserver", str(path), "--port", str(port),
           "--fps", str(fps)] + (["--loop"] if loop else [])
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until it listens
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the stream server did not start")


class Mean:
    """A plain task: one box per frame scored by brightness; records its batches."""

    name = "mean"

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay

    def image(self, image: np.ndarray) -> Detections:
        time.sleep(self.delay)
        h, w = image.shape[:2]
        return Detections([[0, 0, w, h]], [image.mean() / 255])

    def frame(self, image: np.ndarray, t: float) -> Detections:
        return self.image(image)

    def frames(self, batch: list) -> list[Detections]:
        self.batches.append([s for s, _, _ in batch])
        return [self.image(im) for _, im, _ in batch]

    def reset(self) -> None:
        pass


def test_the_reader_reconnects_when_the_server_comes_back(clips) -> None:
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = _server(clips["a"], port, 25)
    reader = LiveReader("url", url, mode="all", timeout=2, reconnect=20, backoff=0.2,
                        max_delay=0.5, max_frames=40)
    frames = []
    restarted: list[subprocess.Popen] = []

    def consume() -> None:
        for frame in reader:
            frames.append(frame)
            if len(frames) == 10:
                proc.kill()  # the camera goes away mid-stream...
                proc.wait()
                time.sleep(1.0)
                restarted.append(_server(clips["a"], port, 25))  # ...and comes back

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(60)
    for p in restarted:
        p.kill()
    assert not worker.is_alive() and len(frames) == 40
    assert len(reader.stats.outages) == 1 and reader.stats.outages[0].seconds >= 1.0
    assert [f.index for f in frames] == list(range(40))  # counting goes on across the drop
    assert all(f.image.shape == (120, 160, 3) for f in frames)


def test_a_stream_that_changes_resolution(clips, tmp_path: Path) -> None:
    port = _free_port()
    proc = _server(clips["sizes"], port, 50, loop=False)
    try:
        source = open_source(f"tcp://127.0.0.1:{port}", live="all", reconnect=0, timeout=5)
        out = tmp_path / "v.mp4"
        sizes = []
        report = run(Mean(), source, open_sinks(source, out, None),
                     on_result=lambda item, _: sizes.append(item.image.shape[:2]))
    finally:
        proc.kill()
    assert sizes[0] == (120, 160) and sizes[-1] == (64, 96)
    assert set(sizes) == {(120, 160), (64, 96)} and report.frames >= 36
    info = probe(out)  # one video at the first size, every frame in it
    assert (info.width, info.height, info.frames) == (160, 120, report.frames)


def test_two_streams_at_different_rates_share_batches(clips, tmp_path: Path) -> None:
    ports = _free_port(), _free_port()
    procs = [_server(clips["a"], ports[0], 25), _server(clips["b"], ports[1], 10)]
    urls = [f"tcp://127.0.0.1:{p}" for p in ports]
    try:
        source = open_source(urls, live="all", max_frames=15, timeout=5)
        task = Mean(delay=0.03)  # slower than the frames: they wait together
        report = run(task, source, open_sinks(source, None, tmp_path / "r.jsonl"))
    finally:
        for p in procs:
            p.kill()
    assert report.streams == {urls[0]: 15, urls[1]: 15} and not report.failures
    assert any(len(b) == 2 for b in task.batches)  # one call held a frame of each stream
    a, b = (report.figures[u] for u in urls)
    assert a.frames_out == b.frames_out == 15 and len(a.latencies) == 15
    # the 25 fps stream's 15 frames came in before the 10 fps stream's
    last_b = max(i for i, batch in enumerate(task.batches) if urls[1] in batch)
    last_a = max(i for i, batch in enumerate(task.batches) if urls[0] in batch)
    assert last_a < last_b


def test_latest_mode_drops_frames_for_a_slow_task(clips) -> None:
    port = _free_port()
    proc = _server(clips["a"], port, 25)
    try:
        source = open_source(f"tcp://127.0.0.1:{port}", live="latest", max_frames=8, timeout=5)
        frames = []
        report = run(Mean(delay=0.15), source, [],
                     on_result=lambda item, _: frames.append(item.origin.frame))
    finally:
        proc.kill()
    fig = report.figures[f"tcp://127.0.0.1:{port}"]
    assert report.frames == 8 and fig.dropped > 0 and fig.frames_in > 8
    assert np.diff(frames).max() > 1  # the frames taken skip the ones that were dropped
