"""YOLOv3-tiny benchmarks: inference on ONNX Runtime (float32 and static int8) vs OpenCV
DNN 4.x, int8's accuracy cost, and a training step fp32 vs bf16 autocast on CPU.

    .venv/bin/python benchmarks/yolo.py [--repeat 30] [--cv4 /tmp/cv4/bin/python]

int8 is ``load_yolo(..., precision="int8")`` calibrated on the first ``--calib-limit``
images of the coco256-voc train split (quantized once per ``VIEWFINDER_CACHE``; the
time it took is printed). Its accuracy line: person AP (VOC07 11-point) on the test
split, float32 vs int8, and how far int8's dog.jpg boxes and scores move.

OpenCV 5 no longer reads Darknet files, so the OpenCV side runs in a separate
environment with ``opencv-python-headless<5`` (``python -m venv /tmp/cv4 &&
/tmp/cv4/bin/pip install 'opencv-python-headless<5'``) as a worker subprocess. The
two peers are interleaved round by round (one call each per round), so machine
load hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags, describe_host  # noqa: E402

# The OpenCV worker: reads "<mode> <n>" lines, answers with JSON lists of seconds.
_WORKER = r"""
import json, sys, time
import cv2, numpy as np
cfg, weights, image_path, threads = sys.argv[1:5]
if int(threads) > 0:
    cv2.setNumThreads(int(threads))
net = cv2.dnn.readNetFromDarknet(cfg, weights)
net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
names = net.getUnconnectedOutLayersNames()
img = cv2.imread(image_path)
blob = cv2.dnn.blobFromImage(img, 1 / 255.0, (416, 416), swapRB=True, crop=False)

def forward():
    net.setInput(blob)
    return net.forward(names)

def detect():
    b = cv2.dnn.blobFromImage(img, 1 / 255.0, (416, 416), swapRB=True, crop=False)
    net.setInput(b)
    outs = np.concatenate([o.reshape(-1, o.shape[-1]) for o in net.forward(names)])
    scores = outs[:, 5:] * outs[:, 4:5]
    k, c = np.nonzero(scores > 0.25)
    h, w = img.shape[:2]
    boxes = outs[k, :4] * [w, h, w, h]
    boxes[:, :2] -= boxes[:, 2:] / 2
    keep = cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores[k, c].tolist(), c.tolist(), 0.25, 0.45)
    return len(keep)

print(json.dumps({"version": cv2.__version__, "dets": detect()}), flush=True)
for line in sys.stdin:
    mode, n = line.split()
    fn = forward if mode == "forward" else detect
    times = []
    for _ in range(int(n)):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    print(json.dumps(times), flush=True)
"""


class OpenCVWorker:
    """OpenCV DNN 4.x in another Python, driven over a pipe."""

    def __init__(self, python: str, cfg: Path, weights: Path, image: Path, threads: int) -> None:
        fd, name = tempfile.mkstemp(suffix=".py")
        os.close(fd)
        self._script = Path(name)
        self._script.write_text(_WORKER)
        self.proc = subprocess.Popen([python, name, str(cfg), str(weights),
                                      str(image), str(threads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.proc.stdout.readline())
        self.version, self.dets = hello["version"], hello["dets"]

    def run(self, mode: str, n: int = 1) -> list[tuple[float, float]]:
        """``n`` calls: (wall, process CPU) seconds each."""
        self.proc.stdin.write(f"{mode} {n}\n")
        self.proc.stdin.flush()
        return [tuple(t) for t in json.loads(self.proc.stdout.readline())]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self._script.unlink(missing_ok=True)


def _post(raw, det) -> object:
    from viewfinder.detect.yolo import decode_candidates, postprocess

    return postprocess(*decode_candidates(raw, det.info.heads, det.conf), det.conf, det.iou)


def _timed(fn) -> tuple[float, float]:
    """(wall, process CPU) seconds of one call. CPU time counts all threads; with
    ``--threads 1`` it estimates the latency on an idle core when the host is busy."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _calibration_files(limit: int) -> list[Path]:
    from viewfinder.config import shared_dir

    root = shared_dir() / "data/coco256-voc"
    ids = (root / "ImageSets/Main/train.txt").read_text().split()[:limit]
    return [root / "JPEGImages" / f"{i}.jpg" for i in ids]


def load_detectors(args, files: dict[str, Path]) -> dict[str, object]:
    """float32 raw and nms graphs, and int8 (raw graph) calibrated on coco256-voc train."""
    from viewfinder.detect.yolo import load_yolo

    dets = {g: load_yolo(files["cfg"], graph=g, threads=args.threads) for g in ("raw", "nms")}
    t0 = time.perf_counter()
    dets["int8"] = load_yolo(files["cfg"], precision="int8", threads=args.threads,
                             calib=_calibration_files(args.calib_limit),
                             calib_limit=args.calib_limit)
    print(f"int8 ready in {time.perf_counter() - t0:.1f} s (quantized on {args.calib_limit} "
          f"coco256-voc train images, or reused from VIEWFINDER_CACHE): "
          f"{dets['int8'].session.path}")
    return dets


def bench_inference(args, dets: dict[str, object], files: dict[str, Path], image: Path) -> None:
    from viewfinder.detect.yolo import preprocess
    from viewfinder.media import read_image

    img = read_image(image)
    blob, _ = preprocess(img, (416, 416))
    raw = dets["raw"].session.run(blob)
    peers = {
        "viewfinder preprocess (Darknet letterbox, RGB, /255)": lambda: preprocess(img, (416, 416)),
        "viewfinder decode + class-wise NMS (NumPy)": lambda: _post(raw, dets["raw"]),
        "viewfinder ORT forward": lambda: dets["raw"].session.run(blob),
        "viewfinder ORT int8 forward": lambda: dets["int8"].session.run(blob),
        "viewfinder ORT detect (raw graph + NumPy decode/NMS)": lambda: dets["raw"].detect(img),
        "viewfinder ORT detect (decode+NMS in graph)": lambda: dets["nms"].detect(img),
        "viewfinder ORT int8 detect (raw graph + NumPy)": lambda: dets["int8"].detect(img),
    }
    cv = None
    if args.cv4 and Path(args.cv4).exists():
        cv = OpenCVWorker(args.cv4, files["cfg"], files["weights"], image, args.threads)
        print(f"OpenCV DNN {cv.version} (subprocess {args.cv4}); it finds {cv.dets} boxes "
              f"at conf 0.25, viewfinder {len(dets['raw'].detect(img))}")
    else:
        print(f"OpenCV 4.x worker not found at {args.cv4}: OpenCV side skipped")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in peers}
    if cv:
        times["OpenCV DNN forward"], times["OpenCV DNN detect"] = [], []
    for _ in range(3):  # warm-up
        for fn in peers.values():
            fn()
        if cv:
            cv.run("forward"), cv.run("detect")
    for _ in range(args.repeat):  # interleaved: one call of each peer per round
        for name, fn in peers.items():
            times[name].append(_timed(fn))
        if cv:
            times["OpenCV DNN forward"] += cv.run("forward")
            times["OpenCV DNN detect"] += cv.run("detect")
    if cv:
        cv.close()
    _report("yolov3-tiny 416x416, dog.jpg 768x576, CPU, batch 1", times,
            "OpenCV DNN forward" if cv else "viewfinder ORT forward", target_ms=35.0)


def _report(title: str, times: dict[str, list[tuple[float, float]]], baseline: str,
            target_ms: float | None = None) -> None:
    print(f"\n{title} (median of {len(next(iter(times.values())))}, interleaved)")
    print(f"  {'':55s} {'wall':>11s} {'ratio':>6s} {'CPU time':>11s}")
    base = statistics.median(t[0] for t in times[baseline])
    for name, t in times.items():
        wall = statistics.median(x[0] for x in t)
        cpu = statistics.median(x[1] for x in t)
        extra = ""
        if target_ms and "detect" in name:
            extra = f"  target <= {target_ms:g} ms: {'met' if wall * 1e3 <= target_ms else 'MISSED'}"
        print(f"  {name:55s} {wall * 1e3:8.2f} ms x{wall / base:5.2f} {cpu * 1e3:8.2f} ms{extra}")
    print(f"  (ratio: wall time / {baseline}; CPU time: process CPU, all threads)")


def _person_ap(det, split) -> float:
    import numpy as np

    from viewfinder.detect.train.voc import evaluate_voc
    from viewfinder.media import read_image
    from viewfinder.structures import Detections

    found = []
    for item in split.items:
        r = det.detect(read_image(item.image_path))
        keep = np.array([r.names[c] == "person" for c in r.class_ids], bool)
        found.append(Detections(r.boxes[keep], r.scores[keep], np.zeros(int(keep.sum()), np.int64),
                                ("person",)))
    return evaluate_voc(split, found)["AP/person"]


def _dog_change(ref, got) -> str:
    """Each float32 detection against int8's best-overlapping one of the same class."""
    import numpy as np

    from viewfinder.ops.boxes import box_iou

    box, score, iou, missing = (0.0, ""), 0.0, 1.0, []
    for i in range(len(ref)):
        same = np.nonzero(got.class_ids == ref.class_ids[i])[0]
        if not len(same):
            missing.append(ref.label(i))
            continue
        overlaps = box_iou(ref.boxes[i:i + 1], got.boxes[same])[0]
        j = same[int(overlaps.argmax())]
        delta = float(np.abs(got.boxes[j] - ref.boxes[i]).max())
        box = max(box, (delta, ref.label(i)))
        score = max(score, abs(float(got.scores[j] - ref.scores[i])))
        iou = min(iou, float(overlaps.max()))
    return (f"f32 {len(ref)} boxes, int8 {len(got)}; max box change {box[0]:.1f} px ({box[1]}), "
            f"min IoU {iou:.3f}, max score change {score:.3f}; missing in int8: "
            f"{', '.join(missing) or 'none'}")


def bench_accuracy(dets: dict[str, object], image: Path) -> None:
    """person AP on the coco256-voc test split and the dog.jpg change, f32 vs int8."""
    from viewfinder.config import shared_dir
    from viewfinder.detect.train.voc import read_voc
    from viewfinder.media import read_image

    split = read_voc(shared_dir() / "data/coco256-voc", "test")
    ap = {}
    for name in ("raw", "int8"):
        det = dets[name]
        det.conf = 0.005
        ap[name] = _person_ap(det, split)
        det.conf = 0.25
    img = read_image(image)
    print(f"\naccuracy: person AP (VOC07 11-point, coco256-voc test, {len(split.items)} images, "
          f"conf 0.005): f32 {ap['raw'] * 100:.1f}, int8 {ap['int8'] * 100:.1f} "
          f"({(ap['int8'] - ap['raw']) * 100:+.1f})")
    change = _dog_change(dets["raw"].detect(img), dets["int8"].detect(img))
    print(f"  dog.jpg at conf 0.25: {change}")


def bench_training(args, files: dict[str, Path]) -> None:
    import torch

    from viewfinder.detect.darknet import build_darknet
    from viewfinder.detect.train.loss import YoloTrainModel
    from viewfinder.train import AmpPolicy, Trainer, make_scaler

    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, 416, 416)
    targets = torch.tensor([[i, i % 80, 200.0, 180.0, 120.0, 90.0] for i in range(args.batch)])
    trainers = {}
    for amp in ("fp32", "bf16"):
        model = YoloTrainModel(build_darknet(files["cfg"], files["weights"]))
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        trainers[f"train step {amp}"] = Trainer(model, opt, [(images, targets)], max_iter=1,
                                                amp=AmpPolicy(amp), scaler=make_scaler("none"))
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in trainers}
    for t in trainers.values():
        t.model.train()
        t.run_step()  # warm-up
    for _ in range(args.train_repeat):
        for name, t in trainers.items():
            times[name].append(_timed(t.run_step))
    _report(f"yolov3-tiny training step, batch {args.batch} at 416, CPU, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads", times, "train step fp32")
    if not {"avx512_bf16", "amx_bf16"} & set(cpu_flags()):
        print("  no avx512_bf16/AMX on this CPU: bf16 convolutions fall back to "
              "aten::_slow_conv2d (im2col), fp32 ones run on oneDNN")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="0: library defaults")
    parser.add_argument("--cv4", default="/tmp/cv4/bin/python")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--train-repeat", type=int, default=2)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--calib-limit", type=int, default=64,
                        help="int8: calibrate on the first N coco256-voc train images")
    args = parser.parse_args()
    os.environ.setdefault("VIEWFINDER_CACHE", tempfile.mkdtemp(prefix="vf-bench-"))
    from viewfinder.config import shared_dir

    d = shared_dir() / "models/detect/yolov3-tiny"
    files = {"cfg": d / "yolov3-tiny.cfg", "weights": d / "yolov3-tiny.weights"}
    print(describe_host(["numpy", "onnxruntime", "cv2", "torch"]))
    dets = load_detectors(args, files)
    bench_inference(args, dets, files, shared_dir() / "images/dog.jpg")
    if not args.skip_accuracy:
        bench_accuracy(dets, shared_dir() / "images/dog.jpg")
    if not args.skip_train:
        bench_training(args, files)


if __name__ == "__main__":
    main()
