"""Model conversion: int8 / fp16 / PRelu rewrite against fp32, and fused preprocessing.

Run: ``.venv/bin/python benchmarks/convert.py [--repeat N]``

1. 2d106det (106 landmarks): fp32, fp32 with PRelu rewritten, int8 (QOperator / QDQ,
   with and without the rewrite), fp16. Latency at batch 1 and the landmark drift in
   image pixels against fp32 on the 6 real faces of ``group_t1.jpg`` (calibration on
   32 faces of ``crowd_selfie.jpg``: another photo). Also one batch of 6 against 6 calls.
   ``relu~`` marks the inexact opt-in rewrite PRelu -> Relu (2d106det's slopes are < 1e-3).
2. SCRFD-500m at 640x640: fp32 against int8, raw output and detection drift.
3. Fused preprocessing against the strongest peer (OpenCV ``cvtColor`` +
   ``dnn.blobFromImage``, then the original model) and against the NumPy reference.

Every variant is timed in the same loop, interleaved, and reported as the median.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_host  # noqa: E402
from viewfinder.config import shared_dir  # noqa: E402
from viewfinder.ops.boxes import nms  # noqa: E402
from viewfinder.runtime.convert import (  # noqa: E402
    ConvertOptions,
    PreprocessSpec,
    convert_model,
    preprocess_numpy,
    rgb_to_nv12,
)
from viewfinder.runtime.session import load_session  # noqa: E402

FACE = shared_dir() / "models/face"
THREADS = 2


def session(path: Path):
    """A CPU ONNX Runtime session with the benchmark's thread count."""
    return load_session(path, threads=THREADS)


def interleaved(fns: dict[str, object], repeat: int) -> dict[str, float]:
    """Median ms of each callable, called in turn ``repeat`` times (after one warm-up)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def scrfd_decode(outs, h, w, thr=0.5):
    """SCRFD outputs (score/bbox/kps per stride 8/16/32) -> boxes, scores, 5 keypoints."""
    boxes, scores, kpss = [], [], []
    for i, s in enumerate((8, 16, 32)):
        score, dist, kps = outs[i][0, :, 0], outs[i + 3][0] * s, outs[i + 6][0] * s
        gy, gx = np.mgrid[: h // s, : w // s]
        centre = np.repeat(np.stack([gx, gy], -1).reshape(-1, 2), 2, axis=0).astype(np.float32) * s
        keep = score >= thr
        centre, dist, kps = centre[keep], dist[keep], kps[keep]
        boxes.append(np.concatenate([centre - dist[:, :2], centre + dist[:, 2:]], 1))
        kpss.append(kps.reshape(-1, 5, 2) + centre[:, None])
        scores.append(score[keep])
    b, sc, k = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kpss)
    keep = nms(b, sc, 0.4)
    return b[keep], sc[keep], k[keep]


def detect_faces(session, bgr: np.ndarray, side: int) -> np.ndarray:
    h, w = bgr.shape[:2]
    scale = side / max(h, w)
    nh, nw = int(h * scale) // 32 * 32, int(w * scale) // 32 * 32
    blob = cv2.dnn.blobFromImage(bgr, 1 / 128, (nw, nh), (127.5,) * 3, swapRB=True)
    boxes, _, _ = scrfd_decode(session.run(blob), nh, nw)
    return boxes / np.array([nw / w, nh / h, nw / w, nh / h], np.float32)


def face_crops(bgr: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """192x192 RGB crops (box centre, scale 192/(1.5 max side)) and their scales."""
    crops, scales = [], []
    for x0, y0, x1, y1 in boxes:
        s = 192.0 / (1.5 * max(x1 - x0, y1 - y0))
        m = np.array([[s, 0, 96 - s * (x0 + x1) / 2], [0, s, 96 - s * (y0 + y1) / 2]])
        crops.append(cv2.warpAffine(bgr, m, (192, 192))[:, :, ::-1])
        scales.append(s)
    return np.ascontiguousarray(np.stack(crops)), np.array(scales)


def landmark_drift(out: np.ndarray, ref: np.ndarray, scales: np.ndarray) -> tuple[float, float]:
    """Max and mean point distance in image pixels between two fc1 outputs."""
    d = np.linalg.norm((out - ref).reshape(len(scales), 106, 2) * 96, axis=-1) / scales[:, None]
    return float(d.max()), float(d.mean())


def convert(tmp: Path, name: str, src: Path, **opts) -> Path:
    out = tmp / name
    convert_model(src, out, ConvertOptions(**opts))
    return out


def bench_landmarks(tmp: Path, t1: np.ndarray, crowd: np.ndarray, det, repeat: int) -> None:
    crops, scales = face_crops(t1, detect_faces(det, t1, 640))
    cboxes = detect_faces(det, crowd, 1280)
    area = (cboxes[:, 2] - cboxes[:, 0]) * (cboxes[:, 3] - cboxes[:, 1])
    calib_crops, _ = face_crops(crowd, cboxes[np.argsort(-area)[:32]])
    calib = tmp / "calib_lmk"
    calib.mkdir()
    for k, c in enumerate(calib_crops):
        np.save(calib / f"{k}.npy", c.transpose(2, 0, 1)[None].astype(np.float32))
    src = FACE / "2d106det.onnx"
    q = {"precision": "int8", "calibration": calib, "verify": False}
    paths = {
        "fp32": src,
        "fp32+prelu": convert(tmp, "lm_opt.onnx", src, optimize=True),
        "int8 qop": convert(tmp, "lm_qop.onnx", src, quant_format="qoperator", **q),
        "int8 qdq": convert(tmp, "lm_qdq.onnx", src, quant_format="qdq", **q),
        "int8 qop+prelu": convert(tmp, "lm_qop_opt.onnx", src, quant_format="qoperator",
                                  optimize=True, **q),
        "int8 qdq+prelu": convert(tmp, "lm_qdq_opt.onnx", src, quant_format="qdq",
                                  optimize=True, **q),
        "fp16": convert(tmp, "lm_fp16.onnx", src, precision="fp16", verify=False),
        "fp32 relu~": convert(tmp, "lm_relu.onnx", src, prelu_to_relu=1e-3, verify=False),
        "int8 qop relu~": convert(tmp, "lm_qop_relu.onnx", src, quant_format="qoperator",
                                  prelu_to_relu=1e-3, **q),
    }
    sessions = {k: session(p) for k, p in paths.items()}
    x = crops.transpose(0, 3, 1, 2).astype(np.float32)
    ref = np.concatenate([sessions["fp32"].run(x[k:k + 1])[0] for k in range(len(x))])
    ms = interleaved({k: (lambda s=s: s.run(x[:1])) for k, s in sessions.items()}, repeat)
    print(f"\n2d106det, batch 1, {len(x)} faces of group_t1.jpg (drift in image px vs fp32)")
    print(f"{'variant':<16}{'ms':>8}{'x fp32':>8}{'x fp32+prelu':>14}{'max px':>9}{'mean px':>9}")
    drift = {}
    for name, sess in sessions.items():
        out = np.concatenate([sess.run(x[k:k + 1])[0] for k in range(len(x))])
        drift[name] = landmark_drift(out, ref, scales)
        print(f"{name:<16}{ms[name]:>8.2f}{ms['fp32'] / ms[name]:>8.2f}"
              f"{ms['fp32+prelu'] / ms[name]:>14.2f}{drift[name][0]:>9.4f}{drift[name][1]:>9.4f}")
    best = min((k for k in ms if k.startswith("int8")), key=ms.get)
    print(f"target int8 >= 1.5x fp32 with drift <= 0.5 px: best int8 ({best}) is "
          f"{ms['fp32'] / ms[best]:.2f}x the original fp32, {ms['fp32+prelu'] / ms[best]:.2f}x "
          f"fp32+prelu, max drift {drift[best][0]:.2f} px (mean {drift[best][1]:.2f})")
    bench_batch(tmp, src, x, repeat)


def bench_batch(tmp: Path, src: Path, x: np.ndarray, repeat: int) -> None:
    for label, opt in (("fp32", False), ("fp32+prelu", True)):
        sess = session(convert(tmp, f"lm_dyn_{opt}.onnx", src, batch="dynamic",
                                    optimize=opt))
        ms = interleaved({"batch6": lambda s=sess: s.run(x),
                          "6x1": lambda s=sess: [s.run(x[k:k + 1]) for k in range(len(x))]},
                         repeat)
        print(f"2d106det {label}: one batch of {len(x)} {ms['batch6']:.2f} ms, {len(x)} calls "
              f"of 1 {ms['6x1']:.2f} ms ({ms['6x1'] / ms['batch6']:.2f}x)")


def bench_scrfd(tmp: Path, t1: np.ndarray, repeat: int) -> None:
    calib = tmp / "calib_det"
    calib.mkdir()
    images = sorted((shared_dir() / "data/coco256-voc/JPEGImages").glob("*.jpg"))[:16]
    for k, p in enumerate(images):  # the first 16 COCO images, as the model wants them
        blob = cv2.dnn.blobFromImage(cv2.imread(str(p)), 1 / 128, (640, 640), (127.5,) * 3,
                                     swapRB=True)
        np.save(calib / f"{k}.npy", blob)
    src = FACE / "scrfd_500m_bnkps.onnx"
    q = {"precision": "int8", "calibration": calib, "verify": False, "size": (640, 640)}
    paths = {"fp32": convert(tmp, "det_fp32.onnx", src, size=(640, 640)),
             "int8 qop": convert(tmp, "det_qop.onnx", src, quant_format="qoperator", **q),
             "int8 qdq": convert(tmp, "det_qdq.onnx", src, quant_format="qdq", **q)}
    sessions = {k: session(p) for k, p in paths.items()}
    blob = cv2.dnn.blobFromImage(t1, 1 / 128, (640, 640), (127.5,) * 3, swapRB=True)
    ms = interleaved({k: (lambda s=s: s.run(blob)) for k, s in sessions.items()}, repeat)
    ref = sessions["fp32"].run(blob)
    rb, _, rk = scrfd_decode(ref, 640, 640)
    print("\nSCRFD-500m 640x640 on group_t1.jpg (drift in 640x640 px vs fp32)")
    print(f"{'variant':<12}{'ms':>8}{'x fp32':>8}{'max|dscore|':>12}{'faces':>7}{'box px':>8}"
          f"{'kps px':>8}")
    for name, sess in sessions.items():
        outs = sess.run(blob)
        dscore = max(float(np.abs(a - b).max()) for a, b in zip(outs[:3], ref[:3], strict=True))
        b, _, k = scrfd_decode(outs, 640, 640)
        box_px, kps_px = _match(rb, rk, b, k)
        print(f"{name:<12}{ms[name]:>8.2f}{ms['fp32'] / ms[name]:>8.2f}{dscore:>12.4f}"
              f"{len(b):>4}/{len(rb):<2}{box_px:>8.2f}{kps_px:>8.2f}")


def _match(rb, rk, b, k) -> tuple[float, float]:
    if not len(b):
        return float("nan"), float("nan")
    centre = lambda boxes: (boxes[:, :2] + boxes[:, 2:]) / 2  # noqa: E731
    idx = np.argmin(np.linalg.norm(centre(rb)[:, None] - centre(b)[None], axis=-1), axis=1)
    return float(np.abs(rb - b[idx]).max()), float(np.linalg.norm(rk - k[idx], axis=-1).max())


def bench_fused(tmp: Path, t1: np.ndarray, repeat: int) -> None:
    src = FACE / "scrfd_500m_bnkps.onnx"
    spec = PreprocessSpec(input="nv12", width=640, height=480, model_channels="rgb",
                          mean=(127.5,) * 3, std=(128.0,) * 3)
    fused = session(convert(tmp, "det_nv12.onnx", src, preprocess=spec))
    plain = session(src)
    nv12 = rgb_to_nv12(np.ascontiguousarray(cv2.resize(t1, (640, 480))[:, :, ::-1]))

    def opencv():
        bgr = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
        return plain.run(cv2.dnn.blobFromImage(bgr, 1 / 128, (640, 480), (127.5,) * 3,
                                               swapRB=True))

    runs = {"fused nv12": lambda: fused.run(nv12[None]), "opencv+model": opencv,
            "numpy+model": lambda: plain.run(preprocess_numpy(nv12[None], spec))}
    _report_fused("SCRFD-500m, NV12 640x480 from the decoder", runs, repeat)
    lm_spec = PreprocessSpec(input="bgr", model_channels="rgb")
    lm_src = FACE / "2d106det.onnx"
    lm_fused = session(convert(tmp, "lm_bgr.onnx", lm_src, preprocess=lm_spec,
                                    batch="dynamic"))
    lm_plain = session(convert(tmp, "lm_dynplain.onnx", lm_src, batch="dynamic"))
    crops = np.ascontiguousarray(
        np.stack([cv2.resize(t1[y:y + 200, x:x + 200], (192, 192))
                  for x, y in ((100, 100), (300, 150), (500, 200), (700, 100), (900, 250),
                               (50, 400))]))
    runs = {
        "fused bgr": lambda: lm_fused.run(crops),
        "opencv+model": lambda: lm_plain.run(cv2.dnn.blobFromImages(list(crops), swapRB=True)),
        "numpy+model": lambda: lm_plain.run(preprocess_numpy(crops, lm_spec)),
    }
    _report_fused("2d106det, 6 uint8 BGR crops 192x192 in one batch", runs, repeat)


def _report_fused(title: str, runs: dict, repeat: int) -> None:
    outs = {k: fn() for k, fn in runs.items()}
    ms = interleaved(runs, repeat)
    first = next(iter(runs))
    print(f"\n{title}")
    for name in runs:
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outs[name], outs[first],
                                                              strict=True))
        print(f"  {name:<14}{ms[name]:>8.2f} ms  {ms[name] / ms[first]:>5.2f}x of fused"
              f"  max|diff| vs fused {diff:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per session")
    args = parser.parse_args()
    global THREADS
    THREADS = args.threads
    cv2.setNumThreads(THREADS)  # the OpenCV peer gets the same thread budget
    print(describe_host(["onnxruntime", "onnx", "numpy", "cv2", "onnxconverter_common"]))
    print(f"ONNX Runtime CPU provider, {THREADS} intra-op threads per session")
    t1 = cv2.imread(str(shared_dir() / "images/group_t1.jpg"))
    crowd = cv2.imread(str(shared_dir() / "images/crowd_selfie.jpg"))
    det = session(FACE / "scrfd_500m_bnkps.onnx")
    with tempfile.TemporaryDirectory(prefix="vf-bench-convert-") as tmp:
        bench_landmarks(Path(tmp), t1, crowd, det, args.repeat)
        bench_scrfd(Path(tmp), t1, max(5, args.repeat // 2))
        bench_fused(Path(tmp), t1, args.repeat)


if __name__ == "__main__":
    main()
