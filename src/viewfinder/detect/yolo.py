"""YOLO inference on ONNX Runtime: letterbox, decode, class-wise NMS, class names.

No torch: the Darknet files are converted to ONNX by
:func:`viewfinder.detect.darknet_export.export_onnx` (pure ``onnx.helper``) and
cached. ::

    det = load_yolo("yolov3-tiny")            # zoo name, .cfg, or .onnx from export_onnx
    dets = det.detect(read_image("dog.jpg"))  # viewfinder.structures.Detections

Candidates are every (box, class) pair whose ``objectness x class probability``
exceeds ``conf`` (Darknet's rule: one box may carry several labels), then NMS runs
per class, as Darknet's ``do_nms_sort`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewfinder.config import cache_dir
from viewfinder.detect.darknet_cfg import YoloHead
from viewfinder.detect.darknet_export import EXPORT_VERSION, METADATA_KEY
from viewfinder.errors import (
    ConfigError,
    ModelError,
    ModelNotFoundError,
    ShapeError,
    check_shape,
)
from viewfinder.media.transforms import AffineTransform
from viewfinder.ops.boxes import batched_nms, clip_boxes
from viewfinder.runtime.base import Session
from viewfinder.runtime.preprocess import darknet_fit
from viewfinder.runtime.preprocess import darknet_resize as _planar_resize
from viewfinder.runtime.session import load_session
from viewfinder.structures import Detections

__all__ = ["YoloDetector", "darknet_fit", "darknet_resize", "decode_candidates", "decode_outputs",
           "load_yolo", "postprocess", "preprocess"]

log = logging.getLogger(__name__)

PAD_VALUE = 0.5  # Darknet's letterbox fill (0..1 scale)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_outputs(raw: Sequence[np.ndarray], heads: Sequence[YoloHead]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw ``[yolo]`` outputs.

    Args:
        raw: One ``(N, A*(5+C), H, W)`` array per head.
        heads: Their decode parameters.

    Returns:
        ``boxes`` ``(N, K, 4)`` xyxy in network-input pixels and ``scores`` ``(N, K, C)``
        (objectness x class probability), heads concatenated in order.
    """
    if len(raw) != len(heads):
        raise ShapeError(f"yolo outputs: expected {len(heads)} tensors, got {len(raw)}")
    all_boxes, all_scores = [], []
    for out, head in zip(raw, heads, strict=True):
        a, (gh, gw), c = len(head.anchors), head.grid, head.classes
        out = np.asarray(out, np.float32)
        check_shape(out, ("N", a * (5 + c), gh, gw), f"yolo output of layer {head.index}")
        p = out.reshape(out.shape[0], a, 5 + c, gh * gw).transpose(0, 1, 3, 2)
        gy, gx = np.divmod(np.arange(gh * gw, dtype=np.float32), gw)
        s = head.scale_xy
        cx = (_sigmoid(p[..., 0]) * s - (s - 1) / 2 + gx) * head.stride[1]
        cy = (_sigmoid(p[..., 1]) * s - (s - 1) / 2 + gy) * head.stride[0]
        anchors = np.float32(head.anchors)
        w = np.exp(p[..., 2]) * anchors[None, :, 0:1]
        h = np.exp(p[..., 3]) * anchors[None, :, 1:2]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        scores = _sigmoid(p[..., 4:5]) * _sigmoid(p[..., 5:])
        all_boxes.append(boxes.reshape(out.shape[0], -1, 4))
        all_scores.append(scores.reshape(out.shape[0], -1, c))
    return np.concatenate(all_boxes, 1), np.concatenate(all_scores, 1)


def decode_candidates(raw: Sequence[np.ndarray], heads: Sequence[YoloHead], conf: float,
                      image: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`decode_outputs` for one image, but only predictions whose objectness
    exceeds ``conf`` (the only ones that can score above it): Darknet's shortcut.

    Returns:
        ``boxes`` ``(K, 4)`` and ``scores`` ``(K, C)`` of the surviving predictions.
    """
    logit = np.log(conf / (1 - conf)) if 0 < conf < 1 else (-np.inf if conf <= 0 else np.inf)
    all_boxes, all_scores = [], []
    for out, head in zip(raw, heads, strict=True):
        a, (gh, gw), c = len(head.anchors), head.grid, head.classes
        check_shape(out, ("N", a * (5 + c), gh, gw), f"yolo output of layer {head.index}")
        p = np.asarray(out[image], np.float32).reshape(a, 5 + c, gh * gw)
        ai, cell = np.nonzero(p[:, 4] > logit)
        v = p[ai, :, cell]  # (K, 5 + C)
        gy, gx = np.divmod(cell.astype(np.float32), gw)
        s = head.scale_xy
        cx = (_sigmoid(v[:, 0]) * s - (s - 1) / 2 + gx) * head.stride[1]
        cy = (_sigmoid(v[:, 1]) * s - (s - 1) / 2 + gy) * head.stride[0]
        anchors = np.float32(head.anchors)[ai]
        w, h = np.exp(v[:, 2]) * anchors[:, 0], np.exp(v[:, 3]) * anchors[:, 1]
        all_boxes.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1))
        all_scores.append(_sigmoid(v[:, 4:5]) * _sigmoid(v[:, 5:]))
    return np.concatenate(all_boxes, 0), np.concatenate(all_scores, 0)


def postprocess(boxes: np.ndarray, scores: np.ndarray, conf: float, iou: float,
                classes: Sequence[int] | None = None, max_det: int = 300,
                max_candidates: int = 10_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold (box, class) pairs and run class-wise NMS for one image.

    Args:
        boxes: ``(K, 4)`` xyxy.
        scores: ``(K, C)``.
        conf: Keep pairs with score strictly above this.
        iou: NMS IoU threshold (overlaps strictly above are suppressed).
        classes: Only these class ids (None: all).
        max_det: At most this many detections, by decreasing score.
        max_candidates: At most this many best-scoring pairs enter NMS.

    Returns:
        ``boxes (M, 4)``, ``scores (M,)``, ``class_ids (M,)`` by decreasing score.
    """
    if classes is not None:
        mask = np.zeros(scores.shape[1], bool)
        mask[list(classes)] = True
        scores = np.where(mask[None, :], scores, 0.0)
    k, c = np.nonzero(scores > conf)
    s = scores[k, c]
    if len(s) > max_candidates:  # a very low conf must not make NMS quadratic in 10^5 pairs
        top = np.argpartition(-s, max_candidates)[:max_candidates]
        k, c, s = k[top], c[top], s[top]
    b = boxes[k]
    keep = batched_nms(b, s, c, iou)[:max_det]
    return b[keep].astype(np.float32), s[keep].astype(np.float32), c[keep].astype(np.int64)


def darknet_resize(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Darknet's ``resize_image`` of an ``(H, W, C)`` image; returns planar ``(C, h, w)``
    float32 (Darknet's layout, channels in the input's order).

    ``uint8`` pixels are read as ``v / 255`` first (Darknet's ``load_image``); float
    input is used as is. The resize itself is
    :func:`viewfinder.runtime.preprocess.darknet_resize` (the model spec's), so the
    detector and its zoo spec cannot drift apart.
    """
    planes = np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)
    if image.dtype == np.uint8:  # float32 v / 255 equals (float)(v / 255.) for all v
        planes /= np.float32(255)
    return _planar_resize(planes, w, h)


def preprocess(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, AffineTransform]:
    """BGR uint8 image to a ``(1, 3, H, W)`` RGB float32 0..1 blob: Darknet's letterbox.

    As ``letterbox_image`` does it: pixels to ``v / 255``, :func:`darknet_fit` size,
    :func:`darknet_resize`, a canvas of 0.5 with the image at
    ``((W - new_w) // 2, (H - new_h) // 2)``.

    Returns:
        The blob and the transform whose inverse maps network-input boxes back to the
        image as Darknet's ``correct_yolo_boxes`` does (offset ``(W - new_w) / 2``, not
        rounded, scale ``new_w / w``). Its ``apply_image`` is not Darknet's resize.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ShapeError(f"image: expected (H, W, 3) uint8 BGR, got {image.shape} {image.dtype}")
    net_h, net_w = size
    in_h, in_w = image.shape[:2]
    new_w, new_h = darknet_fit(in_w, in_h, net_w, net_h)
    resized = darknet_resize(image, new_w, new_h)
    blob = np.full((1, 3, net_h, net_w), PAD_VALUE, np.float32)
    x0, y0 = (net_w - new_w) // 2, (net_h - new_h) // 2
    blob[0, :, y0:y0 + new_h, x0:x0 + new_w] = resized[::-1]  # BGR to RGB
    t = AffineTransform(new_w / in_w, new_h / in_h, (net_w - new_w) / 2, (net_h - new_h) / 2,
                        net_w, net_h, in_w, in_h, pad_value=PAD_VALUE * 255)
    return blob, t


@dataclass(frozen=True)
class _ModelInfo:
    kind: str  # raw | decoded | nms
    size: tuple[int, int]
    heads: tuple[YoloHead, ...]
    names: tuple[str, ...]


def _read_metadata(path: Path) -> _ModelInfo:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY not in props:
        raise ModelError(f"{path}: no '{METADATA_KEY}' metadata; export it with "
                         "`viewfinder convert X.cfg --weights X.weights`")
    meta = json.loads(props[METADATA_KEY])
    heads = tuple(YoloHead(i, tuple(tuple(a) for a in h["anchors"]), h["classes"],
                           tuple(h["grid"]), tuple(h["stride"]), h["scale_xy"])
                  for i, h in enumerate(meta["heads"]))
    return _ModelInfo(meta["outputs"], tuple(meta["input_size"]), heads, tuple(meta["names"]))


class YoloDetector:
    """A YOLO model on a runtime session.

    Args:
        session: The loaded ONNX model (raw, decoded or with NMS in the graph).
        info: Its decode parameters (from the model's metadata).
        names: Class names (default: those stored in the model).
        conf: Score threshold.
        iou: NMS IoU threshold.
        classes: Keep only these class ids (None: all).
    """

    def __init__(self, session: Session, info: _ModelInfo, names: Sequence[str] = (),
                 conf: float = 0.25, iou: float = 0.45,
                 classes: Sequence[int] | None = None) -> None:
        for label, v in (("conf", conf), ("iou", iou)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{label}={v}: expected a value in [0, 1]")
        self.session, self.info = session, info
        self.names = tuple(names) or info.names
        n = info.heads[0].classes if info.heads else 0
        if self.names and len(self.names) != n:
            raise ConfigError(f"{len(self.names)} class names for a model of {n} classes")
        if classes is not None and any(not 0 <= c < n for c in classes):
            raise ConfigError(f"classes {list(classes)}: expected ids in [0, {n})")
        self.conf, self.iou, self.classes = conf, iou, classes

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the network input."""
        return self.info.size

    def detect(self, image: np.ndarray) -> Detections:
        """Detect objects in one BGR uint8 image; boxes are in its pixels."""
        blob, t = preprocess(image, self.info.size)
        boxes, scores, ids = self._infer(blob)
        if len(boxes):
            boxes = clip_boxes(t.inverse().apply_box(boxes), image.shape[1], image.shape[0])
        return Detections(boxes, scores, ids, self.names)

    def _infer(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.info.kind == "nms":
            feeds = {"images": blob, "iou_threshold": np.float32([self.iou]),
                     "score_threshold": np.float32([self.conf])}
            dets = self.session.run(feeds)[0]
            if self.classes is not None:
                dets = dets[np.isin(dets[:, 6].astype(np.int64), list(self.classes))]
            dets = dets[dets[:, 5] > self.conf]
            dets = dets[np.argsort(-dets[:, 5], kind="stable")]
            return dets[:, 1:5], dets[:, 5], dets[:, 6].astype(np.int64)
        outs = self.session.run(blob)
        if self.info.kind == "decoded":
            boxes, scores = outs[0][0], outs[1][0]
        else:
            boxes, scores = decode_candidates(outs, self.info.heads, self.conf)
        return postprocess(boxes, scores, self.conf, self.iou, self.classes)


def _darknet_files(model: str) -> tuple[Path, Path, Path | None]:
    """(cfg, weights, names) of a zoo name or a ``.cfg`` path (zoo copies checksum-verified)."""
    from viewfinder.runtime import zoo

    p = Path(model)
    if p.suffix == ".cfg" and p.is_file():
        weights = p.with_suffix(".weights")
        if not weights.is_file():
            raise ModelNotFoundError(f"{p}: no weights file {weights.name} beside it")
        names = p.with_name("coco.names")
        return p, weights, names if names.is_file() else None
    _, spec = zoo.resolve_model(model, task="detection")  # ModelError on a corrupt copy
    if spec is None:
        raise ModelError(f"{model}: expected a zoo name, a Darknet .cfg or an .onnx")
    by_ext = {f.suffix: f for f in zoo.resolve_files(spec.name).values()}
    return by_ext[".cfg"], by_ext[".weights"], by_ext.get(".names")


def _cached_onnx(cfg: Path, weights: Path, size: int, kind: str,
                 names: tuple[str, ...]) -> Path:
    from viewfinder.detect.darknet_export import export_onnx

    st = weights.stat()
    key = hashlib.sha256(cfg.read_bytes() + f"{st.st_size}:{st.st_mtime_ns}:{size}:{kind}:v{EXPORT_VERSION}:"
                         f"{','.join(names)}".encode()).hexdigest()[:16]
    out = cache_dir() / "detect" / f"{cfg.stem}-{size}-{kind}-{key}.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        log.info("converting %s + %s to %s", cfg, weights, out)
        export_onnx(cfg, weights, out, size=size, decode=kind != "raw", nms=kind == "nms",
                    names=names)
    return out


def load_yolo(model: str | os.PathLike[str] = "yolov3-tiny", *, size: int = 416,
              graph: str = "raw", backend: str = "ort", provider: str = "cpu",
              threads: int = 0, conf: float = 0.25, iou: float = 0.45,
              classes: Sequence[int | str] | None = None, precision: str = "f32",
              calib: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
              calib_limit: int = 64,
              progress: Callable[[str, int, int], None] | None = None) -> YoloDetector:
    """Load a YOLO detector.

    Args:
        model: A zoo name (``"yolov3-tiny"``), a Darknet ``.cfg`` (weights beside it), or
            an ``.onnx`` written by :func:`~viewfinder.detect.darknet_export.export_onnx`.
        size: Input size when converting Darknet files.
        graph: What the converted graph computes: ``"raw"``, ``"decoded"`` or ``"nms"``.
        backend, provider, threads: See :func:`viewfinder.runtime.session.load_session`.
        conf, iou: Score and NMS thresholds.
        classes: Class ids or names to keep.
        precision: ``"f32"``, or ``"int8"``: the float model statically quantized
            (calibrated on ``calib``, cached; see :mod:`viewfinder.detect.yolo_int8`).
        calib: int8: a directory of calibration images, or a list of image files.
        calib_limit: int8: calibrate on at most this many files (0: all).
        progress: int8: called with ``(stage, done, total)`` while quantizing.

    Raises:
        ConfigError: bad options, e.g. int8 without ``calib`` or with decode in the graph.
        DatasetError: int8 with an empty or unreadable calibration set.
    """
    from viewfinder.detect.darknet_cfg import read_names
    from viewfinder.detect.yolo_int8 import cached_int8, check_precision

    if graph not in ("raw", "decoded", "nms"):
        raise ConfigError(f"graph {graph!r}: expected raw, decoded or nms")
    check_precision(precision, calib, graph)
    path = Path(model)
    names: tuple[str, ...] = ()
    if path.suffix != ".onnx":
        cfg, weights, names_file = _darknet_files(str(model))
        names = read_names(names_file) if names_file else ()
        path = _cached_onnx(cfg, weights, size, graph, names)
    elif not path.is_file():
        raise ModelNotFoundError(f"{path}: no such model file")
    info = _read_metadata(path)
    if precision == "int8":
        if info.kind != "raw":
            raise ConfigError(f"{path}: int8 needs a raw-output model (decode and NMS stay "
                              f"float), this one is {info.kind!r}")
        # OpenVINO reads QDQ int8 graphs, not ONNX Runtime's QLinear contrib ops
        fmt = "qoperator" if backend == "ort" else "qdq"
        path = cached_int8(path, info.size, calib, calib_limit, progress, quant_format=fmt)
    names = names or info.names
    ids = _class_ids(classes, names) if classes is not None else None
    session = load_session(path, backend=backend, provider=provider, threads=threads)
    return YoloDetector(session, info, names, conf, iou, ids)


def _class_ids(classes: Sequence[int | str], names: Sequence[str]) -> list[int]:
    ids = []
    for c in classes:
        if isinstance(c, int) or str(c).isdigit():
            ids.append(int(c))
        elif c in names:
            ids.append(list(names).index(c))
        else:
            raise ConfigError(f"class {c!r}: not a class name of this model")
    return ids
