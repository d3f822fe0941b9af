"""Face detectors behind one interface: SCRFD (every export), YuNet and UltraFace.

:class:`FaceDetector` reads which detector a model is from its output shapes
(:mod:`viewfinder.faces.layouts`), maps each image to the network input with an
invertible transform (:mod:`viewfinder.media.transforms`), decodes, projects boxes
and keypoints back to image pixels, then filters (score, minimum size), runs NMS
and keeps the best ``max_faces``.

Example:
    >>> det = load_detector("scrfd_500m")
    >>> faces = det.detect(image_bgr)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from viewfinder.errors import ConfigError, FormatError, ModelError, ShapeError, SizeError
from viewfinder.faces._runtime import NULL_PROFILER, Profiler, open_session, resolve_model
from viewfinder.faces.layouts import Layout, Level, decode, identify_layout, levels_for
from viewfinder.media.transforms import AffineTransform, letterbox, resize_to
from viewfinder.ops.boxes import nms
from viewfinder.runtime.base import Session
from viewfinder.structures import FACE_NAMES, Detections

__all__ = ["FaceDetector", "Preprocess", "load_detector", "to_bgr"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preprocess:
    """How a detector family wants its input.

    Attributes:
        swap_rb: Feed RGB (True) or BGR (False).
        mean, std: ``(pixel - mean) / std``.
        stretch: Resize to the input size ignoring aspect (UltraFace) instead of a
            top-left letterbox (SCRFD, YuNet).
        score_threshold, nms_threshold: The family's usual defaults.
    """

    swap_rb: bool
    mean: float
    std: float
    stretch: bool
    score_threshold: float
    nms_threshold: float


FAMILIES = {
    "scrfd": Preprocess(True, 127.5, 128.0, False, 0.5, 0.4),
    "yunet": Preprocess(False, 0.0, 1.0, False, 0.8, 0.3),
    "ultraface": Preprocess(True, 127.0, 128.0, True, 0.7, 0.3),
}


def to_bgr(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Accept gray, BGR or BGRA uint8 images; return a contiguous ``(H, W, 3)`` BGR array.

    Raises:
        FormatError: not a uint8 NumPy array.
        ShapeError: not ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``.
        SizeError: an empty image.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = getattr(image, "dtype", type(image).__name__)
        raise FormatError(f"{name}: expected a uint8 NumPy image, got {kind}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ShapeError(f"{name}: expected shape (H, W), (H, W, 3) or (H, W, 4), "
                         f"got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise SizeError(f"{name}: empty image of shape {image.shape}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def _fixed_hw(session: Session, model: str) -> tuple[int | None, int | None, bool]:
    """Input (H, W) when fixed, and whether the batch dimension is free."""
    if len(session.inputs) != 1:
        raise ModelError(f"{model}: expected one image input, got {len(session.inputs)}")
    shape = session.inputs[0].shape
    if len(shape) != 4 or (shape[1] not in (3, None) and not isinstance(shape[1], str)):
        raise ModelError(f"{model}: expected an image input [N, 3, H, W], got {list(shape)}")
    h, w = (d if isinstance(d, int) and d > 0 else None for d in shape[2:])
    return h, w, not (isinstance(shape[0], int) and shape[0] == 1)


class FaceDetector:
    """A face detector on a loaded session.

    Args:
        session: The model on its backend (see :func:`load_detector`).
        det_size: Network input ``(width, height)`` for models with a dynamic input
            (multiples of 32); None scales each image's longer side to ``auto_side``.
        score_threshold, nms_threshold: Defaults per family when None.
        max_faces: Keep at most this many (highest scores); 0 keeps all.
        min_size: Drop faces whose box is narrower or lower than this (pixels).
        auto_side: The longer side for ``det_size=None``.
    """

    def __init__(self, session: Session, *, det_size: tuple[int, int] | None = None,
                 score_threshold: float | None = None, nms_threshold: float | None = None,
                 max_faces: int = 0, min_size: float = 0.0, auto_side: int = 640) -> None:
        self.session = session
        self.model = Path(session.path).name
        shapes = [o.shape for o in session.outputs]
        self.layout: Layout = identify_layout(shapes, self.model)
        self.pre = FAMILIES[self.layout.family]
        fh, fw, self.batchable = _fixed_hw(session, self.model)
        self.batchable = self.batchable and self.layout.batched
        self._fixed = (fw, fh) if fw and fh else None
        if det_size is not None:
            self._check_det_size(det_size)
        self.det_size = self._fixed or (tuple(det_size) if det_size else None)
        self.score_threshold = self.pre.score_threshold if score_threshold is None \
            else float(score_threshold)
        self.nms_threshold = self.pre.nms_threshold if nms_threshold is None \
            else float(nms_threshold)
        self.max_faces = int(max_faces)
        self.min_size = float(min_size)
        self.auto_side = int(auto_side)
        self._levels: dict[tuple[int, int], list[Level]] = {}
        values = np.arange(256, dtype=np.float32)
        if self.pre.mean:
            values -= np.float32(self.pre.mean)
        if self.pre.std != 1.0:
            values *= np.float32(1.0 / self.pre.std)
        self._lut = values

    @property
    def family(self) -> str:
        """``"scrfd"``, ``"yunet"`` or ``"ultraface"``."""
        return self.layout.family

    @property
    def has_kps(self) -> bool:
        """Whether the model predicts 5 keypoints."""
        return bool(self.layout.kps)

    def _check_det_size(self, det_size: Sequence[int]) -> None:
        w, h = (int(v) for v in det_size)
        if self._fixed and (w, h) != self._fixed:
            raise ConfigError(f"{self.model}: input is fixed at {self._fixed[0]}x"
                              f"{self._fixed[1]}, cannot run at det size {w}x{h}")
        if w <= 0 or h <= 0 or (not self.pre.stretch and (w % 32 or h % 32)):
            raise SizeError(f"det size {w}x{h}: expected positive multiples of 32")

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """The network input ``(W, H)`` used for an image of ``width`` x ``height``."""
        if self.det_size:
            return self.det_size
        s = self.auto_side / max(width, height)
        return (max(32, math.ceil(width * s / 32) * 32), max(32, math.ceil(height * s / 32) * 32))

    def transform(self, width: int, height: int) -> AffineTransform:
        """The image -> network input transform for an image of this size."""
        w, h = self.input_size(width, height)
        if self.pre.stretch:
            return resize_to(width, height, w, h)
        return letterbox(width, height, w, h, center=False)

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, AffineTransform]:
        """BGR image -> ``(3, H, W)`` float32 blob and the transform used.

        Normalisation is a 256-entry table applied per channel plane (``cv2.LUT``),
        bit-identical to ``(pixel - mean) / std`` in float32 and ~5x faster than
        NumPy arithmetic plus a transpose.
        """
        t = self.transform(image.shape[1], image.shape[0])
        planes = cv2.split(t.apply_image(image))
        if self.pre.swap_rb:
            planes = planes[::-1]
        blob = np.empty((3, t.out_h, t.out_w), np.float32)
        for c in range(3):
            cv2.LUT(planes[c], self._lut, dst=blob[c])
        return blob, t

    def detect(self, image: np.ndarray, *, score_threshold: float | None = None,
               max_faces: int | None = None, min_size: float | None = None,
               profiler: Profiler = NULL_PROFILER) -> Detections:
        """Find the faces in one BGR (or gray/BGRA) uint8 image.

        Returns:
            :class:`~viewfinder.structures.Detections` with boxes, scores and (SCRFD/YuNet) 5 keypoints; empty
            when there is no face.
        """
        return self.detect_batch([image], score_threshold=score_threshold,
                                 max_faces=max_faces, min_size=min_size, profiler=profiler)[0]

    def detect_batch(self, images: Sequence[np.ndarray], *, score_threshold: float | None = None,
                     max_faces: int | None = None, min_size: float | None = None,
                     profiler: Profiler = NULL_PROFILER) -> list[Detections]:
        """Detect in several images; images with the same input size share one call."""
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        with profiler.stage("detect pre"):
            bgr = [to_bgr(im, f"image {i}") for i, im in enumerate(images)]
            prepared = [self.preprocess(im) for im in bgr]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (blob, _) in enumerate(prepared):
            groups.setdefault(blob.shape if self.batchable else (i,), []).append(i)
        results: list[Detections | None] = [None] * len(bgr)
        for idx in groups.values():
            with profiler.stage("detect infer"):
                blobs = [prepared[i][0] for i in idx]  # one image: a view, no 3 MB copy
                outs = self.session.run(blobs[0][None] if len(idx) == 1 else np.stack(blobs))
            with profiler.stage("detect post"):
                for b, i in enumerate(idx):
                    per = [o[b] for o in outs] if self.layout.batched else outs
                    results[i] = self._finish(per, prepared[i][1], thr, max_faces, min_size)
        return [r for r in results if r is not None]

    def _levels_for(self, outs: Sequence[np.ndarray], w: int, h: int) -> list[Level]:
        if self.layout.family == "ultraface":
            return []
        if (w, h) not in self._levels:
            counts = [int(np.prod(o.shape[:-1])) for o in outs]
            self._levels[(w, h)] = levels_for(self.layout, counts, w, h, self.model)
        return self._levels[(w, h)]

    def _finish(self, outs: Sequence[np.ndarray], t: AffineTransform, thr: float,
                max_faces: int | None, min_size: float | None) -> Detections:
        levels = self._levels_for(outs, t.out_w, t.out_h)
        boxes, scores, kps = decode(self.layout, levels, outs, t.out_w, t.out_h, thr)
        inv = t.inverse()
        boxes = inv.apply_box(boxes)
        kps = inv.apply_coords(kps) if kps is not None else None
        lo = self.min_size if min_size is None else float(min_size)
        if lo > 0 and len(boxes):
            big = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= lo
            boxes, scores = boxes[big], scores[big]
            kps = kps[big] if kps is not None else None
        keep = nms(boxes, scores, self.nms_threshold)
        top = self.max_faces if max_faces is None else int(max_faces)
        if top > 0:
            keep = keep[:top]
        return Detections(boxes[keep], scores[keep], None, FACE_NAMES,
                          kps[keep] if kps is not None else None)


def _typical_size(auto_side: object) -> tuple[int, int] | None:
    """The det size most images and videos get with ``det_size=None``: 4:3 at
    ``auto_side`` (640x480), where ``backend="auto"`` then times its trial (a 640x640
    trial once picked the backend that is 35 % slower at 640x448)."""
    try:
        side = int(auto_side)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return (side, max(32, side * 3 // 4 // 32 * 32))


def _trial_shapes(path: Path, det_size: object) -> dict[str, tuple[int, ...]] | None:
    """``{input: (1, 3, h, w)}`` for a dynamic-size ONNX model run at a given
    ``det_size``: ``backend="auto"`` then times its trial at the size that will run
    (at 1280x736 the faster backend is not the one at 640x640). None otherwise."""
    if det_size is None or path.suffix != ".onnx":
        return None
    from viewfinder.runtime.onnx_wire import read_summary  # not onnx: 1 s of import

    try:
        inputs = read_summary(path).inputs
    except Exception:  # noqa: BLE001 - unreadable here: the backend says why when it loads
        return None
    # as onnx's ``dim_value``: 0 for a symbolic or unknown dimension
    dims = [d if isinstance(d, int) else 0 for d in inputs[0][1]] if len(inputs) == 1 else []
    if len(dims) != 4 or (dims[2] > 0 and dims[3] > 0):
        return None
    try:
        w, h = (int(v) for v in det_size)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None  # FaceDetector rejects it with its own message
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        return None
    return {inputs[0][0]: (1, 3, h, w)}


def load_detector(model: str | Path = "scrfd_500m", *, backend: str = "auto",
                  provider: str = "cpu", threads: int = 0, precision: str = "f32",
                  **options: object) -> FaceDetector:
    """Load a face detector by zoo name (``scrfd_500m``, ``scrfd_2.5g``, ``yunet``,
    ``ultraface``) or ``.onnx`` path; ``options`` go to :class:`FaceDetector`.

    Raises:
        ModelNotFoundError: unknown name or missing file.
        ModelError: the model's outputs match no known face detector layout.
    """
    path = resolve_model(model, task="face-detection")
    trial_size = options.get("det_size") or _typical_size(options.get("auto_side", 640))
    session = open_session(path, backend=backend, provider=provider, threads=threads,
                           precision=precision, shapes=_trial_shapes(path, trial_size))
    det = FaceDetector(session, **options)  # type: ignore[arg-type]
    log.info("face detector %s (%s) on %s", path.name, det.family, session.describe())
    return det
