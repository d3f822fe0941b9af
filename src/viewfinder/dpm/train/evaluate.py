"""Held-out evaluation of a trained model: detections on a VOC split, devkit AP.

The trained model is exported with :meth:`TrainModel.to_model` (mirrored components
materialised) and run by :func:`viewfinder.dpm.detect.detect`, the same detector
users run on the published voc-release5 models; the tests check that its scores equal
the training code's own latent search.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewfinder.datasets.voc import VOCDataset, voc_to_xyxy
from viewfinder.dpm.model import Model
from viewfinder.dpm.train.model import TrainModel
from viewfinder.errors import InputFileError
from viewfinder.eval.voc import VOCEvaluator
from viewfinder.structures import Detections

__all__ = ["EvalResult", "detect_image", "evaluate", "load_trained"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """AP of one class on one split, with counts and timing."""

    cls: str
    split: str
    ap: float
    images: int
    ground_truth: int
    detections: int
    seconds: float


def load_trained(path: str | os.PathLike[str]) -> TrainModel:
    """A trained model from a run directory (its ``final.npz``) or an ``.npz`` file.

    Raises:
        InputFileError: a run directory that has not finished training.
    """
    p = Path(path)
    if p.is_dir():
        final = p / "final.npz"
        if not final.is_file():
            raise InputFileError(f"{p}: run directory has no final.npz (training not finished)")
        p = final
    return TrainModel.load(p)


def detect_image(model: TrainModel | Model, image: np.ndarray, threshold: float | None = None
                 ) -> Detections:
    """Detections of a trained model in one RGB image, by :func:`viewfinder.dpm.detect.detect`.

    Args:
        model: A :class:`TrainModel` (exported with :meth:`TrainModel.to_model`) or a
            detection :class:`~viewfinder.dpm.model.Model`.
        image: ``(H, W, 3)`` RGB.
        threshold: Score threshold (the model's by default).
    """
    from viewfinder.dpm.detect import detect

    dm = model.to_model() if isinstance(model, TrainModel) else model
    found = detect(dm, image, threshold)
    return Detections(voc_to_xyxy(found.boxes).astype(np.float32),
                      found.scores.astype(np.float32), np.zeros(len(found.scores), np.int64),
                      (dm.name,))


@dataclass(frozen=True)
class _DetectSetup:
    """A worker's state for :func:`evaluate`: the dataset reader and the exported model."""

    voc_root: str
    split: str
    cls: str
    model: Model

    def __call__(self) -> tuple[VOCDataset, Model]:
        return VOCDataset(self.voc_root, self.split, classes=[self.cls]), self.model


def _detect_unit(state: tuple[VOCDataset, Model], unit: tuple[str, float]) -> Detections:
    """Detections of one image (a mapper unit: ``(image_id, threshold)``)."""
    voc, model = state
    image_id, thr = unit
    return detect_image(model, voc.read_image(image_id), thr)


def evaluate(model: TrainModel, voc_root: str | os.PathLike[str], split: str = "test",
             cls: str | None = None, threshold: float | None = None,
             progress: Callable[[int, int], None] | None = None, *, workers: int = 0,
             engine: str = "pool", address: str | None = None) -> EvalResult:
    """Devkit AP (VOC2007 11-point) of ``model`` on a split.

    Args:
        model: The trained model.
        voc_root: VOC-layout directory.
        split: Image set to evaluate.
        cls: Class name in the annotations (the model's name by default).
        threshold: Detection threshold (default: ``min(model.thresh, -1.0)``, low enough
            for a full precision/recall curve).
        progress: Optional ``callback(done, total)`` per image.
        workers: Processes (or Ray actors) detecting; the detections are scored here in
            image order, so the AP is the serial run's.
        engine: ``"pool"`` or ``"ray"``.
        address: Ray cluster (None: a local Ray is started).
    """
    from viewfinder.scale.mapper import open_mapper

    cls = cls or model.name
    voc = VOCDataset(voc_root, split, classes=[cls])
    thr = min(model.thresh, -1.0) if threshold is None else threshold
    ev = VOCEvaluator(voc, classes=[cls])
    t0, n_det = time.perf_counter(), 0
    setup = _DetectSetup(str(voc.root), split, cls, model.to_model())
    units = [(image_id, thr) for image_id in voc]
    with open_mapper(_detect_unit, setup, workers=workers, engine=engine,
                     address=address) as mapper:
        for k, ((image_id, _), dets) in enumerate(zip(units, mapper.map(units), strict=True)):
            ev.process(image_id, Detections(dets.boxes, dets.scores, dets.class_ids, (cls,)))
            n_det += len(dets)
            if progress is not None:
                progress(k + 1, len(voc))
    res = ev.evaluate()[cls]
    out = EvalResult(cls, split, float(res.ap), len(voc), int(res.npos), n_det,
                     time.perf_counter() - t0)
    logger.info("eval %s on %s: AP %.4f (%d images, %d objects, %d detections, %.1f s)", cls,
                split, out.ap, out.images, out.ground_truth, out.detections, out.seconds)
    return out
