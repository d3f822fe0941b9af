"""106-point face landmarks (InsightFace 2d106det) and 5-point face alignment.

The landmark net sees a 192x192 crop around each face: centre = box centre,
scale = 192 / (1.5 * max(w, h)), no rotation (``cv2.warpAffine``). It predicts
``fc1 [N, 212]`` in [-1, 1]; ``(fc1.reshape(106, 2) + 1) * 96`` are crop pixels,
mapped back to the image through the inverse of the crop transform. All faces of
an image go in one batch when the model allows it (see :func:`load_landmarker`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from viewfinder.errors import ConfigError, ModelError, ShapeError, check_shape
from viewfinder.faces._runtime import NULL_PROFILER, Profiler, open_session, resolve_model
from viewfinder.faces.detectors import to_bgr
from viewfinder.runtime.base import Session
from viewfinder.runtime.threads import thread_budget

__all__ = ["ARCFACE_112", "Landmarker106", "align_face", "crop_matrices", "landmarks_many",
           "load_landmarker", "similarity_transform"]

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


def _bgra(image: np.ndarray) -> np.ndarray:
    """BGR -> BGRA: ``cv2.warpAffine`` crops 4-channel images 2.5x faster than
    3-channel ones (same bilinear weights per channel, so the same crop values)."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)


class Landmarker106:
    """2d106det on a loaded session.

    Args:
        session: The landmark model. A dynamic batch dimension lets several faces
            share a call; a fixed batch of 1 runs one call per face.
        batch: ``"all"``: all faces of an image in one call (up to ``max_chunk`` = 8
            faces a call: larger batches ran 10-20 % slower per face on both backends
            here; an OpenVINO session runs a new face count on its dynamic model and
            compiles it once the count recurs);
            ``"single"``: one call per face; ``"auto"``: on the first image with
            several faces, time both on its real crops and keep the faster
            (:attr:`batch_reason` says what was measured).
        worker_loader: Loads one more single-thread session of the same model. Given
            (and the thread budget >= 2), an image with at least ``parallel_min`` faces
            (``batch`` "auto" or "all") is split into chunks of ``chunk`` faces that
            one worker per thread crops, converts and runs at once (two sessions of one
            thread each outrun one session of two threads on many small calls).
    """

    parallel_min = 8
    chunk = 8

    def __init__(self, session: Session, batch: str = "auto",
                 worker_loader: Callable[[], Session] | None = None) -> None:
        self.session = session
        shape = tuple(session.inputs[0].shape)
        outs = session.outputs
        #: True when the model takes uint8 NHWC BGRA crops (preprocessing fused in,
        #: see :func:`_model_files`), False for the original float NCHW RGB input.
        self.packed = len(shape) == 4 and shape[1:] == (192, 192, 4)
        if ((shape[1:] != (3, 192, 192) and not self.packed) or len(outs) != 1
                or outs[0].shape[-1] != 212):
            raise ModelError(f"{Path(session.path).name}: expected a 2d106det-style model "
                             f"([N, 3, 192, 192] float or [N, 192, 192, 4] BGRA uint8 -> "
                             f"[N, 212]), got {list(shape)} -> {[list(o.shape) for o in outs]}")
        if batch not in ("auto", "all", "single"):
            raise ConfigError(f"batch {batch!r}: expected auto, all or single")
        self.size = 192
        self.batched = not (isinstance(shape[0], int) and shape[0] == 1)
        self.batch = batch if self.batched else "single"
        self.batch_reason = ""
        self.max_chunk = 8
        self.worker_loader = worker_loader if self.batched else None
        self._workers: list[Session] = []
        self._pool: ThreadPoolExecutor | None = None
        self._prepared: dict[int, set[int]] = {}  # id(session) -> compiled batch sizes

    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 192, 192, 3)`` BGR crops and their ``(N, 2, 3)`` matrices."""
        m = crop_matrices(boxes, self.size)
        return np.ascontiguousarray(self._crops(_bgra(to_bgr(image)), m)[..., :3]), m

    def _crops(self, image: np.ndarray, m: np.ndarray, out: np.ndarray | None = None
               ) -> np.ndarray:
        """``(N, 192, 192, C)`` crops of a ``C``-channel image by the matrices ``m``
        (into ``out[:N]`` when given)."""
        if out is None:
            out = np.empty((len(m), self.size, self.size, image.shape[2]), np.uint8)
        for i in range(len(m)):
            cv2.warpAffine(image, m[i], (self.size, self.size), dst=out[i],
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out[:len(m)]

    def _chunks(self, n: int, mode: str) -> list[int]:
        """Batch sizes for ``n`` faces under ``mode`` (``"all"`` or ``"single"``)."""
        if mode == "single":
            return [1] * n
        full, rest = divmod(n, self.max_chunk)
        return [self.max_chunk] * full + ([rest] if rest else [])

    def _blob(self, crops: np.ndarray) -> np.ndarray:
        """What the model takes for these ``(n, 192, 192, 4)`` BGRA uint8 crops: the crops
        themselves when the model has the conversion fused in, else ``(n, 3, 192, 192)``
        RGB float32 0..255 (planes split by OpenCV, then one contiguous cast each: 2.5x
        faster than a strided NumPy transpose-and-cast)."""
        if self.packed:
            return crops
        out = np.empty((len(crops), 3, *crops.shape[1:3]), np.float32)
        for i, crop in enumerate(crops):
            planes = cv2.split(crop)
            for c in range(3):
                out[i, 2 - c] = planes[c]
        return out

    def _run(self, image: np.ndarray, m: np.ndarray, mode: str,
             profiler: Profiler = NULL_PROFILER) -> np.ndarray:
        """Crop and run the faces chunk by chunk through one reused buffer (a crowd's
        crops at once are 56 MB of BGRA, 170 MB as float: writing them cost more than
        the crops themselves). Several chunks go through ``Session.run_many``, which on
        OpenVINO runs two at a time, one per core, while the next one is cropped."""
        sizes = self._chunks(len(m), mode)
        buf = np.empty((max(sizes), self.size, self.size, image.shape[2]), np.uint8)
        starts = np.cumsum([0, *sizes[:-1]]).tolist()
        if len(sizes) == 1:
            with profiler.stage("crop"):
                blob = self._blob(self._crops(image, m, buf))
            with profiler.stage("landmark infer"):
                return self.session.run(blob)[0].reshape(len(m), 212)
        cropping = [0.0]

        def blobs() -> Iterator[np.ndarray]:
            for start, size in zip(starts, sizes, strict=True):
                t0 = time.perf_counter()
                blob = self._blob(self._crops(image, m[start:start + size], buf))
                cropping[0] += time.perf_counter() - t0
                yield blob

        t0 = time.perf_counter()
        outs = self.session.run_many(blobs())
        profiler.add("crop", cropping[0])
        profiler.add("landmark infer", time.perf_counter() - t0 - cropping[0])
        return np.concatenate([o[0].reshape(-1, 212) for o in outs])

    def _prepare(self, sessions: list[Session], sizes: list[int]) -> None:
        """Compile these batch sizes now (OpenVINO; a no-op on ONNX Runtime), so that
        no timed or real call runs on the slower dynamic model or pays a compile."""
        for session in sessions:
            done = self._prepared.setdefault(id(session), set())
            for n in sorted(set(sizes) - done):
                session.reshape({session.inputs[0].name: (n, *session.inputs[0].shape[1:])})
                done.add(n)

    def _choose(self, image: np.ndarray, m: np.ndarray, profiler: Profiler, rounds: int = 5,
                most: int = 8) -> np.ndarray:
        """Time one batch against one call per face on (up to ``most`` of) these faces;
        keep the faster (best of ``rounds``: the least-disturbed run on a busy host)
        for this and every later image."""
        sample = m[:most]
        times: dict[str, list[float]] = {"all": [], "single": []}
        self._prepare([self.session], self._chunks(len(sample), "all") + [1])
        self._run(image, sample, "all")  # warm-up both ways
        self._run(image, sample, "single")
        self._run(image, sample, "single")
        wait = getattr(self.session, "wait_compiled", None)
        if wait is not None:  # OpenVINO: time the models it will run (background compiles)
            wait()
        cpu: dict[str, list[float]] = {"all": [], "single": []}
        for _ in range(rounds):
            for mode, spent in times.items():
                t0, c0 = time.perf_counter(), time.process_time()
                self._run(image, sample, mode)
                spent.append(time.perf_counter() - t0)
                cpu[mode].append(time.process_time() - c0)
        ms = {mode: min(v) * 1e3 for mode, v in times.items()}
        cpu_ms = {mode: min(v) * 1e3 for mode, v in cpu.items()}
        # one call per face only when it wins on both clocks: on a loaded host a wall-clock
        # trial alone once picked it for a 6-face video (under half the fps of one batch)
        single = ms["single"] < ms["all"] and cpu_ms["single"] < cpu_ms["all"]
        self.batch = "single" if single else "all"
        n = len(sample)
        self.batch_reason = (f"landmark batching: {self.batch} (one batch of {n} "
                             f"{ms['all']:.1f} ms, {cpu_ms['all']:.1f} ms CPU vs {n} calls of 1 "
                             f"{ms['single']:.1f} ms, {cpu_ms['single']:.1f} ms CPU, "
                             f"best of {rounds})")
        log.info("%s: %s", Path(self.session.path).name, self.batch_reason)
        with contextlib.suppress(OSError):
            from viewfinder.runtime.auto import record

            record("landmark batching", self._decision_parts(n),
                   {"batch": self.batch, "reason": self.batch_reason})
        return self._run(image, m, self.batch, profiler)

    def _decision_parts(self, n: int) -> dict[str, object]:
        """What the batching trial's outcome depends on (its key in the decision cache)."""
        from viewfinder.runtime.fetch import file_sha256

        s = self.session
        return {"model": file_sha256(s.path), "backend": s.backend, "device": s.device,
                "precision": s.precision, "threads": getattr(s, "threads", None), "faces": n,
                "rule": "wall and cpu"}

    def _recall(self, n: int) -> bool:
        """Take the batching measured for ``n`` faces by an earlier process on this host
        (the trial costs a dozen calls and, on OpenVINO, two compiles)."""
        from viewfinder.runtime.auto import recall

        try:
            hit = recall("landmark batching", self._decision_parts(n))
        except OSError:  # the model file went away: the session still runs
            return False
        if not hit or hit.get("batch") not in ("all", "single"):
            return False
        self.batch = hit["batch"]
        self.batch_reason = f"{hit['reason']} (cached)"
        log.info("%s: %s", Path(self.session.path).name, self.batch_reason)
        return True

    def _infer(self, image: np.ndarray, m: np.ndarray, profiler: Profiler) -> np.ndarray:
        if self.batch == "auto":
            if len(m) > 1:
                if self._recall(min(len(m), 8)):
                    return self._run(image, m, self.batch, profiler)
                return self._choose(image, m, profiler)
            return self._run(image, m, "single", profiler)
        return self._run(image, m, self.batch, profiler)

    def _parallel_ready(self, n: int) -> bool:
        """Whether ``n`` faces go to the parallel workers (loaded on first use)."""
        if (self.worker_loader is None or n < self.parallel_min
                or self.batch == "single" or thread_budget() < 2):
            return False
        if not self._workers:
            count = min(thread_budget(), 4)
            self._workers = [self.worker_loader() for _ in range(count)]
        return True

    def _sizes(self, n: int) -> list[int]:
        """Chunks of :attr:`chunk` faces (fewer when that keeps every worker busy: 6
        faces on 2 workers are 3 + 3), the rest in powers of two (3 = 2 + 1), so that
        OpenVINO sees few distinct shapes."""
        chunk = max(1, min(self.chunk, -(-n // max(len(self._workers), 1))))
        full, rest = divmod(n, chunk)
        sizes = [chunk] * full
        while rest:
            sizes.append(1 << (rest.bit_length() - 1))
            rest -= sizes[-1]
        return sizes

    def _run_parallel(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Crop, convert and run chunks of faces on the workers, one thread each;
        each worker takes the next chunk when it is done (load balancing)."""
        sizes = self._sizes(len(m))
        self._prepare(self._workers, sizes)
        starts = np.cumsum([0, *sizes])
        spans = iter(zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True))
        out = np.empty((len(m), 212), np.float32)
        size = self.size

        def work(session: Session) -> None:
            buf = np.empty((max(sizes), size, size, image.shape[2]), np.uint8)
            for a, b in spans:  # a shared iterator: the GIL hands each span out once
                blob = self._blob(self._crops(image, m[a:b], buf))
                out[a:b] = session.run(blob)[0].reshape(b - a, 212)

        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._workers), thread_name_prefix="landmarks")
        for future in [self._pool.submit(work, w) for w in self._workers]:
            future.result()
        return out

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
            image = _bgra(to_bgr(image))
            m = crop_matrices(boxes, self.size)
        if self._parallel_ready(len(boxes)):
            with profiler.stage("landmark infer"):  # crops are made by the workers
                pred = self._run_parallel(image, m)
        else:
            pred = self._infer(image, m, profiler)
        with profiler.stage("landmark post"):
            pts = (pred.reshape(len(boxes), 106, 2).astype(np.float64) + 1.0) * (self.size / 2)
            s = m[:, 0, 0][:, None, None]
            shift = m[:, :, 2][:, None, :]
            return ((pts - shift) / s).astype(np.float32)


#: The copies :func:`_model_files` makes (part of their key in the decision cache).
_COPIES = "dynamic batch, uint8 BGRA in (rgb model); ort: PRelu rewritten"


def _model_files(path: Path, batch: str) -> dict[str, Path]:
    """The file each backend runs: a dynamic-batch copy that takes the uint8 BGRA crops
    as they come from ``cv2.warpAffine`` (channel order, alpha drop, layout and cast fused
    in: 0.1-0.3 ms a face less than converting in NumPy); for ONNX Runtime with PRelu
    also rewritten as Relu/Mul/Add (2-2.5x faster there, outputs equal to 1e-6), for
    OpenVINO without (it fuses PRelu into the convolutions itself; the rewrite costs it
    5 %). ``batch="single"`` keeps the original fixed-batch file."""
    if batch == "single":
        return {"ort": path, "openvino": path}
    from viewfinder.runtime.auto import recall, record
    from viewfinder.runtime.fetch import file_sha256

    # Where an earlier process found the copies: importing runtime.convert to look them
    # up imports onnx (1 s of CPU), more than the rest of a one-photo run.
    parts = {"source": file_sha256(path), "copies": _COPIES}
    known = recall("landmark model files", parts) or {}
    if all(Path(str(known.get(k, ""))).is_file() for k in ("ort", "openvino")):
        return {k: Path(str(known[k])) for k in ("ort", "openvino")}
    from viewfinder.runtime.convert import PreprocessSpec, dynamic_batch

    bgra = PreprocessSpec(input="bgra", model_channels="rgb")
    try:
        files = {"ort": dynamic_batch(path, optimize=True, preprocess=bgra),
                 "openvino": dynamic_batch(path, preprocess=bgra)}
    except ModelError as exc:
        log.warning("%s; running one face per call", exc)
        return {"ort": path, "openvino": path}
    record("landmark model files", parts, {k: str(v) for k, v in files.items()})
    return files


def _open(files: dict[str, Path], backend: str, provider: str, threads: int,
          precision: str) -> Session:
    """Open the landmark net; ``auto`` times each backend on its own file."""
    from viewfinder.runtime.session import load_session

    def loader(name: str) -> Callable[[str], Session]:
        return lambda device: load_session(files[name], backend=name, provider=provider,
                                           threads=threads, precision=precision,
                                           device=device)

    if backend != "auto":
        if backend not in files:
            return open_session(files["ort"], backend=backend, provider=provider,
                                threads=threads, precision=precision)
        return loader(backend)("cpu")
    from viewfinder.runtime.auto import choose_backend
    from viewfinder.runtime.session import available_backends

    loaders = {name: loader(name) for name in available_backends() if name in files}
    return choose_backend(files["ort"], loaders, precision, threads, "cpu",
                          None, provider)  # trial: one face, [1, 3, 192, 192]


def load_landmarker(model: str | Path = "2d106det", *, backend: str = "auto",
                    provider: str = "cpu", threads: int = 0, precision: str = "f32",
                    batch: str = "auto") -> Landmarker106:
    """Load 2d106det; unless ``batch="single"`` its fixed batch of 1 is made dynamic first
    (see :class:`Landmarker106` for ``batch``; on ONNX Runtime its PRelu layers are also
    rewritten as Relu/Mul/Add, which runs 2-2.5x faster there)."""
    path = resolve_model(model, task="face-landmarks")
    files = _model_files(path, batch)
    session = _open(files, backend, provider, threads, precision)

    def worker() -> Session:
        from viewfinder.runtime.session import load_session

        return load_session(session.path, backend=session.backend, provider=provider,
                            threads=1, precision=precision)

    # Workers on ONNX Runtime only: OpenVINO's single-thread models in one process share
    # one TBB arena and ran one after the other (1.24 s wall for 1.36 s CPU on 383
    # faces), slower than its one two-thread session with batches (0.88 s).
    parallel = threads != 1 and session.backend == "ort"
    return Landmarker106(session, batch, worker_loader=worker if parallel else None)


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


def landmarks_many(landmarker: Landmarker106, images: list[np.ndarray],
                   boxes: list[np.ndarray], profiler: Profiler = NULL_PROFILER
                   ) -> list[np.ndarray]:
    """106 points for the faces of several images in one landmark batch.

    The crops of every image's faces go into one buffer and through the model
    together (chunks of :attr:`Landmarker106.max_chunk` through ``Session.run_many``;
    one face per call for a fixed-batch model), so the faces of several service
    requests share calls. Each image's points come back in its own pixels.

    Args:
        landmarker: The loaded 2d106det.
        images: BGR (gray/BGRA accepted) uint8 images.
        boxes: ``(N_i, 4)`` xyxy face boxes per image.

    Returns:
        ``(N_i, 106, 2)`` float32 per image.
    """
    lm = landmarker
    boxes = [np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes]
    counts = [len(b) for b in boxes]
    total = sum(counts)
    if not total:
        return [np.zeros((0, 106, 2), np.float32) for _ in boxes]
    with profiler.stage("crop"):
        mats = [crop_matrices(b, lm.size) for b in boxes]
        buf = np.empty((total, lm.size, lm.size, 4), np.uint8)
        pos = 0
        for image, m in zip(images, mats, strict=True):
            if len(m):
                lm._crops(_bgra(to_bgr(image)), m, buf[pos:pos + len(m)])
                pos += len(m)
    sizes = lm._chunks(total, "all" if lm.batched else "single")
    starts = np.cumsum([0, *sizes]).tolist()
    with profiler.stage("landmark infer"):
        if len(sizes) == 1:
            pred = lm.session.run(lm._blob(buf))[0].reshape(total, 212)
        else:
            outs = lm.session.run_many(lm._blob(buf[a:b])
                                       for a, b in zip(starts[:-1], starts[1:], strict=True))
            pred = np.concatenate([o[0].reshape(-1, 212) for o in outs])
    with profiler.stage("landmark post"):
        m_all = np.concatenate(mats)
        pts = (pred.reshape(total, 106, 2).astype(np.float64) + 1.0) * (lm.size / 2)
        pts = ((pts - m_all[:, :, 2][:, None, :]) / m_all[:, 0, 0][:, None, None])
        pts = pts.astype(np.float32)
    ends = np.cumsum(counts).tolist()
    return [pts[e - n:e] for n, e in zip(counts, ends, strict=True)]
