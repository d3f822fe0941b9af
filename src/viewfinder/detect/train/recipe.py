"""The YOLO training recipe: VOC data, Darknet cfg/weights, our loop, scaler and AP.

    result = train_yolo(YoloTrainConfig(data="coco256-voc", cfg="yolov3-tiny.cfg",
                                        weights="yolov3-tiny.weights", epochs=1,
                                        amp="bf16", loss_scale="dynamic"))

Writes ``<out>/last.pt`` (checkpoint: resume with ``resume=``) and
``<out>/final.weights`` (Darknet format, loadable by Darknet, this package and
``viewfinder convert``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viewfinder.detect.darknet import build_darknet, save_weights
from viewfinder.detect.darknet_cfg import parse_cfg, read_names
from viewfinder.detect.train.augment import Augment, BatchLoader, Sample
from viewfinder.detect.train.loss import YoloTrainModel
from viewfinder.detect.train.voc import VOCItem, VOCSplit, evaluate_voc, read_voc
from viewfinder.errors import ConfigError, DatasetError
from viewfinder.fileio import atomic_write_text
from viewfinder.train.amp import AmpPolicy, resolve_device
from viewfinder.train.hooks import CheckpointHook, LoggingHook, LRWarmupHook
from viewfinder.train.scaler import make_scaler
from viewfinder.train.trainer import Trainer

__all__ = ["COCO_ALIASES", "YoloTrainConfig", "YoloTrainResult", "class_index", "evaluate_yolo",
           "train_yolo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class YoloTrainConfig:
    """Settings of :func:`train_yolo` (the CLI flags of ``viewfinder train yolo``)."""

    data: str | os.PathLike[str]
    cfg: str | os.PathLike[str]
    names: str | os.PathLike[str] | None = None
    weights: str | os.PathLike[str] | None = None
    epochs: int = 1
    batch_size: int = 8
    lr: float = 1e-3
    size: int | None = None
    amp: str = "f32"
    loss_scale: str | None = None
    init_scale: float = 65536.0
    growth: float = 2.0
    backoff: float = 0.5
    interval: int = 2000
    device: str = "cpu"
    out: str | os.PathLike[str] = "runs/yolo"
    resume: str | os.PathLike[str] | None = None
    train_split: str = "train"
    eval_split: str | None = "test"
    max_iter: int | None = None
    warmup: int = 100
    seed: int = 0
    conf: float = 0.005


@dataclass
class YoloTrainResult:
    """What training produced."""

    history: list[dict[str, float]]
    weights: Path
    checkpoint: Path
    metrics: dict[str, float]
    overflows: int
    metrics_path: Path | None = None


# COCO's spelling (as in COCO-derived VOC XML) -> Darknet coco.names spelling.
COCO_ALIASES = {"airplane": "aeroplane", "couch": "sofa", "dining table": "diningtable",
                "motorcycle": "motorbike", "potted plant": "pottedplant", "tv": "tvmonitor"}


def class_index(names: tuple[str, ...]) -> dict[str, int]:
    """Name -> id for the model's names, also accepting COCO's spellings of Darknet's."""
    index = {n: i for i, n in enumerate(names)}
    index.update({alias: index[n] for alias, n in COCO_ALIASES.items()
                  if n in index and alias not in index})
    return index


def _samples(items: list[VOCItem], names: tuple[str, ...], root: Path) -> Callable[[int], Sample]:
    from viewfinder.media import read_image

    index = class_index(names)
    for item in items:
        unknown = sorted(set(item.labels) - set(index))
        if unknown:
            raise DatasetError(f"{root}: image {item.image_id}: class {unknown[0]!r} is not in "
                               f"the model's {len(names)} class names")

    def load(i: int) -> Sample:
        item = items[i]
        return Sample(read_image(item.image_path), item.boxes,
                      np.array([index[n] for n in item.labels], np.int64))

    return load


def _check(cfg: YoloTrainConfig) -> None:
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError(f"epochs={cfg.epochs}, batch={cfg.batch_size}: expected >= 1")
    if not cfg.lr > 0:
        raise ConfigError(f"lr={cfg.lr}: expected > 0")
    if cfg.amp == "fp16" and cfg.loss_scale in (None, "none"):
        log.warning("fp16 without --loss-scale: gradients may underflow")


def train_yolo(cfg: YoloTrainConfig, progress: Callable[[dict], None] | None = None
               ) -> YoloTrainResult:
    """Train (or fine-tune) a Darknet YOLO on a VOC-layout data set, then evaluate it.

    Raises:
        ConfigError, DatasetError, ModelError, ProviderError: bad settings or inputs
            (checked before the first step).
    """
    import torch

    _check(cfg)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    spec = parse_cfg(cfg.cfg, size=cfg.size)
    names = read_names(cfg.names or Path(cfg.cfg).with_name("coco.names"))
    if len(names) != spec.num_classes:
        raise ConfigError(f"{cfg.names}: {len(names)} names for a cfg of {spec.num_classes} classes")
    root = Path(cfg.data)
    items = list(read_voc(root, cfg.train_split).items)
    load = _samples(items, names, root)
    jitter = spec.layers[spec.yolo_indices[0]].get_float("jitter", 0.3)
    hsv = tuple(float(spec.net.get(k, d)) for k, d in (("hue", .1), ("saturation", 1.5),
                                                         ("exposure", 1.5)))
    loader = BatchLoader(load, len(items), Augment(spec.input_shape[1], jitter, hsv=hsv,
                                                   seed=cfg.seed), cfg.batch_size, cfg.seed)
    network = build_darknet(spec, cfg.weights)
    model = YoloTrainModel(network).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                                weight_decay=5e-4)
    trainer = Trainer(model, optimizer, loader,
                      max_iter=cfg.max_iter or cfg.epochs * len(loader),
                      amp=AmpPolicy(cfg.amp, device.type), device=device,
                      scaler=make_scaler(cfg.loss_scale, init_scale=cfg.init_scale,
                                         growth=cfg.growth, backoff=cfg.backoff,
                                         interval=cfg.interval))
    if cfg.resume:
        trainer.resume(cfg.resume)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    trainer.register_hooks([LRWarmupHook(cfg.warmup), LoggingHook(1, progress),
                            CheckpointHook(out, len(loader))])
    history = trainer.train()
    weights = save_weights(network, out / "final.weights", seen=trainer.iter * cfg.batch_size)
    metrics = _evaluate(cfg, root, names, network, device)
    metrics_path = None
    if metrics:
        metrics_path = atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    return YoloTrainResult(history, weights, out / "last.pt", metrics,
                           trainer.scaler.state.overflows, metrics_path)


def _evaluate(cfg: YoloTrainConfig, root: Path, names: tuple[str, ...], network: Any,
              device: Any) -> dict[str, float]:
    if not cfg.eval_split:
        return {}
    return evaluate_yolo(network, read_voc(root, cfg.eval_split), names, device, cfg.conf)


class _TorchSession:
    """A torch network behind the runtime ``Session.run`` call, so that evaluation during
    training goes through :class:`~viewfinder.detect.yolo.YoloDetector`: the same decode,
    thresholds, NMS, letterbox inverse and clipping as inference."""

    def __init__(self, network: Any, device: Any) -> None:
        self.network, self.device = network, device

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            outs = self.network(torch.from_numpy(blob).to(self.device))
        return [o.float().cpu().numpy() for o in outs]


def evaluate_yolo(network: Any, split: VOCSplit, names: tuple[str, ...], device: Any = "cpu",
                  conf: float = 0.005, iou: float = 0.45) -> dict[str, float]:
    """Detect on every item with the torch network (eval mode), through the inference
    detector's post-processing, and return the VOC AP."""
    from viewfinder.detect.yolo import YoloDetector, _ModelInfo
    from viewfinder.media import read_image

    network.eval()
    size = tuple(network.spec.input_shape[1:])
    spelled = set(split.dataset.classes)
    inverse = {n: a for a, n in COCO_ALIASES.items() if a in spelled and n not in spelled}
    names = tuple(inverse.get(n, n) for n in names)  # label detections as the data spells them
    info = _ModelInfo("raw", size, tuple(network.heads), names)
    detector = YoloDetector(_TorchSession(network, device), info, names, conf, iou)  # type: ignore[arg-type]
    dets = [detector.detect(read_image(item.image_path)) for item in split.items]
    return evaluate_voc(split, dets)
