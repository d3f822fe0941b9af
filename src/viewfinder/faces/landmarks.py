"""106-point face landmarks (InsightFace 2d106det) and 5-point face alignment.

The landmark net sees a 192x192 crop around each face: centre = box centre,
scale = 192 / (1.5 * max(w, h)), no rotation (``cv2.warpAffine``). It predicts
``fc1 [N, 212]`` in [-1, 1]; ``(fc1.reshape(106, 2) + 1) * 96`` are crop pixels,
mapped back to the image through the inverse of the crop transform. All faces of
an image go in one batch when the model allows it (see :func:`load_landmarker`).
"""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from viewfinder.errors import ConfigError, ModelError, ShapeError, check_shape
from viewfinder.faces._runtime import NULL_PROFILER, Profiler, open_session, resolve_model
from viewfinder.faces.detectors import to_bgr
from viewfinder.runtime.base import Session

__all__ = ["ARCFACE_112", "Landmarker106", "align_face", "crop_matrices", "load_landmarker",
           "similarity_transform"]

log = logging.getLogger(__name__)

# Where ArcFace-style recognisers expect the 5 keypoints in a 112x112 crop.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def crop_matrices(boxes: np.ndarray, size: int, margin: float = 1.5) -> np.ndarray:
    """``(N, 2, 3)`` affine matrices taking each box's centre to the crop centre.

    Scale is ``size / (margin * max(w, h))``; no rotation.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    s = size / (margin * np.maximum(np.maximum(w, h), 1e-6))
    m = np.zeros((len(b), 2, 3), np.float64)
    m[:, 0, 0] = m[:, 1, 1] = s
    m[:, 0, 2] = size / 2 - cx * s
    m[:, 1, 2] = size / 2 - cy * s
    return m


class Landmarker106:
    """2d106det on a loaded session.

    Args:
        session: The landmark model. A dynamic batch dimension lets several faces
            share a call; a fixed batch of 1 runs one call per face.
        batch: ``"all"``: all faces of an image in one call (up to ``max_chunk`` = 32
            faces a call; on OpenVINO in power-of-two chunks, 6 = 4 + 2, so that a new
            face count does not recompile);
            ``"single"``: one call per face; ``"auto"``: on the first image with
            several faces, time both on its real crops and keep the faster
            (:attr:`batch_reason` says what was measured).
    """

    def __init__(self, session: Session, batch: str = "auto") -> None:
        self.session = session
        shape = session.inputs[0].shape
        outs = session.outputs
        if len(shape) != 4 or shape[2:] != (192, 192) or len(outs) != 1 or outs[0].shape[-1] != 212:
            raise ModelError(f"{Path(session.path).name}: expected a 2d106det-style model "
                             f"([N, 3, 192, 192] -> [N, 212]), got {list(shape)} -> "
                             f"{[list(o.shape) for o in outs]}")
        if batch not in ("auto", "all", "single"):
            raise ConfigError(f"batch {batch!r}: expected auto, all or single")
        self.size = 192
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1)
        self.batch = batch if self.batched else "single"
        self.batch_reason = ""
        self.max_chunk = 32

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 192, 192, 3)`` BGR crops and their ``(N, 2, 3)`` matrices."""
        m = crop_matrices(boxes, self.size)
        out = np.empty((len(m), self.size, self.size, 3), np.uint8)
        for i in range(len(m)):
            cv2.warpAffine(image, m[i], (self.size, self.size), dst=out[i],
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out, m

    def _chunks(self, n: int, mode: str) -> list[int]:
        """Batch sizes for ``n`` faces under ``mode`` (``"all"`` or ``"single"``)."""
        if mode == "single":
            return [1] * n
        if self.session.backend == "ort":  # any batch size, no compile: equal chunks
            full, rest = divmod(n, self.max_chunk)
            return [self.max_chunk] * full + ([rest] if rest else [])
        sizes = []
        while n:
            size = min(1 << (n.bit_length() - 1), self.max_chunk)
            sizes.append(size)
            n -= size
        return sizes

    @staticmethod
    def _blob(crops: np.ndarray) -> np.ndarray:
        """``(n, 192, 192, 3)`` BGR uint8 -> ``(n, 3, 192, 192)`` RGB float32 0..255."""
        return np.ascontiguousarray(crops[..., ::-1].transpose(0, 3, 1, 2), np.float32)

    def _run(self, crops: np.ndarray, mode: str, profiler: Profiler = NULL_PROFILER
             ) -> np.ndarray:
        """Run the net over the crops chunk by chunk (converting each chunk just before
        its call keeps a crowd's float blob out of memory: 383 faces are 170 MB)."""
        outs, start = [], 0
        for size in self._chunks(len(crops), mode):
            with profiler.stage("crop"):
                blob = self._blob(crops[start:start + size])
            with profiler.stage("landmark infer"):
                outs.append(self.session.run(blob)[0])
            start += size
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _choose(self, crops: np.ndarray, profiler: Profiler, rounds: int = 3,
                most: int = 8) -> np.ndarray:
        """Time one batch against one call per face on (up to ``most`` of) these crops;
        keep the faster for this and every later image."""
        sample = crops[:most]
        times: dict[str, list[float]] = {"all": [], "single": []}
        self._run(sample, "all")  # warm-up (and compile) both ways
        self._run(sample, "single")
        for _ in range(rounds):
            for mode, spent in times.items():
                t0 = time.perf_counter()
                self._run(sample, mode)
                spent.append(time.perf_counter() - t0)
        ms = {mode: statistics.median(v) * 1e3 for mode, v in times.items()}
        self.batch = min(ms, key=ms.__getitem__)
        n = len(sample)
        self.batch_reason = (f"landmark batching: {self.batch} (one batch of {n} "
                             f"{ms['all']:.1f} ms vs {n} calls of 1 {ms['single']:.1f} ms, "
                             f"median of {rounds})")
        log.info("%s: %s", Path(self.session.path).name, self.batch_reason)
        return self._run(crops, self.batch, profiler)

    def _infer(self, crops: np.ndarray, profiler: Profiler) -> np.ndarray:
        if self.batch == "auto":
            if len(crops) > 1:
                return self._choose(crops, profiler)
            return self._run(crops, "single", profiler)
        return self._run(crops, self.batch, profiler)

    def __call__(self, image: np.ndarray, boxes: np.ndarray,
                 profiler: Profiler = NULL_PROFILER) -> np.ndarray:
        """106 points per box, in image pixels.

        Args:
            image: BGR (gray/BGRA accepted) uint8 image.
            boxes: ``(N, 4)`` xyxy face boxes.

        Returns:
            ``(N, 106, 2)`` float32.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((0, 106, 2), np.float32)
        with profiler.stage("crop"):
            crops, m = self.crops(to_bgr(image), boxes)
        pred = self._infer(crops, profiler)
        with profiler.stage("landmark post"):
            pts = (pred.reshape(len(boxes), 106, 2).astype(np.float64) + 1.0) * (self.size / 2)
            s = m[:, 0, 0][:, None, None]
            shift = m[:, :, 2][:, None, :]
            return ((pts - shift) / s).astype(np.float32)


def load_landmarker(model: str | Path = "2d106det", *, backend: str = "auto",
                    provider: str = "cpu", threads: int = 0, precision: str = "f32",
                    batch: str = "auto") -> Landmarker106:
    """Load 2d106det; unless ``batch="single"`` its fixed batch of 1 is made dynamic first
    (see :class:`Landmarker106` for ``batch``)."""
    path = resolve_model(model)
    if batch != "single":
        from viewfinder.runtime.convert import dynamic_batch

        try:
            path = dynamic_batch(path)
        except ModelError as exc:
            log.warning("%s; running one face per call", exc)
    session = open_session(path, backend=backend, provider=provider, threads=threads,
                           precision=precision)
    return Landmarker106(session, batch)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) mapping src to dst (Umeyama).

    Args:
        src, dst: ``(K, 2)`` corresponding points, K >= 2.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    check_shape(src, ("K", 2), "src points")
    check_shape(dst, (src.shape[0], 2), "dst points")
    if len(src) < 2:
        raise ShapeError(f"src points: expected at least 2, got {len(src)}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ fix @ vt
    var = (s0 ** 2).sum() / len(src)
    scale = (sig * np.diag(fix)).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(image: np.ndarray, kps: np.ndarray, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Warp a face to the ArcFace template from its 5 keypoints.

    Args:
        image: BGR uint8 image.
        kps: ``(5, 2)`` keypoints (eyes, nose, mouth corners) as SCRFD/YuNet give them.
        size: Output side; the template scales with ``size / 112``.

    Returns:
        The ``(size, size, 3)`` aligned crop and the ``(2, 3)`` matrix used.
    """
    kps = np.asarray(kps, dtype=np.float64)
    check_shape(kps, (5, 2), "kps")
    m = similarity_transform(kps, ARCFACE_112 * (size / 112.0))
    return cv2.warpAffine(to_bgr(image), m, (size, size), borderValue=0), m
