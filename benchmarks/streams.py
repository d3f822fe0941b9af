"""Live streams: how many 640x480 25 fps cameras 2 cores hold, batched in one process
against one process per camera, and the ``latest`` mode at twice that many.

Each camera is a looping MPEG-TS stream (H.264, GOP 10) of a shared video, served on
loopback by ``viewfinder.media.tsserver`` (one server process per camera, paced at
25 fps); the clients decode it with FFmpeg as they would a network camera. The task is
the face pipeline (SCRFD-0.5GF + 106 landmarks, detector every 10th frame, tracked and
smoothed: ``viewfinder faces URL... --every 10``).

A configuration "holds" N streams when, after a warm-up, every stream is processed at
>= 95 % of 25 fps with a capture-to-result p99 latency <= 200 ms (mode ``all``: every
frame). Capture is the moment the client decoded the frame. Figures per run: fps out
per stream (min), latency p50/p99 (worst stream), process CPU time per frame.

    python benchmarks/streams.py [--seconds 8] [--max-streams 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import describe_host  # noqa: E402

FPS = 25.0
WARMUP_S = 3.0
VIDEOS = ("one_face_640x480_h264.mp4", "group_pan_640x480_h264.mp4")


def _shared() -> Path:
    return Path(os.environ.get("VIEWFINDER_SHARED", Path(__file__).parents[1].parent / "shared"))


os.environ.setdefault("VIEWFINDER_MODELS", str(_shared() / "models"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _servers(clips: list[Path], n: int) -> tuple[list[str], list[subprocess.Popen]]:
    urls, procs = [], []
    for k in range(n):
        port = _free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "viewfinder.media.tsserver",
                                       str(clips[k % len(clips)]), "--port", str(port),
                                       "--fps", str(FPS), "--loop"]))
        urls.append(f"tcp://127.0.0.1:{port}")
    for url in urls:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
    return urls, procs


def child(urls: list[str], seconds: float, mode: str, threads: int) -> dict:
    """Run the face task over ``urls`` for ``seconds`` after the warm-up; figures as JSON."""
    from viewfinder.media.sources import open_source
    from viewfinder.runner import run
    from viewfinder.tasks import build_task

    task = build_task("faces", every=10, threads=threads)
    frames = int((WARMUP_S + seconds) * FPS)
    source = open_source(urls, live=mode, max_frames=frames, timeout=10, reconnect=0)
    seen: dict[str, list[tuple[float, float, int]]] = {u: [] for u in urls}
    t_cpu0 = time.process_time()

    def on_result(item, _result) -> None:
        seen[item.origin.stream].append((time.monotonic(), item.captured, item.origin.frame))

    run(task, source, [], on_result=on_result)
    cpu = time.process_time() - t_cpu0
    out = {}
    for url, rows in seen.items():
        if not rows:
            out[url] = {"fps": 0.0, "p50": float("nan"), "p99": float("nan"), "drop": 1.0}
            continue
        t0 = rows[0][0] + WARMUP_S
        steady = [r for r in rows if r[0] >= t0]
        span = steady[-1][0] - steady[0][0] if len(steady) > 1 else 0.0
        lat = np.array([r[0] - r[1] for r in steady]) * 1000
        got = len(steady)
        arrived = steady[-1][2] - steady[0][2] + 1 if steady else 0
        out[url] = {"fps": (got - 1) / span if span > 0 else 0.0,
                    "p50": float(np.percentile(lat, 50)) if got else float("nan"),
                    "p99": float(np.percentile(lat, 99)) if got else float("nan"),
                    "drop": 1 - got / arrived if arrived else 0.0}
    total = sum(len(r) for r in seen.values())
    return {"streams": out, "cpu_ms_per_frame": 1000 * cpu / max(total, 1)}


def _launch(urls: list[str], seconds: float, mode: str, threads: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(urls),
                             "--seconds", str(seconds), "--mode", mode,
                             "--threads", str(threads)], stdout=subprocess.PIPE, text=True)


def trial(urls: list[str], seconds: float, mode: str, separate: bool) -> dict:
    """Batched (one process) or separate (one process per stream, 1 thread each)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if separate:
        procs = [_launch([u], seconds, mode, 1) for u in urls]
    else:
        procs = [_launch(urls, seconds, mode, 0)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    streams = {k: v for r in results for k, v in r["streams"].items()}
    fps = min(v["fps"] for v in streams.values())
    p50 = max(v["p50"] for v in streams.values())
    p99 = max(v["p99"] for v in streams.values())
    drop = float(np.mean([v["drop"] for v in streams.values()]))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"fps": fps, "p50": p50, "p99": p99, "drop": drop, "cpu_s": cpu,
            "cpu_ms_per_frame": float(np.mean([r["cpu_ms_per_frame"] for r in results])),
            "holds": fps >= 0.95 * FPS and p99 <= 200}


def _row(name: str, n: int, r: dict) -> str:
    return (f"{name:<22} N={n:<2} min fps {r['fps']:5.1f}  p50 {r['p50']:6.0f} ms  "
            f"p99 {r['p99']:6.0f} ms  drop {r['drop']:5.1%}  CPU/frame "
            f"{r['cpu_ms_per_frame']:5.1f} ms  {'holds' if r['holds'] else 'does not hold'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--max-streams", type=int, default=6)
    parser.add_argument("--child")
    parser.add_argument("--mode", default="all")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.seconds, args.mode, args.threads)))
        return
    print(describe_host(["numpy", "cv2", "onnxruntime", "openvino", "av"]))
    from viewfinder.media.tsserver import encode_ts

    tmp = Path(tempfile.mkdtemp(prefix="vf-streams-"))
    clips = []
    for name in VIDEOS:
        clip = tmp / (Path(name).stem + ".ts")
        encode_ts(_shared() / "video" / name, clip, fps=FPS)
        clips.append(clip)
    best = {"batched": 0, "separate": 0}
    for n in range(1, args.max_streams + 1):
        urls, procs = _servers(clips, n)
        try:
            for name, separate in (("batched (1 process)", False),
                                   ("separate (N processes)", True)):
                key = "separate" if separate else "batched"
                if best[key] < n - 1:
                    continue  # it already failed at fewer streams
                r = trial(urls, args.seconds, "all", separate)
                print(_row(name, n, r), flush=True)
                if r["holds"]:
                    best[key] = n
        finally:
            for p in procs:
                p.kill()
        if best["batched"] < n and best["separate"] < n:
            break
    print(f"largest N held at 25 fps with p99 <= 200 ms: batched {best['batched']}, "
          f"separate processes {best['separate']}")
    n2 = max(2, 2 * max(best.values()))
    urls, procs = _servers(clips, n2)
    try:
        r = trial(urls, args.seconds, "latest", False)
        print(_row("latest, batched", n2, r))
    finally:
        for p in procs:
            p.kill()


if __name__ == "__main__":
    main()
