"""Face pipeline speed, side by side with InsightFace (PyPI ``insightface``) in one process.

Run: ``.venv/bin/python benchmarks/faces.py [--quick]``

Same ONNX files (shared/models/face), same images, peers interleaved in one loop
so machine load hits both alike; medians. Sections:

1. ``group_t1.jpg`` (6 faces) end to end: SCRFD-500M + 2d106det on every face.
2. ONNX Runtime session options measured (threads, graph optimisation), 2d106det
   with and without the PRelu rewrite on both backends, and landmark batching
   (one batch of 6 vs 6 calls of 1) on both backends.
3. ``one_face_640x480_h264.mp4`` fps including decode, detection every 10th frame.
4. ``crowd_selfie.jpg`` at a detector size that finds the crowd, every face landmarked
   (as configured, and with the landmark chunks run one after another: no OpenVINO
   streams, no ONNX Runtime workers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402
from viewfinder.config import shared_dir  # noqa: E402

SHARED = shared_dir()
FACE = SHARED / "models" / "face"
os.environ.setdefault("VIEWFINDER_MODELS", str(SHARED / "models"))


MINIMA: dict[str, float] = {}


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2
                ) -> dict[str, float]:
    """Median ms per call of each function, calls interleaved round by round.

    The minimum of each is kept in :data:`MINIMA` (the least-disturbed run: on a
    shared, loaded host the median carries other people's load, the minimum less so).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    MINIMA.update({k: min(v) * 1e3 for k, v in times.items()})
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def back_to_back(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 3
                 ) -> dict[str, float]:
    """Median ms per call of each function run alone, ``rounds`` calls in a row (warm
    caches, as a deployment runs one pipeline); the peers take turns block by block so
    that a change in machine load hits each of them within seconds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for block in range(4):
        for name, fn in fns.items():
            for _ in range(warmup if block == 0 else 1):
                fn()
            for _ in range(max(1, rounds // 4)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    MINIMA.update({k: min(v) * 1e3 for k, v in times.items()})
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def table(title: str, ms: dict[str, float], ref: str | None = None, unit: str = "ms") -> None:
    print(f"\n{title}")
    base = ms[ref] if ref else None
    for name, v in ms.items():
        ratio = f"  x{base / v:5.2f} vs {ref}" if base and name != ref else ""
        low = MINIMA.get(name) if unit == "ms" else None
        extra = f" (min {low:8.2f})" if low is not None else ""
        print(f"  {name:<44} {v:9.2f} {unit}{extra}{ratio}")


def ort_session(path: Path, threads: int = 0, level: str = "all", arena: bool = True,
                spin: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.enable_cpu_mem_arena = arena
    # no spinning (as viewfinder's sessions): with spinning, the threads of the session
    # timed just before keep spinning and slow the next one down 2-3x in this loop
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.log_severity_level = 3
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[level]
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class InsightFacePeer:
    """InsightFace's own SCRFD and Landmark classes on the same files (one face per call).

    Their ONNX Runtime sessions are made here without thread spinning (InsightFace's
    default spins): spinning threads left over from one peer's call would slow the next
    peer's call in the interleaved loop, whichever it is.
    """

    def __init__(self, det_size: tuple[int, int], threads: int = 0, spin: bool = False) -> None:
        from insightface.model_zoo.landmark import Landmark
        from insightface.model_zoo.scrfd import SCRFD

        det_path, lmk_path = FACE / "scrfd_500m_bnkps.onnx", FACE / "2d106det.onnx"
        self.det = SCRFD(str(det_path), ort_session(det_path, threads, spin=spin))
        self.det.prepare(-1, input_size=det_size, det_thresh=0.5)
        self.lmk = Landmark(str(lmk_path), ort_session(lmk_path, threads, spin=spin))
        self.lmk.prepare(-1)

    def __call__(self, img: np.ndarray, det_size: tuple[int, int] | None = None) -> list:
        from insightface.app.common import Face

        boxes, kps = self.det.detect(img, input_size=det_size)
        faces = [Face(bbox=b[:4], kps=k, det_score=b[4]) for b, k in zip(boxes, kps, strict=True)]
        for f in faces:
            self.lmk.get(img, f)
        return faces


def group_photo(rounds: int) -> None:
    from viewfinder.faces import FacePipeline

    img = cv2.imread(str(SHARED / "images" / "group_t1.jpg"))
    peer = InsightFacePeer((640, 640))
    pipes = {b: FacePipeline(backend=b) for b in ("ort", "auto")}
    pipes["ort 640x640"] = FacePipeline(backend="ort", det_size=(640, 640))
    fns: dict[str, Callable[[], object]] = {"insightface (det 640x640, 1 face/call)": lambda: peer(img)}
    for name, p in pipes.items():
        fns[f"viewfinder {name}"] = (lambda p=p: p(img))
    ms = interleaved(fns, rounds)
    table("group_t1.jpg, 6 faces, end to end (detect + 106 landmarks), median",
          ms, "insightface (det 640x640, 1 face/call)")
    spinning = InsightFacePeer((640, 640), spin=True)  # its own default: threads spin
    solo = back_to_back({"insightface, its default (spinning) threads": lambda: spinning(img),
                         "viewfinder ort": fns["viewfinder ort"],
                         "viewfinder auto": fns["viewfinder auto"]}, 2 * rounds)
    table("group_t1.jpg, the same calls back to back (each alone, warm caches), median",
          solo, "insightface, its default (spinning) threads")
    for name in ("ort", "auto"):
        for line in pipes[name].describe():
            print(f"  {name} ->", line)
    ours, theirs = pipes["ort 640x640"](img), peer(img)
    theirs_b = np.array([f.bbox for f in theirs])
    order = [int(np.argmin(np.abs(theirs_b - b).sum(1))) for b in ours.boxes]
    dl = np.abs(ours.landmarks - np.array([theirs[i].landmark_2d_106 for i in order])).max()
    print(f"  agreement with insightface at 640x640: boxes max |d| "
          f"{np.abs(ours.boxes - theirs_b[order]).max():.3f} px, landmarks {dl:.3f} px "
          "(insightface truncates the resized size and uses +1 NMS areas)")
    prof = FacePipeline(backend="auto", profile=True)
    for _ in range(rounds):
        prof(img)
    print("  stages (auto):", ", ".join(f"{n} {v:.1f} ms" for n, v, _ in prof.profile_rows()))


def session_options(rounds: int) -> None:
    from viewfinder.runtime.convert import dynamic_batch
    from viewfinder.runtime.session import load_session

    x_det = np.random.default_rng(0).random((1, 3, 448, 640), np.float32)
    x6 = np.random.default_rng(0).random((6, 3, 192, 192), np.float32) * 255
    fns: dict[str, Callable[[], object]] = {}
    for threads in (1, 2):
        for level in ("all", "basic", "disable"):
            s = ort_session(FACE / "scrfd_500m_bnkps.onnx", threads, level)
            fns[f"scrfd 640x448 ort t{threads} opt={level}"] = (
                lambda s=s: s.run(None, {"input.1": x_det}))
    for arena in (True, False):
        s = ort_session(FACE / "scrfd_500m_bnkps.onnx", 2, "all", arena)
        fns[f"scrfd 640x448 ort t2 opt=all arena={'on' if arena else 'off'}"] = (
            lambda s=s: s.run(None, {"input.1": x_det}))
    table("ONNX Runtime options, SCRFD-500M 640x448, median", interleaved(fns, rounds))
    fns = {}
    lmk = dynamic_batch(FACE / "2d106det.onnx")
    opt = dynamic_batch(FACE / "2d106det.onnx", optimize=True)  # PRelu -> Relu/Mul/Add
    for threads in (1, 2):
        for tag, path in (("", lmk), (" prelu-rewritten", opt)):
            s = ort_session(path, threads)
            fns[f"2d106det x1 ort t{threads}{tag}"] = lambda s=s: s.run(None, {"data": x6[:1]})
        for tag, path in (("", lmk), (" prelu-rewritten", opt)):
            try:
                s = load_session(path, backend="openvino", threads=threads)
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"  openvino: {exc}")
                continue
            fns[f"2d106det x1 openvino t{threads}{tag}"] = lambda s=s: s.run(x6[:1])
    for backend, path in (("ort", opt), ("openvino", lmk)):
        try:
            s = load_session(path, backend=backend, threads=2)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"  {backend}: {exc}")
            continue
        fns[f"2d106det batch 6 {backend} t2"] = lambda s=s: s.run(x6)
        if backend == "ort":
            s_na = ort_session(path, 2, "all", arena=False)
            fns["2d106det batch 6 ort t2 arena=off"] = (
                lambda s=s_na: s.run(None, {"data": x6}))
        fns[f"2d106det 6 calls of 1 {backend} t2"] = (
            lambda s=s: [s.run(x6[i:i + 1]) for i in range(6)])
    table("2d106det: threads and batching, median", interleaved(fns, rounds))


def video_fps(rounds: int, peer_frames: int = 50) -> None:
    from viewfinder.faces import FacePipeline
    from viewfinder.media.video import VideoReader

    path = SHARED / "video" / "one_face_640x480_h264.mp4"
    peer = InsightFacePeer((640, 480))
    pipes = {b: FacePipeline(backend=b, every=10) for b in ("ort", "auto")}

    def decode_only() -> None:
        for _ in VideoReader(path):
            pass

    def insight() -> None:  # the slow peer runs the first frames only; fps is per frame
        for f in VideoReader(path, max_frames=peer_frames):
            peer(f.image)

    fns: dict[str, Callable[[], object]] = {"decode only": decode_only,
                                            "insightface (detect every frame)": insight}
    for name, p in pipes.items():
        fns[f"viewfinder {name}, detect every 10th"] = (lambda p=p: p.run(path))
    fns["viewfinder auto, detector one frame ahead"] = (
        lambda p=pipes["auto"]: p.run(path, detect_ahead=True))
    ms = interleaved(fns, rounds, warmup=0)
    fps = {k: (peer_frames if k.startswith("insight") else 250) / (v / 1e3) for k, v in ms.items()}
    table("one_face_640x480_h264.mp4 incl. decode, fps (higher is better)", fps, unit="fps")
    best = {k: (peer_frames if k.startswith("insight") else 250) / (MINIMA[k] / 1e3) for k in ms}
    print("  best run:", ", ".join(f"{k} {v:.1f} fps" for k, v in best.items()))
    base = fps["insightface (detect every frame)"]
    for k, v in fps.items():
        if k.startswith("viewfinder"):
            print(f"  {k}: x{v / base:.2f} the fps of insightface")
    prof = FacePipeline(backend="auto", every=10, profile=True)
    prof.run(path)
    print("  stages (auto):", ", ".join(f"{n} {v:.2f}" for n, v, _ in prof.profile_rows()),
          "ms/frame")


def crowd(rounds: int) -> None:
    from viewfinder.faces import FacePipeline

    img = cv2.imread(str(SHARED / "images" / "crowd_selfie.jpg"))
    size = (1280, 736)
    peer = InsightFacePeer(size)
    pipes = {b: FacePipeline(backend=b, det_size=size) for b in ("ort", "auto")}
    one = FacePipeline(backend="auto", det_size=size)
    one.landmarker.parallel_min = 1 << 30  # no ONNX Runtime workers
    lm_session = one.landmarker.session  # chunks one after another, no streams
    lm_session.run_many = lambda feeds, s=lm_session: [s.run(f) for f in feeds]
    pipes["auto, chunks one after another"] = one
    n = len(pipes["ort"](img))
    for name in ("auto", "auto, chunks one after another"):
        pipes[name](img)  # first call: backend trial, batching trial, OpenVINO compiles
    fns: dict[str, Callable[[], object]] = {"insightface": lambda: peer(img, size)}
    for name, p in pipes.items():
        fns[f"viewfinder {name}"] = (lambda p=p: p(img))
    ms = interleaved(fns, rounds, warmup=0)
    table(f"crowd_selfie.jpg at {size[0]}x{size[1]}: {n} faces, all landmarked, median",
          ms, "insightface")
    prof = FacePipeline(backend="auto", det_size=size, profile=True)
    prof(img)
    prof.profiler.reset()
    prof(img)
    print("  stages (auto):", ", ".join(f"{n} {v:.0f} ms" for n, v, _ in prof.profile_rows()))


def int8(rounds: int) -> None:
    """2d106det quantized by the runtime (calibrated on crowd faces) vs f32: time and deltas."""
    import onnx

    from viewfinder.faces import load_detector, load_landmarker
    from viewfinder.faces.landmarks import Landmarker106
    from viewfinder.runtime.convert import dynamic_batch
    from viewfinder.runtime.convert.quantize import has_vnni, quantize_int8
    from viewfinder.runtime.session import load_session

    crowd = cv2.imread(str(SHARED / "images" / "crowd_selfie.jpg"))
    lm = load_landmarker("2d106det", backend="ort")
    calib, _ = lm.crops(crowd, load_detector("scrfd_500m", det_size=(1280, 736)).detect(crowd)
                        .boxes[::6][:64])
    tensors = [np.ascontiguousarray(c[None, ..., ::-1].transpose(0, 3, 1, 2), np.float32)
               for c in calib]
    q = quantize_int8(onnx.load(str(dynamic_batch(FACE / "2d106det.onnx"))), "data", tensors,
                      quant_format="qdq")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "vf_bench_2d106det_int8.onnx"
    onnx.save(q, str(path))
    img = cv2.imread(str(SHARED / "images" / "group_t1.jpg"))
    boxes = load_detector("scrfd_500m", backend="ort").detect(img).boxes
    ref = lm(img, boxes)
    variants = {"f32 ort": lm, "f32 openvino": load_landmarker("2d106det", backend="openvino")}
    try:
        variants["bf16 openvino"] = load_landmarker("2d106det", backend="openvino",
                                                    precision="bf16")
    except Exception as exc:  # noqa: BLE001 - no bf16 on this CPU: say so and go on
        print(f"  bf16: {exc}")
    for backend in ("ort", "openvino"):
        variants[f"int8 {backend}"] = Landmarker106(
            load_session(path, backend=backend, precision="int8"))
    ms = interleaved({k: (lambda v=v: v(img, boxes)) for k, v in variants.items()}, rounds)
    table(f"2d106det on 6 faces, int8 (VNNI: {has_vnni()}) vs f32, median", ms, "f32 ort")
    for k, v in variants.items():
        d = np.abs(v(img, boxes) - ref)
        print(f"  {k:<20} landmark delta vs f32 ORT: max {d.max():.4f} px, mean {d.mean():.4f} px")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--int8", action="store_true", help="also quantize 2d106det and compare")
    args = ap.parse_args()
    r = 5 if args.quick else 20
    print(describe_host(["numpy", "cv2", "onnxruntime", "openvino", "insightface", "av"]))
    print(f"threads: ORT default (0 = physical cores); os.cpu_count() = {os.cpu_count()}")
    group_photo(r)
    session_options(max(5, r // 2))
    video_fps(3 if not args.quick else 1)
    crowd(2 if not args.quick else 1)
    if args.int8:
        int8(r)


if __name__ == "__main__":
    main()
