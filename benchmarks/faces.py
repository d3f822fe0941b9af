"""Face pipeline speed, side by side with InsightFace and MediaPipe FaceMesh in one process.

Run: ``.venv/bin/python benchmarks/faces.py [--quick] [--more] [--int8]``

Same ONNX files (shared/models/face), same images and videos, peers interleaved in one
loop so machine load hits all alike; medians, and CPU time per call or frame (process
CPU, every thread: on a loaded or shared machine CPU per frame is what decides real
time). Sections (the default run takes ~3 minutes on 2 cores):

1. ``group_t1.jpg`` (6 faces) end to end through the API, against InsightFace at its
   defaults (its own ONNX Runtime sessions: default threads, spinning) and without
   spinning; then per image through the CLI (``viewfinder faces DIR --json``) on a
   folder of copies; then the model calls' floor (detector + one landmark batch alone).
2. ``one_face_640x480_h264.mp4`` and ``group_pan_640x480_h264.mp4`` incl. decode
   (PyAV, the same reader for every peer): viewfinder (detector every 10th frame)
   against MediaPipe FaceMesh (``mediapipe`` 0.10.21, legacy ``solutions.face_mesh``):
   fps, CPU ms per frame, faces per frame; and the floor (one 2d106det call).
3. ``--more``: ONNX Runtime options, 2d106det threads and batching, the crowd photo.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from viewfinder.runtime.threads import thread_budget  # noqa: E402

SHARED = shared_dir()
FACE = SHARED / "models" / "face"
os.environ.setdefault("VIEWFINDER_MODELS", str(SHARED / "models"))


MINIMA: dict[str, float] = {}
CPU: dict[str, float] = {}  # median process CPU ms per call (all threads)


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
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    MINIMA.update({k: min(v) * 1e3 for k, v in times.items()})
    CPU.update({k: statistics.median(v) * 1e3 for k, v in cpu.items()})
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
        if name in CPU and unit == "ms":
            extra += f"  cpu {CPU[name]:8.2f} ms"
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
    default = InsightFacePeer((640, 640), spin=True)  # its defaults: ORT's threads, spinning
    quiet = InsightFacePeer((640, 640))
    pipes = {b: FacePipeline(backend=b) for b in ("auto", "ort")}
    ref = "insightface, its defaults (spinning threads)"
    fns: dict[str, Callable[[], object]] = {ref: lambda: default(img),
                                            "insightface, threads not spinning": lambda: quiet(img)}
    for name, p in pipes.items():
        fns[f"viewfinder {name}"] = (lambda p=p: p(img))
    ms = interleaved(fns, rounds)
    table("group_t1.jpg, 6 faces, end to end through the API (detect + 106 landmarks), "
          "interleaved, median", ms, ref)
    RESULTS["group api"] = (ms[ref], ms["viewfinder auto"])
    for name in ("ort", "auto"):
        for line in pipes[name].describe():
            print(f"  {name} ->", line)
    ours, theirs = FacePipeline(backend="ort", det_size=(640, 640))(img), quiet(img)
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
    floor(pipes["auto"], img, ms[ref], rounds)


def floor(pipe, img: np.ndarray, peer_ms: float, rounds: int) -> None:
    """The model calls alone, on the sessions the pipeline runs: what a 6x would need."""
    faces = pipe(img)
    det, lm = pipe.detector, pipe.landmarker
    blob = det.session.inputs[0]
    w, h = det.input_size(img.shape[1], img.shape[0])
    x = np.zeros((1, 3, h, w), np.float32)
    crops = lm._blob(lm._crops(cv2.cvtColor(img, cv2.COLOR_BGR2BGRA),
                               _matrices(faces.boxes, lm.size)))
    fns = {f"detector {x.shape[3]}x{x.shape[2]} ({det.session.backend})":
           lambda: det.session.run({blob.name: x}),
           f"2d106det, {len(crops)} faces in one call ({lm.session.backend})":
           lambda: lm.session.run(crops)}
    ms = interleaved(fns, rounds)
    table("the model calls alone (floor), median", ms)
    both = sum(ms.values())
    low = sum(MINIMA[k] for k in ms)
    print(f"  floor: {both:.1f} ms median, {low:.1f} ms best; 3x insightface at its defaults = "
          f"{peer_ms / 3:.1f} ms, 6x = {peer_ms / 6:.1f} ms")


def _matrices(boxes: np.ndarray, size: int) -> np.ndarray:
    from viewfinder.faces.landmarks import crop_matrices

    return crop_matrices(boxes, size)


def cli_folder(rounds: int, copies: int = 21) -> None:
    """Per image through ``viewfinder faces DIR --json`` (a folder is a set of photos):
    (run on ``copies`` images - run on 1 image) / (copies - 1), so the model load and
    the process start-up drop out; InsightFace at its defaults reads the same files."""
    import shutil
    import tempfile

    from viewfinder.cli import main as vf_main

    src = SHARED / "images" / "group_t1.jpg"
    tmp = Path(tempfile.mkdtemp(prefix="vf_bench_faces_"))
    many, one = tmp / "many", tmp / "one"
    for folder, n in ((many, copies), (one, 1)):
        folder.mkdir()
        for i in range(n):
            shutil.copy(src, folder / f"copy{i:02d}.jpg")
    peer = InsightFacePeer((640, 640), spin=True)
    files = sorted(many.iterdir())

    def insight() -> None:
        for f in files:
            peer(cv2.imread(str(f)))

    def cli(folder: Path) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its one-line summaries
            code = vf_main(["faces", str(folder), "--json", str(tmp / "out.jsonl")])
        if code != 0:
            raise SystemExit("viewfinder faces failed")

    fns = {"insightface": insight, "cli many": lambda: cli(many), "cli one": lambda: cli(one)}
    ms = interleaved(fns, rounds, warmup=1)
    per = {"insightface, its defaults, imread + call": ms["insightface"] / copies,
           "viewfinder faces DIR --json, per image": (ms["cli many"] - ms["cli one"]) / (copies - 1)}
    cpu = {"insightface, its defaults, imread + call": CPU["insightface"] / copies,
           "viewfinder faces DIR --json, per image": (CPU["cli many"] - CPU["cli one"]) / (copies - 1)}
    print(f"\ngroup_t1.jpg x{copies} in a folder, per image, interleaved, median "
          f"(CLI one image: {ms['cli one']:.0f} ms incl. model load)")
    ref = "insightface, its defaults, imread + call"
    for k, v in per.items():
        ratio = f"  x{per[ref] / v:5.2f} vs insightface" if k != ref else ""
        print(f"  {k:<44} {v:9.2f} ms  cpu {cpu[k]:8.2f} ms{ratio}")
    RESULTS["group cli"] = (per[ref], per["viewfinder faces DIR --json, per image"])
    shutil.rmtree(tmp, ignore_errors=True)


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


def videos(rounds: int) -> None:
    """Both videos incl. decode: viewfinder against MediaPipe FaceMesh, fps and CPU/frame."""
    for name, max_faces in (("one_face_640x480_h264.mp4", 1), ("group_pan_640x480_h264.mp4", 10)):
        one_video(name, max_faces, rounds)
    landmark_floor(rounds * 10)


def one_video(name: str, max_faces: int, rounds: int) -> None:
    """One video: decode alone, MediaPipe FaceMesh and viewfinder, interleaved."""
    from _mediapipe_peer import FaceMeshPeer
    from viewfinder.faces import FacePipeline
    from viewfinder.media.sources import open_source
    from viewfinder.media.video import VideoReader
    from viewfinder.runner import run
    from viewfinder.tasks import FacesTask

    path = SHARED / "video" / name
    mesh = FaceMeshPeer(max_faces)
    task = FacesTask(FacePipeline(every=10))
    counts: dict[str, tuple[int, int]] = {}

    def ours(task=task, path=path) -> None:
        rep = run(task, open_source([path]))
        counts["viewfinder auto, detect every 10th"] = (rep.frames, rep.detections)

    def theirs(mesh=mesh, path=path) -> None:
        counts[f"mediapipe facemesh (max_num_faces={max_faces})"] = mesh.run(path, VideoReader)

    def decode(path=path) -> None:
        counts["decode only"] = (sum(1 for _ in VideoReader(path)), 0)

    fns = {"decode only": decode, f"mediapipe facemesh (max_num_faces={max_faces})": theirs,
           "viewfinder auto, detect every 10th": ours}
    ms = interleaved(fns, rounds, warmup=1)
    print(f"\n{name} incl. decode, interleaved, median of {rounds}")
    ref = f"mediapipe facemesh (max_num_faces={max_faces})"
    fps = {k: counts[k][0] / (v / 1e3) for k, v in ms.items()}
    for k in fns:
        n, found = counts[k]
        ratio = f"  x{fps[k] / fps[ref]:5.2f} fps, x{CPU[ref] / CPU[k]:5.2f} cpu vs mediapipe" \
            if k.startswith("viewfinder") else ""
        print(f"  {k:<44} {fps[k]:7.1f} fps  cpu {CPU[k] / n:6.2f} ms/frame  "
              f"faces/frame {found / n:4.2f}{ratio}")
    vf = "viewfinder auto, detect every 10th"
    RESULTS[name] = (fps[ref], CPU[ref] / counts[ref][0], fps[vf], CPU[vf] / counts[vf][0])
    for line in task.describe():
        print("  ->", line)


def landmark_floor(rounds: int) -> None:
    """What one face a frame costs in model work alone: one 2d106det call."""
    from viewfinder.faces import load_landmarker

    lm = load_landmarker("2d106det")
    crop = np.zeros((1, 192, 192, 4), np.uint8)
    ms = interleaved({f"2d106det, 1 face ({lm.session.backend}, {lm.session.threads} threads)":
                      lambda: lm.session.run(crop)}, rounds)
    table("the model call alone (floor of the one-face video per frame), median", ms)


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


RESULTS: dict[str, tuple[float, ...]] = {}


def summary() -> None:
    """The issue's lines, from this run."""
    print("\nsummary (this run, interleaved):")
    if "group api" in RESULTS:
        peer, ours = RESULTS["group api"]
        print(f"  group_t1 API: insightface {peer:.1f} ms, viewfinder {ours:.1f} ms, x{peer / ours:.2f}")
    if "group cli" in RESULTS:
        peer, ours = RESULTS["group cli"]
        print(f"  group_t1 CLI folder, per image: insightface {peer:.1f} ms, viewfinder {ours:.1f} "
              f"ms, x{peer / ours:.2f}")
    for name in ("one_face_640x480_h264.mp4", "group_pan_640x480_h264.mp4"):
        if name in RESULTS:
            f0, c0, f1, c1 = RESULTS[name]
            print(f"  {name}: mediapipe {f0:.1f} fps {c0:.2f} ms cpu/frame; viewfinder "
                  f"{f1:.1f} fps {c1:.2f} ms cpu/frame (x{f1 / f0:.2f} fps, x{c0 / c1:.2f} cpu)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--more", action="store_true",
                    help="also ONNX Runtime options, 2d106det threads/batching, the crowd")
    ap.add_argument("--int8", action="store_true", help="also quantize 2d106det and compare")
    args = ap.parse_args()
    r = 5 if args.quick else 15
    print(describe_host(["numpy", "cv2", "onnxruntime", "openvino", "insightface", "mediapipe",
                         "av"]))
    print(f"threads: budget {thread_budget()} (VIEWFINDER_THREADS or physical cores); "
          f"os.cpu_count() = {os.cpu_count()}; load average {os.getloadavg()[0]:.1f} at start")
    group_photo(r)
    cli_folder(2 if args.quick else 3)
    videos(1 if args.quick else 3)
    if args.more:
        session_options(max(5, r // 2))
        crowd(2 if not args.quick else 1)
    if args.int8:
        int8(r)
    summary()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
